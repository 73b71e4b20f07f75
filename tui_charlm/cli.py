"""`charlm`: train, generate, eval, look inside (cells), list runs and corpora from the command line.

On a terminal, training shows a Rich progress bar with loss and ETA; when
output goes to a file or a pipe it prints plain lines a log can keep.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from rich import box
from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from tui_charlm.core.atomic import atomic_write_text
from tui_charlm.core.cells import rank_cells, record_states
from tui_charlm.core.cells_page import Section, cells_page
from tui_charlm.core.config import make_config
from tui_charlm.core.control import COMMANDS as CONTROL_COMMANDS
from tui_charlm.core.control import send_command
from tui_charlm.core.corpus import cache_dir, list_corpora
from tui_charlm.core.dataset import split_ids
from tui_charlm.core.distributed import (
    ENV_ADDRESSES,
    ENV_PROCESS_ID,
    ENV_PROCESSES,
    Cluster,
    can_supervise,
    cluster_from,
    end_process,
    supervise,
    watch_supervisor,
)
from tui_charlm.core.errors import CharlmError
from tui_charlm.core.evaluation import PIECE_CHARS, WARMUP, evaluate
from tui_charlm.core.eventlog import EventLogReader
from tui_charlm.core.events import (
    BatchFinished,
    CheckpointSaved,
    EpochFinished,
    EpochTimed,
    SamplesWritten,
    TrainingFailed,
    TrainingFinished,
    TrainingPaused,
    TrainingResumed,
    TrainingStarted,
)
from tui_charlm.core.generation import Generator
from tui_charlm.core.hangup import GuardedStream, watch_for_hangup
from tui_charlm.core.options import add_config_options, config_overrides
from tui_charlm.core.runs import (
    COLUMNS,
    RUNS_DIR,
    holder_name,
    is_run_directory,
    list_runs,
    lock_holder,
    summary_cells,
)
from tui_charlm.core.sampling import RECIPE_TEMPERATURES, SamplingSettings
from tui_charlm.core.session import (
    cluster_training,
    load_config_corpus,
    new_training,
    open_saved_run,
    resume_training,
    saved_corpus_ids,
)
from tui_charlm.core.stopping import SAVES, Activity
from tui_charlm.core.units import format_duration, to_bits

# Plain (non-TTY) progress lines at most this often.
PLAIN_INTERVAL = 10.0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="charlm", description="Train and sample character-level LSTM language models."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = sub.add_parser("train", help="train a model (or resume one)", description="Train a model, or resume one.")
    train.add_argument("--run-dir", type=Path, help="where to write the run (default: runs/<corpus>-<time>)")
    train.add_argument("--resume", type=Path, metavar="RUN_DIR", help="continue a run from its last checkpoint")
    train.add_argument(
        "--offline", action="store_true", default=None, help="never use the network (also CHARLM_OFFLINE=1)"
    )
    train.add_argument("--plain", action="store_true", help="plain progress lines even on a terminal")
    cluster = train.add_argument_group(
        "training over several processes and hosts (JAX backend; every process runs the same command)"
    )
    cluster.add_argument(
        "--coordinator",
        metavar="HOST:PORT",
        help=f"where process 0 listens for the others (also {ENV_ADDRESSES}, its first address)",
    )
    cluster.add_argument(
        "--processes", type=int, metavar="N", help=f"how many processes train the run (also {ENV_PROCESSES})"
    )
    cluster.add_argument(
        "--process-id",
        type=int,
        metavar="I",
        help=f"this process's number, 0 to N-1; process 0 writes the run (also {ENV_PROCESS_ID})",
    )
    add_config_options(train)

    generate = sub.add_parser(
        "generate", help="generate text from a run", description="Generate text from a saved run."
    )
    generate.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    seed = generate.add_mutually_exclusive_group()
    seed.add_argument("--seed-text", help="text to start from (default: a random slice of the corpus)")
    seed.add_argument("--seed-file", type=Path, help="read the seed text from this file")
    generate.add_argument(
        "--temperature",
        "-t",
        type=float,
        action="append",
        help="sampling temperature, repeatable; 0 = greedy (default: 0.2 0.5 1.0 1.2)",
    )
    generate.add_argument("--top-k", type=int, help="sample only among the k likeliest chars")
    generate.add_argument("--top-p", type=float, help="sample only among the likeliest chars covering probability p")
    generate.add_argument(
        "--mode",
        choices=("stateful", "window"),
        help="stateful (O(1) per char) or window (re-read the last seq-len chars, the recipe's way); "
        "default: stateful for sequence models, window for --recipe seed",
    )
    generate.add_argument(
        "--length", "-n", type=int, default=400, help="chars to generate per temperature (default: 400)"
    )
    generate.add_argument("--rng-seed", type=int, help="random seed for reproducible text")
    generate.add_argument("--offline", action="store_true", default=None, help="never use the network")

    evaluate = sub.add_parser("eval", help="held-out loss of a run", description="Score a run on its held-out text.")
    evaluate.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    evaluate.add_argument(
        "--positions", type=int, default=20000, help="random held-out positions scored (default: 20000)"
    )
    evaluate.add_argument("--context", type=int, default=60, help="chars of context per position (default: 60)")
    evaluate.add_argument("--offline", action="store_true", default=None, help="never use the network")

    runs = sub.add_parser(
        "runs",
        help="list your runs: model, progress, best held-out loss, status",
        description="List the runs under DIR (default: ./runs), newest first: corpus, model, steps, training "
        "time, best held-out loss, when the last checkpoint was saved, and whether each is training now "
        "(and by which process), finished, stopped, or damaged (and why).",
    )
    runs.add_argument("dir", type=Path, nargs="?", default=RUNS_DIR, metavar="DIR")
    runs.add_argument("--json", action="store_true", help="print the same as a JSON list, for scripts")

    cells = sub.add_parser(
        "cells",
        help="which LSTM cells track quotes, brackets, lines, words",
        description="Record every LSTM cell over a text and rank the cells by how closely their activation "
        "(tanh of the cell state) follows features of the text: inside double quotes, bracket depth, position in "
        "the line, start of a word, after a newline.",
    )
    cells.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    cells.add_argument("--text", type=Path, metavar="FILE", help="read this text (default: the run's held-out text)")
    cells.add_argument(
        "--chars", type=int, default=60_000, help="use at most this many chars of the text (default: 60000)"
    )
    cells.add_argument("--top", type=int, default=3, help="cells listed per feature (default: 3)")
    cells.add_argument("--html", type=Path, metavar="FILE", help="write a page of the text coloured by those cells")
    cells.add_argument(
        "--html-chars", type=int, default=3000, help="chars of the text shown per cell on the page (default: 3000)"
    )
    cells.add_argument("--offline", action="store_true", default=None, help="never use the network")

    control = sub.add_parser(
        "control",
        help="pause, resume, save or stop a run training in another process",
        description="Steer a run that another process is training (charlm train under nohup, say): the "
        "command goes through the run folder, and this waits until the trainer acknowledges it in the run's "
        "event log.",
    )
    control.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    control.add_argument(
        "action", choices=CONTROL_COMMANDS, metavar="{" + ",".join(CONTROL_COMMANDS) + "}", help="what to ask for"
    )
    control.add_argument(
        "--wait", type=float, default=120.0, help="seconds to wait for the acknowledgement (default: 120)"
    )

    sub.add_parser(
        "corpora", help="list the corpora you can name", description="List corpora and whether they are cached."
    )
    return parser


# -- train ---------------------------------------------------------------------


class PlainProgress:
    """Progress as plain lines, for logs and pipes."""

    def __init__(self, stream=None, *, budget: float = 0.0):
        self.stream = stream or sys.stdout
        self.budget = budget  # the run's --time-budget in training seconds (0: none): where it ends
        self.last_line = -math.inf  # never yet (time.monotonic() counts from boot)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def say(self, text: str) -> None:
        print(text, file=self.stream, flush=True)

    def __call__(self, event: object) -> None:
        if isinstance(event, TrainingStarted):
            verb = "resuming" if event.resumed else "training"
            self.say(
                f"{verb} {event.run_dir}: {event.parameters:,} parameters on {event.device}, "
                f"epoch {event.epoch + 1}, step {event.step}, {event.batches_per_epoch} batches per epoch"
            )
        elif isinstance(event, BatchFinished):
            now = time.monotonic()
            if now - self.last_line >= PLAIN_INTERVAL or event.batch == event.batches:
                self.last_line = now
                self.say(
                    f"epoch {event.epoch + 1} batch {event.batch}/{event.batches} step {event.step} "
                    f"loss {event.loss:.4f} ({to_bits(event.loss):.3f} bits) "
                    f"{event.chars_per_second:,.0f} chars/s (session {event.average_chars_per_second:,.0f}) "
                    f"elapsed {event.elapsed:.0f}s" + (f" of {self.budget:.0f}s" if self.budget else "")
                )
        elif isinstance(event, EpochFinished):
            self.say(epoch_line(event))
        elif isinstance(event, EpochTimed):
            self.say(time_line(event))
        elif isinstance(event, CheckpointSaved):
            self.say(f"checkpoint ({event.reason}): {event.path}")
        elif isinstance(event, SamplesWritten):
            text = event.samples.get(0.5, next(iter(event.samples.values()))).replace("\n", " ")
            self.say(f"sample (T=0.5): {text[:160]}")
        elif isinstance(event, TrainingPaused):
            self.say(f"paused at step {event.step}")
        elif isinstance(event, TrainingResumed):
            self.say(f"resumed at step {event.step}")
        elif isinstance(event, TrainingFinished):
            self.say(f"finished ({event.reason}) at epoch {event.epoch}, step {event.step}")
        elif isinstance(event, TrainingFailed):
            self.say(f"failed: {event.message}")


def epoch_line(event: EpochFinished) -> str:
    return (
        f"epoch {event.epoch} done: train {event.train_loss:.4f} nats ({event.train_bits:.3f} bits), "
        f"held-out {event.val_loss:.4f} nats ({event.val_bits:.3f} bits), {event.seconds:.0f}s"
    )


def time_line(event: EpochTimed) -> str:
    """Where an epoch's wall time went, e.g. 'epoch 3 time: 25.3s, 96% in training calls; held-out 0.6s, ...'."""
    named = [f"{name} {seconds:.1f}s" for name, seconds in event.parts.items() if name != "training calls"]
    what = f"epoch {event.epoch}" if event.finished else f"epoch {event.epoch} (part)"
    inside = event.parts.get("training calls", 0.0)
    return (
        f"{what} time: {event.seconds:.1f}s, {inside:.1f}s ({1 - event.outside_training:.0%}) in training "
        f"calls; " + ", ".join([*named, f"other {event.other:.1f}s"])
    )


