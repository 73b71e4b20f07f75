"""Detach: `charlm-tui` hands its run to a headless `charlm train --resume` and watches it; real processes on a pty."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import CHARLM, PATIENCE, TINY_FLAGS, cli_env, log_lines, make_text, wait_for
from tests.ptys import BATCHES_REPORTED, close_terminal, on_pty, screen_text, shows, wait_for_exit
from tui_charlm.core.checkpoints import RunDirectory
from tui_charlm.core.runs import lock_holder

APP = [sys.executable, "-m", "tui_charlm.tui.main"]
EPOCHS = ["--epochs", "3", "--checkpoint-every", "0"]
TOLERANCE = 1e-5
GOES_ON = re.compile(r"training goes on in pid (\d+)")


def final_weights(run):
    model, _ = RunDirectory.open(run).load_model(compile=False)
    return model.get_weights()


def sessions(run) -> list[dict]:
    return [r for r in log_lines(run) if r["type"] == "started"]


def footer(terminal, output) -> str:
    return screen_text(terminal, output).splitlines()[-1]


@pytest.mark.slow
def test_d_hands_over_to_a_headless_trainer_and_the_run_ends_as_if_trained_straight(tmp_path):
    corpus = tmp_path / "text.txt"
    corpus.write_text(make_text(20000))
    run, straight = tmp_path / "run", tmp_path / "straight"
    command = [*APP, "--corpus", str(corpus), "--run-dir", str(run), *TINY_FLAGS, *EPOCHS]
    with on_pty(command, cli_env(tmp_path), columns=120, rows=40) as (app, terminal, output):
        assert shows(terminal, BATCHES_REPORTED, output, PATIENCE), screen_text(terminal, output)
        os.write(terminal["master"], b" ")  # paused, so the handover comes mid-run on any machine
        wait_for(lambda: any(r["type"] == "paused" for r in log_lines(run)), "the pause", reading=(terminal, output))
        assert "d Detach" in footer(terminal, output)
        os.write(terminal["master"], b"d")
        # Said as soon as the headless trainer holds the run, which can be well before its first log line.
        assert shows(terminal, GOES_ON, output, PATIENCE), screen_text(terminal, output)
        # A viewer now: nothing of its own to hand over, and its footer says so.
        wait_for(lambda: "Detach" not in footer(terminal, output), "the footer to drop d", reading=(terminal, output))
        said = int(GOES_ON.search(screen_text(terminal, output)).group(1))
        wait_for(lambda: len(sessions(run)) == 2, "the headless trainer's first log line", reading=(terminal, output))
        handed = next(r for r in log_lines(run) if r["type"] == "finished")
        assert handed["reason"] == "detached"
        headless = sessions(run)[1]
        assert headless["pid"] != app.pid and headless["resumed"] and headless["step"] == handed["step"]
        assert said == headless["pid"]
        wait_for(
            lambda: log_lines(run)[-1]["type"] == "finished",
            "the headless trainer to finish",
            reading=(terminal, output),
        )
        assert log_lines(run)[-1]["reason"] == "completed"
        assert shows(terminal, "finished", output, PATIENCE), screen_text(terminal, output)
        os.write(terminal["master"], b"q")
        assert wait_for_exit(app, terminal["master"], output, PATIENCE) and app.returncode == 0
    assert (run / "train.log").is_file()

    command = [*CHARLM, "train", "--corpus", str(corpus), "--run-dir", str(straight), *TINY_FLAGS, *EPOCHS]
    subprocess.run(command, env=cli_env(tmp_path), check=True, capture_output=True, timeout=PATIENCE)
    handed_over, trained_straight = final_weights(run), final_weights(straight)
    assert len(handed_over) == len(trained_straight)
    for a, b in zip(handed_over, trained_straight):
        np.testing.assert_allclose(a, b, rtol=TOLERANCE, atol=TOLERANCE)


@pytest.mark.slow
def test_on_hangup_detach_keeps_training_in_another_process_when_the_terminal_closes(tmp_path):
    corpus = tmp_path / "text.txt"
    corpus.write_text(make_text(20000))
    run = tmp_path / "run"
    command = [*APP, "--corpus", str(corpus), "--run-dir", str(run), *TINY_FLAGS, "--epochs", "100000"]
    command += ["--on-hangup", "detach"]
    with on_pty(command, cli_env(tmp_path), controlling=True) as (app, terminal, output):
        assert shows(terminal, BATCHES_REPORTED, output, PATIENCE), screen_text(terminal, output)
        close_terminal(terminal)
        assert wait_for_exit(app, None, output, PATIENCE)
    wait_for(lambda: len(sessions(run)) == 2, "the headless trainer's first log line")
    headless = sessions(run)[1]["pid"]
    try:
        assert headless != app.pid and (lock_holder(run) or {}).get("pid") == headless
        count = len(log_lines(run))
        wait_for(lambda: any(r["type"] == "batch" for r in log_lines(run)[count:]), "the headless trainer to train")
        stopped = subprocess.run(
            [*CHARLM, "control", str(run), "stop"], env=cli_env(tmp_path), capture_output=True, text=True
        )
        assert stopped.returncode == 0, stopped.stderr
    finally:
        try:
            os.kill(headless, 9)  # only if the stop above failed: it is this test's process
        except ProcessLookupError:
            pass
