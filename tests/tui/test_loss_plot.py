"""The loss pane's data: the smoothed curve it draws, kept up to date as batches come and as a resume rewinds."""

from __future__ import annotations

import itertools

import numpy as np

from tui_charlm.tui.widgets.loss_plot import LossPlot, thin


def smooth(values: list[float], beta: float = 0.9) -> list[float]:
    """The whole curve smoothed at once: a bias-corrected exponential moving average (TensorBoard's smoothing)."""
    out, average = [], 0.0
    for n, value in enumerate(values, start=1):
        average = beta * average + (1 - beta) * value
        out.append(average / (1 - beta**n))
    return out


def test_the_smoothed_curve_kept_as_batches_come_and_go_equals_smoothing_the_whole_curve():
    rng = np.random.default_rng(7)
    plot = LossPlot()
    step = 0
    for size in (1, 5, 40, 3, 200):  # reports of any number of batches
        losses = (4.0 - 0.001 * np.arange(step, step + size) + rng.normal(0, 0.1, size)).tolist()
        plot.add_batches([(step + i + 1, loss) for i, loss in enumerate(losses)])
        step += size
        assert plot.smoothed.values == smooth(plot.losses)
    # A run resumed from step 100 trains from there again: the curve after it is forgotten, then grows anew.
    plot.rewind(100)
    assert plot.steps[-1] == 100 and plot.smoothed.values == smooth(plot.losses)
    plot.add_batches([(101, 2.0), (102, 1.9)])
    assert plot.smoothed.values == smooth(plot.losses)
    assert plot.smoothed.values[-1] != smooth(plot.losses[:-1])[-1]  # the newest batch moved the curve


def test_a_long_curve_is_thinned_evenly_to_its_limit_keeping_both_ends():
    steps = list(range(1, 10_001))
    values = [1.0 / s for s in steps]
    for limit in (1, 7, 320, 9_999, 10_000, 20_000):
        xs, ys = thin(steps, values, limit)
        assert len(xs) <= limit + 1 and (xs[0], xs[-1]) == (1, 10_000)
        assert all(values[x - 1] == y for x, y in zip(xs, ys))  # each point is the curve's own
        gaps = {b - a for a, b in itertools.pairwise(xs[:-1])}
        assert len(gaps) <= 1  # evenly spaced (but for the last point, kept whatever the stride)
    assert thin(steps, values, 10_000) == (steps, values)  # a curve within the limit is drawn whole
