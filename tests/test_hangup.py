"""A dropped terminal, made real: the pseudo-terminal's master side is closed under a running program.

A dropped SSH connection, a closed terminal window or a killed tmux session
all close the terminal: the program may get SIGHUP (when the terminal is
its controlling terminal) or only find its reads and writes failing. Either
way it must write its hang-up checkpoint, exit 129 within 10 s and free the
run, whatever it was doing at that moment.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import CHARLM, TINY_FLAGS, cli_env, make_text
from tests.ptys import close_terminal, on_pty, read_until, wait_for_exit

EXIT_WITHIN = 10.0
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
            # Training has made progress (the status line shows the epoch once batches are reported).
            assert read_until(master, b"epoch 1/", output, timeout=120), (moment, bytes(output[-1500:]))
            read_until(master, b"\x00never", output, timeout=rng.uniform(0.3, 2.0))
            if moment == "save":
                os.write(master, b"s")
                read_until(master, b"\x00never", output, timeout=rng.uniform(0.0, 0.2))
            elif moment == "dialog":
                os.write(master, b"?")
                assert read_until(master, b"background", output, timeout=10), bytes(output[-1500:])
        closed = time.monotonic()
        close_terminal(terminal)
        exited = wait_for_exit(process, None, output, timeout=EXIT_WITHIN)
        took = time.monotonic() - closed
    return {
        "number": number,
        "moment": moment,
        "controlling": controlling,
        "exited": exited,
        "took": took,
        "status": process.returncode,
        "run": run,
    }


@pytest.mark.slow
def test_closing_the_terminal_saves_exits_129_and_frees_the_run_whenever_it_happens(corpus, tmp_path):
    rng = random.Random(18)
    moments = ["start-up"] * 2 + ["training"] * 4 + ["save"] * 3 + ["dialog"] * 3
    plans = [(number, moment, number % 2 == 0) for number, moment in enumerate(moments)]
    results: list[dict] = []
    errors: list[BaseException] = []

    def worker(share):
        for plan in share:
            try:
                results.append(trial(*plan, corpus, tmp_path, random.Random(rng.random())))
            except BaseException as error:  # reported below, with the others
                errors.append(error)

    # Two at a time: twelve trials in about the time of six.
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
        assert result["exited"], f"{label}: still running {EXIT_WITHIN:.0f} s after its terminal closed"
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
        assert read_until(terminal["master"], b"epoch 1", output, timeout=120), bytes(output[-1500:])
        read_until(terminal["master"], b"\x00never", output, timeout=1.0)
        close_terminal(terminal)
        assert wait_for_exit(process, None, output, timeout=EXIT_WITHIN), "still running after its terminal closed"
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
        deadline = time.monotonic() + 120
        while b"epoch 1 batch" not in seen and time.monotonic() < deadline:  # training has begun
            seen += process.stdout.read1(4096)
        assert b"epoch 1 batch" in seen, seen[-1500:]
        process.stdout.close()  # the reader is gone (`charlm train | head`, a dropped log pipe)
        process.wait(timeout=30)  # its next progress line (every 10 s) finds the pipe closed
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 141
    assert run_is_free(run)
    state = hangup_checkpoint(run)
    assert state["step"] > 0 and state["batch_in_epoch"] > 0
