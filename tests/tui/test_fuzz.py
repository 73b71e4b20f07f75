"""Keyboard fuzz: a long random sequence of the app's keys while a tiny real model trains.

Keys go in through the app's driver, as a terminal's would. (Pilot.press
waits after every key until the process looks idle, which it never does
while TensorFlow trains in it: a second or more per key.)
"""

from __future__ import annotations

import random

import pytest
from textual import events
from textual.keys import REPLACED_KEYS, _get_unicode_name_from_key

from tests.tui.conftest import tiny_core_app, wait_for
from tui_charlm.core.checkpoints import RunDirectory
from tui_charlm.tui.widgets.generation_pane import GenerationPane

# Every key the app binds, the dialogs' keys, and some that mean nothing here.
KEYS = [
    "up",
    "down",
    "plus",
    "minus",
    "tab",
    "shift+tab",
    "space",
    "s",
    "r",
    "e",
    "a",
    "x",
    "t",
    "c",
    "b",
    "u",
    "question_mark",
    "f1",
    "escape",
    "enter",
    "ctrl+p",
    "backspace",
    "left",
    "right",
    "home",
    "end",
    "z",
    "1",
    "é",
    "ctrl+z",
    "pageup",
    "pagedown",
]


async def send_key(pilot, key: str) -> None:
    """Deliver one key event through the driver, as Pilot.press does, then let the app run briefly."""
    import unicodedata

    try:
        char = unicodedata.lookup(_get_unicode_name_from_key(REPLACED_KEYS.get(key, key)))
    except KeyError:
        char = key if len(key) == 1 else None
    event = events.Key(key, char)
    event.set_sender(pilot.app)
    pilot.app._driver.send_message(event)
    await pilot.pause(0.01)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1])
async def test_random_keys_while_training_break_nothing(tmp_path, seed):
    rng = random.Random(seed)
    run_dir = tmp_path / "run"
    app = tiny_core_app(tmp_path, rng_seed=seed, chars_per_second=40)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: app.main.state == "training")
        for _ in range(200):
            await send_key(pilot, rng.choice(KEYS))
            if rng.random() < 0.1:
                await pilot.pause(rng.uniform(0, 0.2))
        # Close whatever dialog is open; the app must still answer, and train.
        for _ in range(10):  # the palette may need two: one hides its list, one closes it
            if len(app.screen_stack) == 1:
                break
            await send_key(pilot, "escape")
            await pilot.pause(0.1)
        assert len(app.screen_stack) == 1
        if app.main.state == "paused":
            await pilot.press("space")
        await wait_for(pilot, lambda: app.main.state == "training")
        step = app.main.loss_plot.steps[-1] if app.main.loss_plot.steps else 0
        await wait_for(pilot, lambda: app.main.loss_plot.steps and app.main.loss_plot.steps[-1] > step)
        await pilot.press("c")
        await wait_for(pilot, lambda: any(len(p.chars) > 0 for p in app.query(GenerationPane)))
        await pilot.press("q")
        await wait_for(pilot, lambda: not app.is_running)
    model, checkpoint = RunDirectory.open(run_dir).load_model()
    assert model is not None and checkpoint.state.step >= step


@pytest.mark.slow
async def test_quitting_in_the_middle_of_random_keys_saves_and_exits(tmp_path):
    rng = random.Random(7)
    run_dir = tmp_path / "run"
    app = tiny_core_app(tmp_path, rng_seed=7, chars_per_second=40)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.main.state == "training")
        await wait_for(pilot, lambda: app.main.loss_plot.steps)
        for _ in range(60):
            await send_key(pilot, rng.choice(KEYS))
        await pilot.press("ctrl+c")  # quits from any screen, dialogs included
        await wait_for(pilot, lambda: not app.is_running)
    model, checkpoint = RunDirectory.open(run_dir).load_model()
    assert model is not None and checkpoint.state.step > 0
