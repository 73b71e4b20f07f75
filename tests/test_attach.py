"""`charlm-tui --attach`: a viewer on a real pseudo-terminal, watching a real `charlm train` in another process."""

from __future__ import annotations

import os
import signal
import sys

from tests.conftest import PATIENCE, cli_env, log_lines, wait_for
from tests.ptys import BATCHES_REPORTED, on_pty, screen_text, shows, wait_for_exit
from tui_charlm.core.checkpoints import checkpoint_folder_name
from tui_charlm.core.runs import lock_holder

VIEWER = [sys.executable, "-m", "tui_charlm.tui.main", "--attach"]


def kinds_after(run, count: int) -> list[str]:
    return [r["type"] for r in log_lines(run)[count:]]


def test_a_viewer_pauses_saves_and_resumes_the_trainer_then_leaves_it_training(background_trainer, tmp_path):
    trainer, run = background_trainer
    with on_pty([*VIEWER, str(run)], cli_env(tmp_path), columns=120, rows=40) as (viewer, terminal, output):
        # The curve comes from the trainer's log, and the status names the trainer.
        assert shows(terminal, BATCHES_REPORTED, output, PATIENCE), screen_text(terminal, output)
        assert shows(terminal, f"pid {trainer.pid}", output, PATIENCE), screen_text(terminal, output)

        before = len(log_lines(run))
        os.write(terminal["master"], b" ")
        wait_for(
            lambda: "paused" in kinds_after(run, before), "the trainer to log its pause", reading=(terminal, output)
        )
        assert shows(terminal, "PAUSED", output, PATIENCE), screen_text(terminal, output)  # the state, acknowledged
        paused_at = [r for r in log_lines(run) if r["type"] == "paused"][-1]["step"]

        before = len(log_lines(run))
        os.write(terminal["master"], b"s")
        wait_for(
            lambda: "checkpoint" in kinds_after(run, before),
            "the trainer to log the checkpoint",
            reading=(terminal, output),
        )
        assert (run / "checkpoints" / checkpoint_folder_name(paused_at)).is_dir()
        assert shows(terminal, checkpoint_folder_name(paused_at), output, PATIENCE), screen_text(terminal, output)

        before = len(log_lines(run))
        os.write(terminal["master"], b" ")
        wait_for(
            lambda: "resumed" in kinds_after(run, before), "the trainer to log its resume", reading=(terminal, output)
        )
        wait_for(lambda: "batch" in kinds_after(run, before), "training to go on", reading=(terminal, output))

        os.write(terminal["master"], b"q")
        assert wait_for_exit(viewer, terminal["master"], output, PATIENCE), screen_text(terminal, output)
        assert viewer.returncode == 0
    assert b"left it training" in output
    # The trainer did not notice: it is still training, and still logging batches.
    before = len(log_lines(run))
    wait_for(lambda: "batch" in kinds_after(run, before), "the trainer to go on after the viewer left")
    assert trainer.poll() is None


def test_two_viewers_one_killed_then_k_k_stops_the_trainer(background_trainer, tmp_path):
    trainer, run = background_trainer
    env = cli_env(tmp_path)
    with (
        on_pty([*VIEWER, str(run)], env, columns=120, rows=40) as (first, first_terminal, first_output),
        on_pty([*VIEWER, str(run)], env, columns=120, rows=40) as (second, second_terminal, second_output),
    ):
        for terminal, output in ((first_terminal, first_output), (second_terminal, second_output)):
            assert shows(terminal, BATCHES_REPORTED, output, PATIENCE), screen_text(terminal, output)
        first.send_signal(signal.SIGKILL)
        first.wait()
        before = len(log_lines(run))
        wait_for(
            lambda: "batch" in kinds_after(run, before),
            "the trainer to go on after a viewer was killed",
            reading=(second_terminal, second_output),
        )
        assert trainer.poll() is None

        os.write(second_terminal["master"], b"k")  # once: it asks first
        assert shows(second_terminal, "Press k again", second_output, PATIENCE), screen_text(
            second_terminal, second_output
        )
        assert trainer.poll() is None
        os.write(second_terminal["master"], b"k")
        assert trainer.wait(timeout=PATIENCE) == 0
        last = log_lines(run)[-1]
        assert last["type"] == "finished" and last["reason"] == "stopped"
        assert shows(second_terminal, "stopped", second_output, PATIENCE), screen_text(second_terminal, second_output)
        os.write(second_terminal["master"], b"q")
        assert wait_for_exit(second, second_terminal["master"], second_output, PATIENCE)


