"""The next-char inspector: what the focused stream will draw from, as bars, with the entropy and its last char."""

from __future__ import annotations

from rich.text import Text
from textual.widget import Widget

from tui_charlm.tui.glyphs import PICTURES
from tui_charlm.tui.messages import OddsReported

# Eighths of a block, for bars that move smoothly.
_EIGHTHS = " ▏▎▍▌▋▊▉"


def char_label(char: str) -> str:
    """A char as the inspector names it: visible whitespace (␣ space, ⏎ newline), control chars as pictures."""
    return "␣" if char == " " else char.translate(PICTURES)


def bar(fraction: float, width: int) -> str:
    """A horizontal bar `fraction` of `width` cells long, to an eighth of a cell."""
    eighths = round(max(0.0, min(1.0, fraction)) * width * 8)
    full, part = divmod(eighths, 8)
    return ("█" * full + (_EIGHTHS[part] if part else "")).ljust(width)


class OddsPane(Widget):
    """Shows the newest OddsReported: ten likeliest chars, entropy, the char drawn last, and the steering keys."""

    DEFAULT_CSS = """
    OddsPane { width: 34; border: round $accent; padding: 0 1; }
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.odds: OddsReported | None = None

    def on_mount(self) -> None:
        self.border_title = "next char"

    def show(self, odds: OddsReported | None) -> None:
        self.odds = odds
        if odds is not None:
            self.border_title = f"next char · stream {odds.stream + 1} · {odds.settings}"
        self.refresh()

    def render(self) -> Text:
        odds = self.odds
        text = Text()
        if odds is None:
            text.append("waiting for the stream…", style="dim")
            return text
        width = max(4, self.content_region.width - 14)
        for rank, (char, probability) in enumerate(odds.top, start=1):
            key = f"{rank}" if rank <= 9 else " "
            text.append(f"{key} ", style="bold" if odds.held and rank <= 9 else "dim")
            text.append(f"{char_label(char):>2} ", style="bold")
            text.append(bar(probability, width), style="green" if probability > 0 else "dim")
            # Ruled out by top-k or top-p: 0; possible but rounding to 0.000: <.001.
            text.append(
                f" {probability:5.3f}\n" if probability >= 0.0005 else " <.001\n" if probability else "     0\n"
            )
        text.append(f"entropy {odds.entropy:.2f} bits\n")
        if odds.drawn is not None:
            text.append("last drawn ")
            text.append(char_label(odds.drawn), style="bold reverse")
            text.append(f" (model p {odds.drawn_probability:.3f})\n")
        if odds.held:
            text.append("held: n draws · 1-9 write", style="bold")
        else:
            text.append("p holds this stream", style="dim")
        return text
