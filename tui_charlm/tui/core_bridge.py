"""What the app trains and samples: the real core, behind a small interface.

The app calls `prepare` and `fit` from its training worker thread and
`random_seed` from the UI; nothing here touches a widget. Tests pass a fake
backend with the same methods to check layout and keys quickly; one
integration test drives the app with `CoreBackend` and a real tiny model.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from tui_charlm.core.backend import on_jax, start_backend
from tui_charlm.core.checkpoints import History, RunDirectory
from tui_charlm.core.config import make_config
from tui_charlm.core.dataset import split_ids
from tui_charlm.core.errors import CharlmError
from tui_charlm.core.events import Log
from tui_charlm.core.session import SavedRun, new_training, open_saved_run, resume_training, saved_corpus_ids
from tui_charlm.core.vocab import Vocabulary


@dataclass(frozen=True)
class RunInfo:
    """What the screen shows about a run once it is loaded."""

    run_dir: Path | None
    corpus_name: str
    corpus_chars: int
    parameters: int
    device: str
    vocab: Vocabulary
    seq_len: int
    default_mode: str  # 'stateful' or 'window'
    batches_per_epoch: int
    epochs: int
    epoch: int = 0  # epochs already completed (resumed runs)
    step: int = 0
    history: History = field(default_factory=History)  # the loss curve so far (resumed runs)
    time_budget: float = 0.0  # the run's --time-budget in training seconds (0: none); training stops there
    elapsed: float = 0.0  # training seconds so far, across sessions (a resumed or finished run's)


class TrainingBackend(Protocol):
    """The interface the app drives."""

    can_train: bool

    def prepare(self, status: Log, notice: Log) -> RunInfo:
        """Load corpus and model (slow: runs in the training worker).

        `status` takes progress ('loading TensorFlow'); `notice` takes
        one-line messages the user should read (a corpus fallback, say).
        """

    def fit(
        self,
        report: Callable[[object], None],
        *,
        stop_event: threading.Event,
        pause_event: threading.Event,
        save_event: threading.Event,
        weight_box,
        activity=None,
    ) -> object:
        """Train until done or stopped, publishing weight snapshots into weight_box; marking its work on activity."""

    def publish_weights(self, weight_box) -> None:
        """Put the current weights into weight_box (generation-only mode)."""

    def random_seed(self, rng: np.random.Generator, length: int) -> tuple[str, str]:
        """(seed text, where it came from) from a random place in the corpus."""

    def heldout_text(self, length: int) -> tuple[str, str] | None:
        """(the first `length` chars of the held-out text, where they came from), or None if it is not at hand."""


@dataclass
class TuiOptions:
    """What `charlm-tui` was asked to do."""

    overrides: dict[str, Any]  # TrainConfig fields given on the command line
    recipe: str = "default"
    resume: Path | None = None
    load: Path | None = None
    train: bool = True
    run_dir: Path | None = None
    offline: bool | None = None


class CoreBackend:
    """The real thing: tui_charlm.core's session, trainer and checkpoints."""

    def __init__(self, options: TuiOptions):
        self.options = options
        self.can_train = options.train
        self.trainer = None
        self.saved: SavedRun | None = None  # a run opened for generation only
        self.ids: np.ndarray | None = None
        self.heldout: np.ndarray | None = None
        self.corpus_name = "?"
        self.vocab: Vocabulary | None = None
        self.seq_len = 60

    def prepare(self, status: Log, notice: Log) -> RunInfo:
        options = self.options
        status("loading TensorFlow")
        # The app already sends fd 2 to a log file, so stderr need not be silenced here. Thread counts are
        # the run's, set when the run is set up (core/session.py), before anything runs on TensorFlow.
        start_backend(self._jax_threads(), quiet=False)
        if options.load is not None:
            # Nothing trains: generation runs in NumPy on the CPU whatever the machine has.
            return self._prepare_load(status, notice, "CPU (generation only)")
        status("loading corpus and model")
        if options.resume is not None:
            overrides = dict(options.overrides)
            trainer = resume_training(options.resume, overrides, offline=options.offline, log=notice)
        else:
            config = make_config(options.recipe, **options.overrides)
            trainer = new_training(config, run_dir=options.run_dir, offline=options.offline, log=notice)
        self.trainer = trainer
        self.vocab = trainer.run.vocab
        # Random seeds come from the training part (a view of the corpus, never a copy: it may be huge).
        self.ids = trainer.split.train
        self.heldout = trainer.split.heldout
        self.seq_len = trainer.config.seq_len
        state = trainer.state
        chars = len(trainer.split.train) + len(trainer.split.heldout)
        return RunInfo(
            trainer.run.path,
            trainer.run.meta.get("corpus", {}).get("name", "?"),
            chars,
            int(trainer.model.count_params()),
            trainer.device,
            self.vocab,
            self.seq_len,
            "stateful" if trainer.config.predicts_every_position else "window",
            trainer.train_windows.num_batches(state.epoch),
            trainer.config.epochs,
            state.epoch,
            state.step,
            state.history,
            trainer.config.time_budget,
            state.elapsed,
        )

    def _jax_threads(self) -> int | None:
        """On JAX, the run's thread count now: XLA takes it only before JAX starts (TensorFlow takes it later)."""
        if not on_jax() or self.options.load is not None:
            return None
        threads = self.options.overrides.get("threads")
        if threads is None and self.options.resume is not None:
            try:
                threads = RunDirectory.open(self.options.resume).config.threads
            except CharlmError:
                return None  # resume_training says what is wrong with the run
        return threads

    def _prepare_load(self, status: Log, notice: Log, device: str) -> RunInfo:
        status("loading the run")
        saved = self.saved = open_saved_run(self.options.load)
        run, state = saved.run, saved.checkpoint.state
        self.vocab, self.seq_len = run.vocab, run.config.seq_len
        name = self._open_corpus(run, notice)
        return RunInfo(
            run.path,
            name,
            0 if self.ids is None else len(self.ids),
            saved.parameters,
            device,
            run.vocab,
            run.config.seq_len,
            "stateful" if run.config.predicts_every_position else "window",
            0,
            run.config.epochs,
            state.epoch,
            state.step,
            state.history,
            run.config.time_budget,
            state.elapsed,
        )

    def _open_corpus(self, run, notice: Log) -> str:
        """Keep the run's corpus (for seeds) and its held-out text, if the corpus is here; the corpus's name."""
        found = saved_corpus_ids(run)
        if found is None:
            notice("The run's corpus is not available here: seeds are random characters, or type one with e.")
            self.ids = None
            return run.meta.get("corpus", {}).get("name", "?")
        self.ids, name = found
        try:
            self.heldout = split_ids(self.ids, run.config).heldout  # the text training held out
        except CharlmError:
            self.heldout = None  # the corpus has since shrunk below one window each side
        return name

    def fit(self, report, *, stop_event, pause_event, save_event, weight_box, activity=None):
        if self.trainer is None:
            raise CharlmError("Nothing to train: the run was opened for generation only.")
        try:
            return self.trainer.fit(
                report,
                stop_event=stop_event,
                pause_event=pause_event,
                save_event=save_event,
                weight_box=weight_box,
                activity=activity,
            )
        finally:
            # Training here is over (finished, failed, stopped, or handed over), though the app stays open to
            # generate: let go of the run, so that `charlm runs`, the start screen and a viewer see it ended, and
            # another process may resume it. Its last checkpoint is written by now.
            self.trainer.run.release_training_lock()

    def publish_weights(self, weight_box) -> None:
        if self.trainer is not None:
            weight_box.publish(self.trainer.snapshot())
        elif self.saved is not None:
            weight_box.publish(self.saved.weights)

    def random_seed(self, rng: np.random.Generator, length: int) -> tuple[str, str]:
        if self.ids is None or len(self.ids) <= length:
            chars = self.vocab.chars if self.vocab else (" ",)
            return "".join(rng.choice(chars, size=min(length, 20))), "random characters"
        start = int(rng.integers(0, len(self.ids) - length))
        # Start at a word boundary when one is near, so the seed reads naturally.
        text = self.vocab.decode(self.ids[start : start + length + 20])
        space = text.find(" ", 0, 20)
        text = text[space + 1 : space + 1 + length] if space >= 0 else text[:length]
        return text, f"random corpus slice at char {start:,}"

    def heldout_text(self, length: int) -> tuple[str, str] | None:
        if self.heldout is None or len(self.heldout) < 2:
            return None
        return self.vocab.decode(self.heldout[:length]), "the start of the held-out text"
