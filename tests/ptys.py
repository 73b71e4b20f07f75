"""Programs on real pseudo-terminals: start one, read its screen, type, close the terminal under it."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import termios
import time
from contextlib import contextmanager

import pyte

# On charlm-tui's screen once training has reported a batch: a loss on the status line (a dash before), or the
# loss plot's axis labels (an empty plot has none). Either can be hidden for a while: a notice covers the right
# end of the status line, and the plot is hidden on a small screen.
BATCHES_REPORTED = re.compile(r" loss \d|\d\.\d\d┤")


def shows(state: dict, text: str | re.Pattern, output: bytearray, timeout: float) -> bool:
    """Read the terminal until its screen shows `text` (or a match of it) (True) or `timeout` passes (False).

    The screen is what a terminal would draw from the program's output (pyte,
    a VT100 emulator, reads it): Textual redraws only what changed, so a line
    on the screen need not appear whole anywhere in the bytes.
    """
    deadline = time.monotonic() + timeout
    while True:
        screen = screen_text(state, output)
        if text.search(screen) if isinstance(text, re.Pattern) else text in screen:
            return True
        if state["master"] is None or time.monotonic() >= deadline:
            return False
        read_until(state["master"], b"\x00never", output, timeout=min(0.1, max(0.0, deadline - time.monotonic())))


def screen_text(state: dict, output: bytearray) -> str:
    """The terminal's screen now, row by row, after everything the program has written so far."""
    state["stream"].feed(bytes(output[state["fed"] :]))
    state["fed"] = len(output)
    return "\n".join(line.rstrip() for line in state["screen"].display)


def read_until(master: int, needle: bytes, output: bytearray, timeout: float) -> bool:
    """Read the terminal into `output` until `needle` shows up (True) or `timeout` passes (False)."""
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


def _controlling_terminal() -> None:  # runs in the child, before exec
    os.setsid()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def _child_setup(controlling: bool, preexec):
    if not controlling and preexec is None:
        return None

    def setup() -> None:
        if controlling:
            _controlling_terminal()
        if preexec is not None:
            preexec()

    return setup


@contextmanager
def on_pty(
    command: list[str],
    env: dict[str, str],
    *,
    columns: int = 80,
    rows: int = 24,
    controlling: bool = False,
    preexec=None,
):
    """Run `command` on a new pseudo-terminal: yields (process, state, output so far).

    `state` holds the master fd ("master") and the screen it draws (see `shows`).

    With `controlling`, the terminal is the process's controlling terminal,
    as a login shell's is: closing it sends the process SIGHUP. Without, the
    process only finds its reads and writes failing. Killed on the way out
    if still running.
    """
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    process = subprocess.Popen(
        command,
        stdin=slave,
        stdout=slave,
        stderr=slave,
        # The size a terminal's COLUMNS and LINES would say, not what the test runner's environment inherited
        # (they take precedence over the terminal's own size in Python's shutil and so in Textual).
        env=dict(env, TERM="xterm-256color", COLUMNS=str(columns), LINES=str(rows)),
        start_new_session=not controlling,
        preexec_fn=_child_setup(controlling, preexec),
    )
    os.close(slave)
    screen = pyte.Screen(columns, rows)
    state = {"master": master, "screen": screen, "stream": pyte.ByteStream(screen), "fed": 0}
    try:
        yield process, state, bytearray()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if state["master"] is not None:
            os.close(state["master"])


def close_terminal(state: dict) -> None:
    """Close the master side, as a dropped connection or a killed tmux session does."""
    os.close(state["master"])
    state["master"] = None


def wait_for_exit(process, master: int | None, output: bytearray, timeout: float = 60) -> bool:
    """Keep reading the terminal (a full one blocks the program) until it exits; True if it did in time."""
    deadline = time.monotonic() + timeout
    while process.poll() is None and time.monotonic() < deadline:
        if master is None:
            time.sleep(0.05)
        else:
            read_until(master, b"\x00never", output, timeout=0.2)
    return process.poll() is not None
