"""Turning next-char logits into chars: temperature, greedy, top-k, top-p.

Temperature reweighting is the recipe's `softmax(log(p) / T)`; since
log(p) = logits - logsumexp(logits), that is exactly softmax(logits / T),
computed here from max-shifted logits so no T over- or underflows with a
warning. T = 0 means greedy.

Each stream draws one uniform number per char and picks by inverse CDF, so
a batch of streams gives the same chars as the streams run one by one with
the same draws.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from tui_charlm.core.errors import CharlmError
from tui_charlm.core.units import LN2

# The temperatures the book samples at after every epoch; the streams and samples start from them.
RECIPE_TEMPERATURES = (0.2, 0.5, 1.0, 1.2)


def check_temperature(value: float) -> float:
    """A valid temperature (0 = greedy), or a CharlmError saying what is wrong."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise CharlmError(f"Temperature {value!r} is not a number; use a value such as 0.5 (0 = greedy).") from None
    if math.isnan(value) or math.isinf(value) or value < 0:
        raise CharlmError(f"Temperature must be a finite number of at least 0 (0 = greedy), not {value}.")
    return value


@dataclass(frozen=True)
class SamplingSettings:
    """How one stream picks its next char."""

    temperature: float = 1.0  # 0 = greedy
    top_k: int | None = None  # keep only the k likeliest chars
    top_p: float | None = None  # keep the smallest set of chars whose probability reaches p

    def __post_init__(self) -> None:
        object.__setattr__(self, "temperature", check_temperature(self.temperature))
        if self.top_k is not None and (
            isinstance(self.top_k, bool) or not isinstance(self.top_k, (int, np.integer)) or self.top_k < 1
        ):
            raise CharlmError(f"top-k must be a whole number of at least 1, not {self.top_k!r}.")
        if self.top_p is not None:
            try:
                top_p = float(self.top_p)
            except (TypeError, ValueError):
                raise CharlmError(f"top-p must be a number in (0, 1], not {self.top_p!r}.") from None
            if not (0.0 < top_p <= 1.0):
                raise CharlmError(f"top-p must be in (0, 1], not {self.top_p!r}.")
            object.__setattr__(self, "top_p", top_p)

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0

    def describe(self) -> str:
        """Short label, e.g. 'T=0.5', 'greedy', 'T=1.0 top-k 5'."""
        t = self.temperature
        label = "greedy" if self.greedy else f"T={t:.1f}" if round(t, 1) == t else f"T={t:g}"
        if self.top_k is not None:
            label += f" top-k {self.top_k}"
        if self.top_p is not None:
            label += f" top-p {self.top_p:g}"
        return label


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Stable log-softmax over the last axis."""
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def distribution(logits: np.ndarray, settings: SamplingSettings) -> np.ndarray:
    """The probabilities a stream samples from, for one row of logits."""
    logits = np.asarray(logits, dtype=np.float64)
    if settings.greedy:
        probs = np.zeros_like(logits)
        probs[int(np.argmax(logits))] = 1.0
        return probs
    with np.errstate(over="ignore"):  # a tiny T sends all but the top logit to -inf: greedy, as it should
        if settings.temperature < _FAST_MIN_TEMPERATURE:
            shifted = (logits - logits.max()) / settings.temperature  # 1/T could be infinite here
        else:
            # Multiply by 1/T (not divide by T): the batched path does the same, bit for bit.
            shifted = (logits - logits.max()) * (1.0 / settings.temperature)
    if settings.top_k is not None and settings.top_k < len(shifted):
        kth = np.partition(shifted, -settings.top_k)[-settings.top_k]
        shifted = np.where(shifted >= kth, shifted, -np.inf)
    weights = np.exp(shifted)
    probs = weights / weights.sum()
    if settings.top_p is not None and settings.top_p < 1.0:
        order = np.argsort(-probs, kind="stable")
        cumulative = np.cumsum(probs[order])
        keep = int(np.searchsorted(cumulative, settings.top_p * cumulative[-1])) + 1
        mask = np.zeros_like(probs, dtype=bool)
        mask[order[:keep]] = True
        probs = np.where(mask, probs, 0.0)
        probs /= probs.sum()
    return probs


# Below this temperature a row takes the careful per-row path (where dividing could overflow).
_FAST_MIN_TEMPERATURE = 1e-3


def distributions(logits: np.ndarray, settings: list[SamplingSettings]) -> np.ndarray:
    """The probabilities each stream samples from: row i of `logits` under `settings[i]`.

    Row for row this equals distribution().
    """
    return sample_distributions(logits, settings)[0]


def batch_plan(settings: list[SamplingSettings]) -> tuple[np.ndarray, np.ndarray]:
    """(inverse temperatures, rows needing the per-row path) for a list of settings; cache it while they hold."""
    special = np.array(
        [
            s.greedy or s.temperature < _FAST_MIN_TEMPERATURE or s.top_k is not None or s.top_p is not None
            for s in settings
        ]
    )
    inverse = np.array([1.0 if special[i] else 1.0 / s.temperature for i, s in enumerate(settings)])[:, None]
    return inverse, special


def sample_distributions(logits: np.ndarray, settings: list[SamplingSettings], plan=None):
    """(probabilities, entropies in bits, log-probabilities under the model) for every row at once.

    Rows with only a temperature are computed together; greedy, top-k,
    top-p and tiny-temperature rows take the per-row path. The entropy of a
    temperature-only row is log Z - sum(p * s) for s = (logits - max) / T,
    which needs no second logarithm. Pass `plan` (from batch_plan) to skip
    re-reading the settings on every char.
    """
    inverse, special = plan if plan is not None else batch_plan(settings)
    logits = np.asarray(logits, dtype=np.float64)
    shifted_model = logits - logits.max(axis=1, keepdims=True)
    model_weights = np.exp(shifted_model)
    log_probs = shifted_model - np.log(model_weights.sum(axis=1, keepdims=True))
    shifted = shifted_model * inverse
    weights = np.exp(shifted)
    totals = weights.sum(axis=1)
    probs = weights / totals[:, None]
    entropies = (np.log(totals) - (probs * shifted).sum(axis=1)) / LN2
    if special.any():
        for row in np.flatnonzero(special):
            probs[row] = distribution(logits[row], settings[row])
            entropies[row] = entropy_bits(probs[row])
    return probs, entropies, log_probs


def sample_row(logits: np.ndarray, inverse: float, uniform: float) -> tuple[int, float, float]:
    """One temperature-only row, drawn: (char id, the model's probability of it, entropy in bits).

    The char is the one sample_distributions() and pick_rows() give for the
    same row and draw, bit for bit (the same operations on the same
    values); the two reported numbers may differ from theirs in the last
    bits. For one stream this is a third of the NumPy calls.
    """
    # ndarray methods and ufunc reductions directly: NumPy's function wrappers cost as much as the work here.
    row = logits.astype(np.float64)
    shifted_model = row - np.maximum.reduce(row)
    shifted = shifted_model * inverse
    weights = np.exp(shifted)
    total = np.add.reduce(weights)
    probs = weights / total
    cumulative = probs.cumsum()
    index = min(int(cumulative.searchsorted(uniform * cumulative[-1], side="right")), len(probs) - 1)
    if probs[index] == 0.0:  # rounding at the top end: step back to an allowed char
        index = pick(probs, uniform)
    entropy = (math.log(total) - float(np.dot(weights, shifted)) / total) / LN2
    model_total = total if inverse == 1.0 else float(np.add.reduce(np.exp(shifted_model)))
    return index, math.exp(float(shifted_model[index])) / model_total, entropy


def entropy_bits(probs: np.ndarray) -> float:
    """Entropy of a distribution, in bits."""
    nonzero = probs[probs > 0]
    return float(-(nonzero * np.log(nonzero)).sum() / LN2)


def pick_rows(probs: np.ndarray, uniforms: np.ndarray) -> np.ndarray:
    """pick() for every row at once."""
    cumulative = np.cumsum(probs, axis=1)
    targets = uniforms * cumulative[:, -1]
    index = np.minimum((cumulative <= targets[:, None]).sum(axis=1), probs.shape[1] - 1)
    allowed = probs[np.arange(len(probs)), index] > 0.0
    if not allowed.all():  # rounding at the top end: step back to an allowed char
        for row in np.flatnonzero(~allowed):
            index[row] = pick(probs[row], uniforms[row])
    return index


def pick(probs: np.ndarray, uniform: float) -> int:
    """Inverse-CDF choice: the first id whose cumulative probability exceeds `uniform`."""
    cumulative = np.cumsum(probs)
    index = int(np.searchsorted(cumulative, uniform * cumulative[-1], side="right"))
    index = min(index, len(probs) - 1)
    while probs[index] == 0.0 and index > 0:  # rounding at the top end never picks an excluded char
        index -= 1
    return index
