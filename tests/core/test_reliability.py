"""Nothing lost: exact resume, failed saves, and names that must not leave their folders."""

from __future__ import annotations

import errno
import json

import numpy as np
import pytest

from tests.conftest import both_backends, make_text, tiny_config
from tui_charlm.core.checkpoints import RunDirectory
from tui_charlm.core.config import make_config
from tui_charlm.core.corpus import load_corpus
from tui_charlm.core.errors import CharlmError
from tui_charlm.core.events import BatchFinished, CheckpointSaved, EpochFinished, TrainingFailed
from tui_charlm.core.session import new_training, resume_training

# Same seed, same data order, one TensorFlow thread: the only differences left are float rounding in a
# reloaded optimizer state, far below this.
RESUME_TOLERANCE = 1e-5


@pytest.fixture
def corpus_path(tmp_path):
    path = tmp_path / "text.txt"
    path.write_text(make_text(4000))
    return path


@both_backends
def test_two_epochs_straight_equal_one_epoch_resumed_for_another(corpus_path, tmp_path):
    straight = new_training(
        tiny_config(corpus=str(corpus_path), epochs=2), run_dir=tmp_path / "straight", log=lambda _: None
    )
    events = []
    straight.fit(events.append)
    straight_loss = [e.val_loss for e in events if isinstance(e, EpochFinished)][-1]

    first = new_training(
        tiny_config(corpus=str(corpus_path), epochs=1), run_dir=tmp_path / "resumed", log=lambda _: None
    )
    first.fit()
    second = resume_training(tmp_path / "resumed", {"epochs": 2}, log=lambda _: None)
    events = []
    second.fit(events.append)
    resumed_loss = [e.val_loss for e in events if isinstance(e, EpochFinished)][-1]

    assert resumed_loss == pytest.approx(straight_loss, rel=RESUME_TOLERANCE)
    for a, b in zip(straight.model.get_weights(), second.model.get_weights()):
        np.testing.assert_allclose(a, b, rtol=RESUME_TOLERANCE, atol=RESUME_TOLERANCE)


@both_backends
def test_resume_from_the_middle_of_an_epoch_is_exact_too(corpus_path, tmp_path):
    straight = new_training(
        tiny_config(corpus=str(corpus_path), epochs=1), run_dir=tmp_path / "straight", log=lambda _: None
    )
    straight.fit()
    half = straight.train_windows.num_batches(0) // 2
    import threading

    stop = threading.Event()
    interrupted = new_training(
        tiny_config(corpus=str(corpus_path), epochs=1), run_dir=tmp_path / "half", log=lambda _: None
    )
    interrupted.fit(lambda e: stop.set() if getattr(e, "step", 0) >= half else None, stop_event=stop)
    assert RunDirectory.open(tmp_path / "half").latest().state.batch_in_epoch == half
    rest = resume_training(tmp_path / "half", log=lambda _: None)
    rest.fit()
    for a, b in zip(straight.model.get_weights(), rest.model.get_weights()):
        np.testing.assert_allclose(a, b, rtol=RESUME_TOLERANCE, atol=RESUME_TOLERANCE)


def test_a_failed_save_stops_training_and_keeps_the_last_good_checkpoint(corpus_path, tmp_path, monkeypatch):
    trainer = new_training(tiny_config(corpus=str(corpus_path), epochs=5), run_dir=tmp_path / "run", log=lambda _: None)
    real_save = trainer.model.save
    saves = []

    def save(path, *args, **kwargs):
        saves.append(path)
        if len(saves) >= 2:  # the disk fills after the first checkpoint
            with open(path, "wb") as handle:
                handle.write(b"partial")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(path, *args, **kwargs)

    monkeypatch.setattr(trainer.model, "save", save)
    events = []
    outcome = trainer.fit(events.append)
    assert isinstance(outcome, TrainingFailed)
    assert "Could not save a checkpoint" in outcome.message and "No space left on device" in outcome.message
    saved = [e for e in events if isinstance(e, CheckpointSaved)]
    assert len(saved) == 1 and outcome.checkpoint == saved[0].path
    run = RunDirectory.open(tmp_path / "run")
    model, checkpoint = run.load_model()
    assert model is not None and checkpoint.state.epoch == 1
    assert json.loads((tmp_path / "run" / "latest.json").read_text())["epoch"] == 1
    assert not [p for p in run.checkpoints_dir.iterdir() if p.name.startswith(".tmp-")]  # the partial save is gone


