"""The main screen: the loss, the seed, the streams and the status, and the keys that steer them.

The app (tui/app.py) runs training in a worker thread and posts what it
reports here; generation runs in this screen's own worker. Workers never
touch widgets: they post messages (tui/messages.py) and the handlers here
update the screen, which keeps handling them while a dialog is shown above
it.
"""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path

import numpy as np
from textual import work
from textual.app import ComposeResult
from textual.containers import Grid, Horizontal, Vertical
from textual.reactive import reactive
from textual.screen import Screen
from textual.widgets import Footer, Header, Static
from textual.worker import Worker, WorkerState, get_current_worker

from tui_charlm.core.errors import CharlmError
from tui_charlm.core.events import (
    CheckpointSaved,
    EpochFinished,
    TrainingFailed,
    TrainingFinished,
    TrainingPaused,
    TrainingResumed,
    TrainingStarted,
)
from tui_charlm.core.sampling import RECIPE_TEMPERATURES, SamplingSettings
from tui_charlm.core.units import format_duration, to_bits
from tui_charlm.tui.core_bridge import RunInfo
from tui_charlm.tui.generation_loop import (
    POST_INTERVAL,
    VIEWER_POST_INTERVAL,
    AddStream,
    GenerationLoop,
    RemoveStream,
    Reseed,
    SetMode,
    SetSettings,
)
from tui_charlm.tui.keys import bindings
from tui_charlm.tui.messages import (
    BatchesReported,
    NoticeReported,
    PreparationFailed,
    RunPrepared,
    SeedApplied,
    StatusChanged,
    TextGenerated,
    TrainerChanged,
    TrainingEventReported,
)
from tui_charlm.tui.screens.main_inside import InsideKeys
from tui_charlm.tui.screens.main_runs import RunKeys
from tui_charlm.tui.screens.seed_input import SeedInputScreen
from tui_charlm.tui.widgets.generation_pane import GenerationPane, surprise_legend
from tui_charlm.tui.widgets.loss_plot import REDRAW_INTERVAL, LossPlot
from tui_charlm.tui.widgets.odds_pane import OddsPane
from tui_charlm.tui.widgets.seed_pane import SeedPane
from tui_charlm.tui.widgets.status_bar import StatusBar

MAX_TEMPERATURE = 3.0
MAX_STREAMS = 8
SEED_LENGTH = 60
# A viewer's k (stop the trainer) counts only when pressed again within this many seconds.
STOP_CONFIRM_SECONDS = 4.0
# A viewer shows the trainer's batch reports with the streams' next post of text, in one frame, at most once in
# VIEWER_REPORT_SECONDS; a report that has waited VIEWER_REPORT_WAIT (the streams held or paused) is shown on its
# own. It redraws its loss plot at most once in VIEWER_PLOT_SECONDS (the app that trains: once a second).
VIEWER_REPORT_SECONDS = 1.0
VIEWER_REPORT_WAIT = 1.5
VIEWER_PLOT_SECONDS = 2.0


