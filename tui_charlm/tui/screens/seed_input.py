"""A modal prompt for typing your own seed text."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label


class SeedInputScreen(ModalScreen[str | None]):
    """Returns the typed text on Enter, or None on Escape."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="cancel-seed")]

    def compose(self) -> ComposeResult:
        with Vertical(id="seed-dialog"):
            yield Label("Type a seed and press Enter (Escape cancels). Characters the model never saw are dropped.")
            yield Input(placeholder="the meaning of ", id="seed-input")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value)

    def action_cancel(self) -> None:
        self.dismiss(None)
