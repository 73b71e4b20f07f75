"""Noticing that the terminal or the output pipe went away, so training can save and exit instead of hanging.

A dropped SSH connection closes the terminal: the process may get SIGHUP,
but it may not (it is not always in the terminal's foreground process
group), and every later write fails with EIO (or EPIPE for a closed pipe).
A write that raises in the middle of a progress report, or a UI output
thread that dies on one, leaves a process that neither saves nor exits.
Both faces wrap their output in `GuardedStream`, which turns the first
failed write into one call of `on_lost` and drops the rest, and
`watch_for_hangup` notices a closed terminal even when nothing is written.
"""

from __future__ import annotations

import errno
import os
import select
import signal
import threading
from collections.abc import Callable

# Exit statuses, as a shell reports a process ended by the signal: 128 + SIGHUP, SIGTERM, SIGPIPE.
HANGUP_STATUS = 128 + signal.SIGHUP
TERMINATED_STATUS = 128 + signal.SIGTERM
BROKEN_PIPE_STATUS = 128 + signal.SIGPIPE


def status_for(error: OSError) -> int:
    """The exit status for output lost with `error`: a closed pipe is SIGPIPE's, anything else a hang-up."""
    return BROKEN_PIPE_STATUS if isinstance(error, BrokenPipeError) or error.errno == errno.EPIPE else HANGUP_STATUS


class GuardedStream:
    """A text stream whose failed writes (EIO, EPIPE, a closed file) call `on_lost(status)` once, then are dropped."""

    def __init__(self, stream, on_lost: Callable[[int], None]):
        self._stream = stream
        self._on_lost = on_lost
        self.lost = False

    def _lose(self, error: Exception) -> None:
        if not self.lost:
            self.lost = True
            self._on_lost(status_for(error) if isinstance(error, OSError) else HANGUP_STATUS)

    def write(self, text: str) -> int:
        if not self.lost:
            try:
                return self._stream.write(text)
            except (OSError, ValueError) as error:  # ValueError: the file was closed under us
                self._lose(error)
        return len(text)

    def flush(self) -> None:
        if not self.lost:
            try:
                self._stream.flush()
            except (OSError, ValueError) as error:
                self._lose(error)

    def __getattr__(self, name: str):
        return getattr(self._stream, name)  # fileno, isatty, encoding, ... from the real stream


def terminal_hung_up(fd: int) -> bool:
    """True when `fd` is a terminal (or pipe) whose other end has closed."""
    try:
        poller = select.poll()
        poller.register(fd, 0)  # no events asked for: poll still reports hang-up, error and a closed fd
        return any(mask & (select.POLLHUP | select.POLLERR | select.POLLNVAL) for _, mask in poller.poll(0))
    except (OSError, ValueError):
        return True


def watch_for_hangup(fd: int, on_lost: Callable[[int], None], stop: threading.Event) -> threading.Thread | None:
    """Call `on_lost(HANGUP_STATUS)` once if the terminal on `fd` hangs up; until `stop` is set. None if not a tty."""
    try:
        if not os.isatty(fd):
            return None
    except OSError:
        return None

    def watch() -> None:
        while not stop.is_set():
            if terminal_hung_up(fd):
                on_lost(HANGUP_STATUS)
                return
            stop.wait(0.2)

    thread = threading.Thread(target=watch, name="charlm-hangup-watch", daemon=True)
    thread.start()
    return thread
