"""The status pane: what is training, where, how far, how fast."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.reactive import reactive
from textual.widgets import ProgressBar, Static

from tui_charlm.core.units import format_duration

STATE_STYLES = {
    "loading": "bold blue",
    "training": "bold green",
    "paused": "bold yellow",
    "stopping": "bold yellow",
    "stopped": "bold",
    "left": "bold",
    "finished": "bold green",
    "failed": "bold red",
    "generating": "bold cyan",
}


# The status bar shows the session's average chars/s beside the recent figure from this width on.
WIDE_FIGURES = 100


class EpochProgress(ProgressBar):
    """Textual's ProgressBar, drawn only when the app moves it.

    Textual's bar calls its own `update()` once a second, with nothing to
    change, to count its ETA down; the ETA's value changes, and the bar is
    drawn again in a frame of its own, a second frame each second between
    the app's, whether or not an ETA is shown. This bar has none (the app
    writes its own, from training time), so that tick does nothing: in a
    viewer, which draws once a second (issue 26), it was every other frame.
    """

    def update(self, **changes) -> None:
        if changes:
            super().update(**changes)


class StatusBar(Vertical):
    """Two lines: the run, then the epoch's progress with ETA and the live figures.

    Each piece of text is a reactive: the app sets them as often as it likes,
    and a child is redrawn only when its text changed.
    """

    run_text: reactive[Text] = reactive(Text, repaint=False, init=False)
    epoch_text: reactive[str] = reactive("", repaint=False, init=False)
    eta_text: reactive[str] = reactive("", repaint=False, init=False)
    figures_text: reactive[str] = reactive("", repaint=False, init=False)

    def compose(self) -> ComposeResult:
        # Hold the children rather than query them: updates may arrive while the app is closing.
        self.run_line = Static(id="run-line")
        self.epoch_label = Static(id="epoch-label")
        # The ETA is ours, from training time per step (Textual's own is from wall-clock progress updates).
        self.progress = EpochProgress(id="epoch-progress", show_eta=False, show_percentage=False)
        self.eta = Static(id="eta")
        self.figures = Static(id="figures")
        yield self.run_line
        with Horizontal(id="progress-line"):
            yield self.epoch_label
            yield self.progress
            yield self.eta
            yield self.figures

    def show_run(self, state: str, corpus: str, parameters: str, device: str, note: str = "") -> None:
        line = Text()
        line.append(f" {state.upper()} ", style=STATE_STYLES.get(state, "bold") + " reverse")
        line.append(f"  corpus {corpus}  ·  model {parameters}  ·  {device}")
        if note:
            line.append(f"  ·  {note}", style="dim")
        self.run_text = line

    def show_progress(
        self,
        epoch: int,
        epochs: int,
        batch: int,
        batches: int,
        eta: float | None = None,
        *,
        budget: float = 0.0,
        elapsed: float = 0.0,
    ) -> None:
        """How far training is: the epoch's progress, and `eta`, the seconds of training left in it if known.

        A run with a time budget (`budget` training seconds, `elapsed` of them
        trained) ends at the budget, long before its ceiling of epochs: its
        bar is the budget's, and `eta` the seconds left in the run.
        """
        if budget > 0:
            self.epoch_text = f"epoch {epoch} "
            self.progress.update(total=budget, progress=min(elapsed, budget))
            self.eta_text = f" {format_duration(eta)} left" if eta is not None else " --:-- left"
            return
        self.epoch_text = f"epoch {epoch}/{epochs} "
        self.progress.update(total=max(batches, 1), progress=batch)
        self.eta_text = f" ETA {format_duration(eta)}" if eta is not None else " ETA --:--"

    def show_figures(self, loss: str, rate: str, average: str, elapsed: str) -> None:
        """Loss, chars/s over the last seconds and over the session (both wall-clock: every second counts).

        The session's average needs room: below WIDE_FIGURES columns only the recent rate is shown.
        """
        session = f" (avg {average})" if self.size.width >= WIDE_FIGURES else ""
        self.figures_text = f" loss {loss} · {rate} chars/s{session} · {elapsed}"

    def watch_run_text(self, text: Text) -> None:
        self.run_line.update(text, layout=False)  # fixed height: no layout pass needed

    def watch_epoch_text(self, text: str) -> None:
        self.epoch_label.update(text)  # its width may change: this one needs a layout pass

    def watch_eta_text(self, text: str) -> None:
        self.eta.update(text, layout=False)

    def watch_figures_text(self, text: str) -> None:
        self.figures.update(text, layout=False)
