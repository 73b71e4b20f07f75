"""charlm-tui on a real pseudo-terminal: a hang-up or a kill request saves a checkpoint and restores the terminal."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from contextlib import contextmanager

import pytest

from tests.conftest import cli_env, make_text


def read_until(master: int, needle: bytes, output: bytearray, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if needle in output:
            return True
        ready, _, _ = select.select([master], [], [], 0.1)
        if ready:
            try:
                output.extend(os.read(master, 1 << 16))
            except OSError:
                return needle in output
    return needle in output


@contextmanager
def tiny_tui_on_pty(tmp_path, *options: str, env: dict[str, str] | None = None, columns: int = 80, rows: int = 24):
    """charlm-tui training a tiny model on a pseudo-terminal: yields (process, master fd, output so far).

    Killed on the way out if it is still running.
    """
    corpus = tmp_path / "text.txt"
    corpus.write_text(make_text(20000))
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    process = subprocess.Popen(
        [sys.executable, "-m", "tui_charlm.tui.main", "--corpus", str(corpus), "--run-dir", str(tmp_path / "run"),
         "--units", "8", "--embedding-dim", "4", "--seq-len", "16", "--batch-size", "8", "--threads", "1",
         "--epochs", "100000", *options],
        stdin=slave, stdout=slave, stderr=slave, env=dict(cli_env(tmp_path), TERM="xterm-256color", **(env or {})),
        start_new_session=True)
    os.close(slave)
    try:
        yield process, master, bytearray()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(master)


def wait_for_exit(process, master: int, output: bytearray, timeout: float = 60) -> None:
    """Keep reading the terminal (a full one blocks the app) until the app exits or `timeout` passes."""
    deadline = time.monotonic() + timeout
    while process.poll() is None and time.monotonic() < deadline:
        read_until(master, b"\x00never", output, timeout=0.2)


def assert_checkpoint_saved(run) -> None:
    latest = json.loads((run / "latest.json").read_text())
    assert latest["step"] > 0 and (run / "checkpoints" / latest["checkpoint"] / "model.keras").is_file()


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGHUP, signal.SIGTERM])
def test_hangup_and_terminate_save_a_checkpoint_and_exit(tmp_path, sig):
    with tiny_tui_on_pty(tmp_path) as (process, master, output):
        assert read_until(master, b"TRAINING", output, timeout=120), output[-2000:]
        time.sleep(1.0)  # some batches into the first epoch
        process.send_signal(sig)
        wait_for_exit(process, master, output)
        read_until(master, b"\x1b[?1049l", output, timeout=5)
        assert process.poll() is not None, "the app did not exit within 60 s"
    assert process.returncode == 0
    assert b"\x1b[?1049l" in output  # the alternate screen was left: the terminal is restored
    assert_checkpoint_saved(tmp_path / "run")


@pytest.mark.slow
def test_mirrored_mixed_precision_training_shows_its_devices_and_quits_with_a_checkpoint(tmp_path):
    # Two logical CPUs stand in for two GPUs (they must be configured before TensorFlow starts: a fresh process);
    # a wide terminal shows the status line in full.
    with tiny_tui_on_pty(tmp_path, "--strategy", "mirrored", "--mixed-precision", env={"CHARLM_CPU_DEVICES": "2"},
                         columns=160, rows=40) as (process, master, output):
        # --threads 1 (tiny_tui_on_pty's) took effect in the app too: TensorFlow started with the run's settings.
        assert read_until(master, b"2 logical CPUs mirrored (mixed fp16, 1 thread)", output, timeout=120), \
            output[-2000:]
        assert read_until(master, b"TRAINING", output, timeout=60), output[-2000:]
        time.sleep(1.0)
        os.write(master, b"q")
        wait_for_exit(process, master, output)
        assert process.poll() is not None, "the app did not exit within 60 s"
    assert process.returncode == 0
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["strategy"] == "mirrored" and config["precision"] == "mixed_float16"
    assert_checkpoint_saved(tmp_path / "run")
