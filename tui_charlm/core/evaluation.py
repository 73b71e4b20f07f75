"""Held-out loss, measured the same way for every model.

Two numbers:

* window: from the held-out text draw start positions with
  `numpy.random.default_rng(0).choice(len(heldout) - 61, size=20000,
  replace=False)`; for each, give the model the 60 chars from that position
  (from a zero state) and score the char that follows. Every model family
  can be compared on this one.
* stateful: the held-out text read in order, carrying the LSTM state,
  scoring every next char. The fairer number for sequence models; not
  reported for the recipe's window models, which never saw long contexts.
  The text is cut into pieces of PIECE_CHARS chars read side by side as
  one batch (a step per char of one piece, not of the whole text); each
  piece starts from a zero state warmed up on the WARMUP chars before it
  (read, not scored).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from tui_charlm.core.inference import Network, NetworkWeights
from tui_charlm.core.sampling import log_softmax
from tui_charlm.core.units import LN2

WARMUP = 256
PIECE_CHARS = 4000
_CHUNK = 4096  # windows scored per batch


@dataclass(frozen=True)
class Evaluation:
    """Held-out losses in nats per char (bits via the properties)."""

    window_loss: float
    window_positions: int
    context: int
    stateful_loss: float | None
    heldout_chars: int

    @property
    def window_bits(self) -> float:
        return self.window_loss / LN2

    @property
    def stateful_bits(self) -> float | None:
        return None if self.stateful_loss is None else self.stateful_loss / LN2


def window_loss(
    network: Network, heldout: np.ndarray, *, context: int = 60, positions: int = 20000, rng_seed: int = 0
) -> tuple[float, int]:
    """Mean NLL of the char after `context` chars, at random held-out positions: (nats, positions used)."""
    candidates = len(heldout) - context - 1
    if candidates < 1:
        raise ValueError(f"held-out text of {len(heldout)} chars is shorter than one {context}-char window")
    count = min(positions, candidates)
    starts = np.random.default_rng(rng_seed).choice(candidates, size=count, replace=False)
    total = 0.0
    offsets = np.arange(context)
    for begin in range(0, count, _CHUNK):
        batch = starts[begin : begin + _CHUNK]
        logits, _ = network.run(heldout[batch[:, None] + offsets].astype(np.int64))
        log_probs = log_softmax(logits.astype(np.float64))
        total -= log_probs[np.arange(len(batch)), heldout[batch + context]].sum()
    return total / count, count


def stateful_loss(network: Network, heldout: np.ndarray, *, chunk_chars: int = PIECE_CHARS) -> float:
    """Mean NLL of every next char: the held-out text in `chunk_chars` pieces, each read in order with carried state.

    The pieces run side by side as one batch; each starts from a zero state
    warmed up on the WARMUP chars before it (read, not scored; the first
    piece has none before it), so each char is scored once.
    """
    ids = np.asarray(heldout, dtype=np.int64)
    n_targets = len(ids) - 1
    n_chunks = max(1, n_targets // chunk_chars)
    bounds = np.linspace(0, n_targets, n_chunks + 1).astype(int)
    length = int(np.max(np.diff(bounds))) + WARMUP
    # Each row: WARMUP chars of earlier text (unscored) then its chunk; rows are padded at the end.
    rows = np.zeros((n_chunks, length), np.int64)
    scored = np.zeros((n_chunks, length), bool)
    targets = np.zeros((n_chunks, length), np.int64)
    for row, (begin, end) in enumerate(itertools.pairwise(bounds)):
        warm_begin = max(0, begin - WARMUP)
        span = ids[warm_begin:end]
        rows[row, : len(span)] = span
        targets[row, : len(span)] = ids[warm_begin + 1 : end + 1]
        scored[row, begin - warm_begin : len(span)] = True
    state = network.zero_state(n_chunks)
    total = 0.0
    for t in range(length):
        logits, state = network.step(rows[:, t], state)
        if scored[:, t].any():
            log_probs = log_softmax(logits.astype(np.float64))
            picked = log_probs[np.arange(n_chunks), targets[:, t]]
            total -= picked[scored[:, t]].sum()
    return total / n_targets


def evaluate(weights: NetworkWeights, heldout: np.ndarray, *, context: int = 60, positions: int = 20000) -> Evaluation:
    """Both held-out numbers for one snapshot of weights."""
    network = Network(weights)
    loss, used = window_loss(network, heldout, context=context, positions=positions)
    stateful = stateful_loss(network, heldout) if weights.every_position else None
    return Evaluation(loss, used, context, stateful, len(heldout))
