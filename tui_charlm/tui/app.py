"""The Textual app: start-up, the training worker, the keys that work everywhere, and shutdown.

The main screen (tui/screens/main.py) shows the run and steers it. The app
owns what outlives any screen: the backend, the training worker thread and
the events that pause, save and stop it. Training progress is coalesced in
the worker to a few messages per second, so a fast model cannot flood the
event loop.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from textual import work
from textual.app import App, SystemCommand
from textual.widgets import OptionList
from textual.worker import Worker, WorkerState

from tui_charlm.core.errors import CharlmError
from tui_charlm.core.events import BatchFinished, TrainingFinished
from tui_charlm.core.generation import WeightBox
from tui_charlm.core.headless import LOG_FILE, start_headless_trainer
from tui_charlm.core.runs import RunSummary, lock_holder
from tui_charlm.core.sampling import RECIPE_TEMPERATURES
from tui_charlm.core.session import nothing_to_resume
from tui_charlm.core.stopping import Activity
from tui_charlm.tui.attach import FOLLOW_SECONDS, AttachBackend, wait_for_trainer
from tui_charlm.tui.core_bridge import TrainingBackend
from tui_charlm.tui.keys import bindings, palette_commands
from tui_charlm.tui.messages import (
    BatchesReported,
    NoticeReported,
    PreparationFailed,
    RunPrepared,
    StatusChanged,
    TrainerChanged,
    TrainingEventReported,
)
from tui_charlm.tui.priority import ViewerPriority
from tui_charlm.tui.screens.help import HelpScreen
from tui_charlm.tui.screens.main import MainScreen
from tui_charlm.tui.screens.start import StartChoice, StartScreen

# Seconds between training progress messages from the worker.
REPORT_INTERVAL = 0.25


class CoalescingReporter:
    """Turns the trainer's per-batch events into a few messages per second (runs in the training thread)."""

    def __init__(self, post, interval: float = REPORT_INTERVAL):
        self.post = post
        self.interval = interval
        self.pending: list[tuple[int, float]] = []
        self.last: BatchFinished | None = None
        self.last_post = -math.inf  # never (time.monotonic() counts from boot: 0.0 may be recent)

    def __call__(self, event: object) -> None:
        if isinstance(event, BatchFinished):
            self.pending.append((event.step, event.loss))
            self.last = event
            if time.monotonic() - self.last_post >= self.interval:
                self.flush()
            return
        self.flush()
        self.post(TrainingEventReported(event))

    def flush(self) -> None:
        if self.pending and self.last is not None:
            last = self.last
            self.post(
                BatchesReported(
                    self.pending,
                    last.epoch,
                    last.batch,
                    last.batches,
                    last.step,
                    last.chars_per_second,
                    last.average_chars_per_second,
                    last.elapsed,
                )
            )
            self.pending = []
        self.last_post = time.monotonic()


def _guard_option_list_paging() -> None:
    """Keep PageUp/PageDown in the command palette from crashing the app.

    Textual's OptionList._move_page (8.2) raises KeyError when the key
    arrives after the options changed but before their lines were laid out
    (typing in the palette, then PageDown at once); found by the keyboard
    fuzz test. That key press is dropped instead.
    """
    original = getattr(OptionList, "_move_page", None)
    if original is None or getattr(original, "guarded", False):
        return

    def _move_page(self, direction):
        try:
            original(self, direction)
        except (KeyError, IndexError):
            pass

    _move_page.guarded = True
    OptionList._move_page = _move_page


_guard_option_list_paging()


@dataclass(frozen=True)
class Pick:
    """Start on the start screen: these runs to choose from, and how to make a backend from the choice."""

    runs: list[RunSummary]
    root: Path
    corpora: list[str]
    make_backend: Callable[[StartChoice], TrainingBackend]


