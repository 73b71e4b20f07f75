"""The loss pane: smoothed training loss per batch and held-out loss per epoch, on one labelled plot.

Other runs' held-out curves can be drawn beside them, against step or training time."""

from __future__ import annotations

import math
import time

import numpy as np
from textual.reactive import reactive
from textual_plotext import PlotextPlot

from tui_charlm.core.checkpoints import History
from tui_charlm.core.runs import HeldoutCurve
from tui_charlm.core.units import LN2

# Points of the training curve drawn per terminal column of the pane, at most: two per column of braille dots (a
# terminal column holds two), more than the plot can show. Longer curves are thinned evenly. plotext builds the whole
# plot in Python on every redraw, in time that grows with the points (an 80-column pane: 600 points 5.5 ms, 300
# 3.8 ms; benchmarks/README.md, issue 26).
POINTS_PER_COLUMN = 4
# The width assumed before the pane has one (not yet laid out).
DEFAULT_COLUMNS = 80
# Seconds between redraws while data streams in: plotext rebuilds the whole plot in Python each time,
# and every millisecond the UI holds the interpreter is one the training loop may wait for.
REDRAW_INTERVAL = 1.0
# New data not yet drawn this long after the last redraw (no report came to draw it with) is drawn on its own.
STALE_SECONDS = 3.0


class Smoothed:
    """A bias-corrected exponential moving average (as TensorBoard's smoothing), kept up to date as values come.

    A run watched for hours reports tens of thousands of batches, and the
    plot is redrawn every second or two: smoothing the whole curve each time
    (25 ms for 100,000 points, on the thread that draws the screen) would
    grow with the run, so a new value costs one step, not the whole curve.
    """

    def __init__(self, beta: float = 0.9):
        self.beta = beta
        self.values: list[float] = []
        self._average = 0.0

    def extend(self, values) -> None:
        beta, out = self.beta, self.values
        for value in values:
            self._average = beta * self._average + (1 - beta) * value
            out.append(self._average / (1 - beta ** (len(out) + 1)))

    def reset(self, values) -> None:
        self.values, self._average = [], 0.0
        self.extend(values)


def thin(steps: list[int], values: list[float], limit: int) -> tuple[list[int], list[float]]:
    """At most `limit` + 1 evenly spaced points of a curve, its first and last among them."""
    stride = max(1, math.ceil(len(steps) / max(limit, 1)))
    xs, ys = steps[::stride], values[::stride]
    if xs and xs[-1] != steps[-1]:
        xs.append(steps[-1])
        ys.append(values[-1])
    return xs, ys


# Colours of other runs' held-out curves (o), in order; plotext and Textual markup both know these names.
OVERLAY_COLORS = ("magenta", "cyan", "yellow", "red", "blue", "white")


