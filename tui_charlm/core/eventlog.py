"""The run's event log, `events.jsonl`: what a viewer in another process needs to follow a run as it trains.

One JSON object per line, appended by the process that trains the run
(`charlm train` and `charlm-tui` alike): the start of each session, batch
losses coalesced to a few lines a second (fewer as the run grows old, so
the log stays small: a week-long run writes about 20,000 batch lines),
epoch ends with the held-out loss, checkpoints, samples (when and from
what seed: the texts are in samples.txt), pauses, resumes, and how the
session ended; epochs and checkpoints add a line each. Every line carries the step and the wall-clock
time.

Readers take complete lines only: a line cut short by a kill is skipped,
and a writer that opens a log ending in a cut line ends it first. A resumed
run starts again from its checkpoint's step, so the reader lets a session
start forget batch points after that step, and a later line for a step
replace an earlier one (the rule karpathy/llm.c's log reader uses for
restarts).
"""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tui_charlm.core.events import (
    BatchFinished,
    CheckpointSaved,
    EpochFinished,
    SamplesWritten,
    TrainingFailed,
    TrainingFinished,
    TrainingPaused,
    TrainingResumed,
    TrainingStarted,
)

EVENTS_FILE = "events.jsonl"
# Batch lines are at least this many seconds apart early in a run ...
BATCH_LINE_SECONDS = 0.5
# ... and later at least (training seconds / this): the log grows with the logarithm of the run's length.
BATCH_LINES_PER_DOUBLING = 2000
FORMAT_VERSION = 1


class EventLogWriter:
    """Appends a run's events to its events.jsonl; a report callable (`writer(event)`) for Trainer.fit.

    Never raises: a log that cannot be written (a full disk, a read-only
    folder) is given up for the session, and training goes on.
    """

    def __init__(self, run_path: Path, *, clock=time.time):
        self.path = Path(run_path) / EVENTS_FILE
        self.clock = clock
        self.handle = None
        self.failed = False
        self.pending: BatchFinished | None = None  # the newest batch not yet written
        self.pending_loss = 0.0  # sum of the losses of the calls coalesced into it ...
        self.pending_calls = 0  # ... and how many there were
        self.last_batch_line = float("-inf")

    def __call__(self, event: object) -> None:
        if isinstance(event, BatchFinished):
            self.pending, self.pending_loss = event, self.pending_loss + event.loss
            self.pending_calls += 1
            now = self.clock()
            if now - self.last_batch_line >= max(BATCH_LINE_SECONDS, event.elapsed / BATCH_LINES_PER_DOUBLING):
                self._flush_batch(now)
            return
        line = _line_for(event)
        if line is None:
            return
        self._flush_batch(self.clock())
        self._write(line)
        if isinstance(event, TrainingFinished | TrainingFailed):
            self.close()

    def _flush_batch(self, now: float) -> None:
        event = self.pending
        if event is None:
            return
        self._write(
            {
                "type": "batch",
                "step": event.step,
                "epoch": event.epoch,
                "batch": event.batch,
                "batches": event.batches,
                "loss": self.pending_loss / self.pending_calls,
                "chars_per_second": event.chars_per_second,
                "elapsed": event.elapsed,
            }
        )
        self.pending, self.pending_loss, self.pending_calls = None, 0.0, 0
        self.last_batch_line = now

    def _write(self, record: dict[str, Any]) -> None:
        if self.failed:
            return
        try:
            if self.handle is None:
                self.handle = self._open()
            record = {"time": round(self.clock(), 3), **record}
            # One unbuffered write per line: readers see whole lines, or a last one cut short by a kill.
            self.handle.write((json.dumps(record, separators=(",", ":")) + "\n").encode("utf-8"))
        except (OSError, ValueError):
            self.failed = True

    def _open(self):
        handle = open(self.path, "a+b", buffering=0)  # noqa: SIM115 (held for the session)
        size = handle.seek(0, os.SEEK_END)
        if size:
            handle.seek(size - 1)
            if handle.read(1) != b"\n":  # a line cut short by a kill: end it, so it stays one bad line
                handle.write(b"\n")
        return handle

    def close(self) -> None:
        """Write what is pending and close the file (a later event opens it again)."""
        self._flush_batch(self.clock())
        if self.handle is not None:
            try:
                self.handle.close()
            except OSError:
                pass
            self.handle = None


