"""The real app on the real core, for what goes wrong and for the other ways in: a tiny model each time.

A training failure (the loss becomes NaN; the disk fills up), `--resume` and
`--load RUN --no-train`, each seen on the screen a user looks at.
"""

from __future__ import annotations

import os
import re
import resource
import signal
import sys

import pytest

from tests.conftest import PATIENCE, TINY_FLAGS, cli_env, make_text, tiny_config
from tests.ptys import on_pty, screen_text, shows, wait_for_exit
from tests.tui.conftest import tiny_core_app, wait_for
from tests.tui.test_app import status_text
from tui_charlm.core.checkpoints import RunDirectory
from tui_charlm.core.runs import lock_holder, summarise
from tui_charlm.core.session import new_training
from tui_charlm.tui.widgets.generation_pane import GenerationPane
from tui_charlm.tui.widgets.loss_plot import LossPlot

pytestmark = pytest.mark.slow


def notifications(app) -> str:
    return " ".join(str(n.message) for n in app._notifications)


@pytest.fixture
def trained_run(tmp_path):
    """A tiny run trained for two epochs by the core, as `charlm train` would leave it."""
    corpus = tmp_path / "tiny.txt"
    corpus.write_text(make_text(5000))
    trainer = new_training(tiny_config(corpus=str(corpus), epochs=2), run_dir=tmp_path / "trained", log=lambda _: None)
    trainer.fit()
    return trainer.run.path, trainer.state.step


async def test_a_loss_that_becomes_nan_is_shown_and_generation_goes_on(tmp_path):
    # A learning rate no model survives: the first update sends the weights past float32's range.
    app = tiny_core_app(tmp_path, overrides=dict(learning_rate=1e38, clipnorm=0.0))
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.main.state == "failed")
        assert "FAILED" in status_text(app)
        # (nan or inf, depending on which overflows first); App.notify posts a message: it lands a moment later
        await wait_for(pilot, lambda: re.search(r"The loss became (nan|inf)", notifications(app)))
        assert re.search(r"The loss became (nan|inf)", notifications(app)) and "--learning-rate" in notifications(app)
        chars = [len(p.chars) for p in app.query(GenerationPane)]  # streams go on from the last good weights
        await wait_for(pilot, lambda: [len(p.chars) for p in app.query(GenerationPane)] > chars)
        await pilot.press("q")
        await wait_for(pilot, lambda: not app.is_running)
    # the bad weights were never saved: the run has no checkpoint at all
    assert RunDirectory.open(tmp_path / "run").latest() is None


async def test_resume_continues_the_run_where_it_stopped(trained_run):
    run_dir, step = trained_run
    app = tiny_core_app(run_dir.parent, resume=run_dir, overrides=dict(epochs=3))
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.main.state in ("training", "finished"))
        # the curve so far is drawn, and training goes on from the saved step to the third epoch
        assert len(app.query_one(LossPlot).val_steps) >= 2 and app.main.info.step == step and app.main.info.epoch == 2
        await wait_for(pilot, lambda: app.main.state == "finished")
        assert "finished" in status_text(app).lower() and "epoch 3" in app.main.note
        # The app stays open to generate, but lets the run go: other terminals see it finished, not training.
        assert lock_holder(run_dir) is None and summarise(run_dir).status == "finished"
        await pilot.press("q")
        await wait_for(pilot, lambda: not app.is_running)
    latest = RunDirectory.open(run_dir).latest()
    assert latest.state.epoch == 3 and latest.state.step > step


async def test_load_no_train_generates_from_the_run_and_trains_nothing(trained_run):
    run_dir, step = trained_run
    app = tiny_core_app(run_dir.parent, load=run_dir, train=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.main.state == "generating")
        await wait_for(pilot, lambda: all(len(p.chars) > 10 for p in app.query(GenerationPane)))
        assert set(app.query(GenerationPane).first().text) <= set(app.main.info.vocab.chars)
        assert "GENERATING" in status_text(app) and "generation only" in status_text(app)
        await pilot.press("space")  # nothing to pause (greyed in the footer): it keeps generating
        await pilot.press("q")
        await wait_for(pilot, lambda: not app.is_running)
    assert RunDirectory.open(run_dir).latest().state.step == step  # the run is untouched


def _small_files() -> None:  # runs in the child: writes beyond 40 KB fail with EFBIG instead of killing it
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (40_000, 40_000))


@pytest.mark.skipif(sys.platform == "win32", reason="no ptys or file-size limits")
def test_a_checkpoint_that_cannot_be_written_is_shown_and_quits_with_status_1(tmp_path):
    # The disk "fills" at 40 KB a file: the run's small files are written, its first checkpoint
    # (a model.keras of about 60 KB) fails, as it would on a full disk, and the app says so.
    corpus = tmp_path / "tiny.txt"
    corpus.write_text(make_text(5000))
    command = [
        sys.executable,
        "-m",
        "tui_charlm.tui.main",
        "--corpus",
        str(corpus),
        "--run-dir",
        str(tmp_path / "run"),
        *TINY_FLAGS,
        "--units",  # wider than the tiny model: its first checkpoint must outgrow the 40 KB limit
        "48",
        "--epochs",
        "5",
        "--checkpoint-every",
        "0",
    ]
    with on_pty(command, cli_env(tmp_path), columns=120, rows=40, preexec=_small_files) as (process, state, output):
        assert shows(state, "Could not save", output, timeout=PATIENCE), screen_text(state, output)
        assert shows(state, "FAILED", output, timeout=PATIENCE), screen_text(state, output)
        os.write(state["master"], b"q")
        assert wait_for_exit(process, state["master"], output, timeout=PATIENCE)
    text = output.decode(errors="replace")
    assert process.returncode == 1 and "Traceback" not in text
    assert "charlm-tui: Could not save a checkpoint" in text and "File too large" in text


async def test_attach_to_a_run_from_before_the_event_log_shows_its_checkpoint(trained_run):
    # A run that nobody trains, with neither events.jsonl nor weights.npz (made before they existed).
    from tui_charlm.tui.app import CharLMApp
    from tui_charlm.tui.attach import AttachBackend

    path, steps = trained_run
    RunDirectory.open(path).release_training_lock()  # the fixture trained it in this process, which still held it
    (path / "events.jsonl").unlink()
    (path / "weights.npz").unlink()
    app = CharLMApp(AttachBackend(path), rng_seed=0, chars_per_second=100)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.main.state == "generating")
        # the notice is posted from the worker thread: it lands in the app's queue, maybe after the state
        await wait_for(pilot, lambda: "Nothing is training" in notifications(app))
        assert app.main.loss_plot.steps[-1] == steps  # the curve, from the checkpoint
        await wait_for(pilot, lambda: all(p.chars for p in app.query(GenerationPane)))
        await pilot.press("q")
        await wait_for(pilot, lambda: not app.is_running)