class RichProgress(PlainProgress):
    """A live Rich progress bar for the epoch in progress, with loss, chars/s and ETA."""

    def __enter__(self):
        self.console = Console(stderr=False)
        self.progress = Progress(
            TextColumn("[bold]epoch {task.fields[epoch]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss [cyan]{task.fields[loss]}"),
            TextColumn("{task.fields[rate]} chars/s"),
            TextColumn("(session {task.fields[average]})"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[left]}"),  # with a --time-budget, the run's end may come before the epoch's
            console=self.console,
            transient=False,
        )
        self.progress.__enter__()
        self.task = None
        return self

    def __exit__(self, *exc):
        return self.progress.__exit__(*exc)

    def say(self, text: str) -> None:
        self.progress.console.print(text, highlight=False, markup=False)

    def __call__(self, event: object) -> None:
        if isinstance(event, BatchFinished):
            fields = dict(
                epoch=event.epoch + 1,
                loss=f"{event.loss:.3f} ({to_bits(event.loss):.2f} bits)",
                rate=f"{event.chars_per_second:,.0f}",
                average=f"{event.average_chars_per_second:,.0f}",
                left=f"· budget {format_duration(max(0.0, self.budget - event.elapsed))} left" if self.budget else "",
            )
            if self.task is None or self.progress.tasks[self.task].fields.get("epoch") != event.epoch + 1:
                if self.task is not None:
                    self.progress.remove_task(self.task)
                self.task = self.progress.add_task("", total=event.batches, completed=event.batch, **fields)
            else:
                self.progress.update(self.task, completed=event.batch, **fields)
        else:
            super().__call__(event)


