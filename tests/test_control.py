"""Steering a run trained by another process: `charlm control` against a real `charlm train` subprocess."""

from __future__ import annotations

import subprocess
import threading

import pytest

from tests.conftest import CHARLM, PATIENCE, cli_env, log_lines, wait_for
from tui_charlm.core.checkpoints import checkpoint_folder_name
from tui_charlm.core.control import ControlReader, pending_commands, send_command
from tui_charlm.core.eventlog import read_run_log


def charlm(*args, tmp_path):
    return subprocess.run(
        [*CHARLM, *map(str, args)], capture_output=True, text=True, env=cli_env(tmp_path), timeout=PATIENCE
    )


def test_pause_save_resume_and_stop_reach_a_trainer_in_another_process(background_trainer, tmp_path):
    process, run = background_trainer

    paused = charlm("control", run, "pause", tmp_path=tmp_path)
    assert paused.returncode == 0, paused.stderr
    assert "paused at step" in paused.stdout
    assert read_run_log(run).paused
    saved = charlm("control", run, "save", tmp_path=tmp_path)
    assert saved.returncode == 0, saved.stderr
    name = saved.stdout.split()[1]
    assert name == checkpoint_folder_name(read_run_log(run).last["step"]) and (run / "checkpoints" / name).is_dir()
    again = charlm("control", run, "pause", tmp_path=tmp_path)
    assert again.returncode == 0 and "already paused" in again.stdout

    resumed = charlm("control", run, "resume", tmp_path=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    lines = log_lines(run)
    kinds = [r["type"] for r in lines]
    pause_at, resume_at = kinds.index("paused"), kinds.index("resumed")
    # While paused the trainer trained nothing: no batch between its pause and its resume, and the steps agree.
    assert "batch" not in kinds[pause_at:resume_at]
    assert lines[pause_at]["step"] == lines[resume_at]["step"]
    wait_for(lambda: any(r["type"] == "batch" for r in log_lines(run)[resume_at:]), "training to go on")

    stopped = charlm("control", run, "stop", tmp_path=tmp_path)
    assert stopped.returncode == 0, stopped.stderr
    assert "stopped at step" in stopped.stdout
    assert process.wait(timeout=PATIENCE) == 0
    last = log_lines(run)[-1]
    assert last["type"] == "finished" and last["reason"] == "stopped"
    assert (run / "checkpoints" / checkpoint_folder_name(last["step"])).is_dir()
    assert pending_commands(run) == []


def test_control_of_a_run_nobody_trains_says_so(background_trainer, tmp_path):
    process, run = background_trainer
    assert charlm("control", run, "stop", tmp_path=tmp_path).returncode == 0
    process.wait(timeout=PATIENCE)
    result = charlm("control", run, "pause", tmp_path=tmp_path)
    assert result.returncode == 1 and "Nothing is training" in result.stderr and "Traceback" not in result.stderr
    assert pending_commands(run) == []  # nothing was left for a later session to obey


def test_commands_are_taken_in_order_and_old_ones_are_dropped(tmp_path):
    send_command(tmp_path, "stop")  # left by a viewer of an earlier session that died
    events = {name: threading.Event() for name in ("stop", "pause", "save")}
    reader = ControlReader(tmp_path, stop_event=events["stop"], pause_event=events["pause"], save_event=events["save"])
    assert pending_commands(tmp_path) == [] and not events["stop"].is_set()

    for command in ("pause", "save", "resume"):
        send_command(tmp_path, command)
    assert reader.poll(force=True) == ["pause", "save", "resume"]
    assert not events["pause"].is_set() and events["save"].is_set() and not events["stop"].is_set()
    send_command(tmp_path, "stop")
    assert reader.poll(force=True) == ["stop"] and events["stop"].is_set()
    with pytest.raises(ValueError, match="command must be one of"):
        send_command(tmp_path, "explode")