def _line_for(event: object) -> dict[str, Any] | None:
    """The log record for a trainer event (None for events a viewer does not need)."""
    if isinstance(event, TrainingStarted):
        return {
            "type": "started",
            "step": event.step,
            "epoch": event.epoch,
            "batches": event.batches_per_epoch,
            "parameters": event.parameters,
            "device": event.device,
            "resumed": event.resumed,
            "time_budget": event.time_budget,  # what ends this session: a viewer shows how far it is
            "epochs": event.epochs,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "version": FORMAT_VERSION,
        }
    if isinstance(event, EpochFinished):
        return {
            "type": "epoch",
            "step": event.step,
            "epoch": event.epoch,
            "train_loss": event.train_loss,
            "val_loss": event.val_loss,
            "seconds": event.seconds,
        }
    if isinstance(event, CheckpointSaved):
        return {
            "type": "checkpoint",
            "step": event.step,
            "epoch": event.epoch,
            "name": Path(event.path).name,
            "reason": event.reason,
        }
    if isinstance(event, SamplesWritten):  # the texts are in samples.txt: the log says when and from what seed
        temperatures = [float(t) for t in event.samples]
        return {"type": "samples", "step": event.step, "epoch": event.epoch, "seed": event.seed, "at": temperatures}
    if isinstance(event, TrainingPaused):
        return {"type": "paused", "step": event.step}
    if isinstance(event, TrainingResumed):
        return {"type": "resumed", "step": event.step}
    if isinstance(event, TrainingFinished):
        return {"type": "finished", "step": event.step, "epoch": event.epoch, "reason": event.reason}
    if isinstance(event, TrainingFailed):
        return {"type": "failed", "step": event.step, "message": event.message}
    return None


@dataclass
class RunLog:
    """What a run's event log says so far: its loss curve, epochs, and where the newest session stands."""

    batches: dict[int, float] = field(default_factory=dict)  # step -> loss; later lines for a step win
    epochs: dict[int, dict[str, Any]] = field(default_factory=dict)  # epoch -> its 'epoch' line
    session: dict[str, Any] | None = None  # the newest 'started' line
    last: dict[str, Any] | None = None  # the newest line of any kind
    ended: dict[str, Any] | None = None  # the newest session's 'finished' or 'failed' line, if it ended
    paused: bool = False
    elapsed: float | None = None  # the newest batch line's training seconds (None before the first)
    skipped: int = 0  # lines that were not whole JSON objects (cut short, or damaged)

    def add(self, record: dict[str, Any]) -> None:
        """Take one parsed line into account."""
        kind, step = record.get("type"), record.get("step")
        if not isinstance(step, int):
            self.skipped += 1
            return
        self.last = record
        if kind == "started":
            # A resumed session trains again from its checkpoint: later points of the earlier session are gone.
            self.batches = {s: loss for s, loss in self.batches.items() if s <= step}
            self.epochs = {e: line for e, line in self.epochs.items() if line["step"] <= step}
            self.session, self.ended, self.paused = record, None, False
        elif kind == "batch" and isinstance(record.get("loss"), int | float):
            self.batches[step] = float(record["loss"])
            if isinstance(record.get("elapsed"), int | float):
                self.elapsed = float(record["elapsed"])
        elif kind == "epoch" and isinstance(record.get("epoch"), int):
            self.epochs[record["epoch"]] = record
        elif kind == "paused":
            self.paused = True
        elif kind == "resumed":
            self.paused = False
        elif kind in ("finished", "failed"):
            self.ended, self.paused = record, False

    def curve(self) -> list[list[float]]:
        """[step, loss] pairs in step order."""
        return [[step, self.batches[step]] for step in sorted(self.batches)]


class EventLogReader:
    """Follows a run's events.jsonl from another process: `poll()` returns the complete lines added since."""

    def __init__(self, run_path: Path):
        self.path = Path(run_path) / EVENTS_FILE
        self.offset = 0
        self.identity: tuple[int, int] | None = None
        self.log = RunLog()

    def from_here(self) -> EventLogReader:
        """A second reader of the same log that starts where this one is (its lines before are not read again)."""
        reader = EventLogReader(self.path.parent)
        reader.offset, reader.identity = self.offset, self.identity
        return reader

    def poll(self) -> list[dict[str, Any]]:
        """New whole lines (parsed), already added to `self.log`; [] when there are none or no log yet."""
        try:
            with open(self.path, "rb") as handle:
                stat = os.fstat(handle.fileno())
                identity = (stat.st_dev, stat.st_ino)
                if identity != self.identity or stat.st_size < self.offset:  # a new file: read it afresh
                    self.identity, self.offset, self.log = identity, 0, RunLog()
                handle.seek(self.offset)
                data = handle.read()
        except OSError:
            return []
        end = data.rfind(b"\n") + 1  # a last line without its newline is still being written (or was cut)
        self.offset += end
        records = []
        for raw in data[:end].splitlines():
            record = parse_line(raw)
            if record is None:
                if raw.strip():
                    self.log.skipped += 1
                continue
            self.log.add(record)
            records.append(record)
        return records


def parse_line(raw: bytes) -> dict[str, Any] | None:
    """One log line as a dict, or None if it is not a whole JSON object with a type."""
    try:
        record = json.loads(raw)
    except ValueError:
        return None
    return record if isinstance(record, dict) and isinstance(record.get("type"), str) else None


def read_run_log(run_path: Path) -> RunLog:
    """The whole log of a run, as far as it is whole (an empty RunLog when it has none)."""
    reader = EventLogReader(run_path)
    reader.poll()
    return reader.log