def test_the_same_process_may_reopen_a_run_it_is_training(corpus_path, tmp_path):
    trainer = new_training(tiny_config(corpus=str(corpus_path)), run_dir=tmp_path / "run", log=lambda _: None)
    trainer.fit()
    again = resume_training(tmp_path / "run", {"epochs": 2}, log=lambda _: None)  # not refused: same process
    assert again.state.epoch == 1


@pytest.mark.parametrize("name", ["../secret", "../../secret", "sub/../../secret", ".secret", "..", "./../secret"])
def test_a_corpus_name_cannot_reach_outside_the_corpora_folder(tmp_path, monkeypatch, name):
    folder = tmp_path / "work" / "corpora"
    folder.mkdir(parents=True)
    (folder / "fine.txt").write_text(make_text(500))
    (tmp_path / "work" / "secret.txt").write_text("not for you " * 50)  # one level above corpora/
    (tmp_path / "secret.txt").write_text("not for you " * 50)
    (folder / ".secret.txt").write_text("hidden " * 50)
    monkeypatch.setenv("CHARLM_CORPORA", str(folder))
    monkeypatch.chdir(tmp_path / "work" / "corpora")  # even from inside corpora/, a name is not a path
    assert load_corpus("fine", log=lambda _: None).source == "named"
    with pytest.raises(CharlmError):
        load_corpus(name, log=lambda _: None)


def test_a_path_is_a_path_even_when_it_climbs(tmp_path, monkeypatch):
    (tmp_path / "outside.txt").write_text(make_text(500))
    (tmp_path / "here").mkdir()
    monkeypatch.chdir(tmp_path / "here")
    corpus = load_corpus("../outside.txt", log=lambda _: None)
    assert corpus.source == "file" and corpus.path.resolve() == (tmp_path / "outside.txt").resolve()


def defaults_config(corpus_path, **overrides):
    """A tiny model trained as the defaults train: cooldown schedule, dropout, weight decay, several batches per
    call and the precision 'auto' settles on (bfloat16 on a CPU with bfloat16 hardware)."""
    defaults = make_config()
    return tiny_config(
        corpus=str(corpus_path),
        units=16,
        epochs=2,
        lr_schedule=defaults.lr_schedule,
        dropout=overrides.pop("dropout", defaults.dropout),
        # 'auto' (the default) turns dropout on a few seconds in, in a budgeted run of at least 15 epochs, such as
        # the default 600-s run on these CPUs; these two-epoch runs have it from their 2nd epoch.
        dropout_start=overrides.pop("dropout_start", 1),
        weight_decay=defaults.weight_decay,
        precision=defaults.precision,
        steps_per_execution=defaults.steps_per_execution,
        **overrides,
    )


def stop_when(stop, condition):
    return lambda event: stop.set() if condition(event) else None


