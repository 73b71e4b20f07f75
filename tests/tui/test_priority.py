"""A viewer's priority: every thread lowered, and the trainers it starts at the priority it started with.

Lowering is one-way for an unprivileged process, so each case runs in a
process of its own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytestmark = [
    pytest.mark.skipif(not hasattr(os, "SCHED_IDLE"), reason="Linux scheduling classes"),
    pytest.mark.skipif(
        hasattr(os, "SCHED_IDLE") and os.sched_getscheduler(0) == os.SCHED_IDLE,
        reason="the tests themselves run in the idle class (chrt -i): there is nothing lower to tell apart",
    ),
]

PROGRAM = r"""
import json, os, subprocess, sys, threading
from tui_charlm.tui.priority import ViewerPriority

priority = ViewerPriority()
before = threading.Event()
threading.Thread(target=before.wait, daemon=True).start()  # a thread made before lowering
how = priority.lower()
after = threading.Event()
threading.Thread(target=after.wait, daemon=True).start()  # ... and one made after
policies = {int(t): os.sched_getscheduler(int(t)) for t in os.listdir("/proc/self/task")}
report = "import os, json; print(json.dumps([os.sched_getscheduler(0), os.getpriority(os.PRIO_PROCESS, 0)]))"
started = priority.spawn(subprocess.run, [sys.executable, "-c", report], capture_output=True, text=True)
direct = subprocess.run([sys.executable, "-c", report], capture_output=True, text=True)
print(json.dumps({
    "how": how,
    "idle_threads": sum(p == os.SCHED_IDLE for p in policies.values()),
    "threads": len(policies),
    "spawned": json.loads(started.stdout),
    "direct": json.loads(direct.stdout),
}))
"""


def run_program(mode: str | None) -> dict:
    env = dict(os.environ)
    env.pop("CHARLM_VIEWER_PRIORITY", None)
    if mode is not None:
        env["CHARLM_VIEWER_PRIORITY"] = mode
    result = subprocess.run([sys.executable, "-c", PROGRAM], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_a_viewer_idles_every_thread_but_starts_trainers_at_its_first_priority():
    report = run_program(None)
    assert report["how"] == "idle"
    # the main thread and both others; the spawning thread stays as it was
    assert report["idle_threads"] == report["threads"] - 1 >= 3
    assert report["spawned"] == [os.SCHED_OTHER, os.getpriority(os.PRIO_PROCESS, 0)]
    # what the spawning thread is there for: a process started from a lowered thread would inherit its class
    assert report["direct"][0] == os.SCHED_IDLE


def test_nice_mode_nices_instead_and_none_leaves_the_priority_alone():
    niced = run_program("nice")
    assert niced["how"] == "nice" and niced["idle_threads"] == 0
    assert niced["direct"] == [os.SCHED_OTHER, min(19, os.getpriority(os.PRIO_PROCESS, 0) + 10)]
    assert niced["spawned"] == [os.SCHED_OTHER, os.getpriority(os.PRIO_PROCESS, 0)]
    alone = run_program("none")
    assert alone["how"] is None and alone["direct"] == alone["spawned"]
