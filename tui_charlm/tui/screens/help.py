"""The help screen: help.md, with the table of keys made from tui/keys.py."""

from __future__ import annotations

from importlib.resources import files

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Markdown

from tui_charlm.tui.keys import help_table


class HelpScreen(ModalScreen[None]):
    """Keys and what they do; any of Escape, ? or F1 closes it."""

    BINDINGS = [Binding("escape,question_mark,f1,q", "dismiss", "Close help", id="close-help")]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-body"):
            yield Markdown(help_text())


def help_text() -> str:
    """The help screen's Markdown: help.md's prose around the table of every key."""
    return files("tui_charlm.tui").joinpath("help.md").read_text(encoding="utf-8").replace("{keys}", help_table())