def test_viewers_say_when_the_trainer_is_killed_r_in_one_resumes_it_and_the_other_follows_the_new_trainer(
    background_trainer, tmp_path
):
    trainer, run = background_trainer
    resumed_by = None
    try:
        env = cli_env(tmp_path)
        with (
            on_pty([*VIEWER, str(run)], env, columns=120, rows=40) as (viewer, terminal, output),
            on_pty([*VIEWER, str(run)], env, columns=120, rows=40) as (other, other_terminal, other_output),
        ):
            assert shows(terminal, BATCHES_REPORTED, output, PATIENCE), screen_text(terminal, output)
            assert shows(other_terminal, BATCHES_REPORTED, other_output, PATIENCE), screen_text(
                other_terminal, other_output
            )
            if hasattr(os, "SCHED_IDLE"):  # Linux: the viewer yields the CPU to the trainer
                assert os.sched_getscheduler(viewer.pid) == os.SCHED_IDLE
            before = len(log_lines(run))
            os.write(terminal["master"], b"s")
            wait_for(lambda: "checkpoint" in kinds_after(run, before), "a checkpoint", reading=(terminal, output))
            newest = [r for r in log_lines(run) if r["type"] == "checkpoint"][-1]["name"]
            trainer.send_signal(signal.SIGKILL)
            trainer.wait()
            assert shows(terminal, "gone without a word", output, PATIENCE), screen_text(terminal, output)
            assert shows(terminal, newest, output, PATIENCE), screen_text(terminal, output)
            assert shows(terminal, "Press R to resume it", output, PATIENCE), screen_text(terminal, output)
            assert shows(other_terminal, "gone without a word", other_output, PATIENCE), screen_text(
                other_terminal, other_output
            )

            # R: a new trainer of its own, in its own session, from that checkpoint; the viewer watches it.
            before = len(log_lines(run))
            os.write(terminal["master"], b"R")
            wait_for(
                lambda: (lock_holder(run) or {}).get("pid") not in (None, viewer.pid, trainer.pid),
                "a new trainer to take the run",
                reading=(terminal, output),
            )
            resumed_by = lock_holder(run)["pid"]
            assert os.getsid(resumed_by) == resumed_by  # not in the viewer's terminal session
            if hasattr(os, "SCHED_IDLE"):  # started at the priority the viewer was started with, not the viewer's
                assert os.sched_getscheduler(resumed_by) == os.sched_getscheduler(0)  # this test's own class
                assert os.getpriority(os.PRIO_PROCESS, resumed_by) == os.getpriority(os.PRIO_PROCESS, 0)
            wait_for(lambda: "batch" in kinds_after(run, before), "training to go on", reading=(terminal, output))
            started = [r for r in log_lines(run)[before:] if r["type"] == "started"]
            at_kill = sorted(p.name for p in (run / "checkpoints").glob("step-*") if p.is_dir())[-1]
            assert started and started[0]["resumed"] and started[0]["step"] == int(at_kill.split("-")[1])
            assert started[0]["pid"] == resumed_by
            assert shows(terminal, "resumed: training goes on in", output, PATIENCE), screen_text(terminal, output)
            # The other viewer, which pressed nothing, follows the new trainer too.
            again = f"taken up: pid {resumed_by}"
            assert shows(other_terminal, again, other_output, PATIENCE), screen_text(other_terminal, other_output)
            assert shows(other_terminal, "TRAINING", other_output, PATIENCE), screen_text(other_terminal, other_output)
            os.write(other_terminal["master"], b"q")
            assert wait_for_exit(other, other_terminal["master"], other_output, PATIENCE), other_output[-2000:]
            os.write(terminal["master"], b"q")  # a viewer again: q leaves the new trainer training
            assert wait_for_exit(viewer, terminal["master"], output, PATIENCE), screen_text(terminal, output)
        assert (lock_holder(run) or {}).get("pid") == resumed_by
        before = len(log_lines(run))
        os.kill(resumed_by, signal.SIGTERM)  # stopped as any trainer is: it saves, then ends
        wait_for(lambda: "finished" in kinds_after(run, before), "the new trainer to finish")
        last = log_lines(run)[-1]
        assert last["type"] == "finished" and last["step"] > started[0]["step"]
        assert (run / "checkpoints" / checkpoint_folder_name(last["step"])).is_dir()
    finally:
        if resumed_by is not None and (lock_holder(run) or {}).get("pid") == resumed_by:
            os.kill(resumed_by, signal.SIGKILL)


def test_attach_refuses_what_it_cannot_watch_in_one_sentence(tmp_path):
    import subprocess

    (tmp_path / "plain").mkdir()
    for args, message in (
        ([str(tmp_path / "nothing")], "does not exist"),
        ([str(tmp_path / "plain")], "is not a charlm run directory"),
        ([str(tmp_path / "plain"), "--units", "64"], "takes no other run or model options"),
    ):
        result = subprocess.run([*VIEWER, *args], capture_output=True, text=True, env=cli_env(tmp_path), timeout=60)
        assert result.returncode in (1, 2) and message in result.stderr and "Traceback" not in result.stderr
