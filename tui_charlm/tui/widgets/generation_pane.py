"""One stream of generated text: it types in char by char, optionally coloured by surprise."""

from __future__ import annotations

from collections import deque

from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from tui_charlm.core.sampling import SamplingSettings

# Chars kept per pane: more than any terminal shows at once.
KEEP_CHARS = 6000
# (probability below which, style): the rarer the char under the model, the louder.
SURPRISE_STYLES = ((0.05, "bold red reverse"), (0.2, "bold dark_orange"), (0.5, "yellow"))


def surprise_style(probability: float) -> str:
    """Style for a char the model gave `probability`."""
    for limit, style in SURPRISE_STYLES:
        if probability < limit:
            return style
    return ""


def surprise_legend() -> Text:
    """One line explaining the surprise colours."""
    legend = Text("surprise: ")
    legend.append("p≥0.5 plain  ")
    for (_, style), label in zip(reversed(SURPRISE_STYLES), ("p<0.5", "p<0.2", "p<0.05")):
        legend.append(f" {label} ", style=style)
        legend.append("  ")
    return legend


class GenerationPane(Widget, can_focus=True):
    """Generated text of one stream; the focused pane is the one the keys steer."""

    surprise: reactive[bool] = reactive(False)

    def __init__(self, settings: SamplingSettings, **kwargs):
        super().__init__(**kwargs)
        self.settings = settings
        self.chars: deque[tuple[str, float]] = deque(maxlen=KEEP_CHARS)

    def on_mount(self) -> None:
        self.show_settings(self.settings)

    def show_settings(self, settings: SamplingSettings) -> None:
        self.settings = settings
        self.border_title = settings.describe()
        self.refresh()

    def add(self, chars: list[tuple[str, float]]) -> None:
        self.chars.extend(chars)
        self.refresh()

    def clear(self) -> None:
        self.chars.clear()
        self.refresh()

    @property
    def text(self) -> str:
        return "".join(c for c, _ in self.chars)

    def render(self) -> Text:
        width, height = self.content_region.width, self.content_region.height
        if width <= 0 or height <= 0:
            return Text("")
        # Only the tail fits: wrap a little more than a screenful (word wrapping leaves lines short)
        # and keep the last `height` lines.
        keep = width * height * 3 // 2 + width
        chars = self.chars
        tail = [chars[i] for i in range(max(0, len(chars) - keep), len(chars))]
        text = Text(no_wrap=False, overflow="fold")
        if self.surprise:
            for char, probability in tail:
                text.append(char, style=surprise_style(probability))
        else:
            text.append("".join(c for c, _ in tail))
        lines = text.wrap(self.app.console, width)
        shown = Text("\n").join(lines[-height:])
        return shown