class LossPlot(PlotextPlot):
    """Training loss (smoothed, per batch) and held-out loss (per epoch) against optimizer step or training time.

    Other runs' held-out curves can be drawn beside this run's (`others`);
    against training time (`axis`), runs of different speeds compare fairly.
    """

    unit: reactive[str] = reactive("nats")
    axis: reactive[str] = reactive("step")  # 'step' or 'time'

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.steps: list[int] = []
        self.losses: list[float] = []
        self.val_steps: list[int] = []
        self.val_losses: list[float] = []
        self.smoothed = Smoothed()  # self.losses, smoothed
        # (step, training seconds) pairs known for this run: epoch ends and live reports; maps steps to time.
        self.clock: list[tuple[int, float]] = [(0, 0.0)]
        self.others: list[HeldoutCurve] = []
        self.dirty = False
        self.drawn_at = -math.inf  # time.monotonic() of the last redraw (never yet)

    LEGEND = "loss · ⣿ train (smoothed) · ● held-out (per epoch)"

    def on_mount(self) -> None:
        super().on_mount()
        self.replot()
        self.set_interval(REDRAW_INTERVAL, self._redraw_if_stale)

    def redraw_if_due(self, interval: float = REDRAW_INTERVAL) -> None:
        """Redraw with the new data if the last redraw is `interval` seconds old: called as reports arrive, so
        the plot is drawn in the frame that draws the report's status, not in one of its own."""
        if self.dirty and time.monotonic() - self.drawn_at >= interval:
            self.replot()

    def _redraw_if_stale(self) -> None:
        if self.dirty and time.monotonic() - self.drawn_at >= STALE_SECONDS:
            self.replot()

    def set_history(self, history: History) -> None:
        """Start from a saved curve (resumed runs)."""
        self.steps = [int(s) for s, _ in history.batches]
        self.losses = [float(v) for _, v in history.batches]
        self.smoothed.reset(self.losses)
        self.val_steps = [int(e["step"]) for e in history.epochs]
        self.val_losses = [float(e["val_loss"]) for e in history.epochs]
        self.clock += zip(self.val_steps, history.epoch_training_seconds())
        self.replot()

    def add_time(self, step: int, seconds: float) -> None:
        """This run had trained `seconds` at `step` (for the time axis)."""
        if step > self.clock[-1][0] and seconds >= self.clock[-1][1]:
            self.clock.append((step, seconds))

    def set_others(self, curves: list[HeldoutCurve]) -> None:
        self.others = curves
        self.replot()

    def watch_axis(self) -> None:
        self.replot()

    def to_x(self, steps: list[int]) -> list[float]:
        """Steps as the horizontal axis shows them: as they are, or as this run's training seconds."""
        if self.axis == "step":
            return list(steps)
        known_steps, known_seconds = (np.array(values, float) for values in zip(*self.clock))
        x = np.asarray(steps, float)
        # Beyond the last known point, extrapolate at the latest pace.
        pace = known_seconds[-1] / known_steps[-1] if known_steps[-1] else 0.0
        beyond = known_seconds[-1] + (x - known_steps[-1]) * pace
        return np.where(x <= known_steps[-1], np.interp(x, known_steps, known_seconds), beyond).tolist()

    def add_batches(self, points: list[tuple[int, float]]) -> None:
        for step, loss in points:
            self.steps.append(step)
            self.losses.append(loss)
        self.smoothed.extend(loss for _, loss in points)
        self.dirty = True

    def rewind(self, step: int) -> None:
        """Forget the points after `step`: a run resumed from there trains them again (a later line for a step
        replaces an earlier one, as the event log's reader has it)."""
        if any(s > step for s in self.steps) or any(s > step for s in self.val_steps):
            batches = [(s, v) for s, v in zip(self.steps, self.losses) if s <= step]
            epochs = [(s, v) for s, v in zip(self.val_steps, self.val_losses) if s <= step]
            self.steps, self.losses = [s for s, _ in batches], [v for _, v in batches]
            self.smoothed.reset(self.losses)
            self.val_steps, self.val_losses = [s for s, _ in epochs], [v for _, v in epochs]
            self.clock = [point for point in self.clock if point[0] <= step]
            self.dirty = True

    def add_epoch(self, step: int, val_loss: float) -> None:
        self.val_steps.append(step)
        self.val_losses.append(val_loss)
        self.replot()  # once an epoch, in the frame that shows its note

    def watch_unit(self) -> None:
        self.replot()

    def replot(self) -> None:
        """Redraw from the data (while training streams in, at most once per `redraw_if_due` interval)."""
        self.dirty = False
        self.drawn_at = time.monotonic()
        plt = self.plt
        plt.clear_figure()
        scale = 1.0 / LN2 if self.unit == "bits" else 1.0
        plt.xlabel("step" if self.axis == "step" else "training time (s)")
        plt.ylabel(f"{self.unit}/char")
        for color, curve in zip(OVERLAY_COLORS, self.others):
            xs = curve.steps if self.axis == "step" else curve.seconds
            ys = [v * scale for v in curve.losses]
            plt.plot(xs, ys, marker="dot", color=color)
            plt.scatter(xs, ys, marker="●", color=color)
        if not self.steps and not self.val_steps and not self.others:
            plt.title("waiting for the first batch")
            self.refresh()
            return
        if self.steps:
            xs, ys = thin(self.steps, self.smoothed.values, POINTS_PER_COLUMN * (self.size.width or DEFAULT_COLUMNS))
            xs, ys = self.to_x(xs), [v * scale for v in ys]
            # The legend is in the pane's title: inside the plot it would cover the data on small screens.
            plt.plot(xs, ys, marker="braille")
        if self.val_steps:
            plt.scatter(self.to_x(self.val_steps), [v * scale for v in self.val_losses], marker="●")
        self.refresh()
