"""The cell view: a text coloured char by char by one LSTM cell's activation, following the newest weights.

Each char's background is tanh of the chosen cell's state after reading it:
blue for -1, white for 0, red for +1 (the palette of `charlm cells
--html`). Under NO_COLOR a line of block characters under each line of text
carries the value instead (▁ for -1 up to ▇ for +1). Recording runs in a
thread worker on the NumPy engine (core/cells.py), niced like generation so
training keeps the CPU; it is redone when newer weights are published, at
most every RERECORD_SECONDS.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
from rich.color import Color
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.strip import Strip
from textual.widget import Widget
from textual.widgets import Footer, Static

from tui_charlm.core.cells import FEATURES, Match, correlations, rank_cells, record_states
from tui_charlm.core.cells_page import LEVELS, level_of, shade
from tui_charlm.core.generation import lower_thread_priority
from tui_charlm.tui.glyphs import PICTURES

# Chars of text shown and recorded: a few screenfuls.
VIEW_CHARS = 1500
# Seconds between re-recordings while training publishes new weights.
RERECORD_SECONDS = 10.0
BLOCKS = "▁▂▃▄▅▆▇"


@dataclass
class CellsRecorded(Message):
    """The recorder read the text with one snapshot of the weights."""

    version: int
    text: str
    activations: tuple[np.ndarray, ...]  # per layer: (chars, units), tanh of the cell state
    best: dict[str, list[Match]]  # per feature: the best cell for it
    follows: tuple[np.ndarray, ...]  # per layer: (units, features) correlation of each cell with each feature


def block(value: float) -> str:
    """▁ for -1 up to ▇ for +1."""
    return BLOCKS[round((max(-1.0, min(1.0, value)) + 1) / 2 * (len(BLOCKS) - 1))]


# One style per shade (as on the HTML page): a char's style is a table lookup, and a run of chars of one shade
# is one span.
STYLES = [Style(color="black", bgcolor=Color.from_rgb(*shade(level / (LEVELS - 1) * 2 - 1))) for level in range(LEVELS)]
DIM = Style(dim=True)


def coloured_lines(text: str, values: np.ndarray, width: int, *, blocks: bool) -> list[list[Segment]]:
    """`text` in lines of at most `width` chars, each char's background its value (in LEVELS shades).

    With `blocks` (NO_COLOR), a line of block characters under each line
    carries the values. Segments, not a Rich Text: a line is a few spans
    with shared styles, drawn by CellText without wrapping or measuring.
    """
    shown = text.translate(PICTURES)
    levels = level_of(np.asarray(values)).tolist()
    rows: list[list[Segment]] = []
    begin = 0
    while begin < len(text):
        newline = text.find("\n", begin, begin + width)
        end = newline + 1 if newline >= 0 else min(len(text), begin + width)
        row, run = [], begin
        for index in range(begin + 1, end + 1):
            if index == end or levels[index] != levels[run]:
                row.append(Segment(shown[run:index], STYLES[levels[run]]))
                run = index
        rows.append(row)
        if blocks:
            rows.append([Segment("".join(block(v) for v in values[begin:end].tolist()), DIM)])
        begin = end
    return rows


class CellText(Widget):
    """The coloured text: lines of segments drawn one by one (Textual's line API), so changing the cell
    redraws the visible lines and nothing is measured or wrapped again."""

    DEFAULT_CSS = "CellText { height: auto; }"

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.rows: list[list[Segment]] = []

    def show(self, rows: list[list[Segment]]) -> None:
        resized = len(rows) != len(self.rows)
        self.rows = rows
        if resized:
            self.styles.height = len(rows)
        self.refresh(layout=resized)

    def plain_lines(self) -> list[str]:
        return ["".join(segment.text for segment in row) for row in self.rows]

    def render_line(self, y: int) -> Strip:
        if y >= len(self.rows):
            return Strip.blank(self.size.width, self.rich_style)
        return Strip(self.rows[y]).crop(0, self.size.width)


class CellScreen(Screen[None]):
    """One cell at a time over a held-out slice or a stream's text; keys change the cell, feature, layer and text."""

    BINDINGS = [
        Binding("left", "cell(-1)", "Cell -1", id="cell-previous"),
        Binding("right", "cell(1)", "Cell +1", id="cell-next"),
        Binding("f", "next_feature", "Feature", id="cell-feature"),
        Binding("l", "next_layer", "Layer", id="cell-layer"),
        Binding("t", "toggle_text", "Text", id="cell-text"),
        Binding("escape,v", "dismiss", "Close", id="cell-close"),
    ]

    def __init__(self, weight_box, vocab, *, heldout: tuple[str, str] | None, stream: tuple[str, str] | None):
        super().__init__()
        self.weight_box = weight_box
        self.vocab = vocab
        self.sources = [source for source in (heldout, stream) if source is not None and len(source[0]) >= 2]
        self.source = 0
        self.layer_index = 0
        self.cell_index = 0
        self.feature = next(iter(FEATURES))  # f cycles the features
        self.on_best = True  # showing the feature's best cell (and following it as the weights change)
        self.recorded: CellsRecorded | None = None
        self.last_record = -math.inf  # never yet (time.monotonic() counts from boot)

    def compose(self) -> ComposeResult:
        yield Static(id="cell-header")
        with VerticalScroll(id="cell-scroll"):
            yield CellText(id="cell-text-view")
        yield Footer()

    def on_mount(self) -> None:
        if not self.sources:
            self.query_one("#cell-header", Static).update(
                "No text to read yet: the corpus is not at hand and the stream is empty."
            )
            return
        self.query_one("#cell-header", Static).update("recording the cells…")
        self.record()
        self.set_interval(1.0, self.follow_weights)

    # -- recording ------------------------------------------------------------------

    @work(thread=True, exclusive=True, group="cells", exit_on_error=False)
    def record(self) -> None:
        """Read the current text with the newest weights and rank the cells (in a worker thread)."""
        lower_thread_priority()
        weights = self.weight_box.latest()
        if weights is None:
            return
        text = self.vocab.clean_seed(self.sources[self.source][0][-VIEW_CHARS:]).text
        states = record_states(weights, self.vocab.encode(text))
        activations = states.activations
        features = [feature_of(text) for feature_of in FEATURES.values()]
        follows = tuple(np.stack([correlations(a, f) for f in features], axis=1) for a in activations)
        best = rank_cells(activations, text, top=1)
        self.post_message(CellsRecorded(weights.version, text, activations, best, follows))

    def follow_weights(self) -> None:
        latest = self.weight_box.latest()
        due = time.monotonic() - self.last_record >= RERECORD_SECONDS
        if latest is not None and self.recorded is not None and latest.version != self.recorded.version and due:
            self.last_record = time.monotonic()
            self.record()

    def on_cells_recorded(self, message: CellsRecorded) -> None:
        self.recorded = message
        self.last_record = time.monotonic()
        if not message.best.get(self.feature):  # this text has none of it (no quotes, say): the next that varies
            self.feature = next((name for name, matches in message.best.items() if matches), self.feature)
        if self.on_best:
            self.jump_to_best()
        self.layer_index = min(self.layer_index, len(message.activations) - 1)
        self.cell_index = min(self.cell_index, message.activations[self.layer_index].shape[1] - 1)
        self.show()

    def jump_to_best(self) -> None:
        matches = self.recorded.best.get(self.feature) or []
        if matches:
            self.layer_index, self.cell_index = matches[0].cell.layer, matches[0].cell.index

    # -- showing --------------------------------------------------------------------

    def on_resize(self) -> None:
        self.show()

    def show(self) -> None:
        recorded = self.recorded
        if recorded is None:
            return
        values = recorded.activations[self.layer_index][:, self.cell_index]
        layers = len(recorded.activations)
        units = recorded.activations[self.layer_index].shape[1]
        where = f"layer {self.layer_index + 1}/{layers} · " if layers > 1 else ""
        header = Text()
        header.append(f"{where}cell #{self.cell_index} of {units}", style="bold")
        header.append(f" · weights of step {recorded.version} · text: {self.sources[self.source][1]}\n")
        matches = recorded.best.get(self.feature) or []
        if not matches:
            header.append(f"{self.feature}: does not vary in this text\n")
        elif self.on_best:
            header.append(f"the cell that best follows {self.feature}", style="bold")
            header.append(f" (r = {matches[0].correlation:+.2f})\n")
        else:
            best = matches[0]
            header.append(
                f"the best cell for {self.feature} is {best.cell.label(layers)} (r = {best.correlation:+.2f}); "
                "f jumps to it\n"
            )
        follows = [f"{name} {r:+.2f}" for name, r in zip(FEATURES, recorded.follows[self.layer_index][self.cell_index])]
        header.append("this cell against each feature: " + " · ".join(follows) + "\n", style="dim")
        header.append("-1 ", style=Style(color="black", bgcolor=Color.from_rgb(*shade(-1.0))))
        header.append(" 0 ", style=Style(color="black", bgcolor=Color.from_rgb(*shade(0.0))))
        header.append("+1 ", style=Style(color="black", bgcolor=Color.from_rgb(*shade(1.0))))
        header.append("  tanh of the cell state after each char  ·  ←/→ cell · f feature · l layer · t text")
        self.query_one("#cell-header", Static).update(header)
        width = max(10, self.query_one("#cell-scroll").content_region.width - 1)
        self.query_one(CellText).show(coloured_lines(recorded.text, values, width, blocks=self.app.no_color))

    # -- keys -----------------------------------------------------------------------

    def action_cell(self, delta: int) -> None:
        if self.recorded is None:
            return
        units = self.recorded.activations[self.layer_index].shape[1]
        self.cell_index = (self.cell_index + delta) % units
        self.on_best = False
        self.show()

    def action_next_feature(self) -> None:
        if self.recorded is None:
            return
        names = list(FEATURES)
        if self.on_best:  # already on this feature's best cell: on to the next feature the text has
            for _ in names:
                self.feature = names[(names.index(self.feature) + 1) % len(names)]
                if self.recorded.best.get(self.feature):
                    break
        self.on_best = True
        self.jump_to_best()
        self.show()

    def action_next_layer(self) -> None:
        if self.recorded is None:
            return
        layers = len(self.recorded.activations)
        if layers == 1:
            self.notify("This model has one LSTM layer.")
            return
        self.layer_index = (self.layer_index + 1) % layers
        self.cell_index = min(self.cell_index, self.recorded.activations[self.layer_index].shape[1] - 1)
        self.on_best = False
        self.show()

    def action_toggle_text(self) -> None:
        if len(self.sources) < 2:
            self.notify("Only one text to show here.", severity="warning")
            return
        self.source = 1 - self.source
        self.query_one("#cell-header", Static).update("recording the cells…")
        self.record()

    def action_dismiss(self) -> None:
        self.dismiss(None)
