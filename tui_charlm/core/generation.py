"""Streaming generation: several streams advance together, one char per step.

Two modes:

* `stateful` carries each stream's LSTM state from char to char: O(1) per
  char. Faithful for models trained to predict at every position.
* `window` re-reads the last `seq_len` chars from a zero state for every
  char, exactly the recipe's semantics (its model only ever saw windows).

Settings (temperature, top-k, top-p) and the mode can change between any
two chars; new weights are picked up between chars too.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from threadpoolctl import threadpool_limits

from tui_charlm.core.errors import CharlmError
from tui_charlm.core.inference import Network, NetworkWeights, OneStream
from tui_charlm.core.sampling import (
    SamplingSettings,
    batch_plan,
    distribution,
    entropy_bits,
    log_softmax,
    pick,
    pick_rows,
    sample_distributions,
    sample_row,
)
from tui_charlm.core.vocab import Vocabulary

MODES = ("stateful", "window")


class GeneratedChar(NamedTuple):
    """One char of one stream (a NamedTuple: thousands are made per second)."""

    stream: int
    char: str
    probability: float  # the model's probability of this char (temperature 1): low = surprising
    entropy: float  # bits, of the distribution the char was drawn from


def lower_thread_priority(niceness: int = 10) -> bool:
    """Make the calling thread yield the CPU to training (Linux: per-thread nice). True if it worked.

    Generation is for watching; it must not slow training down. On a small
    machine a generator thread at full speed would take a whole core from
    TensorFlow's threads; niced, it takes a small share of what training
    wants. Idle priority (SCHED_IDLE) measured worse (70% against 82% of
    training alone, `benchmarks/train_with_generator.py --idle`): a thread
    descheduled while it holds the interpreter lock keeps the training loop
    waiting.
    """
    try:
        native_id = threading.get_native_id()
        current = os.getpriority(os.PRIO_PROCESS, native_id)
        os.setpriority(os.PRIO_PROCESS, native_id, min(19, current + niceness))
        return True
    except (AttributeError, OSError):
        return False


# Seconds a thread waiting for the interpreter lock waits before the holder must hand it over
# (CPython's default is 5 ms).
SWITCH_INTERVAL = 0.0005


def single_threaded_blas() -> None:
    """Make NumPy's BLAS (OpenBLAS, MKL, ...) run every product in the calling thread.

    Generation multiplies a few rows by a few hundred columns per char: too
    small to gain from more threads, and OpenBLAS's helper threads busy-wait
    between calls, so a generator calling it hundreds of times a second keeps
    a helper spinning on a whole core, taken from TensorFlow. TensorFlow has
    its own thread pools (Eigen, oneDNN) and is not affected. Process-wide,
    via threadpoolctl (the maintained way to find and limit whichever BLAS
    NumPy loaded).
    """
    threadpool_limits(limits=1, user_api="blas")


def make_room_for_training() -> None:
    """Call from a generation thread that runs beside training.

    Three costs to avoid on a small machine: CPU (the thread is niced, so it
    uses what training leaves idle), BLAS helper threads (NumPy's BLAS is
    kept to the calling thread, so no helper spins between the generator's
    small products), and the interpreter lock (the switch interval is
    shortened, so whenever the training loop needs the lock between
    TensorFlow calls it waits at most half a millisecond, not 5 ms, for a
    generator in the middle of its Python work). The interval is
    process-wide; the cost is a little more switching between threads that
    both want the lock, which is the point.
    """
    lower_thread_priority()
    single_threaded_blas()
    sys.setswitchinterval(min(sys.getswitchinterval(), SWITCH_INTERVAL))


@dataclass(frozen=True)
class Odds:
    """The distribution one stream draws its next char from, as the inspector shows it."""

    stream: int
    probs: np.ndarray  # the sampling distribution: temperature, top-k and top-p applied (sums to 1)
    model: np.ndarray  # the model's own distribution (temperature 1, nothing cut)
    order: np.ndarray  # char ids, likeliest first under `probs` (ties, and chars it rules out, by `model`)
    entropy: float  # bits, of `probs`

    def top(self, count: int) -> list[tuple[int, float]]:
        """The `count` likeliest (char id, probability under `probs`)."""
        return [(int(i), float(self.probs[i])) for i in self.order[:count]]


class WeightBox:
    """The newest weights, handed from the training thread to generator threads.

    Publishing replaces a reference under a lock; snapshots are immutable
    NumPy copies, so a reader never sees half an update.
    """

    def __init__(self, weights: NetworkWeights | None = None):
        self._lock = threading.Lock()
        self._weights = weights

    def publish(self, weights: NetworkWeights) -> None:
        with self._lock:
            self._weights = weights

    def latest(self) -> NetworkWeights | None:
        with self._lock:
            return self._weights


class Generator:
    """Streams of generated text from one seed, all advanced as one batch."""

    def __init__(
        self,
        weights: NetworkWeights,
        vocab: Vocabulary,
        settings: list[SamplingSettings],
        *,
        seed_text: str = "",
        mode: str | None = None,
        rng_seed: int | None = None,
    ):
        if weights.vocab_size != len(vocab):
            raise CharlmError(f"The weights predict {weights.vocab_size} chars but the vocabulary has {len(vocab)}.")
        if not settings:
            raise CharlmError("Generation needs at least one stream.")
        self.vocab = vocab
        self.settings = list(settings)
        self.held = [False] * len(self.settings)  # a held stream waits: step() leaves it, draw() and write() move it
        self._plan = None  # batch_plan(settings); reset whenever the settings change
        self._one: OneStream | None = None  # the one-stream stepper, bound to the current state arrays
        self.rng = np.random.default_rng(rng_seed)
        self.network = Network(weights)
        self.mode = mode or weights.default_mode
        self._check_mode(self.mode)
        self.seed_report = None
        self.reseed(seed_text)

    @property
    def weights(self) -> NetworkWeights:
        return self.network.weights

    @staticmethod
    def _check_mode(mode: str) -> None:
        if mode not in MODES:
            raise CharlmError(f"Generation mode must be one of {', '.join(MODES)}, not {mode!r}.")

    # -- steering ------------------------------------------------------------

    def reseed(self, seed_text: str) -> None:
        """Restart every stream from `seed_text` (unknown chars are dropped and reported)."""
        report = self.vocab.clean_seed(seed_text)
        self.seed_report = report
        self.seed_ids = self.vocab.encode(report.text).astype(np.int64) if report.text else np.zeros(0, np.int64)
        self.histories = [list(self.seed_ids) for _ in self.settings]
        self._reset_state()

    def set_mode(self, mode: str) -> None:
        """Switch between stateful and window mode; takes effect on the next char."""
        self._check_mode(mode)
        if mode != self.mode:
            self.mode = mode
            self._reset_state()

    def set_settings(self, index: int, settings: SamplingSettings) -> None:
        """Change one stream's sampling; takes effect on the next char."""
        self.settings[index] = settings
        self._plan = None

    def add_stream(self, settings: SamplingSettings) -> None:
        """A new stream, starting from the current seed."""
        self.settings.append(settings)
        self.held.append(False)
        self._plan = None
        self.histories.append(list(self.seed_ids))
        if self.mode == "stateful":
            seed_state = self._warm([self.seed_ids])
            self.state = [
                (np.concatenate([h, sh]), np.concatenate([c, sc]))
                for (h, c), (sh, sc) in zip(self.state, seed_state[0])
            ]
            self.last_logits = np.concatenate([self.last_logits, seed_state[1]])

    def remove_stream(self, index: int) -> None:
        """Drop one stream (at least one must remain)."""
        if len(self.settings) <= 1:
            raise CharlmError("At least one stream must remain.")
        del self.settings[index]
        del self.held[index]
        del self.histories[index]
        self._plan = None
        if self.mode == "stateful":
            self.state = [(np.delete(h, index, axis=0), np.delete(c, index, axis=0)) for h, c in self.state]
            self.last_logits = np.delete(self.last_logits, index, axis=0)

    def set_weights(self, weights: NetworkWeights) -> None:
        """Use newer weights from the next char on (stateful streams re-read their recent context)."""
        if weights is self.network.weights:
            return
        if weights.vocab_size != len(self.vocab):
            raise CharlmError("New weights do not match the vocabulary.")
        self.network = Network(weights)
        self._reset_state()

    # -- stepping ------------------------------------------------------------

    def _context(self, history: list[int]) -> np.ndarray:
        return np.asarray(history[-self.weights.seq_len :], dtype=np.int64)

    def _warm(self, contexts: list[np.ndarray]):
        """State and last logits after reading each context from a zero state; empty contexts give uniform logits."""
        batch = len(contexts)
        state = self.network.zero_state(batch)
        logits = np.zeros((batch, self.weights.vocab_size), np.float32)
        lengths = {len(c) for c in contexts}
        if lengths == {0}:
            return state, logits
        if len(lengths) == 1:
            logits, state = self.network.run(np.stack(contexts), state)
            return state, logits
        # Different lengths: warm one at a time (only after re-seeding with new weights mid-stream).
        parts = [self._warm([c]) for c in contexts]
        state = [
            (np.concatenate([p[0][k][0] for p in parts]), np.concatenate([p[0][k][1] for p in parts]))
            for k in range(len(self.weights.lstm))
        ]
        return state, np.concatenate([p[1] for p in parts])

    def _reset_state(self) -> None:
        if self.mode == "stateful":
            self.state, self.last_logits = self._warm([self._context(h) for h in self.histories])

    def next_logits(self) -> np.ndarray:
        """Logits for every stream's next char, (streams, vocab): a copy, which the next step leaves alone."""
        return self._next_logits().copy()

    def _next_logits(self) -> np.ndarray:
        if self.mode == "stateful":
            return self.last_logits  # overwritten in place by the next step
        contexts = [self._context(h) for h in self.histories]
        return self._warm(contexts)[1]

    def hold(self, index: int, held: bool = True) -> None:
        """Hold one stream (step() leaves it where it is; draw() and write() still move it), or let it run."""
        self.held[index] = held

    def step(self) -> list[GeneratedChar]:
        """Advance every stream that is not held by one char."""
        if self._plan is None:
            self._plan = batch_plan(self.settings)
        inverse, special = self._plan
        if len(self.settings) == 1 and not special[0] and not self.held[0]:
            # One stream, temperature only (the common case when watching one stream): the same draw, in a
            # third of the NumPy calls; stateful, the step runs on 1-D views (OneStream).
            if self.mode == "stateful":
                one = self._one
                if one is None or one.state is not self.state or one.logits is not self.last_logits:
                    one = self._one = OneStream(self.network, self.state, self.last_logits)
                char_id, model_prob, entropy = sample_row(one.out, inverse[0, 0], self.rng.random())
                history = self.histories[0]
                history.append(char_id)
                if len(history) > 4 * self.network.weights.seq_len:  # only the last seq_len chars are ever read
                    del history[: -self.network.weights.seq_len]
                one.step(char_id)
                return [GeneratedChar(0, self.vocab.chars[char_id], model_prob, entropy)]
            char_id, model_prob, entropy = sample_row(self._next_logits()[0], inverse[0, 0], self.rng.random())
            return self._advance(None, np.array([char_id]), [model_prob], [entropy])
        uniforms = self.rng.random(len(self.settings))
        probs, entropies, model_log_probs = sample_distributions(self._next_logits(), self.settings, self._plan)
        chosen = pick_rows(probs, uniforms)
        model_probs = np.exp(model_log_probs[np.arange(len(chosen)), chosen])
        if not any(self.held):
            return self._advance(None, chosen, model_probs.tolist(), entropies.tolist())
        rows = np.flatnonzero(~np.array(self.held))
        if len(rows) == 0:
            return []
        return self._advance(rows, chosen[rows], model_probs[rows].tolist(), entropies[rows].tolist())

    def odds(self, index: int) -> Odds:
        """What stream `index` draws its next char from: its sampling distribution (settings applied), ranked."""
        logits = self.next_logits()[index]
        probs = distribution(logits, self.settings[index])
        model = np.exp(log_softmax(np.asarray(logits, np.float64)))
        # Likeliest first under the sampling distribution; chars it rules out follow, by the model's odds.
        order = np.lexsort((-model, -probs))
        return Odds(index, probs, model, order, entropy_bits(probs))

    def draw(self, index: int) -> GeneratedChar:
        """Advance one stream by one char drawn as step() would draw it (held or not)."""
        probs = distribution(self.next_logits()[index], self.settings[index])
        char_id = pick(probs, float(self.rng.random()))
        return self.write(index, char_id, probs)

    def write(self, index: int, char_id: int, probs: np.ndarray | None = None) -> GeneratedChar:
        """Advance one stream with `char_id` instead of a drawn char: steering. Its probability is the model's."""
        if not 0 <= char_id < len(self.vocab):
            raise CharlmError(f"There is no char with id {char_id} in a vocabulary of {len(self.vocab)}.")
        logits = np.asarray(self.next_logits()[index], np.float64)
        if probs is None:
            probs = distribution(logits, self.settings[index])
        model_prob = float(np.exp(log_softmax(logits)[char_id]))
        return self._advance(np.array([index]), np.array([char_id]), [model_prob], [entropy_bits(probs)])[0]

    def _advance(self, rows, chosen, model_probs, entropies) -> list[GeneratedChar]:
        """Append `chosen` to the streams in `rows` (None: every stream) and move their state on by it."""
        streams = range(len(self.settings)) if rows is None else rows.tolist()
        chars = self.vocab.chars
        seq_len = self.network.weights.seq_len
        out = []
        for index, char_id, model_prob, entropy in zip(streams, chosen.tolist(), model_probs, entropies):
            history = self.histories[index]
            history.append(char_id)
            if len(history) > 4 * seq_len:  # only the last seq_len chars are ever read
                del history[:-seq_len]
            out.append(GeneratedChar(index, chars[char_id], model_prob, entropy))
        if self.mode == "stateful":
            if rows is None:
                self.network.advance(chosen, self.state, self.last_logits)
            else:
                part = [(h[rows], c[rows]) for h, c in self.state]
                logits, part = self.network.step(chosen, part)
                for (h, c), (new_h, new_c) in zip(self.state, part):
                    h[rows], c[rows] = new_h, new_c
                self.last_logits[rows] = logits
        return out

    def stream(self) -> Iterator[GeneratedChar]:
        """Chars forever, one stream after another at each step; steer the generator between them."""
        while True:
            yield from self.step()

    def generate(self, length: int) -> list[str]:
        """`length` chars per stream, as strings."""
        texts = [[] for _ in self.settings]
        for _ in range(length):
            for char in self.step():
                texts[char.stream].append(char.char)
        return ["".join(t) for t in texts]
