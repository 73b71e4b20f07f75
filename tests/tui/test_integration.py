"""The real app with the real core: a tiny model trains, is steered from the keyboard, saves and quits."""

from __future__ import annotations

import pytest

from tests.conftest import both_backends
from tests.tui.conftest import tiny_core_app, wait_for
from tui_charlm.core.checkpoints import RunDirectory
from tui_charlm.tui.widgets.generation_pane import GenerationPane


@pytest.mark.slow
@both_backends
async def test_real_app_trains_a_tiny_model_and_saves_on_quit(tmp_path):
    run_dir = tmp_path / "run"
    app = tiny_core_app(tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: app.main.state == "training")
        await wait_for(pilot, lambda: app.main.epoch >= 3)
        await wait_for(pilot, lambda: all(len(p.chars) > 10 for p in app.query(GenerationPane)))
        assert set(app.query(GenerationPane).first().text) <= set(app.main.info.vocab.chars)
        assert len(app.main.loss_plot.val_steps) >= 3
        await pilot.press("up")
        assert str(app.query(GenerationPane).first().border_title) == "T=0.3"
        await pilot.press("space")
        await wait_for(pilot, lambda: "paused at step" in app.main.note)
        await pilot.press("s")
        await wait_for(
            pilot, lambda: any("Checkpoint saved (requested)" in n.message for n in app._notifications), timeout=30
        )
        await pilot.press("q")
        await wait_for(pilot, lambda: not app.is_running)
    run = RunDirectory.open(run_dir)
    model, checkpoint = run.load_model()
    assert model is not None and checkpoint.state.epoch >= 3
    assert checkpoint.state.history.epochs[-1]["epoch"] == checkpoint.state.epoch