class MainScreen(InsideKeys, RunKeys, Screen[None]):
    """Watch the model learn and steer its streams."""

    BINDINGS = bindings("screen")

    state: reactive[str] = reactive("loading", init=False)
    unit: reactive[str] = reactive("nats", init=False)
    surprise: reactive[bool] = reactive(False, init=False)
    inspecting: reactive[bool] = reactive(False, init=False)

    def __init__(
        self,
        *,
        temperatures=RECIPE_TEMPERATURES,
        chars_per_second: float = 40.0,
        seed_text: str | None = None,
        rng_seed: int | None = None,
    ):
        super().__init__()
        self.initial_settings = [SamplingSettings(t) for t in temperatures]
        self.chars_per_second = chars_per_second
        self.typed_seed = seed_text
        self.rng = np.random.default_rng(rng_seed)
        self.info: RunInfo | None = None
        self.generation: GenerationLoop | None = None
        self.layout_version = 0
        self.last_loss: float | None = None
        self.last_rate = 0.0
        self.average_rate = 0.0
        self.elapsed = 0.0
        self.epoch = 0
        self.note = ""
        self.overlay_paths: set[Path] = set()  # other runs drawn on the loss plot (o)
        self.stop_asked = -math.inf  # when k was last pressed (a viewer's stop waits for a second press); never yet
        self.waiting_report: tuple[float, BatchesReported] | None = None  # (since when, a viewer's batch report)
        self.report_shown = -math.inf  # time.monotonic() when a viewer last showed a report (never yet)

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="top"):
            with Vertical(id="loss-box") as box:
                box.border_title = LossPlot.LEGEND
                yield LossPlot(id="loss")
            yield SeedPane(id="seed")
        with Horizontal(id="middle"):
            with Grid(id="streams"):
                for settings in self.initial_settings:
                    yield GenerationPane(settings, classes="stream")
            yield OddsPane(id="odds")
        yield Static(surprise_legend(), id="legend")
        yield StatusBar(id="status")
        yield Footer()

    def on_mount(self) -> None:
        self.app.sub_title = "loading"
        self.status_bar.show_run("loading", "…", "…", "…", "starting")
        self.panes()[0].focus()
        self.set_interval(VIEWER_REPORT_WAIT / 2, self.show_stale_report)

    # (A screen's queries search the screen itself, even while a dialog is shown above it.)
    @property
    def loss_plot(self) -> LossPlot:
        return self.query_one(LossPlot)

    @property
    def seed_pane(self) -> SeedPane:
        return self.query_one(SeedPane)

    @property
    def status_bar(self) -> StatusBar:
        return self.query_one(StatusBar)

    @property
    def odds_pane(self) -> OddsPane:
        return self.query_one(OddsPane)

    @property
    def streams(self) -> Grid:
        return self.query_one("#streams", Grid)

    def panes(self) -> list[GenerationPane]:
        return list(self.streams.query(GenerationPane))

    @property
    def closing(self) -> bool:
        """True once the main screen is going away: late worker messages are then ignored."""
        return self.app.stop_event.is_set() and not self.is_attached

    def focused_index(self) -> int:
        panes = self.panes()
        return panes.index(self.focused) if self.focused in panes else 0

    # -- messages from the workers -------------------------------------------------

    def on_status_changed(self, message: StatusChanged) -> None:
        if self.closing:
            return
        self.note = message.text
        self.refresh_status()

    def on_notice_reported(self, message: NoticeReported) -> None:
        self.notify(message.text, timeout=15)

    def on_preparation_failed(self, message: PreparationFailed) -> None:
        if self.closing:
            return
        self.note = message.message
        self.state = "failed"
        self.notify(message.message, title="Could not start", severity="error", timeout=60)

    def on_run_prepared(self, message: RunPrepared) -> None:
        if self.closing:
            return
        info = self.info = message.info
        self.epoch = info.epoch
        self.note = ""
        self.elapsed = info.elapsed
        if info.history.batches or info.history.epochs:
            self.loss_plot.set_history(info.history)
            if info.history.batches:
                self.last_loss = float(info.history.batches[-1][1])
        # The figures above first: the state's change shows them (a run nobody trains reports nothing after).
        self.state = "training" if self.app.backend.can_train else "generating"
        self.app.title = f"charlm — {info.corpus_name}"
        left = max(0.0, info.time_budget - info.elapsed) if info.time_budget else None
        self.show_progress(info.epoch, 0, info.batches_per_epoch or 1, left)
        if self.generation is not None:
            return  # the same run, now trained here (R after its trainer was lost): the streams go on as they are
        if self.typed_seed is not None:
            seed, source = self.typed_seed, "typed on the command line"
        else:
            seed, source = self.app.backend.random_seed(self.rng, SEED_LENGTH)
        self.generation = GenerationLoop(
            self.app.weight_box,
            info.vocab,
            [p.settings for p in self.panes()],
            seed_text=seed,
            seed_source=source,
            mode=info.default_mode,
            chars_per_second=self.chars_per_second,
            post=self.post_message,
            post_interval=VIEWER_POST_INTERVAL if getattr(self.app.backend, "attached", False) else POST_INTERVAL,
        )
        self.run_generation()

    def on_trainer_changed(self, message: TrainerChanged) -> None:
        if self.closing or self.info is None:
            return
        new = message.info  # a resume may have given it another --time-budget or --epochs
        self.info = dataclasses.replace(self.info, device=new.device, time_budget=new.time_budget, epochs=new.epochs)
        self.state = "training"
        self.note = message.note
        self.notify(message.note, title=message.title, timeout=20)

    def on_batches_reported(self, message: BatchesReported) -> None:
        """Show training's progress: at once, or in a viewer with the streams' next post of text.

        A viewer's reports (read from the log twice a second), its streams'
        posts and its loss plot's redraws each made frames of their own,
        unaligned: about five a second, each walking the changed widgets
        through Textual's styles, on cores the trainer needs. Aligned, a
        viewer draws one frame per post, once a second (issue 26: what
        viewers cost a run).
        """
        if self.closing:
            return
        if not self.attached():
            self.show_report(message)
            return
        if self.waiting_report is None:
            self.waiting_report = (time.monotonic(), message)
        else:  # the newer report's state, with the batches of both
            since, waiting = self.waiting_report
            self.waiting_report = (since, dataclasses.replace(message, losses=waiting.losses + message.losses))

    def show_waiting_report(self, every: float = 0.0) -> None:
        """Show the report waiting, if any (and if none was shown in the last `every` seconds)."""
        if self.waiting_report is not None and time.monotonic() - self.report_shown >= every:
            _, message = self.waiting_report
            self.waiting_report = None
            self.report_shown = time.monotonic()
            self.show_report(message)

    def show_stale_report(self) -> None:
        """The streams post nothing while held or paused: a report does not wait for them for long."""
        waiting = self.waiting_report
        if waiting is not None and time.monotonic() - waiting[0] >= VIEWER_REPORT_WAIT and not self.closing:
            self.show_waiting_report()

    def show_report(self, message: BatchesReported) -> None:
        self.loss_plot.add_batches(message.losses)
        self.loss_plot.add_time(message.step, message.elapsed)
        self.last_loss = message.losses[-1][1]
        self.last_rate = message.chars_per_second
        self.average_rate = message.average_chars_per_second
        self.elapsed = message.elapsed
        if self.info:
            # Training seconds per step so far (epoch-end scoring included) times the steps left: in the epoch,
            # or with a time budget in the run, which ends at the budget or after its last epoch if that is sooner.
            per_step = message.elapsed / max(message.step, 1)
            eta = (message.batches - message.batch) * per_step
            if self.info.time_budget:
                epochs_after = max(0, self.info.epochs - message.epoch - 1)
                eta = min(eta + epochs_after * message.batches * per_step, self.info.time_budget - message.elapsed)
            self.show_progress(message.epoch, message.batch, message.batches, max(0.0, eta))
        self.refresh_status()
        self.loss_plot.redraw_if_due(VIEWER_PLOT_SECONDS if self.attached() else REDRAW_INTERVAL)

    def on_training_event_reported(self, message: TrainingEventReported) -> None:
        if self.closing:
            return
        self.show_waiting_report()  # batches before the event, shown before it
        event = message.event
        if isinstance(event, TrainingStarted):
            self.state = "paused" if self.app.pause_event.is_set() else "training"
            if self.attached():  # a trainer resumed from a checkpoint: what its predecessor drew after it comes again
                self.loss_plot.rewind(event.step)
        elif isinstance(event, TrainingPaused):
            self.note = f"paused at step {event.step}"
            self.state = "paused"  # the trainer's word (for a viewer, the only word: it guesses nothing)
        elif isinstance(event, TrainingResumed):
            self.note = ""
            if self.state == "paused" and (self.attached() or not self.app.pause_event.is_set()):
                self.state = "training"
        elif isinstance(event, EpochFinished):
            self.epoch = event.epoch
            self.loss_plot.add_epoch(event.step, event.val_loss)
            self.note = f"epoch {event.epoch}: held-out {self.format_loss(event.val_loss)}"
        elif isinstance(event, CheckpointSaved):
            self.note = f"saved step {event.step}"
            if event.reason in ("requested", "stopped", "time budget"):
                self.notify(f"Checkpoint saved ({event.reason}): {event.path}", title="Saved")
        elif isinstance(event, TrainingFinished) and event.reason == "detached":
            self.note = f"saved at step {event.step}: handing the run to a headless trainer"
            self.state = "stopping"
        elif isinstance(event, TrainingFinished):
            self.note = f"{event.reason} at epoch {event.epoch}, step {event.step}"
            self.state = {"completed": "finished", "time budget": "finished"}.get(event.reason, "stopped")
        elif isinstance(event, TrainingFailed):
            self.note = event.message
            self.state = "failed"
            named = event.checkpoint is None or event.checkpoint.name in event.message  # a viewer's names it
            where = "" if named else f" The last good checkpoint is {event.checkpoint}."
            self.notify(event.message + where, title="Training stopped", severity="error", timeout=60)
        self.refresh_status()

    def on_text_generated(self, message: TextGenerated) -> None:
        if self.closing:
            return
        self.show_waiting_report(every=VIEWER_REPORT_SECONDS)
        if message.layout != self.layout_version:
            return  # chars for a stream layout that has since changed
        for pane, chunk in zip(self.panes(), message.chunks):
            if chunk:
                pane.add(chunk)

    def on_seed_applied(self, message: SeedApplied) -> None:
        if self.closing:
            return
        if message.layout != self.layout_version:
            return
        self.seed_pane.show_seed(message.text, message.source, message.mode)
        if message.problem:
            self.notify(message.problem, title="Seed", severity="warning")

    def training_ended(self, worker: Worker) -> None:
        """The training worker returned (or raised): say how it ended."""
        if worker.state == WorkerState.ERROR:
            error = worker.error
            self.state = "failed"
            self.note = f"unexpected error: {type(error).__name__}: {error}"
            self.notify(self.note, title="Training stopped", severity="error", timeout=30)
        elif self.state in ("training", "paused", "stopping", "loading"):
            self.state = (
                "stopped"
                if self.app.stop_event.is_set()
                else ("generating" if not self.app.backend.can_train else "finished")
            )

    @work(thread=True, exclusive=True, group="generation", exit_on_error=False)
    def run_generation(self) -> None:
        """Stream chars from the newest weights until cancelled."""
        worker = get_current_worker()
        self.generation.run(lambda: worker.is_cancelled)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.group == "generation" and event.state == WorkerState.ERROR:
            self.notify(f"Generation stopped: {event.worker.error}", severity="error", timeout=30)

    # -- status -------------------------------------------------------------------

    def format_loss(self, nats: float | None) -> str:
        if nats is None:
            return "—"
        return f"{to_bits(nats):.3f} bits" if self.unit == "bits" else f"{nats:.3f} nats"

    def refresh_status(self) -> None:
        info = self.info
        if not self.is_mounted or self.closing:
            return
        status = self.status_bar

        if info is None:
            status.show_run(self.state, "…", "…", "…", self.note)
        else:
            size = (
                f"{info.corpus_chars / 1e6:.2f}M chars" if info.corpus_chars >= 1e5 else f"{info.corpus_chars:,} chars"
            )
            status.show_run(
                self.state, f"{info.corpus_name} ({size})", f"{info.parameters:,} params", info.device, self.note
            )
        status.show_figures(
            self.format_loss(self.last_loss),
            f"{self.last_rate:,.0f}",
            f"{self.average_rate:,.0f}",
            format_duration(self.elapsed),
        )
        if self.app.sub_title != self.state:
            self.app.sub_title = self.state

    def show_progress(self, epoch: int, batch: int, batches: int, eta: float | None) -> None:
        """The status bar's progress line for `epoch` (0-based): the epoch's, or a budgeted run's whole."""
        info = self.info
        self.status_bar.show_progress(
            epoch + 1, info.epochs, batch, batches, eta, budget=info.time_budget, elapsed=self.elapsed
        )

    def watch_state(self) -> None:
        self.set_class(self.state == "paused", "-paused")
        self.set_class(self.state == "failed", "-failed")
        self.refresh_status()
        self.refresh_bindings()  # d, k and R come and go with the trainer (check_action)

    def watch_unit(self, unit: str) -> None:
        self.loss_plot.unit = unit
        self.refresh_status()

    def watch_surprise(self, surprise: bool) -> None:
        for pane in self.panes():
            pane.surprise = surprise
        self.set_class(surprise, "-surprise")

    # -- actions ------------------------------------------------------------------

    def training_active(self) -> bool:
        return self.state in ("training", "paused") and self.app.backend.can_train

    def ready(self, what: object) -> bool:
        """True when `what` (the generator, or the run's info) has loaded; else says the model is still loading."""
        if what is None:
            self.notify("The model is still loading.", severity="warning")
        return what is not None

    def submit(self, command: object) -> bool:
        """Send a command to the generator, if it runs yet."""
        if not self.ready(self.generation):
            return False
        self.generation.submit(command)
        return True

    def apply_settings(self, index: int, settings: SamplingSettings) -> None:
        """Show new sampling settings on stream `index` and, once generation runs, use them from its next char."""
        self.panes()[index].show_settings(settings)
        if self.generation is not None:
            self.generation.submit(SetSettings(self.layout_version, index, settings))

    def action_temperature(self, delta: float) -> None:
        index = self.focused_index()
        old = self.panes()[index].settings
        temperature = round(min(MAX_TEMPERATURE, max(0.0, old.temperature + delta)), 1)
        self.apply_settings(index, SamplingSettings(temperature, old.top_k, old.top_p))

    def action_cycle_sampling(self) -> None:
        index = self.focused_index()
        old = self.panes()[index].settings
        if old.top_k is None and old.top_p is None:
            settings = SamplingSettings(old.temperature, top_k=10)
        elif old.top_k is not None:
            settings = SamplingSettings(old.temperature, top_p=0.9)
        else:
            settings = SamplingSettings(old.temperature)
        self.apply_settings(index, settings)

    def action_add_stream(self) -> None:
        panes = self.panes()
        if len(panes) >= MAX_STREAMS:
            self.notify(f"At most {MAX_STREAMS} streams.", severity="warning")
            return
        if not self.ready(self.generation):
            return
        settings = panes[self.focused_index()].settings
        self.layout_version += 1
        pane = GenerationPane(settings, classes="stream")
        pane.surprise = self.surprise
        self.streams.mount(pane)
        self.generation.submit(AddStream(self.layout_version, settings))
        pane.focus()

    def action_remove_stream(self) -> None:
        panes = self.panes()
        if len(panes) <= 1:
            self.notify("The last stream stays.", severity="warning")
            return
        if not self.ready(self.generation):
            return
        index = self.focused_index()
        self.layout_version += 1
        self.generation.submit(RemoveStream(self.layout_version, index))
        panes[index].remove()
        panes[index - 1 if index > 0 else 1].focus()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """The footer offers (and the keys do) what this app can do now: d where it trains its own run; in a
        viewer, k while its trainer runs and R when nothing trains the run. Pause, save and detach are shown
        greyed (and do nothing) while nothing trains: loading, finished, stopped, or a run opened to generate
        from."""
        if action in ("toggle_pause", "save"):
            return True if self.training_active() else None
        if action == "detach":
            return False if self.attached() else True if self.training_active() else None
        if action == "stop_trainer":
            return self.attached() and self.state in ("training", "paused")
        if action == "resume_here":
            return self.attached() and self.state not in ("training", "paused", "loading", "stopping")
        return True

    def attached(self) -> bool:
        """True when this app watches a run another process trains (charlm-tui --attach)."""
        return bool(getattr(self.app.backend, "attached", False))

    def ask_trainer(self, command: str, note: str) -> None:
        """A viewer's request to the trainer; the screen changes when the trainer's log says it acted."""
        try:
            self.app.backend.request(command)
        except CharlmError as error:
            self.notify(str(error), severity="error")
            return
        self.note = note
        self.refresh_status()

    def action_toggle_pause(self) -> None:
        """Offered only while training runs (check_action; Textual checks it for keys and run_action alike)."""
        if self.attached():
            resume = self.state == "paused"
            self.ask_trainer("resume" if resume else "pause", f"asked the trainer to {'resume' if resume else 'pause'}")
            return
        if self.app.pause_event.is_set():
            self.app.pause_event.clear()
            self.state = "training"
        else:
            self.app.pause_event.set()
            self.state = "paused"

    def action_save(self) -> None:
        """Offered only while training runs (check_action)."""
        if self.attached():
            self.ask_trainer("save", "asked the trainer to save a checkpoint")
            return
        self.app.save_event.set()
        self.notify("Saving a checkpoint after this batch…")

    def action_detach(self) -> None:
        """Hand the run to a headless trainer and stay on as its viewer (offered only while this app trains its own
        run: check_action)."""
        if self.app.detach():
            self.state = "stopping"
            self.note = "saving a checkpoint, then handing the run to a headless trainer"
        else:
            self.notify("Nothing trains in this app to hand over.", severity="warning")

    def action_resume_here(self) -> None:
        """Attached to a run nobody trains any more: start a headless trainer on it, from its newest checkpoint,
        and watch that one (q leaves it training). Offered only then (check_action)."""
        if self.app.resume_here():
            self.state = "loading"
            self.note = "resuming the run from its newest checkpoint in a headless trainer; q leaves it training"
            self.refresh_status()

    def action_stop_trainer(self) -> None:
        """Attached, its trainer running (check_action): stop it (it saves first); asks to be confirmed by pressing
        k again."""
        now = time.monotonic()
        if now - self.stop_asked > STOP_CONFIRM_SECONDS:
            self.stop_asked = now
            self.notify(
                f"Press k again within {STOP_CONFIRM_SECONDS:.0f} s to stop the trainer ({self.app.backend.who}); "
                "it saves a checkpoint first. q leaves it training.",
                title="Stop training?",
                severity="warning",
                timeout=STOP_CONFIRM_SECONDS,
            )
            return
        self.stop_asked = -math.inf
        self.ask_trainer("stop", "asked the trainer to stop (it saves first)")

    def reseed(self, text: str, source: str) -> None:
        self.layout_version += 1
        if self.submit(Reseed(self.layout_version, text, source)):
            for pane in self.panes():
                pane.clear()

    def action_random_seed(self) -> None:
        if not self.ready(self.info):
            return
        self.reseed(*self.app.backend.random_seed(self.rng, SEED_LENGTH))

    def action_edit_seed(self) -> None:
        if not self.ready(self.info):
            return

        def typed(text: str | None) -> None:
            if text is None:
                return
            report = self.info.vocab.clean_seed(text)
            if not report.text:
                self.notify(
                    "None of those characters are in the model's vocabulary; the seed is unchanged.", severity="warning"
                )
                return
            self.reseed(text, "typed")

        self.app.push_screen(SeedInputScreen(), typed)

    def action_clear(self) -> None:
        for pane in self.panes():
            pane.clear()

    def action_toggle_unit(self) -> None:
        self.unit = "bits" if self.unit == "nats" else "nats"

    def action_toggle_surprise(self) -> None:
        self.surprise = not self.surprise

    def action_generation_mode(self, mode: str) -> None:
        if self.submit(SetMode(mode)):
            self.notify(f"Generation mode: {mode}.")

    def action_recipe_temperatures(self) -> None:
        for index, temperature in enumerate(RECIPE_TEMPERATURES[: len(self.panes())]):
            self.apply_settings(index, SamplingSettings(temperature))