# On JAX too, mid-epoch only (the harder case; the suite's time on a slow machine is kept within bounds).
@pytest.mark.parametrize("where", ["epoch end", pytest.param("mid-epoch", marks=both_backends)])
def test_resume_is_exact_under_the_default_schedule_dropout_and_precision(corpus_path, tmp_path, where):
    import threading

    straight = new_training(defaults_config(corpus_path), run_dir=tmp_path / "straight", log=lambda _: None)
    defaults = make_config()
    assert (defaults.lr_schedule, defaults.precision, defaults.steps_per_execution) == ("cooldown", "auto", 4)
    assert straight.model.get_layer("dropout_out").rate == defaults.dropout > 0
    assert straight.model.optimizer.weight_decay == defaults.weight_decay > 0
    straight.fit()

    stop = threading.Event()
    first = new_training(defaults_config(corpus_path), run_dir=tmp_path / "resumed", log=lambda _: None)
    per_epoch = first.train_windows.num_batches(0)
    if where == "epoch end":
        first.fit(stop_when(stop, lambda e: isinstance(e, EpochFinished)), stop_event=stop)
        assert RunDirectory.open(tmp_path / "resumed").latest().state.step == per_epoch
    else:  # stopped after a call in the middle of the second epoch, so the schedule is part-way down
        first.fit(stop_when(stop, lambda e: getattr(e, "step", 0) > per_epoch * 3 // 2), stop_event=stop)
        assert 0 < RunDirectory.open(tmp_path / "resumed").latest().state.batch_in_epoch < per_epoch
    second = resume_training(tmp_path / "resumed", log=lambda _: None)
    second.fit()

    assert second.state.step == straight.state.step == 2 * per_epoch
    # bfloat16 rounds each product to 8 bits of mantissa, but the same inputs round the same way: only a reloaded
    # optimizer state's float rounding remains, as in float32.
    for a, b in zip(straight.model.get_weights(), second.model.get_weights()):
        np.testing.assert_allclose(a, b, rtol=RESUME_TOLERANCE, atol=RESUME_TOLERANCE)


@pytest.mark.parametrize("where", ["before dropout starts", pytest.param("after it started", marks=both_backends)])
def test_late_dropout_starts_at_its_epoch_and_resumes_exactly_on_either_side(corpus_path, tmp_path, where):
    import threading

    notes = []
    straight = new_training(
        defaults_config(corpus_path, dropout_start=1), run_dir=tmp_path / "straight", log=notes.append
    )
    layer = straight.model.get_layer("dropout_out")
    rates = {}
    straight.fit(lambda e: rates.setdefault(e.epoch, set()).add(layer.rate) if isinstance(e, BatchFinished) else None)
    # The first epoch trains without dropout, the second with it; the user is told when it starts.
    assert rates == {0: {0.0}, 1: {make_config().dropout}}
    assert [n for n in notes if "Dropout" in n] == [
        f"Dropout {make_config().dropout:g} on from epoch 2 (--dropout-start)."
    ]
    # A checkpoint saved before the switch still holds a dropout layer that can turn on (rate 0 would have none).
    first_epoch = RunDirectory.open(tmp_path / "straight").checkpoints()[0]
    model_config = json.loads(__import__("zipfile").ZipFile(first_epoch / "model.keras").read("config.json"))
    (saved,) = [x for x in model_config["config"]["layers"] if x["config"]["name"] == "dropout_out"]
    assert saved["config"]["rate"] == make_config().dropout

    stop = threading.Event()
    first = new_training(defaults_config(corpus_path, dropout_start=1), run_dir=tmp_path / "resumed", log=print)
    per_epoch = first.train_windows.num_batches(0)
    if where == "before dropout starts":
        first.fit(stop_when(stop, lambda e: getattr(e, "step", 0) >= per_epoch // 2), stop_event=stop)
        assert first.state.epoch == 0
    else:
        first.fit(stop_when(stop, lambda e: getattr(e, "step", 0) > per_epoch * 3 // 2), stop_event=stop)
        assert first.state.epoch == 1
    second = resume_training(tmp_path / "resumed", log=lambda _: None)
    second.fit()
    assert second.state.step == straight.state.step == 2 * per_epoch
    for a, b in zip(straight.model.get_weights(), second.model.get_weights()):
        np.testing.assert_allclose(a, b, rtol=RESUME_TOLERANCE, atol=RESUME_TOLERANCE)


def test_auto_dropout_follows_how_many_epochs_the_budget_holds(corpus_path, tmp_path):
    from tui_charlm.core.config import AUTO_DROPOUT_LATE_EPOCHS, AUTO_DROPOUT_MIN_EPOCHS

    assert make_config().dropout_start == -1  # the default is auto
    notes = []
    trainer = new_training(
        defaults_config(corpus_path, dropout_start=-1, time_budget=600.0), run_dir=tmp_path / "run", log=notes.append
    )
    assert trainer.dropout_rate(0, 0) == 0.0  # until the run's pace is known, no dropout: how it is judged
    trainer.state.step = 30
    # A 600-s budget that holds the threshold's count of epochs is enough; dropout is on from the step judged at.
    assert trainer._judge_auto_dropout(600.0 / AUTO_DROPOUT_MIN_EPOCHS, 0.0, "a pace")
    assert [trainer.dropout_rate(0, step) for step in (29, 30, 31)] == [0.0, 0.5, 0.5]
    assert trainer.dropout_rate(40, 10_000) == 0.5
    assert notes[-1].startswith(
        f"Dropout 0.5 on from step 30: the 600-s budget holds about {AUTO_DROPOUT_MIN_EPOCHS} epochs at a pace"
    )
    # One fewer: none in the whole run, and the user is told why.
    assert not trainer._judge_auto_dropout(600.0 / (AUTO_DROPOUT_MIN_EPOCHS - 1), 0.0, "a pace")
    assert [trainer.dropout_rate(epoch, step) for epoch, step in ((0, 31), (5, 500), (40, 10_000))] == [0.0] * 3
    assert "No dropout in this run" in notes[-1] and f"about {AUTO_DROPOUT_MIN_EPOCHS - 1} epochs" in notes[-1]
    # The budget's first seconds go to the first call's warm-up (tracing, compiling), not to epochs: epochs that
    # fill 600 s just over the threshold's count of times fill 596 s fewer times.
    epoch = 600.0 / (AUTO_DROPOUT_MIN_EPOCHS + 0.02)
    assert trainer._judge_auto_dropout(epoch, 0.0, "a pace")
    assert not trainer._judge_auto_dropout(epoch, 4.0, "a pace")

    # A run saved before judgements were kept, resumed after its first epoch: it goes on as it was trained,
    # dropout from the 2nd epoch if the first epoch showed the budget holds enough (silently: it was said then).
    trainer.state.auto_dropout = {}
    trainer.state.history.epochs.append({"epoch": 1, "step": 10, "train_loss": 2.0, "val_loss": 2.0, "elapsed": 38.0})
    trainer.state.step, said = 25, len(notes)
    assert trainer._judge_from_the_first_epoch()
    assert trainer.state.auto_dropout["step"] == 10 and len(notes) == said

    unbudgeted = new_training(defaults_config(corpus_path, dropout_start=-1), run_dir=tmp_path / "free", log=print)
    rates = [unbudgeted.dropout_rate(epoch, epoch * 10) for epoch in range(AUTO_DROPOUT_LATE_EPOCHS + 2)]
    assert rates == [0.0] * AUTO_DROPOUT_LATE_EPOCHS + [0.5, 0.5]


def rates_by_step(trainer):
    """Train `trainer` through; the dropout rate each call trained with, by the step it ended at (a switch comes
    after the call's report)."""
    layer = trainer.model.get_layer("dropout_out")
    rates = {}
    trainer.fit(lambda e: rates.update({e.step: layer.rate}) if isinstance(e, BatchFinished) else None)
    return rates


@both_backends
def test_auto_dropout_in_a_budget_that_holds_many_epochs_starts_a_few_calls_in(corpus_path, tmp_path, monkeypatch):
    # Judged right after the first two calls (a machine's speed does not decide where: its pace only decides
    # whether, and no machine trains a tiny model's epoch in a 15th of a day).
    monkeypatch.setattr("tui_charlm.core.training.AUTO_DROPOUT_JUDGE_SECONDS", 0.0)
    notes = []
    trainer = new_training(
        defaults_config(corpus_path, dropout_start=-1, time_budget=86_400.0), run_dir=tmp_path / "run", log=notes.append
    )
    per_call, per_epoch = trainer.model.steps_per_execution, trainer.train_windows.num_batches(0)
    assert per_epoch > 3 * per_call
    rates = rates_by_step(trainer)
    on_from = 3 * per_call  # after the third call: the first two are the warm-up
    assert {rates[step] for step in rates if step <= on_from} == {0.0}
    assert {rates[step] for step in rates if step > on_from} == {0.5}
    assert any(note.startswith(f"Dropout 0.5 on from step {on_from}: the 86400-s budget holds") for note in notes)
    # The decision is kept with the run, so a resume trains the same.
    state = RunDirectory.open(tmp_path / "run").latest().state
    assert state.auto_dropout["step"] == on_from and state.auto_dropout["holds"] > 1000


def test_auto_dropout_judges_by_the_first_epoch_when_it_ends_before_the_judging_time(
    corpus_path, tmp_path, monkeypatch
):
    monkeypatch.setattr("tui_charlm.core.training.AUTO_DROPOUT_JUDGE_SECONDS", 1e9)
    notes = []
    trainer = new_training(
        defaults_config(corpus_path, dropout_start=-1, time_budget=86_400.0), run_dir=tmp_path / "run", log=notes.append
    )
    per_epoch = trainer.train_windows.num_batches(0)
    rates = rates_by_step(trainer)
    assert {rates[step] for step in rates if step <= per_epoch} == {0.0}
    assert {rates[step] for step in rates if step > per_epoch} == {0.5}
    assert any(
        f"on from step {per_epoch}" in note and "the pace of its calls after the first two" in note for note in notes
    )
    first = trainer.state.history.epochs[0]
    assert 0.0 <= first["warm_up"] < first["elapsed"]  # kept with the run


def test_a_first_epochs_slow_held_out_scoring_does_not_count_as_training_pace(corpus_path, tmp_path, monkeypatch):
    # A first epoch shorter than the judging time is judged at its end; its first held-out scoring compiles
    # (3 s of a 7-s first epoch on a GPU, whose later epochs took 0.9 s), which no later epoch pays again.
    # Here it takes longer than a 14th of the budget: counted as pace, it would turn dropout off.
    import threading
    import time

    from tui_charlm.core.config import AUTO_DROPOUT_MIN_EPOCHS
    from tui_charlm.core.training import Trainer

    monkeypatch.setattr("tui_charlm.core.training.AUTO_DROPOUT_JUDGE_SECONDS", 1e9)
    budget = 42.0
    scoring = Trainer.heldout_loss

    def slow_first_scoring(self):
        if not self.state.history.epochs:
            time.sleep(1.5 * budget / AUTO_DROPOUT_MIN_EPOCHS)
        return scoring(self)

    monkeypatch.setattr(Trainer, "heldout_loss", slow_first_scoring)
    notes = []
    trainer = new_training(
        defaults_config(corpus_path, dropout_start=-1, time_budget=budget), run_dir=tmp_path / "run", log=notes.append
    )
    per_epoch = trainer.train_windows.num_batches(0)
    stop = threading.Event()
    trainer.fit(stop_when(stop, lambda e: isinstance(e, EpochFinished)), stop_event=stop)
    assert trainer.state.history.epochs[0]["elapsed"] > budget / AUTO_DROPOUT_MIN_EPOCHS
    assert trainer.state.auto_dropout["step"] == per_epoch, notes
    assert trainer.state.auto_dropout["holds"] >= AUTO_DROPOUT_MIN_EPOCHS
    assert any(f"Dropout 0.5 on from step {per_epoch}" in note for note in notes)


def test_a_resume_after_the_auto_dropout_judgement_trains_as_a_run_trained_straight(corpus_path, tmp_path, monkeypatch):
    import threading

    from tui_charlm.core.checkpoints import TrainingState

    monkeypatch.setattr("tui_charlm.core.training.AUTO_DROPOUT_JUDGE_SECONDS", 0.0)
    config = defaults_config(corpus_path, dropout_start=-1, time_budget=86_400.0)  # the cooldown never begins
    straight = new_training(config, run_dir=tmp_path / "straight", log=lambda _: None)
    straight.fit()
    on_from = straight.state.auto_dropout["step"]

    stop = threading.Event()
    first = new_training(config, run_dir=tmp_path / "resumed", log=lambda _: None)
    first.fit(stop_when(stop, lambda e: getattr(e, "step", 0) > on_from), stop_event=stop)
    saved = RunDirectory.open(tmp_path / "resumed").latest().state
    assert saved.epoch == 0 and saved.step > on_from and saved.auto_dropout["step"] == on_from
    # The resumed run does not judge again (its own first calls would decide elsewhere): it keeps the decision.
    monkeypatch.setattr("tui_charlm.core.training.AUTO_DROPOUT_JUDGE_SECONDS", 1e9)
    second = resume_training(tmp_path / "resumed", log=lambda _: None)
    assert second.dropout_rate(0, saved.step) == 0.5
    second.fit()
    assert second.state.step == straight.state.step
    for a, b in zip(straight.model.get_weights(), second.model.get_weights()):
        np.testing.assert_allclose(a, b, rtol=RESUME_TOLERANCE, atol=RESUME_TOLERANCE)

    damaged = json.loads(saved.to_json())
    damaged["auto_dropout"] = {"holds": "many", "step": 3}
    with pytest.raises(ValueError, match="dropout decision"):
        TrainingState.from_json(json.dumps(damaged))


def test_late_dropout_trains_as_no_dropout_until_its_epoch_and_with_dropout_after(corpus_path, tmp_path):
    def weights_by_epoch(name, **overrides):
        trainer = new_training(defaults_config(corpus_path, **overrides), run_dir=tmp_path / name, log=print)
        weights = {}
        trainer.fit(
            lambda e: weights.update({e.epoch: trainer.model.get_weights()}) if isinstance(e, EpochFinished) else None
        )
        return weights

    never = weights_by_epoch("never", dropout_start=2)  # two epochs: its dropout never starts
    late = weights_by_epoch("late", dropout_start=1)
    for a, b in zip(late[1], never[1]):
        np.testing.assert_allclose(a, b, rtol=RESUME_TOLERANCE, atol=RESUME_TOLERANCE)
    assert any(not np.allclose(a, b, atol=1e-4) for a, b in zip(late[2], never[2]))


@both_backends
def test_a_time_budget_counts_the_whole_run_and_its_schedule_goes_on_after_a_resume(corpus_path, tmp_path):
    import threading

    from tui_charlm.core.config import COOLDOWN_START
    from tui_charlm.core.events import BatchFinished, TrainingFinished

    # Long enough that the first call (which compiles the model: seconds on a slow machine) is a small part of it.
    budget = 8.0
    config = tiny_config(corpus=str(corpus_path), epochs=100_000, lr_schedule="cooldown", time_budget=budget)
    first = new_training(config, run_dir=tmp_path / "run", log=lambda _: None)
    stop = threading.Event()
    # Stopped (as by Ctrl+C) once the cooldown has begun: past 80% of the budget.
    first.fit(
        stop_when(stop, lambda e: isinstance(e, BatchFinished) and e.elapsed > (COOLDOWN_START + 0.05) * budget),
        stop_event=stop,
    )
    stopped_at = RunDirectory.open(tmp_path / "run").latest().state.elapsed
    assert COOLDOWN_START * budget < stopped_at < budget

    second = resume_training(tmp_path / "run", log=lambda _: None)
    rates, events = [], []

    def report(event):
        events.append(event)
        if isinstance(event, BatchFinished):
            rates.append(float(second.model.optimizer.learning_rate.numpy()))

    outcome = second.fit(report)
    assert isinstance(outcome, TrainingFinished) and outcome.reason == "time budget"
    # The schedule goes on from where the run stopped: already cooling down, not back at the full rate.
    assert rates and rates[0] < config.learning_rate * 0.95
    # The session trained only what was left of the budget: its clock went on from the first session's, and it
    # stopped at the first call boundary past the budget (however long its calls took on this machine).
    elapsed = [event.elapsed for event in events if isinstance(event, BatchFinished)]
    assert stopped_at < elapsed[0] and all(seconds < budget for seconds in elapsed[:-1])
    assert second.state.elapsed >= budget
    assert RunDirectory.open(tmp_path / "run").latest().state.elapsed >= budget  # what a resume reads

    notes = []
    third = resume_training(tmp_path / "run", log=notes.append)
    steps = third.state.step
    assert third.fit().reason == "time budget" and third.state.step == steps  # nothing left to train
    assert any("--time-budget" in note for note in notes)


def test_a_budget_spent_during_an_epoch_end_is_saved_so_a_resume_trains_nothing_more(
    corpus_path, tmp_path, monkeypatch
):
    from tui_charlm.core import training

    # A budget no machine spends on the first epoch of a tiny model, whatever its speed; the epoch's end then
    # outlasts it (a big model's scoring and samples can): the trainer's clock jumps by the whole budget there.
    budget = 3600.0
    config = tiny_config(corpus=str(corpus_path), epochs=100_000, time_budget=budget)
    first = new_training(config, run_dir=tmp_path / "run", log=lambda _: None)
    write_samples = first.write_samples
    jump = [0.0]
    session = training._Clock.session
    monkeypatch.setattr(training._Clock, "session", lambda clock: session(clock) + jump[0])

    def slow_samples():
        jump[0] = budget
        return write_samples()

    first.write_samples = slow_samples
    assert first.fit().reason == "time budget" and first.state.epoch == 1
    saved = RunDirectory.open(tmp_path / "run").latest().state
    assert saved.step == first.state.step and saved.elapsed >= budget
    again = resume_training(tmp_path / "run", log=lambda _: None)
    assert again.fit().reason == "time budget" and again.state.step == saved.step
