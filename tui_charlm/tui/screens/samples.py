"""The run's samples.txt (the text generated after each epoch), in a scrollable screen opened at its end."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Header, Static

# Characters shown at most: the newest part of a long file.
SHOWN_CHARS = 200_000


class SamplesScreen(Screen[None]):
    """samples.txt, newest at the bottom; Escape or h closes it."""

    BINDINGS = [Binding("escape,h", "close", "Close", id="samples-close")]

    def __init__(self, path: Path, text: str):
        super().__init__()
        self.path = path
        self.text = text

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(f"{self.path}: text generated after each epoch, newest at the bottom", id="samples-path")
        with VerticalScroll(id="samples-scroll"):
            yield Static(Text(self.text), id="samples-text")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#samples-scroll").scroll_end(animate=False)

    def action_close(self) -> None:
        self.dismiss(None)


def read_samples(path: Path) -> str:
    """The newest SHOWN_CHARS of samples.txt (OSError if it cannot be read)."""
    with open(path, encoding="utf-8", errors="replace") as handle:
        text = handle.read()
    if len(text) > SHOWN_CHARS:
        text = "…(older samples above, in the file)\n" + text[-SHOWN_CHARS:]
    return text
