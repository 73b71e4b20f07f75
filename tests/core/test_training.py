"""The trainer with a real (tiny) Keras model: events, steering between batches, failures."""

from __future__ import annotations

import itertools
import math
import threading

import numpy as np
import pytest

from tests.conftest import PATIENCE, both_backends, make_text, tiny_config
from tui_charlm.core.checkpoints import RunDirectory
from tui_charlm.core.events import (
    BatchFinished,
    CheckpointSaved,
    EpochFinished,
    SamplesWritten,
    TrainingFailed,
    TrainingFinished,
    TrainingStarted,
)
from tui_charlm.core.session import new_training


@pytest.fixture
def corpus_path(tmp_path):
    path = tmp_path / "text.txt"
    path.write_text(make_text(4000))
    return path


def trainer_for(corpus_path, tmp_path, **overrides):
    config = tiny_config(corpus=str(corpus_path), **overrides)
    return new_training(config, run_dir=tmp_path / "run", log=lambda _: None)


@both_backends
def test_training_reports_every_batch_and_epoch_and_learns(corpus_path, tmp_path):
    trainer = trainer_for(corpus_path, tmp_path, epochs=3, learning_rate=0.03, units=16)
    events = []
    outcome = trainer.fit(events.append)
    kinds = [type(e) for e in events]
    assert kinds[0] is TrainingStarted and kinds[-1] is TrainingFinished
    assert outcome.reason == "completed" and outcome.epoch == 3
    batches = [e for e in events if isinstance(e, BatchFinished)]
    per_epoch = trainer.train_windows.num_batches(0)
    assert len(batches) == 3 * per_epoch
    assert [b.step for b in batches] == list(range(1, 3 * per_epoch + 1))
    assert all(b.chars_per_second > 0 and math.isfinite(b.loss) for b in batches)
    epochs = [e for e in events if isinstance(e, EpochFinished)]
    assert [e.epoch for e in epochs] == [1, 2, 3]
    assert epochs[-1].val_loss < epochs[0].val_loss < math.log(len(trainer.run.vocab)) + 0.1
    assert epochs[0].val_bits == pytest.approx(epochs[0].val_loss / math.log(2))
    saved = [e for e in events if isinstance(e, CheckpointSaved)]
    assert [s.reason for s in saved] == ["epoch"] * 3
    samples = [e for e in events if isinstance(e, SamplesWritten)]
    assert [s.epoch for s in samples] == [1, 2, 3]
    assert all(len(text) == 200 and set(text) <= set(trainer.run.vocab.chars) for text in samples[-1].samples.values())
    log = (trainer.run.path / "samples.txt").read_text()
    assert log.count("=== epoch") == 3 and "--- T=0.5" in log
    assert RunDirectory.open(trainer.run.path).latest().state.step == 3 * per_epoch


def test_batch_loss_is_that_batchs_own_loss(corpus_path, tmp_path):
    trainer = trainer_for(corpus_path, tmp_path)
    events = []
    trainer.fit(events.append)
    losses = [e.loss for e in events if isinstance(e, BatchFinished)]
    assert len(set(np.round(losses, 6))) == len(losses)  # not a running mean repeated
    epoch = next(e for e in events if isinstance(e, EpochFinished))
    assert epoch.train_loss == pytest.approx(np.mean(losses), rel=1e-6)


@both_backends
def test_stop_event_stops_at_the_next_batch_and_checkpoints(corpus_path, tmp_path):
    trainer = trainer_for(corpus_path, tmp_path, epochs=50)
    stop = threading.Event()
    events = []

    def report(event):
        events.append(event)
        if isinstance(event, BatchFinished) and event.step == 3:
            stop.set()

    outcome = trainer.fit(report, stop_event=stop)
    assert isinstance(outcome, TrainingFinished) and outcome.reason == "stopped" and outcome.step == 3
    assert [e.step for e in events if isinstance(e, BatchFinished)][-1] == 3
    latest = RunDirectory.open(trainer.run.path).latest()
    assert latest.state.step == 3 and latest.state.batch_in_epoch == 3


