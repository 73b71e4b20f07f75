"""The status pane: what is training, where, how far, how fast."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import ProgressBar, Static

STATE_STYLES = {"loading": "bold blue", "training": "bold green", "paused": "bold yellow", "stopping": "bold yellow",
                "stopped": "bold", "finished": "bold green", "failed": "bold red", "generating": "bold cyan"}


def format_duration(seconds: float) -> str:
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


class StatusBar(Vertical):
    """Two lines: the run, then the epoch's progress with ETA and the live figures."""

    def compose(self) -> ComposeResult:
        yield Static(id="run-line")
        with Horizontal(id="progress-line"):
            yield Static(id="epoch-label")
            yield ProgressBar(id="epoch-progress", show_eta=True, show_percentage=False)
            yield Static(id="figures")

    def show_run(self, state: str, corpus: str, parameters: str, device: str, note: str = "") -> None:
        line = Text()
        line.append(f" {state.upper()} ", style=STATE_STYLES.get(state, "bold") + " reverse")
        line.append(f"  corpus {corpus}  ·  model {parameters}  ·  {device}")
        if note:
            line.append(f"  ·  {note}", style="dim")
        self.query_one("#run-line", Static).update(line)

    def show_progress(self, epoch: int, epochs: int, batch: int, batches: int) -> None:
        self.query_one("#epoch-label", Static).update(f"epoch {epoch}/{epochs} ")
        self.query_one("#epoch-progress", ProgressBar).update(total=max(batches, 1), progress=batch)

    def show_figures(self, loss: str, rate: str, elapsed: str) -> None:
        self.query_one("#figures", Static).update(f" loss {loss} · {rate} chars/s · {elapsed}")
