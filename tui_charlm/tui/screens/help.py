"""The help screen: every key, from help.md."""

from __future__ import annotations

from importlib.resources import files

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Markdown


class HelpScreen(ModalScreen[None]):
    """Keys and what they do; any of Escape, ? or F1 closes it."""

    BINDINGS = [Binding("escape,question_mark,f1,q", "dismiss", "Close help", id="close-help")]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-body"):
            yield Markdown(files("tui_charlm.tui").joinpath("help.md").read_text(encoding="utf-8"))
