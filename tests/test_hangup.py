"""A dropped terminal, made real: the pseudo-terminal's master side is closed under a running program.

A dropped SSH connection, a closed terminal window or a killed tmux session
all close the terminal: the program may get SIGHUP (when the terminal is
its controlling terminal) or only find its reads and writes failing. Either
way it must write its hang-up checkpoint, then exit 129 and free the run,
whatever it was doing at that moment, and however long the training call
in hand and the save take.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import CHARLM, PATIENCE, TINY_FLAGS, cli_env, make_text
from tests.ptys import BATCHES_REPORTED, close_terminal, on_pty, read_until, screen_text, shows, wait_for_exit

TINY = [*TINY_FLAGS, "--epochs", "100000", "--checkpoint-every", "0"]
# Long epochs (about 15 s for the tiny model): a checkpoint found after a hang-up in the first seconds of training
# is the hang-up's own, not an epoch end's.
CORPUS_CHARS = 1_000_000


@pytest.fixture
def corpus(tmp_path) -> Path:
    path = tmp_path / "long.txt"
    path.write_text(make_text(CORPUS_CHARS))
    return path


def run_is_free(run: Path) -> bool:
    """True when no process holds the run's training lock (what --resume takes first)."""
    from filelock import FileLock, Timeout

    lock = FileLock(run / ".lock", thread_local=False)
    try:
        lock.acquire(blocking=False)
    except Timeout:
        return False
    lock.release()
    return True


def hangup_checkpoint(run: Path) -> dict:
    """The newest checkpoint's state; it must be the hang-up's: in the middle of an epoch, after some training."""
    latest = json.loads((run / "latest.json").read_text())
    state = json.loads((run / "checkpoints" / latest["checkpoint"] / "state.json").read_text())
    assert (run / "checkpoints" / latest["checkpoint"] / "model.keras").is_file()
    return state


def trial(number: int, moment: str, controlling: bool, corpus: Path, tmp_path: Path, rng: random.Random) -> dict:
    """Start charlm-tui, close its terminal at `moment`; what happened."""
    run = tmp_path / f"run-{number}"
    command = [sys.executable, "-m", "tui_charlm.tui.main", "--corpus", str(corpus), "--run-dir", str(run), *TINY]
    with on_pty(command, cli_env(tmp_path), controlling=controlling) as (process, terminal, output):
        master = terminal["master"]
        if moment == "start-up":
            read_until(master, b"\x00never", output, timeout=rng.uniform(0.3, 2.5))
        else:
            # Training has made progress (the status line shows a loss once batches are reported).
            assert shows(terminal, BATCHES_REPORTED, output, timeout=PATIENCE), (moment, screen_text(terminal, output))
            read_until(master, b"\x00never", output, timeout=rng.uniform(0.3, 2.0))
            if moment == "save":
                os.write(master, b"s")
                read_until(master, b"\x00never", output, timeout=rng.uniform(0.0, 0.2))
            elif moment == "dialog":
                os.write(master, b"?")
                assert shows(terminal, "background", output, timeout=PATIENCE), screen_text(terminal, output)
        close_terminal(terminal)
        exited = wait_for_exit(process, None, output, timeout=PATIENCE)
    return {
        "number": number,
        "moment": moment,
        "controlling": controlling,
        "exited": exited,
        "status": process.returncode,
        "run": run,
    }


