"""Steering a run that trains in another process: pause, resume, save and stop, through its folder.

A viewer (`charlm-tui --attach`, `charlm control`) drops a command into
the run's `control/` folder as a small file, written under a hidden name
and renamed into place, so the trainer never reads half a command. The
trainer (`Trainer.fit`, in `charlm train` and `charlm-tui` alike) looks
there between TensorFlow calls, a few times a second, takes the commands
in the order they were sent, deletes each, and acts on it by setting the
same events the app's own keys set. It acknowledges in its event log
(`paused`, `resumed`, `checkpoint`, `finished`): a viewer shows that, not
its own guess. A file in the folder works wherever the run folder is
shared and needs no socket to clean up after a kill; commands left from a
trainer that died are dropped when the next session starts, so a resume
never obeys an old stop.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

CONTROL_DIR = "control"
COMMANDS = ("pause", "resume", "save", "stop")
# How often the trainer looks for commands (between TensorFlow calls, so never more often than it trains).
POLL_SECONDS = 0.2


def send_command(run_path: Path, command: str) -> Path:
    """Leave `command` for the run's trainer; the path of the command file. Raises ValueError, OSError."""
    if command not in COMMANDS:
        raise ValueError(f"command must be one of {', '.join(COMMANDS)}, not {command!r}")
    folder = Path(run_path) / CONTROL_DIR
    folder.mkdir(exist_ok=True)
    # Names sort in the order they were sent: the time in nanoseconds, then the sender's pid.
    name = f"{time.time_ns():020d}-{os.getpid()}-{command}"
    hidden = folder / f".{name}.tmp"
    hidden.write_text(command + "\n")
    final = folder / name
    os.replace(hidden, final)
    return final


def pending_commands(run_path: Path) -> list[Path]:
    """The command files waiting in the run's control folder, oldest first."""
    try:
        names = sorted(n for n in os.listdir(Path(run_path) / CONTROL_DIR) if not n.startswith("."))
    except OSError:
        return []
    return [Path(run_path) / CONTROL_DIR / n for n in names]


class ControlReader:
    """The trainer's side: `poll()` between calls sets the fit's events from the commands waiting."""

    def __init__(
        self,
        run_path: Path,
        *,
        stop_event: threading.Event,
        pause_event: threading.Event,
        save_event: threading.Event,
        interval: float = POLL_SECONDS,
    ):
        self.run_path = Path(run_path)
        self.stop_event, self.pause_event, self.save_event = stop_event, pause_event, save_event
        self.interval = interval
        self.last = float("-inf")
        self.discard_stale()

    def discard_stale(self) -> None:
        """Drop commands sent to an earlier session (its trainer died or ended before reading them)."""
        for path in pending_commands(self.run_path):
            _remove(path)

    def poll(self, force: bool = False) -> list[str]:
        """Act on the waiting commands (at most every `interval` seconds unless forced); the commands taken."""
        now = time.monotonic()
        if not force and now - self.last < self.interval:
            return []
        self.last = now
        taken = []
        for path in pending_commands(self.run_path):
            command = path.name.rsplit("-", 1)[-1]
            _remove(path)
            if command == "pause":
                self.pause_event.set()
            elif command == "resume":
                self.pause_event.clear()
            elif command == "save":
                self.save_event.set()
            elif command == "stop":
                self.pause_event.clear()
                self.stop_event.set()
            else:
                continue  # not a command: ignored (and removed)
            taken.append(command)
        return taken


def _remove(path: Path) -> None:
    try:
        path.unlink()
    except OSError:
        pass
