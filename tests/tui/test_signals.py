"""charlm-tui on a real pseudo-terminal: a hang-up or a kill request saves a checkpoint and restores the terminal."""

from __future__ import annotations

import json
import os
import signal
import sys
from contextlib import contextmanager

import pytest

from tests.conftest import PATIENCE, TINY_FLAGS, cli_env, make_text
from tests.ptys import BATCHES_REPORTED, on_pty, read_until, screen_text, shows, wait_for_exit


@contextmanager
def tiny_tui_on_pty(
    tmp_path,
    *options: str,
    env: dict[str, str] | None = None,
    columns: int = 80,
    rows: int = 24,
    corpus_chars: int = 20000,
    controlling: bool = False,
    run: str = "run",
):
    """charlm-tui training a tiny model on a pseudo-terminal: yields (process, terminal state, output so far).

    Killed on the way out if it is still running.
    """
    corpus = tmp_path / "text.txt"
    if not corpus.exists():
        corpus.write_text(make_text(corpus_chars))
    command = [
        sys.executable,
        "-m",
        "tui_charlm.tui.main",
        "--corpus",
        str(corpus),
        "--run-dir",
        str(tmp_path / run),
        *TINY_FLAGS,
        "--epochs",
        "100000",
        *options,
    ]
    with on_pty(
        command, dict(cli_env(tmp_path), **(env or {})), columns=columns, rows=rows, controlling=controlling
    ) as opened:
        yield opened


def assert_checkpoint_saved(run) -> None:
    latest = json.loads((run / "latest.json").read_text())
    assert latest["step"] > 0 and (run / "checkpoints" / latest["checkpoint"] / "model.keras").is_file()


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGHUP, signal.SIGTERM])
def test_hangup_and_terminate_save_a_checkpoint_and_exit(tmp_path, sig):
    with tiny_tui_on_pty(tmp_path) as (process, terminal, output):
        master = terminal["master"]
        # Some batches in: the status line shows a loss once batches are reported.
        assert shows(terminal, BATCHES_REPORTED, output, timeout=PATIENCE), screen_text(terminal, output)
        process.send_signal(sig)
        wait_for_exit(process, master, output, timeout=PATIENCE)
        read_until(master, b"\x1b[?1049l", output, timeout=5)
        assert process.poll() is not None, "the app did not exit"
    assert process.returncode == 128 + sig  # as `charlm train` and a shell report it
    assert b"\x1b[?1049l" in output  # the alternate screen was left: the terminal is restored
    assert_checkpoint_saved(tmp_path / "run")


@pytest.mark.slow
def test_mirrored_training_shows_its_devices_and_quits_with_a_checkpoint(tmp_path):
    # Two logical CPUs stand in for two GPUs (they must be configured before TensorFlow starts: a fresh process);
    # a wide terminal shows the status line in full.
    with tiny_tui_on_pty(
        tmp_path,
        "--strategy",
        "mirrored",
        "--precision",
        "float32",
        env={"CHARLM_CPU_DEVICES": "2"},
        columns=160,
        rows=40,
    ) as (process, terminal, output):
        master = terminal["master"]
        # --threads 1 (tiny_tui_on_pty's) took effect in the app too: TensorFlow started with the run's settings.
        device = "2 logical CPUs mirrored (1 thread)"
        assert shows(terminal, device, output, timeout=PATIENCE), screen_text(terminal, output)
        assert shows(terminal, BATCHES_REPORTED, output, timeout=PATIENCE), screen_text(terminal, output)
        os.write(master, b"q")
        wait_for_exit(process, master, output, timeout=PATIENCE)
        assert process.poll() is not None, "the app did not exit"
    assert process.returncode == 0
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["strategy"] == "mirrored" and config["precision"] == "float32"
    assert_checkpoint_saved(tmp_path / "run")