def _install_stop_signals(stop_event: threading.Event, received: list[int]) -> None:
    """First Ctrl+C, SIGTERM or SIGHUP: stop at the next batch and checkpoint.

    A second Ctrl+C aborts; a SIGTERM after the first signal exits at once
    (the checkpoint is already written, or abandoned whole: it is written
    into a hidden folder and renamed into place only when complete). A
    repeated SIGHUP is the same hang-up reported twice (the kernel signals
    the session leader and the terminal's foreground group) and is ignored.
    """

    def handler(signum, frame):
        if received:
            if signum == signal.SIGINT:
                raise KeyboardInterrupt
            if signum == signal.SIGTERM:
                os._exit(128 + received[0])
            return
        received.append(signum)
        stop_event.set()
        print(
            f"\n{signal.Signals(signum).name}: stopping after this batch and saving a checkpoint "
            f"(Ctrl+C again to abort without saving)",
            file=sys.stderr,
            flush=True,
        )

    for name in ("SIGINT", "SIGTERM", "SIGHUP"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), handler)


def cmd_train(args: argparse.Namespace) -> int:
    cluster = cluster_from(args.coordinator, args.processes, args.process_id)
    if can_supervise(cluster):
        return supervise(cluster, args.argv)  # trains in a child that outlives a lost coordinator's abort
    watch_supervisor()
    stop_event = threading.Event()
    lost: list[int] = []  # the exit status, once the terminal or the output pipe has gone away

    def output_lost(status: int) -> None:
        # Over SSH without nohup the terminal can vanish: stop, save, and exit rather than crash on a write.
        lost.append(status)
        stop_event.set()

    real = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = GuardedStream(sys.stdout, output_lost), GuardedStream(sys.stderr, output_lost)
    done = threading.Event()
    try:
        try:
            watch_for_hangup(real[0].fileno(), output_lost, done)
        except (AttributeError, OSError, ValueError):
            pass  # stdout is not a file (embedded in another program): nothing to watch
        return _train(args, cluster, stop_event, lost)
    finally:
        done.set()
        if not lost:  # else keep the guards: Python's own last flush of a dead stream would change the exit status
            sys.stdout, sys.stderr = real


