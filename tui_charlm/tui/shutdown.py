"""Ending `charlm-tui` when its terminal goes away or it is told to stop: checkpoint first, then exit, never hang.

A hang-up (SIGHUP, or the terminal failing under a write or closing under
the input) and SIGTERM stop training at its next TensorFlow call, which
writes a checkpoint, and end the app. Textual's shutdown writes to the
terminal; with the terminal gone, it can wait forever on its output
thread. So a watchdog ends the process once the checkpoint is written
(or after SAVE_SECONDS if training cannot get there), giving the app
CLOSE_SECONDS to restore the terminal first. A SIGTERM during that end
exits at once: a checkpoint being written is then abandoned whole, never
left half-written (it is written into a hidden folder and renamed into
place only when complete).
"""

from __future__ import annotations

import os
import signal
import threading
import time

# How long training may take to reach its next call boundary and write its checkpoint.
SAVE_SECONDS = 8.0
# Then how long the app may take to close its screen before the process ends regardless.
CLOSE_SECONDS = 1.0


class Shutdown:
    """One ending for the app, whoever asks first: the exit status it asked for, and a watchdog behind it."""

    def __init__(self, app, log_path=None):
        self.app = app
        self.log_path = log_path  # the app's diagnostics log: nobody will read it after a hang-up
        self.status: int | None = None

    def request(self, status: int) -> None:
        """Stop training (it saves), end the app, and make sure the process ends; only the first call counts.

        Safe from a signal handler and from any thread (it sets events and
        posts one message).
        """
        if self.status is not None:
            return
        self.status = status
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

    def _watchdog(self) -> None:
        self.app.training_done.wait(SAVE_SECONDS)
        time.sleep(CLOSE_SECONDS)
        if self.log_path is not None:
            try:
                os.unlink(self.log_path)
            except OSError:
                pass
        os._exit(self.status)  # the app did not finish closing (a dead terminal can block it): do not wait for it