class CharLMApp(App[None]):
    """charlm-tui: watch a character-level LSTM learn, and steer its generations."""

    CSS_PATH = "app.tcss"
    TITLE = "charlm"
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (60, "-wide")]
    VERTICAL_BREAKPOINTS = [(0, "-tiny"), (18, "-short"), (32, "-tall")]
    BINDINGS = bindings("app")  # help and quit; the main screen's keys are on MainScreen (both from tui/keys.py)

    def __init__(
        self,
        backend: TrainingBackend | None,
        *,
        temperatures=RECIPE_TEMPERATURES,
        chars_per_second: float = 40.0,
        seed_text: str | None = None,
        rng_seed: int | None = None,
        pick: Pick | None = None,
        priority: ViewerPriority | None = None,
    ):
        super().__init__()
        self.backend = backend  # None until the start screen's choice makes one (`pick`)
        self.pick = pick
        # charlm-tui's: lowers the process once it only watches, and starts trainers at full priority (None in
        # tests that make the app in their own process: that is never lowered).
        self.priority = priority
        self.main = MainScreen(
            temperatures=temperatures, chars_per_second=chars_per_second, seed_text=seed_text, rng_seed=rng_seed
        )
        self.weight_box = WeightBox()
        self.stop_event = threading.Event()
        self.pause_event = threading.Event()
        self.save_event = threading.Event()
        # What training is doing, for a stop that waits for its checkpoint (core/stopping.py); its `done` is set
        # when the training worker has returned (its last checkpoint written), or when none will run.
        self.activity = Activity()
        self.training_outcome = None  # what fit returned: TrainingFinished, or TrainingFailed with its reason
        self.quitting = False
        self.training_worker: Worker | None = None
        # `d` (or a hang-up with --on-hangup detach): the headless trainer the run was handed to, once started.
        self.headless = None
        self.handover_failed: str | None = None
        # A viewer whose trainer ended waits for another to take the run up (watch_for_trainer); set to stop it.
        self.rejoin_stop = threading.Event()

    def get_default_screen(self) -> MainScreen:
        return self.main

    def on_mount(self) -> None:
        if self.backend is None:
            self.push_screen(StartScreen(self.pick.runs, self.pick.root, self.pick.corpora), callback=self.start_chosen)
        else:
            self.training_worker = self.run_training()

    def start_chosen(self, choice: StartChoice | None) -> None:
        """The start screen's choice: make the backend for it and start, or quit."""
        if choice is None:
            self.exit()
            return
        self.backend = self.pick.make_backend(choice)
        if getattr(self.backend, "attached", False):
            self.become_viewer()
        self.training_worker = self.run_training()

    def become_viewer(self) -> None:
        """This process only watches from now on: it yields the CPU to the trainer (tui/priority.py)."""
        if self.priority is not None:
            self.priority.lower()

    def start_trainer(self, run_path: Path, offline: bool | None):
        """`charlm train --resume run_path` as a headless process, at this process's first priority."""
        if self.priority is None:
            return start_headless_trainer(run_path, offline=offline)
        return self.priority.spawn(start_headless_trainer, run_path, offline=offline)

    # -- the training worker ---------------------------------------------------------

    @work(thread=True, exclusive=True, group="training", exit_on_error=False)
    def run_training(self) -> None:
        """Load (TensorFlow, corpus, model), then train; report only through messages to the main screen."""
        post = self.main.post_message
        try:
            try:
                info = self.backend.prepare(
                    lambda text: post(StatusChanged(text)), lambda text: post(NoticeReported(text))
                )
            except CharlmError as error:
                post(PreparationFailed(str(error)))
                return
            post(RunPrepared(info))
            if not self.backend.can_train:
                self.backend.publish_weights(self.weight_box)
                return
            self.training_outcome = self._fit(self.backend, post)
            outcome = self.training_outcome
            if isinstance(outcome, TrainingFinished) and outcome.reason == "detached":
                self.hand_over(outcome)
        finally:
            self.activity.finish()

    def _fit(self, backend: TrainingBackend, post) -> object:
        """(Training worker) Train, or follow a trainer, reporting through a coalescing reporter; the outcome."""
        # A viewer's batches are the trainer's log lines, coalesced there already: each is passed on as it is read
        # (held back, the last line of a read would wait for the next one to come).
        reporter = CoalescingReporter(post, 0.0 if getattr(backend, "attached", False) else REPORT_INTERVAL)
        outcome = backend.fit(
            reporter,
            stop_event=self.stop_event,
            pause_event=self.pause_event,
            save_event=self.save_event,
            weight_box=self.weight_box,
            activity=self.activity,
        )
        reporter.flush()
        return outcome

    def detach(self) -> bool:
        """Hand the run to a headless trainer: stop here with a checkpoint, then start `charlm train --resume`.

        False (and nothing done) when nothing trains in this app. Safe from
        any thread: the handover itself runs in the training worker once its
        checkpoint is written (run_training), so it happens even when the
        terminal, and with it the app's screen, is gone.
        """
        trainer = getattr(self.backend, "trainer", None)
        worker = self.training_worker
        if getattr(self.backend, "attached", False) or trainer is None or worker is None or not worker.is_running:
            return False
        trainer.stop_reason = "detached"
        self.stop_event.set()
        self.pause_event.clear()
        return True

    def hand_over(self, outcome: TrainingFinished) -> None:
        """(Training worker) The checkpoint is written and the run let go (CoreBackend.fit): start the headless
        trainer."""
        run = self.backend.trainer.run
        try:
            self.headless = self.start_trainer(run.path, getattr(self.backend.options, "offline", None))
        except OSError as error:
            self.handover_failed = (
                f"Could not start a headless trainer ({error.strerror or error}); the run is saved at step "
                f"{outcome.step}: charlm train --resume {run.path} goes on."
            )

    def follow_headless(self) -> None:
        """(UI) After a handover: watch the headless trainer as a viewer, on the same screen."""
        run_path = self.backend.trainer.run.path
        self.backend = AttachBackend(run_path)
        self.become_viewer()
        self.stop_event.clear()
        self.activity = Activity()
        self.training_outcome = None
        self.training_worker = self.follow_run(self.headless)

    @work(thread=True, exclusive=True, group="training", exit_on_error=False)
    def follow_run(self, process, how: str = "detached") -> None:
        """Wait for the headless trainer to take the run, then follow it as `--attach` does.

        `process` None: a trainer this app did not start has already taken
        the run up (watch_for_trainer saw it), and is followed at once.
        """
        post = self.main.post_message
        backend = self.backend
        try:
            log = backend.run_path / LOG_FILE
            if process is not None:
                problem = wait_for_trainer(backend.run_path, process, self.stop_event)
                if problem is not None:
                    post(PreparationFailed(f"{problem} Its output is in {log}."))
                    return
            info = backend.prepare(lambda text: None, lambda text: post(NoticeReported(text)))
            if not backend.can_train:
                return  # it ended again before this viewer looked: prepare said so
            if process is None:
                note = f"{how}: {backend.who} trains the run again; this screen watches it, q leaves it training"
            else:
                note = f"{how}: training goes on in {backend.who} (output: {log}); q leaves it training"
            post(TrainerChanged(info, note, how.capitalize()))
            self.training_outcome = self._fit(backend, post)
        finally:
            self.activity.finish()

    @work(thread=True, exclusive=True, group="rejoin", exit_on_error=False)
    def watch_for_trainer(self, backend: AttachBackend) -> None:
        """(A viewer whose trainer ended) Wait for another to take the run up, then follow it.

        Whoever resumes it (R in another viewer, `charlm train --resume`
        under nohup, `charlm-tui --resume`), its first log line is a session
        start; the run's lock, held by then, tells it from an old line read
        afresh. It reads the log as the viewer does and asks about the lock
        only once a start is read: probing the free lock every half second
        could, for an instant, hold it and refuse a trainer that is starting.
        """
        stop = self.rejoin_stop
        peek = backend.reader.from_here()  # reads ahead of the backend's reader, which the next viewer reads on
        while not stop.wait(FOLLOW_SECONDS):
            started = any(record.get("type") == "started" for record in peek.poll())
            if started and lock_holder(backend.run_path) is not None:
                self.call_from_thread(self.rejoin, backend)
                return

    def rejoin(self, backend: AttachBackend) -> None:
        """(UI) Another process took the run up: follow it, as after R, unless this app has moved on."""
        worker = self.training_worker
        if self.quitting or self.backend is not backend or (worker is not None and worker.is_running):
            return
        self._follow_again(None, "taken up")

    def resume_here(self) -> bool:
        """A viewer whose run nobody trains (its trainer killed, or ended): start a headless trainer on it, from
        its newest checkpoint (`charlm train --resume`), and watch that one. False (and nothing done) otherwise.

        The trainer is a process of its own, as after `d`: q leaves it training, and this viewer stays a viewer.
        """
        backend, worker = self.backend, self.training_worker
        if not getattr(backend, "attached", False) or (worker is not None and worker.is_running):
            return False
        spent = nothing_to_resume(backend.run_path)
        if spent:  # a trainer would end as it began: say why, and how to train on
            path = backend.run_path
            self.main.notify(
                f"Not resumed: {path} {spent} (charlm-tui --resume {path} …, or charlm train --resume {path} …).",
                title="Resume",
                severity="warning",
                timeout=30,
            )
            return False
        self.rejoin_stop.set()  # this app starts the next trainer itself
        try:
            self.headless = self.start_trainer(backend.run_path, backend.options.offline)
        except OSError as error:
            self.main.notify(
                f"Could not start a trainer ({error.strerror or error}): charlm train --resume {backend.run_path}",
                title="Resume",
                severity="error",
                timeout=60,
            )
            self._watch_for_trainer()
            return False
        self._follow_again(self.headless, "resumed")
        return True

    def _follow_again(self, process, how: str) -> None:
        """(UI) A viewer whose trainer ended follows the next one, `process` (started here) or whoever took it."""
        self.rejoin_stop.set()
        self.backend = self.backend.again()
        for event in (self.stop_event, self.pause_event, self.save_event):
            event.clear()
        self.activity = Activity()
        self.training_outcome = None
        self.training_worker = self.follow_run(process, how)

    def _watch_for_trainer(self) -> None:
        """(UI) In a viewer with nothing to follow: wait for a trainer to take the run up."""
        self.rejoin_stop.set()  # one watcher at a time
        self.rejoin_stop = threading.Event()
        self.watch_for_trainer(self.backend)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.group == "training" and event.state in (
            WorkerState.SUCCESS,
            WorkerState.ERROR,
            WorkerState.CANCELLED,
        ):
            # After what the worker posted to the main screen before it ended (its queue, not the app's).
            if self.main.is_attached:
                self.main.call_later(self._training_ended, event.worker)
            else:
                self._training_ended(event.worker)

    def _training_ended(self, worker: Worker) -> None:
        if self.headless is not None and not self.quitting and not getattr(self.backend, "attached", False):
            self.follow_headless()  # the run was handed over: stay on as its viewer
            return
        self.main.training_ended(worker)
        if getattr(self.backend, "attached", False) and not self.quitting and worker is self.training_worker:
            self._watch_for_trainer()  # nobody trains it now; whoever takes it up next is followed
        if self.handover_failed:
            self.main.note = self.handover_failed
            self.main.notify(self.handover_failed, title="Detach", severity="error", timeout=60)
            self.handover_failed = None
        if self.quitting:
            self.exit()

    # -- keys that work on every screen --------------------------------------------------

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    async def action_quit(self) -> None:
        """Stop training at the next batch, let it checkpoint, then exit."""
        if self.quitting:
            self.exit()  # asked twice: do not wait any longer
            return
        self.quitting = True
        worker = self.training_worker
        main = self.main
        if getattr(self.backend, "attached", False):
            # A viewer leaves; the trainer, another process, goes on untouched.
            if worker is not None and worker.is_running and main.state in ("training", "paused"):
                main.state = "left"
                main.note = f"left it training ({self.backend.who})"
            self.stop_event.set()
            self.exit()
            return
        if worker is not None and worker.is_running and self.backend.can_train and main.state != "loading":
            main.state = "stopping"
            main.note = "saving a checkpoint before quitting"
            self.stop_event.set()
            self.pause_event.clear()
            main.refresh_status()
            return  # on_worker_state_changed exits when the worker has finished
        self.stop_event.set()
        self.exit()

    def exit(self, *args, **kwargs) -> None:
        """However the app ends, training stops at its next batch (and checkpoints) so no thread outlives it."""
        self.stop_event.set()
        self.rejoin_stop.set()
        self.pause_event.clear()
        if self.training_worker is None:
            self.activity.finish()  # it never started (the start screen was left): nothing to wait for
        super().exit(*args, **kwargs)

    def on_unmount(self) -> None:
        self.stop_event.set()
        self.rejoin_stop.set()
        self.pause_event.clear()

    # -- command palette -------------------------------------------------------------

    def get_system_commands(self, screen):
        yield from super().get_system_commands(screen)
        for title, help, action, scope in palette_commands():
            target = self if scope == "app" else self.main
            if not target.check_action(action.partition("(")[0], ()):
                continue  # not offered now (a viewer's k and R; pause, save and d while nothing trains), as the footer
            yield SystemCommand(title, help, partial(self.run_action, action, target))
