"""The main screen's keys for looking inside the model: the odds inspector, holding and steering, the cell view.

A mixin of MainScreen (tui/screens/main.py), which owns the panes, the
generation loop and the `inspecting` reactive these use.
"""

from __future__ import annotations

from tui_charlm.tui.generation_loop import Draw, Hold, Inspect, Write
from tui_charlm.tui.messages import OddsReported
from tui_charlm.tui.screens.cells import VIEW_CHARS, CellScreen
from tui_charlm.tui.widgets.generation_pane import GenerationPane


class InsideKeys:
    """i, p, n, 1-9 and v."""

    def on_odds_reported(self, message: OddsReported) -> None:
        if self.closing or message.layout != self.layout_version or not self.inspecting:
            return
        if message.stream == self.focused_index():
            self.odds_pane.show(message)

    def on_descendant_focus(self, event) -> None:
        if self.inspecting and isinstance(event.widget, GenerationPane):
            self.inspect_focused()

    def inspect_focused(self) -> None:
        """Ask the generator for the focused stream's odds (or for none, with the inspector closed)."""
        if self.generation is not None:
            self.odds_pane.show(None)
            self.generation.submit(Inspect(self.layout_version, self.focused_index() if self.inspecting else None))

    def watch_inspecting(self, inspecting: bool) -> None:
        self.set_class(inspecting, "-inspecting")
        self.inspect_focused()

    def action_inspect(self) -> None:
        self.inspecting = not self.inspecting

    def action_hold(self) -> None:
        index = self.focused_index()
        pane = self.panes()[index]
        if self.submit(Hold(self.layout_version, index, not pane.held)):
            pane.held = not pane.held

    def held_pane(self) -> int | None:
        """The focused stream's index if it is held; else says how to hold it."""
        index = self.focused_index()
        if not self.panes()[index].held:
            self.notify("Hold this stream with p first; then n draws a char and 1-9 write one.", severity="warning")
            return None
        return index

    def action_draw(self) -> None:
        index = self.held_pane()
        if index is not None:
            self.submit(Draw(self.layout_version, index))

    def action_write(self, rank: int) -> None:
        index = self.held_pane()
        if index is None:
            return
        # With the odds on screen, write the char shown there (the weights may have moved on since).
        shown = self.odds_pane.odds if self.inspecting else None
        char = None
        if shown is not None and shown.stream == index and shown.layout == self.layout_version:
            char = shown.top[rank - 1][0]
        self.submit(Write(self.layout_version, index, rank, char))

    def action_cells(self) -> None:
        if not self.ready(self.info) or not self.ready(self.app.weight_box.latest()):
            return
        pane = self.panes()[self.focused_index()]
        stream = (pane.text, f"stream {self.focused_index() + 1} ({pane.settings.describe()})")
        self.app.push_screen(
            CellScreen(
                self.app.weight_box, self.info.vocab, heldout=self.app.backend.heldout_text(VIEW_CHARS), stream=stream
            )
        )
