"""charlm-tui on a real pseudo-terminal: a hang-up or a kill request saves a checkpoint and restores the terminal."""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import subprocess
import sys
import time

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


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGHUP, signal.SIGTERM])
def test_hangup_and_terminate_save_a_checkpoint_and_exit(tmp_path, sig):
    corpus = tmp_path / "text.txt"
    corpus.write_text(make_text(20000))
    run = tmp_path / "run"
    master, slave = pty.openpty()
    env = dict(cli_env(tmp_path), TERM="xterm-256color")
    process = subprocess.Popen(
        [sys.executable, "-m", "tui_charlm.tui.main", "--corpus", str(corpus), "--run-dir", str(run), "--units", "8",
         "--embedding-dim", "4", "--seq-len", "16", "--batch-size", "8", "--threads", "1", "--epochs", "100000"],
        stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True)
    os.close(slave)
    output = bytearray()
    try:
        assert read_until(master, b"TRAINING", output, timeout=120), output[-2000:]
        time.sleep(1.0)  # some batches into the first epoch
        process.send_signal(sig)
        deadline = time.monotonic() + 60
        while process.poll() is None and time.monotonic() < deadline:
            read_until(master, b"\x00never", output, timeout=0.2)  # keep reading: a full terminal blocks the app
        read_until(master, b"\x1b[?1049l", output, timeout=5)
        assert process.poll() is not None, "the app did not exit within 60 s"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(master)
    assert process.returncode == 0
    assert b"\x1b[?1049l" in output  # the alternate screen was left: the terminal is restored
    latest = json.loads((run / "latest.json").read_text())
    assert latest["step"] > 0 and (run / "checkpoints" / latest["checkpoint"] / "model.keras").is_file()


@pytest.mark.slow
def test_mirrored_mixed_precision_training_shows_its_devices_and_quits_with_a_checkpoint(tmp_path):
    import fcntl
    import struct
    import termios

    corpus = tmp_path / "text.txt"
    corpus.write_text(make_text(20000))
    run = tmp_path / "run"
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 160, 0, 0))  # wide: the status line in full
    # Two logical CPUs stand in for two GPUs (they must be configured before TensorFlow starts: a fresh process).
    env = dict(cli_env(tmp_path), TERM="xterm-256color", CHARLM_CPU_DEVICES="2")
    process = subprocess.Popen(
        [sys.executable, "-m", "tui_charlm.tui.main", "--corpus", str(corpus), "--run-dir", str(run), "--units", "8",
         "--embedding-dim", "4", "--seq-len", "16", "--batch-size", "8", "--threads", "1", "--epochs", "100000",
         "--strategy", "mirrored", "--mixed-precision"],
        stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True)
    os.close(slave)
    output = bytearray()
    try:
        assert read_until(master, b"2 logical CPUs mirrored (mixed fp16)", output, timeout=120), output[-2000:]
        assert read_until(master, b"TRAINING", output, timeout=60), output[-2000:]
        time.sleep(1.0)
        os.write(master, b"q")
        deadline = time.monotonic() + 60
        while process.poll() is None and time.monotonic() < deadline:
            read_until(master, b"\x00never", output, timeout=0.2)
        assert process.poll() is not None, "the app did not exit within 60 s"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(master)
    assert process.returncode == 0
    config = json.loads((run / "config.json").read_text())
    assert config["strategy"] == "mirrored" and config["mixed_precision"] is True
    latest = json.loads((run / "latest.json").read_text())
    assert latest["step"] > 0 and (run / "checkpoints" / latest["checkpoint"] / "model.keras").is_file()