def _train(args: argparse.Namespace, cluster: Cluster | None, stop_event: threading.Event, lost: list[int]) -> int:
    use_rich = sys.stdout.isatty() and not args.plain
    log = lambda text: print(text, flush=True)  # noqa: E731
    if args.resume and args.run_dir:
        raise CharlmError("--run-dir and --resume cannot be used together: --resume continues in its own directory.")

    def prepare():
        if args.resume:
            overrides = config_overrides(args)
            if args.recipe != "default":
                overrides["recipe"] = args.recipe
            return resume_training(args.resume, overrides, offline=args.offline, log=log)
        config = make_config(args.recipe, **config_overrides(args))
        return new_training(config, run_dir=args.run_dir, offline=args.offline, log=log)

    activity = Activity()
    trainer = prepare() if cluster is None else _cluster_trainer(cluster, prepare, args, activity, log)
    received: list[int] = []
    _install_stop_signals(stop_event, received)
    budget = trainer.config.time_budget
    progress = RichProgress(budget=budget) if use_rich else PlainProgress(budget=budget)
    with progress:
        try:
            outcome = _fit_until_stopped(
                trainer, progress, stop_event, lambda: 128 + received[0] if received else (lost or [1])[0], activity
            )
        except Exception as error:
            if cluster is None:
                raise
            # A collective that failed (a process gone): the heartbeats name the lost process, and end this one.
            trainer.heartbeats.verdict()
            print(
                f"charlm: training over {cluster.processes} processes failed ({str(error).strip()[:200]}).",
                file=sys.stderr,
                flush=True,
            )
            end_process(1)
    if cluster is not None:
        trainer.heartbeats.stop()
    print(f"run directory: {trainer.run.path}", flush=True)
    if isinstance(outcome, TrainingFailed):
        print(f"charlm: error: {outcome.message}", file=sys.stderr)
        return 1
    if received:
        return 128 + received[0]
    if lost:
        return lost[0]
    return 0


