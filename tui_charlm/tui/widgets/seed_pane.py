"""The seed pane: the text every stream started from, and where it came from."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static


class SeedPane(Static):
    """Shows the current seed, marked as seed."""

    def on_mount(self) -> None:
        self.border_title = "seed"
        self.show_seed("", "waiting for the model")

    def show_seed(self, text: str, source: str, mode: str | None = None) -> None:
        self.seed_text, self.source = text, source
        if mode:
            # Which generation mode the streams use: stateful (one step per char) or window (the recipe's).
            self.border_subtitle = f"{mode} generation"
        shown = Text()
        shown.append(text.replace("\n", "⏎\n") or " ", style="italic reverse")
        shown.append(f"\n\n({source})", style="dim")
        self.update(shown)
