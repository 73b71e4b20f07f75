"""Looking inside the LSTM: every cell's state over a text, and which cells follow which feature of it.

As in Karpathy, Johnson and Fei-Fei (2015), "Visualizing and Understanding
Recurrent Networks": some cells of a char-LSTM track whether the text is
inside quotes, how deep in brackets it is, or how far along the line. Here
each cell's activation is tanh of its cell state (between -1 and +1), taken
after the model has read each char, and a cell "follows" a feature when
that activation correlates with the feature computed from the text itself.

Recording runs in the NumPy engine (core/inference.py), no TensorFlow. A
text shorter than twice PIECE_CHARS is read as one stream from a zero
state, so the states are exactly the model's. A longer one is cut into
pieces of about PIECE_CHARS read side by side as one batch (one matrix
product per char for all pieces, instead of one vector product per char
for the whole text), each warmed on the WARMUP chars before it, as `charlm
eval` does. Most cells have forgotten what came that far back; one that
counts over longer spans (an open quote) can start a piece on the wrong
count.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from tui_charlm.core.evaluation import WARMUP
from tui_charlm.core.inference import Network, NetworkWeights

# Texts shorter than twice this are read as one stream; longer ones in pieces of about this length side by side.
PIECE_CHARS = 2000


@dataclass(frozen=True)
class CellStates:
    """What every LSTM layer held after each char of a text."""

    cells: tuple[np.ndarray, ...]  # per layer: (chars, units) cell state c
    hidden: tuple[np.ndarray, ...]  # per layer: (chars, units) hidden state h

    @property
    def activations(self) -> tuple[np.ndarray, ...]:
        """tanh of the cell state, per layer: what the cell view colours by (-1 to +1)."""
        return tuple(np.tanh(c) for c in self.cells)

    @property
    def layers(self) -> int:
        return len(self.cells)

    @property
    def length(self) -> int:
        return len(self.cells[0])


def record_states(weights: NetworkWeights, ids: np.ndarray, *, piece_chars: int = PIECE_CHARS) -> CellStates:
    """Every layer's (c, h) after each char of `ids`, read from a zero state."""
    network = Network(weights)
    ids = np.asarray(ids, dtype=np.int64)
    total = len(ids)
    cells = [np.empty((total, layer.units), np.float32) for layer in weights.lstm]
    hidden = [np.empty((total, layer.units), np.float32) for layer in weights.lstm]
    pieces = max(1, total // piece_chars)
    bounds = np.linspace(0, total, pieces + 1).astype(int)
    begins, ends = bounds[:-1], bounds[1:]
    # Row r reads its warm-up (chars before its piece, not recorded) then its piece; rows end-padded.
    starts = np.maximum(0, begins - WARMUP)
    length = int((ends - starts).max())
    rows = np.zeros((pieces, length), np.int64)
    for row, (start, end) in enumerate(zip(starts, ends)):
        rows[row, : end - start] = ids[start:end]
    state = network.zero_state(pieces)
    for t in range(length):
        _, state = network.step(rows[:, t], state)
        # Each row's char at this step belongs to its piece (not its warm-up, not its padding): record it there.
        positions = starts + t
        mine = (positions >= begins) & (positions < ends)
        for layer, (h, c) in enumerate(state):
            hidden[layer][positions[mine]], cells[layer][positions[mine]] = h[mine], c[mine]
    return CellStates(tuple(cells), tuple(hidden))


# -- features of the text ---------------------------------------------------------------------------------------


def inside_quotes(text: str) -> np.ndarray:
    """1 after a char that leaves the text inside double quotes (an odd number of `"` so far), else 0."""
    marks = np.frombuffer(text.encode("utf-32-le"), np.uint32) == ord('"')
    return (np.cumsum(marks) % 2).astype(np.float64)


_OPENING, _CLOSING = "([{", ")]}"


def bracket_depth(text: str) -> np.ndarray:
    """How many brackets ( [ { are open after each char (never below 0)."""
    depth, out = 0, np.empty(len(text))
    for index, char in enumerate(text):
        if char in _OPENING:
            depth += 1
        elif char in _CLOSING:
            depth = max(0, depth - 1)
        out[index] = depth
    return out


def position_in_line(text: str) -> np.ndarray:
    """Chars read on the current line: 0 right after a newline, 1 after the line's first char."""
    codes = np.frombuffer(text.encode("utf-32-le"), np.uint32)
    index = np.arange(len(codes))
    last_newline = np.maximum.accumulate(np.where(codes == ord("\n"), index, -1))
    return (index - last_newline).astype(np.float64)  # the text's start counts as a line start


def word_start(text: str) -> np.ndarray:
    """1 on the first char of a word (a letter or digit after anything else), else 0."""
    word = np.array([char.isalnum() for char in text], bool)
    before = np.concatenate([[False], word[:-1]])
    return (word & ~before).astype(np.float64)


def after_newline(text: str) -> np.ndarray:
    """1 right after reading a newline, else 0."""
    return (np.frombuffer(text.encode("utf-32-le"), np.uint32) == ord("\n")).astype(np.float64)


# Name -> the feature's value after each char of a text.
FEATURES: dict[str, Callable[[str], np.ndarray]] = {
    "inside quotes": inside_quotes,
    "bracket depth": bracket_depth,
    "position in line": position_in_line,
    "start of a word": word_start,
    "after a newline": after_newline,
}


@dataclass(frozen=True)
class Cell:
    """One LSTM cell: its layer (from 0) and index in it."""

    layer: int
    index: int

    def label(self, layers: int) -> str:
        """'#17', or 'L2#17' on stacked models (numbered from 1, as a user counts)."""
        return f"L{self.layer + 1}#{self.index}" if layers > 1 else f"#{self.index}"


@dataclass(frozen=True)
class Match:
    """How closely one cell's activation follows one feature."""

    cell: Cell
    correlation: float  # Pearson's r over the text, -1 to +1; a cell that falls where the feature rises counts too


def correlations(activations: np.ndarray, feature: np.ndarray) -> np.ndarray:
    """Pearson's r of every column of `activations` (chars, units) with `feature`; 0 where either is constant."""
    feature = np.asarray(feature, np.float64)
    centred = feature - feature.mean()
    spread = np.sqrt((centred**2).sum())
    values = np.asarray(activations, np.float64)
    values = values - values.mean(axis=0)
    norms = np.sqrt((values**2).sum(axis=0))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (values.T @ centred) / (norms * spread)
    return np.nan_to_num(np.clip(r, -1.0, 1.0), nan=0.0, posinf=0.0, neginf=0.0)


def rank_cells(activations: tuple[np.ndarray, ...], text: str, *, top: int = 3) -> dict[str, list[Match]]:
    """For each feature in FEATURES, the `top` cells (all layers) whose activation follows it best.

    A feature that does not vary over the text (no quotes in it, say) has
    no list: there is nothing to follow.
    """
    if len(text) != len(activations[0]):
        raise ValueError(f"text of {len(text)} chars but states for {len(activations[0])}")
    ranked: dict[str, list[Match]] = {}
    for name, feature_of in FEATURES.items():
        feature = feature_of(text)
        if len(feature) < 2 or np.ptp(feature) == 0:
            ranked[name] = []
            continue
        matches = [
            Match(Cell(layer, int(index)), float(r))
            for layer, values in enumerate(activations)
            for index, r in enumerate(correlations(values, feature))
        ]
        matches.sort(key=lambda match: -abs(match.correlation))
        ranked[name] = matches[:top]
    return ranked


def best_cells(ranked: dict[str, list[Match]]) -> list[tuple[str, Match]]:
    """(feature, its best match) for each feature that has one, in FEATURES' order."""
    return [(name, matches[0]) for name, matches in ranked.items() if matches]
