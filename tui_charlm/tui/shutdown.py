"""Ending `charlm-tui` when its terminal goes away or it is told to stop: checkpoint first, then exit, never hang.

A hang-up (SIGHUP, or the terminal failing under a write or closing under
the input) and SIGTERM stop training at its next TensorFlow call, which
writes a checkpoint, and end the app. Textual's shutdown writes to the
terminal; with the terminal gone, it can wait forever on its output
thread. So a watchdog ends the process once the checkpoint is written,
giving the app CLOSE_SECONDS to restore the terminal first. It waits for
training as long as this run's own calls and saves take (core/stopping.py:
the longest of each so far, with a margin), so a slow model or a slow disk
still gets its checkpoint, and a call that never returns cannot keep the
process forever. A SIGTERM during that wait exits at once: a checkpoint
being written is then abandoned whole, never left half-written (it is
written into a hidden folder and renamed into place only when complete).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time

from tui_charlm.core.hangup import HANGUP_STATUS

# Once training has ended, how long the app may take to close its screen before the process ends regardless.
CLOSE_SECONDS = 1.0


class Shutdown:
    """One ending for the app, whoever asks first: the exit status it asked for, and a watchdog behind it."""

    def __init__(self, app, log_path=None, on_hangup: str = "stop"):
        self.app = app
        self.log_path = log_path  # the app's diagnostics log: nobody will read it after a hang-up
        # 'stop' (save and stop), or 'detach': hand the run to a headless trainer (app.detach) and end the app.
        self.on_hangup = on_hangup
        self.status: int | None = None
        self.gave_up: str | None = None  # why the checkpoint was not waited for, if it was not

    def request(self, status: int) -> None:
        """Stop training (it saves), end the app, and make sure the process ends; only the first call counts.

        Safe from a signal handler and from any thread (it sets events and
        posts one message).
        """
        if self.status is not None:
            return
        self.status = status
        if status == HANGUP_STATUS and self.on_hangup == "detach":
            self.app.detach()  # training stops with reason 'detached'; the worker starts the headless trainer
        self.app.stop_event.set()
        self.app.pause_event.clear()
        threading.Thread(target=self._watchdog, name="charlm-shutdown", daemon=True).start()
        self.app.call_later(self.app.action_quit)

    def on_signal(self, signum, frame) -> None:
        """SIGHUP or SIGTERM: the first asks for a saved, orderly end; a later SIGTERM ends the process at once.

        A hang-up is one event however often it is reported: the kernel
        signals both the session leader and the terminal's foreground group
        (often the same process), and the terminal's failing reads and
        writes report it too. So only a SIGTERM, which someone sent, cuts
        the orderly end short.
        """
        if self.status is not None:
            if signum != signal.SIGHUP:
                os._exit(self.status)
            return
        self.request(128 + signum)

    def wait_for_training(self) -> bool:
        """Wait while training works its way to its checkpoint (not forever); False, with the reason kept, if not."""
        activity = self.app.activity
        if activity.wait():
            return True
        if self.gave_up is None:
            self.gave_up = f"charlm-tui: {activity.describe()}; ended without it"
            report(self.gave_up)
        return False

    def _watchdog(self) -> None:
        saved = self.wait_for_training()
        failure = getattr(self.app.training_outcome, "message", None)  # TrainingFailed: the save failed, say
        if failure:
            report(f"charlm-tui: {failure}")
            saved = False
        time.sleep(CLOSE_SECONDS)
        if saved and self.log_path is not None:  # else keep it: it is where the reason was written
            try:
                os.unlink(self.log_path)
            except OSError:
                pass
        os._exit(self.status)  # the app did not finish closing (a dead terminal can block it): do not wait for it


def report(text: str) -> None:
    """Say why the process ends without its checkpoint: on the terminal if it is still there, and in the log."""
    for stream in (sys.__stderr__, sys.stderr):  # the terminal (guarded), and fd 2: the diagnostics log
        try:
            print(text, file=stream, flush=True)
        except (OSError, ValueError, AttributeError):
            pass
