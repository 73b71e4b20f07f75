"""Handing a run to a headless trainer: `charlm train --resume RUN` in its own process session.

`charlm-tui` does this on `d`, and on a dropped terminal with
`--on-hangup detach`: its own trainer stops with a checkpoint (reason
'detached'), lets go of the run's lock, and starts this process, which
resumes from that checkpoint exactly (the same batch, optimizer state and
dropout streams), so the run goes on as if trained straight. The new
process is a session leader of its own (setsid): a hang-up of the old
terminal does not reach it. Its output goes to `train.log` in the run
folder; viewers follow its event log as before.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

LOG_FILE = "train.log"


def start_headless_trainer(run_path: Path, *, offline: bool | None = None) -> subprocess.Popen:
    """Start `charlm train --resume run_path` detached from this terminal; the process (not waited for)."""
    run_path = Path(run_path)
    command = [sys.executable, "-m", "tui_charlm.cli", "train", "--resume", str(run_path), "--plain"]
    if offline:
        command.append("--offline")
    with open(run_path / LOG_FILE, "ab") as log:
        return subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,  # setsid: not in this terminal's session, so its hang-up never reaches it
            close_fds=True,
            env=dict(os.environ, PYTHONUNBUFFERED="1"),
        )
