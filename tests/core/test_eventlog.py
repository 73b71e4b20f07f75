"""events.jsonl: what a viewer in another process reads of a run as it trains."""

from __future__ import annotations

import json
import os

from tests.conftest import make_text, tiny_config
from tui_charlm.core.eventlog import EVENTS_FILE, EventLogReader, EventLogWriter, read_run_log
from tui_charlm.core.events import BatchFinished, EpochFinished, TrainingFinished, TrainingStarted
from tui_charlm.core.session import new_training, resume_training


class Clock:
    def __init__(self):
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def batch(step: int, loss: float, elapsed: float) -> BatchFinished:
    return BatchFinished(0, step, 10**9, step, loss, 1000.0, 1000.0, elapsed)


def started(step: int) -> TrainingStarted:
    return TrainingStarted("run", 0, step, 100, 1234, "CPU", step > 0)


def lines(run) -> list[dict]:
    return [json.loads(line) for line in (run / EVENTS_FILE).read_text().splitlines()]


def test_batch_losses_are_coalesced_to_a_few_lines_a_second_and_flushed_before_other_events(tmp_path):
    clock = Clock()
    log = EventLogWriter(tmp_path, clock=clock)
    log(started(0))
    for step in range(1, 101):  # 100 calls in one second
        clock.now += 0.01
        log(batch(step, float(step), elapsed=step * 0.01))
    log(EpochFinished(1, 100, 2.0, 1.5, 1.0))
    written = lines(tmp_path)
    kinds = [line["type"] for line in written]
    assert kinds[0] == "started" and kinds[-1] == "epoch" and 2 <= kinds.count("batch") <= 4
    batches = [line for line in written if line["type"] == "batch"]
    assert batches[-1]["step"] == 100  # the newest batch is written before the epoch line
    # each line is the mean of the calls it stands for
    first = batches[0]["step"]
    assert batches[0]["loss"] == sum(range(1, first + 1)) / first


def test_a_long_run_writes_ever_fewer_batch_lines(tmp_path):
    clock = Clock()
    log = EventLogWriter(tmp_path, clock=clock)
    seconds = 7 * 24 * 3600  # a week, one call every 5 s
    for step in range(1, seconds // 5):
        clock.now += 5
        log(batch(step, 1.0, elapsed=step * 5.0))
    log.close()
    count = len(lines(tmp_path))
    assert count < 20_000 and (tmp_path / EVENTS_FILE).stat().st_size < 4_000_000
    first_day = sum(1 for line in lines(tmp_path) if line["elapsed"] <= 86_400)
    assert count - first_day < first_day  # the next six days wrote fewer lines than the first


def test_a_reader_takes_whole_lines_and_skips_one_cut_short_by_a_kill(tmp_path):
    clock = Clock()
    log = EventLogWriter(tmp_path, clock=clock)
    log(started(0))
    clock.now += 1
    log(batch(1, 3.0, 1.0))
    log.close()
    reader = EventLogReader(tmp_path)
    assert [r["type"] for r in reader.poll()] == ["started", "batch"]
    with open(tmp_path / EVENTS_FILE, "ab") as handle:  # a kill in the middle of a line
        handle.write(b'{"time":1,"type":"batch","step":2,"lo')
    assert reader.poll() == []  # not whole yet
    resumed = EventLogWriter(tmp_path, clock=clock)  # the run resumed: its writer ends the cut line first
    resumed(started(1))
    assert [r["type"] for r in reader.poll()] == ["started"]
    assert reader.log.skipped == 1 and reader.log.curve() == [[1, 3.0]]


def test_a_resumed_session_replaces_the_steps_it_trains_again(tmp_path):
    clock = Clock()
    first = EventLogWriter(tmp_path, clock=clock)
    first(started(0))
    for step in range(1, 11):
        clock.now += 1
        first(batch(step, 10.0 + step, step))
    # killed after step 10; its newest checkpoint was at step 6
    second = EventLogWriter(tmp_path, clock=clock)
    second(started(6))
    for step in range(7, 9):
        clock.now += 1
        second(batch(step, 20.0 + step, step))
    second(TrainingFinished("stopped", 0, 8, None))
    log = read_run_log(tmp_path)
    assert log.curve() == [[s, 10.0 + s] for s in range(1, 7)] + [[7, 27.0], [8, 28.0]]
    assert log.session["step"] == 6 and log.ended["reason"] == "stopped"


def test_a_damaged_log_is_read_as_far_as_it_is_whole_and_a_replaced_one_afresh(tmp_path):
    clock = Clock()
    log = EventLogWriter(tmp_path, clock=clock)
    log(started(0))
    clock.now += 1
    log(batch(1, 2.0, 1.0))
    log.close()
    path = tmp_path / EVENTS_FILE
    path.write_bytes(path.read_bytes() + b"\x00\xff garbage\n[1, 2]\n" + b'{"type": "batch", "step": "x"}\n')
    reader = EventLogReader(tmp_path)
    reader.poll()
    assert reader.log.curve() == [[1, 2.0]] and reader.log.skipped == 3
    os.replace(path, tmp_path / "old.jsonl")
    fresh = EventLogWriter(tmp_path, clock=clock)
    fresh(started(0))
    reader.poll()
    assert reader.log.curve() == [] and reader.log.session["step"] == 0 and reader.log.skipped == 0


def test_a_real_run_logs_what_its_checkpoints_say(tmp_path):
    corpus = tmp_path / "text.txt"
    corpus.write_text(make_text(3000))
    trainer = new_training(tiny_config(corpus=str(corpus), epochs=2), run_dir=tmp_path / "run", log=lambda _: None)
    trainer.fit()
    resumed = resume_training(tmp_path / "run", {"epochs": 3}, log=lambda _: None)
    resumed.fit()
    log = read_run_log(tmp_path / "run")
    history = resumed.state.history
    assert sorted(log.epochs) == [1, 2, 3]
    assert [log.epochs[e]["val_loss"] for e in (1, 2, 3)] == [e["val_loss"] for e in history.epochs]
    assert max(log.batches) == resumed.state.step
    kinds = [line["type"] for line in lines(tmp_path / "run")]
    assert kinds.count("started") == 2 and kinds.count("finished") == 2 and "checkpoint" in kinds
    sessions = [line for line in lines(tmp_path / "run") if line["type"] == "started"]
    assert [(s["epochs"], s["time_budget"]) for s in sessions] == [(2, 0.0), (3, 0.0)]  # each its own, as resumed
    assert log.session["pid"] == os.getpid() and log.ended["reason"] == "completed"
