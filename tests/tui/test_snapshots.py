"""Snapshots, frozen so every run draws the same: the main screen (80x24, 120x40), the inspector, the cell view."""

from __future__ import annotations

from tests.tui.conftest import make_app, wait_for
from tests.tui.fakes import VOCAB, FakeBackend, random_weights
from tui_charlm.core.generation import Generator
from tui_charlm.core.sampling import SamplingSettings
from tui_charlm.tui.messages import OddsReported
from tui_charlm.tui.screens.cells import CellScreen
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


async def freeze_with_odds(pilot) -> None:
    """The frozen screen with the inspector open on stream 2, its odds made from fixed weights and a fixed seed."""
    await freeze(pilot)
    app = pilot.app
    await pilot.press("tab", "p")
    app.main.inspecting = True
    generator = Generator(random_weights(), VOCAB, [SamplingSettings(0.5)], seed_text="the old dog ")
    odds = generator.odds(0)
    top = [(VOCAB.chars[i], p) for i, p in odds.top(10)]
    report = OddsReported(app.main.layout_version, 1, top, odds.entropy, "g", 0.25, True, "T=0.5")
    await pilot.pause()
    app.main.odds_pane.show(report)
    await pilot.pause()


def test_inspector_120x40(snap_compare):
    assert snap_compare(
        make_app(FakeBackend(frozen=True, batches_per_epoch=20)), terminal_size=(120, 40), run_before=freeze_with_odds
    )


async def open_cells(pilot) -> None:
    """The cell view over the fake's held-out text, on the best cell for quotes."""
    await freeze(pilot)
    app = pilot.app
    await pilot.press("v")
    await wait_for(pilot, lambda: isinstance(app.screen, CellScreen) and app.screen.recorded is not None)
    await pilot.pause()


def test_cell_view_120x40(snap_compare):
    assert snap_compare(
        make_app(FakeBackend(frozen=True, batches_per_epoch=20)), terminal_size=(120, 40), run_before=open_cells
    )


async def freeze_attached(pilot) -> None:
    """A viewer attached to a paused trainer (another process, as its run folder tells), its streams frozen."""
    app = pilot.app
    await wait_for(pilot, lambda: app.main.state == "paused" and app.main.loss_plot.steps[-1] == 205)
    await wait_for(pilot, lambda: app.main.seed_pane.seed_text.startswith("seed"))
    await wait_for(pilot, lambda: not app.main.loss_plot.dirty)
    app.workers.cancel_group(app, "generation")
    await pilot.pause(0.2)
    app.main.layout_version += 1
    for index, pane in enumerate(app.query(GenerationPane)):
        pane.clear()
        pane.add([(char, 0.5) for char in TEXT[index * 7 :]])
    await pilot.pause()


def test_attached_screen_120x40(snap_compare, tmp_path):
    from filelock import FileLock

    from tests.tui.fakes import FollowingBackend, write_trainer_files

    run = tmp_path / "run"
    write_trainer_files(run, paused=True)
    with FileLock(run / ".lock"):
        assert snap_compare(make_app(FollowingBackend(run)), terminal_size=(120, 40), run_before=freeze_attached)
