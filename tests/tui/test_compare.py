"""Comparing runs on the loss plot: o draws other runs' held-out curves with a legend, g switches steps and time."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from tests.conftest import CHARLM, TINY_FLAGS, cli_env, make_text
from tests.tui.conftest import make_app, wait_for
from tests.tui.fakes import FakeBackend
from tui_charlm.tui.screens.overlay import OverlayScreen


@pytest.fixture
def runs(tmp_path):
    """tmp_path/runs with two finished tiny runs (real training), and a folder for the fake run being watched."""
    root = tmp_path / "runs"
    corpus = tmp_path / "tiny.txt"
    corpus.write_text(make_text(5000))
    first = root / "first"
    trained = subprocess.run(
        [*CHARLM, "train", "--corpus", str(corpus), "--run-dir", str(first), *TINY_FLAGS, "--epochs", "2"],
        capture_output=True,
        text=True,
        env=cli_env(tmp_path),
    )
    assert trained.returncode == 0, trained.stderr
    shutil.copytree(first, root / "second")
    (root / "current").mkdir()
    return root


def saved_curve(run):
    latest = json.loads((run / "latest.json").read_text())["checkpoint"]
    state = json.loads((run / "checkpoints" / latest / "state.json").read_text())
    return state["history"]["epochs"]


async def test_o_draws_the_picked_runs_held_out_curves_with_their_names(runs):
    app = make_app(FakeBackend(run_dir=runs / "current"))
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.main.info is not None)
        await pilot.press("o")
        await wait_for(pilot, lambda: isinstance(app.screen, OverlayScreen))
        await pilot.press("space", "down", "space", "enter")
        await wait_for(pilot, lambda: len(app.main.loss_plot.others) == 2)
        plot = app.main.loss_plot
        assert sorted(c.name for c in plot.others) == ["first", "second"]
        epochs = saved_curve(runs / "first")
        first = next(c for c in plot.others if c.name == "first")
        assert first.steps == [e["step"] for e in epochs] and first.losses == [e["val_loss"] for e in epochs]
        assert first.seconds == [e["elapsed"] for e in epochs]
        title = str(app.main.query_one("#loss-box").border_title)
        assert "first" in title and "second" in title
        # o again shows them ticked; unticking one and Enter leaves the other.
        await pilot.press("o")
        await wait_for(pilot, lambda: isinstance(app.screen, OverlayScreen))
        assert len(app.screen.query_one("#overlay-runs").selected) == 2
        await pilot.press("space", "enter")
        await wait_for(pilot, lambda: len(app.main.loss_plot.others) == 1)


async def test_o_says_so_when_there_is_nothing_to_compare(tmp_path):
    app = make_app(FakeBackend(run_dir=tmp_path / "runs" / "alone"))
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.main.info is not None)
        await pilot.press("o")
        assert any("No other runs" in n.message for n in app._notifications)


async def test_g_puts_training_time_on_the_horizontal_axis():
    app = make_app(FakeBackend())
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: len(app.main.loss_plot.steps) > 30)
        plot = app.main.loss_plot
        assert plot.axis == "step"
        await pilot.press("g")
        await pilot.pause()
        assert plot.axis == "time" and "training time (s)" in str(plot.render())
        step, seconds = plot.clock[-1]
        assert plot.to_x([step]) == [pytest.approx(seconds)]
        assert plot.to_x([0]) == [0.0]
        await pilot.press("g")
        await pilot.pause()
        assert plot.axis == "step" and plot.to_x([step]) == [step] and "training time" not in str(plot.render())
