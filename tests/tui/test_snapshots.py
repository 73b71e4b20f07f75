"""Snapshots of the main screen at 80x24 and 120x40, frozen so every run draws the same."""

from __future__ import annotations

from tests.tui.conftest import make_app, wait_for
from tests.tui.fakes import FakeBackend
from tui_charlm.tui.widgets.generation_pane import GenerationPane

TEXT = (
    "the old dog ran to the barn while rain fell over quiet fields of wheat near the river, "
    "and the children played each long summer evening. "
) * 3


async def freeze(pilot) -> None:
    """Wait for the run to load, stop generation, and put the same text in every pane."""
    app = pilot.app
    await wait_for(pilot, lambda: app.main.state == "training" and app.main.seed_pane.seed_text.startswith("seed"))
    # the fake backend reports one batch
    await wait_for(pilot, lambda: app.main.loss_plot.steps and app.main.loss_plot.steps[-1] == 205)
    await wait_for(pilot, lambda: not app.main.loss_plot.dirty)  # the plot redraws at most once a second
    app.workers.cancel_group(app, "generation")
    await pilot.pause(0.2)
    app.main.layout_version += 1  # text already in flight from the generator is now stale and ignored
    for index, pane in enumerate(app.query(GenerationPane)):
        pane.clear()
        pane.add([(char, 0.5) for char in TEXT[index * 7 :]])
    await pilot.pause()


def test_main_screen_80x24(snap_compare):
    assert snap_compare(
        make_app(FakeBackend(frozen=True, batches_per_epoch=20)), terminal_size=(80, 24), run_before=freeze
    )


def test_main_screen_120x40(snap_compare):
    assert snap_compare(
        make_app(FakeBackend(frozen=True, batches_per_epoch=20)), terminal_size=(120, 40), run_before=freeze
    )
