"""`charlm-tui`: parse options, keep stray stderr off the screen, run the app."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import threading
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from pathlib import Path

from tui_charlm.core.config import make_config
from tui_charlm.core.corpus import list_corpora
from tui_charlm.core.errors import CharlmError
from tui_charlm.core.hangup import (
    HANGUP_STATUS,
    GuardedStream,
    terminal_hung_up,
    watch_for_hangup,
)
from tui_charlm.core.options import add_config_options, config_overrides
from tui_charlm.core.runs import RUNS_DIR, is_run_directory, list_runs
from tui_charlm.core.sampling import check_temperature
from tui_charlm.tui.app import CharLMApp, Pick
from tui_charlm.tui.attach import AttachBackend
from tui_charlm.tui.core_bridge import CoreBackend, TuiOptions
from tui_charlm.tui.priority import ViewerPriority
from tui_charlm.tui.screens.start import StartChoice
from tui_charlm.tui.shutdown import Shutdown


def parse_temperatures(text: str) -> list[float]:
    """'0.2,0.5,1.0' -> [0.2, 0.5, 1.0], each checked."""
    try:
        values = [check_temperature(part) for part in text.split(",") if part.strip()]
    except CharlmError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    if not values:
        raise argparse.ArgumentTypeError("give at least one temperature, e.g. 0.2,0.5,1.0,1.2")
    if len(values) > 8:
        raise argparse.ArgumentTypeError("at most 8 temperatures")
    return values


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="charlm-tui", description="Train a character-level LSTM and watch it learn, in the terminal."
    )
    parser.add_argument("--resume", type=Path, metavar="RUN_DIR", help="continue training a run")
    parser.add_argument(
        "--load", type=Path, metavar="RUN_DIR", help="open a saved run (with --no-train: generation only)"
    )
    parser.add_argument(
        "--attach",
        type=Path,
        metavar="RUN_DIR",
        help="watch and steer a run another process is training (charlm train under nohup, say); q leaves it training",
    )
    parser.add_argument(
        "--on-hangup",
        choices=("stop", "detach"),
        default="stop",
        help="when the terminal goes away while training: stop (save a checkpoint and exit; the default) or "
        "detach (hand the run to a headless trainer that goes on; charlm-tui --attach watches it)",
    )
    parser.add_argument("--no-train", action="store_true", help="with --load: a generation playground, no training")
    parser.add_argument("--run-dir", type=Path, help="where to write a new run (default: runs/<corpus>-<time>)")
    parser.add_argument(
        "--temperatures",
        type=parse_temperatures,
        default=[0.2, 0.5, 1.0, 1.2],
        help="one stream per temperature, comma-separated (default: 0.2,0.5,1.0,1.2)",
    )
    parser.add_argument(
        "--chars-per-second",
        type=float,
        default=40.0,
        help="how fast each stream types (default: 40; 0 = as fast as possible)",
    )
    parser.add_argument("--seed-text", help="start generating from this text (default: a random corpus slice)")
    parser.add_argument("--rng-seed", type=int, help="random seed for seeds and sampling")
    parser.add_argument("--offline", action="store_true", default=None, help="never use the network")
    parser.add_argument(
        "--pick",
        action="store_true",
        help="start on the list of runs in ./runs (shown anyway when it has runs and no run option is given)",
    )
    add_config_options(parser)
    return parser


@contextmanager
def stderr_to_log(path: Path, on_lost: Callable[[int], None]):
    """Give Textual its own handle on the terminal and send fd 2 (C++ and library chatter) to a log file.

    Textual draws on sys.__stderr__. TensorFlow's C++ runtime writes start-up
    and device notices straight to file descriptor 2, which would scribble
    over the screen; with fd 2 pointing at a log, nothing can. Textual's
    handle is guarded: when the terminal goes away, its first failed write
    calls `on_lost` and the rest are dropped (a write that raised would end
    Textual's output thread and leave the app hanging on its next write).
    """
    try:
        terminal_fd = os.dup(2)
    except OSError:
        yield None
        return
    saved_fd = os.dup(2)
    terminal = os.fdopen(
        terminal_fd, "w", buffering=1, encoding=getattr(sys.__stderr__, "encoding", None) or "utf-8", errors="replace"
    )
    log = open(path, "w", encoding="utf-8")  # noqa: SIM115 (held until the finally below: this is the context manager)
    original = sys.__stderr__
    os.dup2(log.fileno(), 2)
    sys.__stderr__ = GuardedStream(terminal, on_lost)
    try:
        yield path
    finally:
        sys.__stderr__ = original
        os.dup2(saved_fd, 2)
        os.close(saved_fd)
        log.close()
        try:
            terminal.close()
        except OSError:
            pass  # the terminal is gone: what was left to write goes nowhere


def say(text: str, *, error: bool = False) -> None:
    """Print a closing line, if there is still a terminal (or pipe) to print it on."""
    try:
        print(text, file=sys.stderr if error else sys.stdout, flush=True)
    except (OSError, ValueError):
        pass


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `charlm-tui`; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.no_train and args.load is None:
        parser.error("--no-train needs --load RUN_DIR")
    if args.load is not None and not args.no_train:
        parser.error("--load opens a run for generation only; add --no-train, or use --resume RUN_DIR to train it")
    if args.resume and (args.load or args.run_dir):
        parser.error("--resume continues in its own directory; it cannot be combined with --load or --run-dir")
    if not args.chars_per_second >= 0 or args.chars_per_second == float("inf"):
        parser.error("--chars-per-second must be zero or a positive number")
    if args.rng_seed is not None and args.rng_seed < 0:
        parser.error("--rng-seed must be zero or positive")
    overrides = config_overrides(args)
    if args.attach and (args.resume or args.load or args.run_dir or args.no_train or overrides):
        parser.error("--attach watches a run as it is being trained; it takes no other run or model options")
    if args.attach is not None and not is_run_directory(args.attach):
        what = "does not exist" if not args.attach.exists() else "is not a charlm run directory"
        print(f"charlm-tui: error: {args.attach} {what}.", file=sys.stderr)
        return 1
    try:
        if not args.resume and not args.load:
            make_config(args.recipe, **overrides)  # bad options end here, before the screen opens
    except CharlmError as error:
        print(f"charlm-tui: error: {error}", file=sys.stderr)
        return 1
    options = TuiOptions(
        overrides=overrides,
        recipe=args.recipe,
        resume=args.resume,
        load=args.load,
        train=not args.no_train,
        run_dir=args.run_dir,
        offline=args.offline,
    )
    pick = None
    run_options_given = bool(
        args.resume or args.load or args.attach or args.run_dir or overrides or args.recipe != "default"
    )
    if args.pick and run_options_given:
        parser.error("--pick chooses the run on screen; give it without --resume, --load, --run-dir or run options")
    if args.pick or not run_options_given:
        try:
            runs = list_runs(RUNS_DIR)
        except CharlmError as error:
            print(f"charlm-tui: error: {error}", file=sys.stderr)
            return 1
        if args.pick or runs:

            def make_backend(choice: StartChoice) -> CoreBackend | AttachBackend:
                if choice.action == "resume":
                    return CoreBackend(TuiOptions(overrides={}, resume=choice.path, offline=args.offline))
                if choice.action == "attach":
                    return AttachBackend(choice.path, offline=args.offline)
                if choice.action == "load":
                    return CoreBackend(TuiOptions(overrides={}, load=choice.path, train=False, offline=args.offline))
                return CoreBackend(TuiOptions(overrides=choice.overrides, offline=args.offline))

            pick = Pick(runs, RUNS_DIR, [row.name for row in list_corpora()], make_backend)
    # Made before any of the app's threads: it keeps one at this first priority, to start trainers from.
    priority = ViewerPriority()
    if args.attach:
        priority.lower()  # a viewer yields the CPU to the trainer it watches (often on the same machine)
    backend = AttachBackend(args.attach, offline=args.offline) if args.attach else CoreBackend(options)
    app = CharLMApp(
        None if pick else backend,
        temperatures=args.temperatures,
        chars_per_second=args.chars_per_second,
        seed_text=args.seed_text,
        rng_seed=args.rng_seed,
        pick=pick,
        priority=priority,
    )
    # A hang-up (SSH gone), a terminal that fails or closes, or termination: stop training, checkpoint, exit.
    log_path = Path(tempfile.gettempdir()) / f"charlm-tui-{os.getpid()}.log"
    shutdown = Shutdown(app, log_path, on_hangup=args.on_hangup)
    for name in ("SIGTERM", "SIGHUP"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), shutdown.on_signal)
    watching = threading.Event()
    with stderr_to_log(log_path, shutdown.request):
        if sys.__stdin__ is not None:
            watch_for_hangup(sys.__stdin__.fileno(), shutdown.request, watching)
        try:
            app.run()
        finally:
            watching.set()
    if (
        shutdown.status is None
        and sys.__stdin__ is not None
        and os.isatty(sys.__stdin__.fileno())
        and terminal_hung_up(sys.__stdin__.fileno())
    ):
        shutdown.status = HANGUP_STATUS  # it went while the app was closing
    if app.headless is not None and shutdown.status is not None:
        say(f"charlm-tui: training goes on in pid {app.headless.pid}; charlm-tui --attach RUN_DIR watches it")
    if shutdown.status is not None and not shutdown.wait_for_training():  # the hang-up checkpoint comes first
        say(f"charlm-tui: diagnostics are in {log_path}", error=True)
        return shutdown.status
    failed = app.main.state == "failed" or app.return_code not in (None, 0)
    if app.main.info is not None and app.main.info.run_dir is not None:
        say(f"run directory: {app.main.info.run_dir}")
        if getattr(app.backend, "attached", False) and app.main.state == "left":
            run = app.main.info.run_dir
            say(
                f"left it training ({app.backend.who}): charlm-tui --attach {run} watches it again, "
                f"charlm control {run} stop stops it"
            )
    if failed:
        if app.main.note and shutdown.status is None:  # else the shutdown's watchdog has said it
            say(f"charlm-tui: {app.main.note}", error=True)
        say(f"charlm-tui: diagnostics are in {log_path}", error=True)
        return 1 if shutdown.status is None else shutdown.status
    try:
        log_path.unlink()
    except OSError:
        pass
    return 0 if shutdown.status is None else shutdown.status


if __name__ == "__main__":
    sys.exit(main())
