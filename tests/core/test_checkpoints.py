"""Run directories: round trips, resume, and refusing what is not a run."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from tests.conftest import both_backends, make_text, tiny_config
from tui_charlm.core.checkpoints import RunDirectory
from tui_charlm.core.errors import CharlmError
from tui_charlm.core.events import BatchFinished
from tui_charlm.core.session import new_training, resume_training


@pytest.fixture
def trained(tmp_path):
    corpus = tmp_path / "text.txt"
    corpus.write_text(make_text(4000))
    trainer = new_training(tiny_config(corpus=str(corpus), epochs=2), run_dir=tmp_path / "run", log=lambda _: None)
    trainer.fit()
    return trainer


@both_backends
def test_checkpoint_round_trip_gives_the_same_predictions(trained):
    run = RunDirectory.open(trained.run.path)
    model, checkpoint = run.load_model()
    x = np.array([run.vocab.encode("the cat sat on")], dtype=np.int32)
    assert np.allclose(model.predict(x, verbose=0), trained.model.predict(x, verbose=0), atol=1e-6)
    assert run.config == trained.run.config and run.vocab == trained.run.vocab
    assert checkpoint.state.epoch == 2 and checkpoint.state.history.epochs[-1]["epoch"] == 2
    assert set(p.name for p in run.path.iterdir()) >= {
        "run.json",
        "config.json",
        "vocab.json",
        "latest.json",
        "checkpoints",
    }


@both_backends
def test_resume_continues_step_count_history_and_optimizer_state(trained):
    steps_before = trained.state.step
    optimizer_before = [v.numpy() for v in trained.model.optimizer.variables]
    resumed = resume_training(trained.run.path, {"epochs": 3}, log=lambda _: None)
    assert resumed.resumed and resumed.state.step == steps_before
    assert int(resumed.model.optimizer.iterations.numpy()) == steps_before
    optimizer_after = [v.numpy() for v in resumed.model.optimizer.variables]
    assert len(optimizer_after) == len(optimizer_before)
    assert all(np.allclose(a, b) for a, b in zip(optimizer_before, optimizer_after))
    events = []
    resumed.fit(events.append)
    batches = [e for e in events if isinstance(e, BatchFinished)]
    # the first report after resuming counts on from the saved step, by the batches that call ran
    assert batches[0].epoch == 2 and 1 <= batches[0].batch <= resumed.config.steps_per_execution
    assert batches[0].step == steps_before + batches[0].batch
    history = RunDirectory.open(trained.run.path).latest().state.history
    assert [e["epoch"] for e in history.epochs] == [1, 2, 3]
    assert history.batches[0][0] == 1 and history.batches[-1][0] == batches[-1].step


def test_resume_refuses_a_corpus_with_other_characters(trained, tmp_path):
    other = tmp_path / "other.txt"
    other.write_text("QQQ ZZZ XXX " * 500)
    with pytest.raises(CharlmError, match="does not match the vocabulary"):
        resume_training(trained.run.path, {"corpus": str(other)}, log=lambda _: None)


def test_resume_refuses_changing_the_model(trained):
    with pytest.raises(CharlmError, match="--units cannot change when resuming"):
        resume_training(trained.run.path, {"units": 99}, log=lambda _: None)


def test_foreign_and_missing_directories_are_refused(tmp_path):
    with pytest.raises(CharlmError, match="does not exist"):
        RunDirectory.open(tmp_path / "nope")
    (tmp_path / "foreign").mkdir()
    with pytest.raises(CharlmError, match="not a charlm run directory"):
        RunDirectory.open(tmp_path / "foreign")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "run.json").write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(CharlmError, match="another format"):
        RunDirectory.open(tmp_path / "other")
    (tmp_path / "garbled").mkdir()
    (tmp_path / "garbled" / "run.json").write_text("{{{")
    with pytest.raises(CharlmError, match="unreadable"):
        RunDirectory.open(tmp_path / "garbled")


def test_corrupt_newest_checkpoint_falls_back_to_the_previous(trained):
    run = RunDirectory.open(trained.run.path)
    newest, previous = run.checkpoints()[:2]
    (newest / "model.keras").write_bytes(b"not a zip file")
    model, checkpoint = run.load_model()
    assert checkpoint.path == previous and model is not None


def test_all_checkpoints_corrupt_is_a_clear_error(trained):
    run = RunDirectory.open(trained.run.path)
    for folder in run.checkpoints():
        (folder / "model.keras").write_bytes(b"garbage")
    with pytest.raises(CharlmError, match="could be loaded"):
        run.load_model()


def test_interrupted_save_leftovers_are_ignored_and_cleaned(trained):
    run = RunDirectory.open(trained.run.path)
    newest = run.latest()
    # A save killed before its rename: a full copy of the newest checkpoint claiming a later step, which
    # latest.json even names. Loading must not take it (it may be half-written); the next save removes it.
    leftover = run.checkpoints_dir / ".tmp-step-99999999-12345"
    shutil.copytree(newest.path, leftover)
    state = json.loads((leftover / "state.json").read_text())
    (leftover / "state.json").write_text(json.dumps({**state, "step": 99999999}))
    (run.path / "latest.json").write_text(json.dumps({"checkpoint": leftover.name, "step": 99999999}))
    assert run.latest().path == newest.path
    resumed = resume_training(run.path, {"epochs": 3}, log=lambda _: None)
    assert resumed.state.step == newest.state.step
    resumed.fit()
    assert not leftover.exists()


def test_saves_keep_the_three_newest_checkpoints(trained):
    run = RunDirectory.open(trained.run.path)
    resumed = resume_training(run.path, {"epochs": 6}, log=lambda _: None)
    resumed.fit()
    steps = [int(p.name.split("-")[1]) for p in run.checkpoints()]
    # six epochs were saved (two, then four more); the newest three remain, newest first
    assert len(steps) == 3 and steps == sorted(steps, reverse=True) and steps[0] == resumed.state.step
    epochs = sorted(json.loads((p / "state.json").read_text())["epoch"] for p in run.checkpoints())
    assert epochs == [4, 5, 6]


def test_a_checkpoint_moved_aside_for_a_resave_is_put_back_or_dropped(trained):
    run = RunDirectory.open(trained.run.path)
    newest = run.latest()
    # The process died between moving the old copy of a step aside and putting the new one in place:
    # the moved copy is the only one of that step, and the next save puts it back.
    orphan = run.checkpoints_dir / f".old-{newest.path.name}-12345"
    newest.path.rename(orphan)
    # And one whose replacement did land: superseded, removed.
    older = run.checkpoints()[0]
    superseded = run.checkpoints_dir / f".old-{older.name}-12346"
    shutil.copytree(older, superseded)
    resumed = resume_training(run.path, {"epochs": 3}, log=lambda _: None)
    resumed.fit()
    assert newest.path.is_dir() and (newest.path / "model.keras").is_file()
    assert not orphan.exists() and not superseded.exists()


def test_resume_of_a_run_killed_before_its_first_checkpoint_starts_again(trained):
    for folder in RunDirectory.open(trained.run.path).checkpoints():
        shutil.rmtree(folder)
    (trained.run.path / "latest.json").unlink()
    messages = []
    resumed = resume_training(trained.run.path, log=messages.append)
    assert resumed.state.step == 0 and "no checkpoint yet" in messages[0]


def test_creating_over_an_existing_run_is_refused(trained):
    with pytest.raises(CharlmError, match="already holds a run"):
        RunDirectory.create(trained.run.path, trained.config, trained.run.vocab, {})


def test_a_run_with_its_budget_spent_or_its_epochs_done_is_said_to_have_nothing_left_to_train():
    from tui_charlm.core.checkpoints import TrainingState
    from tui_charlm.core.session import nothing_to_train

    budgeted, counted = tiny_config(time_budget=60.0, epochs=50), tiny_config(epochs=3)
    assert nothing_to_train(budgeted, TrainingState(epoch=4, elapsed=59.0)) is None
    assert "all of its --time-budget of 60 s" in nothing_to_train(budgeted, TrainingState(epoch=4, elapsed=60.2))
    assert nothing_to_train(counted, TrainingState(epoch=2, elapsed=999.0)) is None
    assert "all of its 3 epochs" in nothing_to_train(counted, TrainingState(epoch=3))