def _cluster_trainer(cluster, prepare, args: argparse.Namespace, activity: Activity, log):
    """This process's trainer in a run over several (core/distributed.py); a lost process ends it, saying which."""
    # Paths may differ between hosts (each reads its own copy of the corpus, checked to be the same text), and
    # so may thread counts; everything else asked must be the same in every process.
    asked = {key: value for key, value in config_overrides(args).items() if key not in ("corpus", "threads")}
    asked.update(recipe=args.recipe, resume=bool(args.resume))
    made: list = []

    def on_lost(sentence: str) -> None:
        # A checkpoint being written is finished first (saves are local, no other process is needed).
        deadline = time.monotonic() + 120
        while activity.current()[0] == SAVES and not activity.done.is_set() and time.monotonic() < deadline:
            time.sleep(0.05)
        trainer = made[0] if made else None
        if trainer is not None and trainer.writer:
            newest = trainer.run.latest()
            kept = (
                f"the newest checkpoint, {newest.path.name}, is intact; resume it with "
                f"`charlm train --resume {trainer.run.path}` on any number of processes"
                if newest
                else f"{trainer.run.path} has no checkpoint yet"
            )
        else:
            kept = "process 0 keeps the run's checkpoints; resume from there with any number of processes"
        print(f"charlm: {sentence}: training stopped; {kept}.", file=sys.stderr, flush=True)
        end_process(1)

    trainer = cluster_training(
        cluster,
        prepare,
        asked,
        corpus=None if args.resume else args.corpus,
        threads=args.threads,
        offline=args.offline,
        log=log,
        on_lost=on_lost,
    )
    made.append(trainer)
    return trainer


def _fit_until_stopped(
    trainer, progress, stop_event: threading.Event, status: Callable[[], int], activity: Activity | None = None
):
    """Train in a thread while this one waits for signals; once stopped, wait for the checkpoint, not forever.

    Python runs signal handlers only in the main thread, and only between
    bytecodes: with training on the main thread, a signal waits for the
    TensorFlow call in hand, however long it takes. Here the main thread
    only waits, so a stop is seen at once, and it then waits while training
    works its way to its checkpoint for as long as this run's own calls and
    saves have taken (core/stopping.py). If that runs out, the process ends
    without the checkpoint (`status()`), saying why; the newest checkpoint
    on disk is intact (saves are written aside and renamed into place).
    """
    activity = activity or Activity()
    ended: list = []

    def train() -> None:
        try:
            ended.append(trainer.fit(progress, stop_event=stop_event, activity=activity))
        except BaseException as error:  # raised again below, in the main thread
            ended.append(error)
        finally:
            activity.finish()

    thread = threading.Thread(target=train, name="charlm-train", daemon=True)
    thread.start()
    try:
        while not activity.done.wait(0.2):  # signal handlers run while this waits
            if stop_event.is_set() and not activity.wait():
                newest = trainer.last_checkpoint
                print(
                    f"charlm: {activity.describe()}; ended without it"
                    + (f" (the newest checkpoint, {newest.name}, is intact)" if newest else ""),
                    file=sys.stderr,
                    flush=True,
                )
                os._exit(status())
    except KeyboardInterrupt:  # a second Ctrl+C: abort, as promised, without waiting for the save
        print("\ncharlm: interrupted without saving", file=sys.stderr, flush=True)
        os._exit(130)
    thread.join()
    if isinstance(ended[0], BaseException):
        raise ended[0]
    return ended[0]


# -- generate ------------------------------------------------------------------


def default_seed(run, rng_seed: int | None) -> str:
    """A random slice of the run's corpus (held-out part), or a newline if the corpus is not here."""
    found = saved_corpus_ids(run)
    if found is None:
        return "\n" if "\n" in run.vocab else run.vocab.chars[0]
    ids = found[0]
    heldout_start = int(len(ids) * (1 - run.config.val_fraction))
    length = min(run.config.seq_len, 60)
    rng = np.random.default_rng(rng_seed)
    start = int(rng.integers(heldout_start, max(heldout_start + 1, len(ids) - length)))
    return run.vocab.decode(ids[start : start + length])