@both_backends
def test_pause_blocks_between_batches_and_save_now_works_while_paused(corpus_path, tmp_path):
    trainer = trainer_for(corpus_path, tmp_path, epochs=50)
    stop, pause, save = threading.Event(), threading.Event(), threading.Event()
    events = []
    lock = threading.Lock()

    def report(event):
        with lock:
            events.append(event)
        if isinstance(event, BatchFinished) and event.step == 2:
            pause.set()

    thread = threading.Thread(
        target=trainer.fit, args=(report,), kwargs=dict(stop_event=stop, pause_event=pause, save_event=save)
    )
    thread.start()
    try:
        for _ in range(200):
            if any(isinstance(e, BatchFinished) and e.step == 2 for e in events):
                break
            threading.Event().wait(0.05)
        threading.Event().wait(0.5)
        with lock:
            steps_while_paused = [e.step for e in events if isinstance(e, BatchFinished)]
        assert steps_while_paused == [1, 2]
        save.set()
        for _ in range(100):
            if any(isinstance(e, CheckpointSaved) for e in events):
                break
            threading.Event().wait(0.05)
        assert any(isinstance(e, CheckpointSaved) and e.reason == "requested" and e.step == 2 for e in events)
        pause.clear()
        for _ in range(200):
            if any(isinstance(e, BatchFinished) and e.step >= 4 for e in events):
                break
            threading.Event().wait(0.05)
    finally:
        stop.set()
        pause.clear()
        thread.join(timeout=PATIENCE)
    assert not thread.is_alive()
    assert any(isinstance(e, BatchFinished) and e.step >= 4 for e in events)


def test_time_budget_stops_training(corpus_path, tmp_path):
    trainer = trainer_for(corpus_path, tmp_path, epochs=10_000, time_budget=2.0)
    outcome = trainer.fit()
    assert outcome.reason == "time budget"
    assert RunDirectory.open(trainer.run.path).latest().state.step == outcome.step


def test_nan_loss_stops_with_a_message_and_keeps_the_last_good_checkpoint(corpus_path, tmp_path):
    trainer = trainer_for(corpus_path, tmp_path, epochs=5)
    events = []

    def report(event):
        events.append(event)
        if isinstance(event, CheckpointSaved):  # poison the weights after the first good save
            kernel = trainer.model.get_layer("logits").kernel
            kernel.assign(np.full(kernel.shape, np.nan, dtype="float32"))

    outcome = trainer.fit(report)
    assert isinstance(outcome, TrainingFailed)
    assert "nan" in outcome.message.lower() and "\n" not in outcome.message
    good = [e for e in events if isinstance(e, CheckpointSaved)]
    assert len(good) == 1 and outcome.checkpoint == good[0].path
    assert RunDirectory.open(trainer.run.path).latest().path == good[0].path


def test_bad_corpus_creates_no_run_directory(tmp_path):
    from tui_charlm.core.errors import CharlmError

    short = tmp_path / "short.txt"
    short.write_text("too short")
    with pytest.raises(CharlmError, match="too few"):
        new_training(tiny_config(corpus=str(short)), run_dir=tmp_path / "run", log=lambda _: None)
    assert not (tmp_path / "run").exists()


def test_generator_thread_streams_while_training_and_picks_up_snapshots(corpus_path, tmp_path):
    from tui_charlm.core.generation import Generator, WeightBox
    from tui_charlm.core.sampling import SamplingSettings

    trainer = trainer_for(corpus_path, tmp_path, epochs=4)
    box = WeightBox()
    training_done = threading.Event()
    seen_versions: list[int] = []
    produced_during_training = [0]
    text: list[str] = []
    caught_up = threading.Condition()

    def generate():
        while box.latest() is None:
            threading.Event().wait(0.01)
        generator = Generator(
            box.latest(), trainer.run.vocab, [SamplingSettings(t) for t in (0.2, 1.0)], seed_text="the cat ", rng_seed=0
        )
        while not training_done.is_set():
            latest = box.latest()
            generator.set_weights(latest)
            for char in generator.step():
                text.append(char.char)
            produced_during_training[0] += 1
            with caught_up:
                if not seen_versions or seen_versions[-1] != latest.version:
                    seen_versions.append(latest.version)
                caught_up.notify_all()

    def report(event):
        # How the two threads interleave is up to the machine's scheduler: after each batch, training waits
        # until the generator has drawn from the newest snapshot, so what is checked is what happened.
        if isinstance(event, BatchFinished):
            with caught_up:
                assert caught_up.wait_for(lambda: seen_versions and seen_versions[-1] == box.latest().version, PATIENCE)

    thread = threading.Thread(target=generate)
    thread.start()
    outcome = trainer.fit(report, weight_box=box, snapshot_every=5)
    training_done.set()
    thread.join(timeout=PATIENCE)
    assert outcome.reason == "completed"
    assert produced_during_training[0] >= len(seen_versions) >= outcome.step // 5  # a snapshot every 5 batches
    assert seen_versions == sorted(seen_versions) and seen_versions[-1] >= outcome.step - 5
    assert set(text) <= set(trainer.run.vocab.chars)