@pytest.mark.slow
def test_closing_the_terminal_saves_exits_129_and_frees_the_run_whenever_it_happens(corpus, tmp_path):
    rng = random.Random(18)
    # Each moment once, with and without the terminal as the controlling one in turn (SIGHUP, or only failing
    # reads and writes); test_charlm_train_saves_and_exits_129_when_its_terminal_closes covers both for each.
    moments = ["start-up", "training", "save", "dialog"]
    plans = [(number, moment, number % 2 == 0) for number, moment in enumerate(moments)]
    results: list[dict] = []
    errors: list[BaseException] = []

    def worker(share):
        for plan in share:
            try:
                results.append(trial(*plan, corpus, tmp_path, random.Random(rng.random())))
            except BaseException as error:  # reported below, with the others
                errors.append(error)

    # Two at a time: four trials in about the time of two.
    threads = [threading.Thread(target=worker, args=(plans[half::2],)) for half in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    assert len(results) == len(plans)
    for result in results:
        label = f"trial {result['number']} ({result['moment']}, controlling={result['controlling']})"
        assert result["exited"], f"{label}: still running {PATIENCE:.0f} s after its terminal closed"
        assert result["status"] == 129, f"{label}: exit status {result['status']}"
        run = result["run"]
        if (run / "run.json").exists():
            assert run_is_free(run), f"{label}: the run is still locked"
        if result["moment"] != "start-up":
            state = hangup_checkpoint(run)
            assert state["step"] > 0 and state["batch_in_epoch"] > 0, f"{label}: no hang-up checkpoint ({state})"

    # And --resume works at once on one of them.
    resumed = subprocess.run(
        [*CHARLM, "train", "--resume", str(results[-1]["run"]), "--time-budget", "1"],
        capture_output=True,
        text=True,
        env=cli_env(tmp_path),
        timeout=240,
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resuming" in resumed.stdout


def charlm_train(corpus: Path, run: Path) -> list[str]:
    return [*CHARLM, "train", "--corpus", str(corpus), "--run-dir", str(run), *TINY]


@pytest.mark.slow
@pytest.mark.parametrize("controlling", [True, False], ids=["with SIGHUP", "without SIGHUP"])
def test_charlm_train_saves_and_exits_129_when_its_terminal_closes(corpus, tmp_path, controlling):
    run = tmp_path / "run"
    with on_pty(charlm_train(corpus, run), cli_env(tmp_path), controlling=controlling) as (process, terminal, output):
        assert shows(terminal, "epoch 1", output, timeout=PATIENCE), screen_text(terminal, output)
        read_until(terminal["master"], b"\x00never", output, timeout=1.0)
        close_terminal(terminal)
        assert wait_for_exit(process, None, output, timeout=PATIENCE), "still running after its terminal closed"
    assert process.returncode == 129
    assert run_is_free(run)
    state = hangup_checkpoint(run)
    assert state["step"] > 0 and state["batch_in_epoch"] > 0


@pytest.mark.slow
def test_charlm_train_saves_and_exits_141_when_its_output_pipe_closes(corpus, tmp_path):
    run = tmp_path / "run"
    process = subprocess.Popen(
        charlm_train(corpus, run),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=cli_env(tmp_path),
        start_new_session=True,
    )
    try:
        seen = b""
        deadline = time.monotonic() + PATIENCE
        while b"epoch 1 batch" not in seen and time.monotonic() < deadline:  # training has begun
            seen += process.stdout.read1(4096)
        assert b"epoch 1 batch" in seen, seen[-1500:]
        process.stdout.close()  # the reader is gone (`charlm train | head`, a dropped log pipe)
        process.wait(timeout=PATIENCE)  # its next progress line (every 10 s) finds the pipe closed
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 141
    assert run_is_free(run)
    state = hangup_checkpoint(run)
    assert state["step"] > 0 and state["batch_in_epoch"] > 0


# A slow training call and a slow save, each this long: together longer than the fixed 8 s that a hang-up used
# to give training to reach its call boundary and save.
SLOW_SECONDS = 4.5
# A program whose training calls after the first (which compiles) and whose saves each take SLOW_SECONDS longer,
# as a large model's do on a busy CPU and a slow disk: `python -c SLOW_PROGRAM SECONDS MARK tui|cli ARGS...`;
# it creates the file MARK when its first slow call begins. With STUCK for SECONDS, the calls after the first
# never return, and stops wait only a few seconds past them.
SLOW_PROGRAM = """
import pathlib, sys, threading, time
from tui_charlm.core import stopping
from tui_charlm.core.checkpoints import RunDirectory
from tui_charlm.core.training import Trainer
seconds, mark = sys.argv.pop(1), pathlib.Path(sys.argv.pop(1))
calls = [0]
train_call, save = Trainer._train_call, RunDirectory.save_checkpoint
def slow_call(self, *args):
    calls[0] += 1
    if calls[0] > 1:
        mark.touch()
        if seconds == "STUCK":
            threading.Event().wait()
        time.sleep(float(seconds))
    return train_call(self, *args)
def slow_save(self, *args):
    time.sleep(0 if seconds == "STUCK" else float(seconds))
    return save(self, *args)
Trainer._train_call, RunDirectory.save_checkpoint = slow_call, slow_save
if seconds == "STUCK":
    stopping.Activity.__init__.__defaults__ = (stopping.Patience(factor=3.0, slack=2.0, unmeasured=300.0),)
if sys.argv[1] == "tui":
    from tui_charlm.tui.main import main
else:
    from tui_charlm.cli import main
sys.exit(main(sys.argv[2:]))
"""


def slow_program(seconds: str, face: str, run: Path, corpus: Path) -> list[str]:
    flags = ["--corpus", str(corpus), "--run-dir", str(run), *TINY, "--steps-per-execution", "2"]
    mark = str(slow_call_mark(run))
    return [sys.executable, "-c", SLOW_PROGRAM, seconds, mark, face, *(["train"] if face == "cli" else []), *flags]


def slow_call_mark(run: Path) -> Path:
    return run.parent / f"{run.name}-slow-call-began"


def wait_for_slow_call(run: Path, process) -> None:
    """Until the program's first slow training call is under way (it made its mark)."""
    deadline = time.monotonic() + PATIENCE
    while not slow_call_mark(run).exists():
        assert process.poll() is None and time.monotonic() < deadline, "no slow training call began"
        time.sleep(0.05)


def assert_resumes_from(run: Path, step: int, tmp_path: Path) -> None:
    """`charlm train --resume` starts from `step` and trains on from it."""
    from tui_charlm.core.checkpoints import checkpoint_folder_name

    elapsed = json.loads((run / "checkpoints" / checkpoint_folder_name(step) / "state.json").read_text())["elapsed"]
    resumed = subprocess.run(
        [*CHARLM, "train", "--resume", str(run), "--time-budget", str(elapsed + 1)],
        capture_output=True,
        text=True,
        env=cli_env(tmp_path),
        timeout=PATIENCE,
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert resumed.stdout.startswith("resuming") and f"step {step}," in resumed.stdout.splitlines()[0]
    assert json.loads((run / "latest.json").read_text())["step"] > step


@pytest.mark.slow
def test_a_hangup_waits_for_a_training_call_and_a_save_that_take_over_8_s_and_the_run_resumes(corpus, tmp_path):
    run = tmp_path / "run"
    command = slow_program(str(SLOW_SECONDS), "tui", run, corpus)
    with on_pty(command, cli_env(tmp_path), controlling=True) as (process, terminal, output):
        assert shows(terminal, "TRAINING", output, timeout=PATIENCE), screen_text(terminal, output)
        wait_for_slow_call(run, process)  # the second call, SLOW_SECONDS long, is under way
        close_terminal(terminal)
        assert wait_for_exit(process, None, output, timeout=PATIENCE), "still running after its terminal closed"
    assert process.returncode == 129
    assert run_is_free(run)
    state = hangup_checkpoint(run)
    # The call in hand was waited for (2 batches a call: the checkpoint follows a whole slow call), then its save.
    assert state["step"] >= 4 and state["step"] % 2 == 0 and state["batch_in_epoch"] > 0
    assert_resumes_from(run, state["step"], tmp_path)


def terminate_during_slow_call(seconds: str, run: Path, corpus: Path, tmp_path: Path) -> tuple[int, str, str]:
    """`charlm train` with slow (or stuck) calls, sent SIGTERM while one is under way: (status, stdout, stderr)."""
    process = subprocess.Popen(
        slow_program(seconds, "cli", run, corpus),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(tmp_path),
    )
    try:
        wait_for_slow_call(run, process)  # the first call is done (and timed); the second is under way
        process.send_signal(signal.SIGTERM)
        output, errors = process.communicate(timeout=PATIENCE)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return process.returncode, output, errors


@pytest.mark.slow
def test_charlm_train_waits_for_a_training_call_and_a_save_that_take_over_8_s_on_sigterm(corpus, tmp_path):
    run = tmp_path / "run"
    status, output, errors = terminate_during_slow_call(str(SLOW_SECONDS), run, corpus, tmp_path)
    assert status == 143, output + errors
    assert "finished (stopped)" in output
    state = hangup_checkpoint(run)
    assert state["step"] >= 4 and state["step"] % 2 == 0
    assert_resumes_from(run, state["step"], tmp_path)


@pytest.mark.slow
def test_a_training_call_that_never_returns_cannot_keep_a_stopped_charlm_train_alive(corpus, tmp_path):
    run = tmp_path / "run"
    status, _, errors = terminate_during_slow_call("STUCK", run, corpus, tmp_path)
    assert status == 143, errors
    # Said why, naming the work it gave up on and what this run's calls had taken.
    assert "training did not reach its checkpoint: training calls had run" in errors
    assert "longest training calls" in errors and "Traceback" not in errors
    assert run_is_free(run) and not (run / "latest.json").exists()