def read_text_file(path: Path, what: str = "") -> str:
    """A UTF-8 text file given on the command line, or one sentence saying why it cannot be read."""
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise CharlmError(f"Cannot read {what}{path}: {getattr(error, 'strerror', None) or error}.") from None


def cmd_generate(args: argparse.Namespace) -> int:
    if args.length < 1:
        raise CharlmError("--length must be at least 1.")
    if args.rng_seed is not None and args.rng_seed < 0:
        raise CharlmError("--rng-seed must be zero or positive.")
    temperatures = args.temperature or list(RECIPE_TEMPERATURES)
    settings = [SamplingSettings(t, args.top_k, args.top_p) for t in temperatures]
    seed_text = read_text_file(args.seed_file, "seed file ") if args.seed_file else args.seed_text
    saved = open_saved_run(args.run_dir)
    run, weights = saved.run, saved.weights
    if seed_text is None:
        seed_text = default_seed(run, args.rng_seed)
    if run.config.lowercase:
        seed_text = seed_text.lower()
    generator = Generator(weights, run.vocab, settings, seed_text=seed_text, mode=args.mode, rng_seed=args.rng_seed)
    if generator.seed_report.describe():
        print(generator.seed_report.describe(), file=sys.stderr)
    print(f"--- seed ({generator.mode} mode) ---\n{generator.seed_report.text}", flush=True)
    if sys.stdout.isatty():
        stream_to_terminal(generator, settings, args.length)
        return 0
    texts = generator.generate(args.length)
    for setting, text in zip(settings, texts):
        print(f"--- {setting.describe()} ---\n{text}", flush=True)
    return 0


def stream_to_terminal(generator, settings, length: int) -> None:
    """Show text char by char as it is generated: one line of output per stream, or a live panel per stream."""
    if len(settings) == 1:
        print(f"--- {settings[0].describe()} ---", flush=True)
        for _ in range(length):
            sys.stdout.write(generator.step()[0].char)
            sys.stdout.flush()
        sys.stdout.write("\n")
        return
    texts: list[list[str]] = [[] for _ in settings]

    def render():
        return Group(
            *(Panel(Text("".join(t)), title=s.describe(), title_align="left") for s, t in zip(settings, texts))
        )

    with Live(render(), refresh_per_second=30) as live:
        for _ in range(length):
            for char in generator.step():
                texts[char.stream].append(char.char)
            live.update(render())


# -- eval ----------------------------------------------------------------------


def heldout_of(run, offline: bool | None):
    """(the run's corpus, its held-out ids): the text training held out, read again from the corpus."""
    config = run.config
    corpus = load_config_corpus(
        config,
        offline=offline,
        max_vocab=max(config.max_vocab, len(run.vocab)),
        log=lambda text: print(text, file=sys.stderr),
    )
    missing = corpus.missing_from(run.vocab)
    if missing:
        raise CharlmError(
            f"The corpus of {run.path} now has characters the model never saw ({missing[:5]}); "
            "it has changed since training."
        )
    recorded = run.meta.get("corpus", {})
    if recorded.get("sha256") and recorded["sha256"] != corpus.sha256:
        print(
            f"charlm: note: corpus {corpus.name!r} has changed since {run.path} was trained (then "
            f"{_chars(recorded.get('chars'))}, sha256 {str(recorded['sha256'])[:12]}; now {len(corpus):,} chars, "
            f"sha256 {corpus.sha256[:12]}): the held-out part scored is not the text training held out.",
            file=sys.stderr,
        )
    return corpus, split_ids(corpus.ids_in(run.vocab), config).heldout


def cmd_eval(args: argparse.Namespace) -> int:
    if args.positions < 1 or args.context < 1:
        raise CharlmError("--positions and --context must be at least 1.")
    saved = open_saved_run(args.run_dir)
    run, weights = saved.run, saved.weights
    corpus, heldout = heldout_of(run, args.offline)
    if len(heldout) < args.context + 2:
        raise CharlmError(f"The held-out text ({len(heldout)} chars) is shorter than one {args.context}-char window.")
    result = evaluate(weights, heldout, context=args.context, positions=args.positions)
    print(f"run: {run.path} (step {weights.version}, corpus {corpus.name}, held-out {result.heldout_chars:,} chars)")
    print(
        f"window loss ({result.window_positions:,} positions, {result.context}-char context): "
        f"{result.window_loss:.4f} nats/char ({result.window_bits:.4f} bits/char)"
    )
    if result.stateful_loss is None:
        print("stateful loss: not reported (a window model, trained on fixed windows from a zero state)")
    else:
        print(
            f"stateful loss (held-out text in order, in {PIECE_CHARS:,}-char pieces each warmed on the "
            f"{WARMUP} chars before): "
            f"{result.stateful_loss:.4f} nats/char ({result.stateful_bits:.4f} bits/char)"
        )
    return 0


