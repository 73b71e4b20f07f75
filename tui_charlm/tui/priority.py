"""A process that only watches a run yields the CPU to the trainer it watches.

A viewer (`charlm-tui --attach`, Enter on a run being trained, or the app
after `d` hands its run over) usually shares its machine with the trainer.
Its threads then run in Linux's idle scheduling class (SCHED_IDLE): they get
the CPU the trainer leaves free and lose it as soon as the trainer wants it
(benchmarks/viewers.py, idle against nice 10: 99.7% against 92.8% of
unattended training with one viewer, 91.6% against 82.0% with two). Where
the idle class is not available the threads are niced instead.

Both are one-way for an unprivileged user, and a child process inherits the
class of the thread that starts it. So the trainer a viewer starts (R, or
the handover of `d`) is started from a thread kept at the process's first
priority, made before anything was lowered: it trains at full priority
whatever the viewer runs at.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

# Where the idle class is missing (not Linux): how much a viewer's threads are niced.
VIEWER_NICENESS = 10
# How a viewer lowers itself: 'idle' (the default; niced where that fails), 'nice', or 'none'. For measuring
# one against another (benchmarks/viewers.py --priority), not for users.
PRIORITY_ENV = "CHARLM_VIEWER_PRIORITY"

T = TypeVar("T")


class ViewerPriority:
    """Lowers this process to a viewer's priority when it becomes one; starts processes at the first priority.

    Make it before the app starts any thread: its spawning thread is made
    here, at the priority the process was started with.
    """

    def __init__(self) -> None:
        self._spawner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="charlm-spawner")
        # The pool makes its thread on the first task: make it now, and learn its id (it is never lowered).
        self._spawner_id = self._spawner.submit(threading.get_native_id).result()
        self._lock = threading.Lock()
        self.lowered: str | None = None  # how, once lowered: 'idle' or 'nice'

    def spawn(self, start: Callable[..., T], *args, **kwargs) -> T:
        """Run `start` (which starts a process) on the thread at the first priority; what it returns."""
        return self._spawner.submit(start, *args, **kwargs).result()

    def lower(self) -> str | None:
        """Put every thread of this process but the spawning one at a viewer's priority; threads made later
        inherit it. Returns how ('idle' or 'nice'), or None where neither could be set."""
        with self._lock:
            if self.lowered is None:
                self.lowered = self._lower_all()
            return self.lowered

    def _lower_all(self) -> str | None:
        mode = os.environ.get(PRIORITY_ENV, "idle")
        if mode == "none":
            return None
        done: set[int] = set()
        how = None
        while True:  # again, for a thread made while the others were being lowered
            threads = _thread_ids() - done - {self._spawner_id}
            if not threads:
                return how
            for thread in threads:
                how = lower_thread(thread, idle=mode != "nice") or how
            done |= threads

    def close(self) -> None:
        self._spawner.shutdown(wait=False)


def _thread_ids() -> set[int]:
    try:
        return {int(name) for name in os.listdir("/proc/self/task")}
    except OSError:  # no /proc (not Linux): the calling thread only
        return {threading.get_native_id()}


def lower_thread(thread: int, *, idle: bool = True) -> str | None:
    """Thread `thread` (a native id of this process) to the idle class, or niced where that fails (or `idle` is
    False); how."""
    if idle:
        try:
            os.sched_setscheduler(thread, os.SCHED_IDLE, os.sched_param(0))
            return "idle"
        except (AttributeError, OSError):
            pass
    try:
        current = os.getpriority(os.PRIO_PROCESS, thread)
        os.setpriority(os.PRIO_PROCESS, thread, min(19, current + VIEWER_NICENESS))
        return "nice"
    except (AttributeError, OSError):
        return None
