"""How long a stop may wait for training to reach its checkpoint: as long as this run's own work takes.

A hang-up or SIGTERM asks training to stop at its next call boundary and
write a checkpoint. How long that takes depends on the model and the
machine: one TensorFlow call of a stacked LSTM(1024) on a busy CPU can take
many seconds, and the save of a large model more. A fixed wait abandons
that checkpoint; no wait at all lets a training call that never returns
keep the process forever. So the trainer reports what it is doing
(`Activity.on`) and how long each kind of work took, and whoever stops it
waits (`Activity.wait`) while the work in hand is within `factor` times
the longest of its kind in this run plus `slack` seconds; work of a kind
not yet timed (the first call, which also compiles; the first save) gets
`unmeasured` seconds. Each new piece of work starts a new allowance, and a
stopping trainer has only a few pieces left (the call in hand, perhaps an
epoch's end, the save), so the wait always ends.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

# The kinds of work whose allowance is measured (the trainer's names for the parts of its time).
CALLS = "training calls"
SAVES = "checkpoints"
# Before the trainer's first report: loading TensorFlow, the corpus and the model.
LOADING = "loading"
# Between two pieces of work: reporting progress, checking the events.
BETWEEN = "between"


@dataclass(frozen=True)
class Patience:
    """How far past this run's own measured times a stop keeps waiting."""

    factor: float = 3.0  # a call or save may take this many times the longest of its kind so far...
    slack: float = 30.0  # ...plus this many seconds (a neighbour taking the CPU, a slow disk for a moment)
    unmeasured: float = 300.0  # work of a kind not yet timed in this run: the first call compiles the model


class Activity:
    """What the training thread is doing, how long each kind of its work has taken, and whether it has ended.

    The training thread calls `on(kind)` around each piece of work and
    `finish()` when it returns; any other thread may call `wait()`,
    `allowance()` and `describe()`.
    """

    def __init__(self, patience: Patience = Patience()):
        self.patience = patience
        self.done = threading.Event()
        self._lock = threading.Lock()
        self._kind = LOADING
        self._since = time.monotonic()
        self._longest: dict[str, float] = {}

    @contextmanager
    def on(self, kind: str) -> Iterator[None]:
        """Mark a piece of work of `kind` under way; its duration counts towards that kind's allowance."""
        began = time.monotonic()
        with self._lock:
            outer = self._kind
            self._kind, self._since = kind, began
        try:
            yield
        finally:
            now = time.monotonic()
            with self._lock:
                self._longest[kind] = max(self._longest.get(kind, 0.0), now - began)
                # Back to what enclosed it (a save asked for while paused), with a fresh allowance.
                self._kind, self._since = (outer if outer != LOADING else BETWEEN), now

    def finish(self) -> None:
        """Training has returned (its last checkpoint written, or failed): nothing left to wait for."""
        self.done.set()

    def longest(self, kind: str) -> float | None:
        """The longest piece of work of `kind` so far in this run, in seconds (None if none has ended)."""
        with self._lock:
            return self._longest.get(kind)

    def allowance(self, kind: str) -> float:
        """Seconds a piece of work of `kind` may take before a stop stops waiting for it."""
        patience = self.patience
        if kind == BETWEEN:
            return patience.slack
        longest = self.longest(kind)
        if longest is None:
            return patience.unmeasured
        return patience.factor * longest + patience.slack

    def current(self) -> tuple[str, float]:
        """(the kind of work under way, seconds since it began)."""
        with self._lock:
            return self._kind, time.monotonic() - self._since

    def wait(self, poll: float = 0.25) -> bool:
        """Block until training has finished (True), or its work in hand has overrun its allowance (False)."""
        while not self.done.is_set():
            kind, spent = self.current()
            left = self.allowance(kind) - spent
            if left <= 0:
                return self.done.is_set()
            self.done.wait(min(poll, left))
        return True

    def describe(self) -> str:
        """Why a wait gave up, in one sentence: the work it gave up on, and what this run's work had taken."""
        kind, spent = self.current()
        measured = [
            f"longest {name} {seconds:.1f} s"
            for name, seconds in ((CALLS, self.longest(CALLS)), (SAVES, self.longest(SAVES)))
            if seconds is not None
        ]
        took = f" ({', '.join(measured)})" if measured else ""
        return (
            f"training did not reach its checkpoint: {kind} had run {spent:.0f} s, past its allowance of "
            f"{self.allowance(kind):.0f} s{took}"
        )