def _chars(count) -> str:
    return f"{count:,} chars" if isinstance(count, int) else "of unrecorded length"


# -- runs ------------------------------------------------------------------------

STATUS_STYLES = {"training": "bold green", "finished": "cyan", "stopped": "yellow", "damaged": "bold red"}


def cmd_runs(args: argparse.Namespace) -> int:
    if args.dir.exists() and not args.dir.is_dir():
        raise CharlmError(f"{args.dir} is a file, not a folder of runs.")
    summaries = list_runs(args.dir)
    if args.json:
        print(json.dumps([summary.to_json() for summary in summaries], indent=1))
        return 0
    if not summaries:
        print(f"No runs in {args.dir}. Start one with `charlm train` or `charlm-tui`.")
        return 0
    table = Table(title=f"runs in {args.dir}", title_justify="left", box=box.SIMPLE_HEAD)
    for column in COLUMNS:
        table.add_column(column, justify="right" if column in ("steps", "epochs", "trained", "saved") else "left")
    for run in summaries:
        name, status, *cells = summary_cells(run)
        table.add_row(name, Text(status, style=STATUS_STYLES[run.status]), *cells)
    # On a terminal the table fits its width; into a file or a pipe, one line per run (no folding).
    Console(width=None if sys.stdout.isatty() else 200).print(table)
    return 0


# -- cells -----------------------------------------------------------------------


def cmd_cells(args: argparse.Namespace) -> int:
    for name in ("chars", "top", "html_chars"):
        if getattr(args, name) < 1:
            raise CharlmError(f"--{name.replace('_', '-')} must be at least 1.")
    saved = open_saved_run(args.run_dir)
    run, weights = saved.run, saved.weights
    if args.text is not None:
        text = read_text_file(args.text)
        if run.config.lowercase:
            text = text.lower()
        report = run.vocab.clean_seed(text[: args.chars])
        if report.unknown:
            shown = ", ".join(map(repr, report.unknown[:10])) + (", ..." if len(report.unknown) > 10 else "")
            print(
                f"charlm: {args.text} has characters not in the model's vocabulary ({shown}); dropped them.",
                file=sys.stderr,
            )
        text, source = report.text, str(args.text)
    else:
        corpus, heldout = heldout_of(run, args.offline)
        text, source = run.vocab.decode(heldout[: args.chars]), f"the held-out text of {corpus.name}"
    if len(text) < 2:
        raise CharlmError(f"The text ({source}) has {len(text)} usable chars; give one with at least a line in it.")
    states = record_states(weights, run.vocab.encode(text))
    activations = states.activations
    ranked = rank_cells(activations, text, top=args.top)
    units = ", ".join(str(layer.units) for layer in weights.lstm)
    print(f"run: {run.path} (step {weights.version}); text: {source}, {len(text):,} chars")
    print(f"cells: {states.layers} layer(s) of {units}; correlation of tanh(c) after each char with each feature")
    width = max(len(name) for name in ranked)
    for name, matches in ranked.items():
        shown = "   ".join(f"{m.cell.label(states.layers):>7} {m.correlation:+.2f}" for m in matches)
        print(f"{name:<{width}}  {shown or '(does not vary in this text)'}")
    if args.html is not None:
        shown_text = text[: args.html_chars]
        sections, seen = [], set()
        for name, matches in ranked.items():
            for match in matches:
                if match.cell in seen:
                    continue
                seen.add(match.cell)
                cell = match.cell
                sections.append(
                    Section(
                        f"cell {cell.label(states.layers)}: {name} (r = {match.correlation:+.2f})",
                        activations[cell.layer][: len(shown_text), cell.index],
                    )
                )
        page = cells_page(
            f"LSTM cells of {run.path.name}",
            shown_text,
            sections,
            notes=[
                f"Run {run.path} at step {weights.version}; text: {source} ({len(shown_text):,} of "
                f"{len(text):,} chars shown). Correlations are over all {len(text):,} chars."
            ],
        )
        try:
            atomic_write_text(args.html, page)
        except OSError as error:
            raise CharlmError(f"Cannot write {args.html}: {error.strerror or error}.") from None
        print(f"wrote {args.html} ({len(sections)} cells)")
    return 0