@both_backends
def test_several_batches_per_tensorflow_call_count_every_batch_and_resume_between_calls(corpus_path, tmp_path):
    from tui_charlm.core.session import resume_training

    trainer = trainer_for(corpus_path, tmp_path, epochs=2, steps_per_execution=3)
    per_epoch = trainer.train_windows.num_batches(0)
    assert per_epoch % 3  # so each epoch ends with a shorter call
    stop = threading.Event()
    events = []

    def report(event):
        events.append(event)
        if isinstance(event, BatchFinished) and event.epoch == 1 and event.batch >= 3:
            stop.set()

    trainer.fit(report, stop_event=stop)  # epoch 1 in full, then stop 3 batches into epoch 2
    reports = [e for e in events if isinstance(e, BatchFinished)]
    first_epoch = [e for e in reports if e.epoch == 0]
    ran = np.diff([0] + [e.batch for e in first_epoch])
    assert list(ran) == [3] * (per_epoch // 3) + [per_epoch % 3]
    assert [e.step for e in first_epoch] == [e.batch for e in first_epoch]
    epoch = next(e for e in events if isinstance(e, EpochFinished))
    weighted = sum(n * e.loss for n, e in zip(ran, first_epoch)) / per_epoch
    assert epoch.train_loss == pytest.approx(weighted, rel=1e-5)
    latest = RunDirectory.open(trainer.run.path).latest().state
    assert latest.step == per_epoch + 3 and latest.batch_in_epoch == 3

    # Resume with two batches per call: it starts at batch 3 of epoch 2 and ends the epoch on the same count.
    resumed = resume_training(trainer.run.path, {"steps_per_execution": 2}, log=lambda _: None)
    events = []
    resumed.fit(events.append)
    reports = [e for e in events if isinstance(e, BatchFinished)]
    assert reports[0].step == per_epoch + 3 + reports[0].batch - 3 and reports[0].batch in (4, 5)
    assert reports[-1].batch == per_epoch and reports[-1].step == 2 * per_epoch
    assert RunDirectory.open(trainer.run.path).latest().state.step == 2 * per_epoch


def rates_while_training(trainer) -> list[float]:
    """Train to the end; the learning rate each batch ran at."""
    rates = []

    def report(event):
        if isinstance(event, BatchFinished):
            rates.append(float(trainer.model.optimizer.learning_rate.numpy()))

    trainer.fit(report)
    return rates


def test_cosine_schedule_decays_the_learning_rate_over_the_epochs(corpus_path, tmp_path):
    from tui_charlm.core.config import LR_FLOOR

    trainer = trainer_for(corpus_path, tmp_path, epochs=2, lr_schedule="cosine", learning_rate=0.01)
    rates = rates_while_training(trainer)
    assert rates[0] == pytest.approx(0.01, rel=1e-3)  # the first batch runs at the full rate
    assert all(a > b for a, b in itertools.pairwise(rates))  # then it only falls
    assert LR_FLOOR * 0.01 <= rates[-1] < 0.0005  # to near the floor by the last batch
    # a time budget spans the schedule instead: half-way through it, half-way down
    budgeted = trainer_for(corpus_path, tmp_path / "b", lr_schedule="cosine", learning_rate=0.01, time_budget=100)
    middle = 0.01 * (LR_FLOOR + (1 - LR_FLOOR) / 2)
    assert budgeted.learning_rate(50.0) == pytest.approx(middle) and budgeted.learning_rate(500) == pytest.approx(
        0.0002
    )


@both_backends
def test_cooldown_schedule_holds_the_rate_then_decays_it_over_the_last_fifth(corpus_path, tmp_path):
    from tui_charlm.core.config import COOLDOWN_START, LR_FLOOR

    trainer = trainer_for(corpus_path, tmp_path, epochs=2, lr_schedule="cooldown", learning_rate=0.01)
    rates = rates_while_training(trainer)
    held = [rate for rate in rates if rate == pytest.approx(0.01, rel=1e-6)]
    # The rate for a batch is set before it runs: the batches before 80% of the steps keep the full rate.
    assert len(held) == int(COOLDOWN_START * len(rates)) + 1 or len(held) == int(COOLDOWN_START * len(rates))
    tail = rates[len(held) :]
    assert tail and all(a > b for a, b in itertools.pairwise(tail))  # then it only falls
    assert LR_FLOOR * 0.01 <= rates[-1] < 0.002  # towards the floor by the last batch
    budgeted = trainer_for(corpus_path, tmp_path / "b", lr_schedule="cooldown", learning_rate=0.01, time_budget=100)
    assert budgeted.learning_rate(79.0) == pytest.approx(0.01)
    assert budgeted.learning_rate(90.0) == pytest.approx(0.01 * (LR_FLOOR + (1 - LR_FLOOR) / 2))
    assert budgeted.learning_rate(100.0) == pytest.approx(0.01 * LR_FLOOR)
