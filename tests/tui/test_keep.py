"""Keeping what you see: w writes the streams to a file in the run folder, h shows the run's samples.txt."""

from __future__ import annotations

import re

from tests.tui.conftest import make_app, wait_for
from tests.tui.fakes import FakeBackend
from tui_charlm.tui.screens.samples import SamplesScreen


async def test_w_writes_every_stream_with_its_settings_the_step_and_the_seed(tmp_path):
    app = make_app(FakeBackend(run_dir=tmp_path))
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: all(len(p.chars) > 20 for p in app.main.panes()))
        await pilot.press("w")
        await wait_for(pilot, lambda: list(tmp_path.glob("streams-step-*.txt")))
        texts = [pane.text for pane in app.main.panes()]
        seed = app.main.seed_pane.seed_text
    (path,) = tmp_path.glob("streams-step-*.txt")
    assert re.fullmatch(r"streams-step-\d{8}-\d{8}-\d{6}\.txt", path.name)
    written = path.read_text()
    assert f"# run: {tmp_path}; weights of step " in written and "stateful generation" in written
    assert f"\n{seed}\n" in written
    for number, (temperature, text) in enumerate(zip(("0.2", "0.5", "1.0", "1.2"), texts), start=1):
        block = written.split(f"--- stream {number}: T={temperature} ---\n")[1]
        assert block.startswith(text[:20])
    assert any(str(path) in n.message for n in app._notifications)


async def test_h_shows_samples_txt_at_its_end_and_says_when_there_is_none(tmp_path):
    app = make_app(FakeBackend(run_dir=tmp_path))
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: app.main.info is not None)
        await pilot.press("h")
        assert any("No samples yet" in n.message for n in app._notifications)
        lines = [f"epoch {n}: sample number {n}" for n in range(1, 200)]
        (tmp_path / "samples.txt").write_text("\n".join(lines) + "\n")
        await pilot.press("h")
        await wait_for(pilot, lambda: isinstance(app.screen, SamplesScreen))
        await pilot.pause(0.2)
        screen = app.screen
        shown = str(screen.query_one("#samples-text").render())
        assert "epoch 1: sample number 1\n" in shown and "epoch 199: sample number 199" in shown
        scroll = screen.query_one("#samples-scroll")
        assert scroll.scroll_y == scroll.max_scroll_y > 0  # opened at the newest samples
        assert str(tmp_path / "samples.txt") in str(screen.query_one("#samples-path").render())
        await pilot.press("escape")
        assert app.screen is app.main and str(tmp_path) not in app.sub_title