# -- corpora ---------------------------------------------------------------------


def cmd_corpora(args: argparse.Namespace) -> int:
    rows = list_corpora()
    print(f"Keras cache: {cache_dir()}")
    width = max(len(r.name) for r in rows)
    for row in rows:
        if row.source == "catalog":
            status = "cached" if row.available else "not cached (downloaded on first use)"
        elif row.source == "builtin":
            status = "built" if row.path else "built on first use"
        else:
            status = "file"
        size = f"{row.size / 1e6:.2f} MB" if row.size else ""
        print(f"{row.name:<{width}}  {row.source:<8} {status:<38} {size:>9}  {row.description}")
    return 0


# -- control -------------------------------------------------------------------

# The event-log line that acknowledges each command.
ACKNOWLEDGED_BY = {
    "pause": ("paused",),
    "resume": ("resumed",),
    "save": ("checkpoint",),
    "stop": ("finished", "failed"),
}


def cmd_control(args: argparse.Namespace) -> int:
    run = args.run_dir
    if not run.exists():
        raise CharlmError(f"Run directory {run} does not exist.")
    if not is_run_directory(run):
        raise CharlmError(f"{run} is not a charlm run directory.")
    holder = lock_holder(run)
    if holder is None:
        raise CharlmError(f"Nothing is training {run} now; `charlm train --resume {run}` continues it.")
    who = holder_name(holder)
    reader = EventLogReader(run)
    reader.poll()  # what was logged before the command is not its acknowledgement
    if args.action == "pause" and reader.log.paused:
        print(f"already paused at step {reader.log.last['step']:,} ({who})")
        return 0
    if args.action == "resume" and not reader.log.paused:
        print(f"not paused ({who})")
        return 0
    send_command(run, args.action)
    deadline = time.monotonic() + args.wait
    while time.monotonic() < deadline:
        for record in reader.poll():
            kind = record["type"]
            if kind in ACKNOWLEDGED_BY[args.action] and record.get("reason") in (None, "requested", "stopped"):
                print(_acknowledgement(record, who))
                return 1 if kind == "failed" else 0
            if kind in ("finished", "failed"):  # it ended for another reason before it took the command
                raise CharlmError(
                    f"The trainer ended before it acknowledged {args.action!r}: {_acknowledgement(record, who)}."
                )
        if lock_holder(run) is None:
            raise CharlmError(f"The trainer ({who}) ended before it acknowledged {args.action!r}.")
        time.sleep(0.1)
    raise CharlmError(
        f"The trainer ({who}) did not acknowledge {args.action!r} within {args.wait:g} s; it acts between "
        f"training calls, so a slow call delays it (the command stays queued)."
    )


def _acknowledgement(record: dict, who: str) -> str:
    step = f"step {record['step']:,}"
    kind = record["type"]
    if kind == "checkpoint":
        return f"saved {record.get('name', 'a checkpoint')} at {step} ({who})"
    if kind == "finished":
        ended = "stopped" if record.get("reason") == "stopped" else f"finished ({record.get('reason', '?')})"
        return f"{ended} at {step}, saved ({who})"
    if kind == "failed":
        return f"failed at {step}: {record.get('message', '')}"
    return f"{kind} at {step} ({who})"


COMMANDS = {
    "train": cmd_train,
    "control": cmd_control,
    "generate": cmd_generate,
    "eval": cmd_eval,
    "cells": cmd_cells,
    "runs": cmd_runs,
    "corpora": cmd_corpora,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `charlm`; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    try:
        return COMMANDS[args.command](args)
    except CharlmError as error:
        print(f"charlm: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ncharlm: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
