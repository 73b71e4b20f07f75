"""`charlm-tui --attach RUN`: watch and steer a run that another process trains.

The viewer trains nothing. It follows the run folder the trainer writes as
it goes (core/eventlog.py, core/live_weights.py): the event log becomes the
same events the app's own trainer would report, so the loss curve, the
held-out points and the status are drawn by the same code, and the newest
weights go into the app's WeightBox, so the streams, the inspector and the
cell view run on them and switch as new ones arrive. Pause, save and stop
go to the trainer through the run's control folder (core/control.py); the
screen changes when the trainer's log says it acted, not before. Leaving
(q, a dropped terminal) leaves the trainer alone. A trainer that dies
without a word (SIGKILL, a lost host) is noticed by its lock: the OS
releases it with the process.
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from pathlib import Path

import numpy as np

from tui_charlm.core.backend import start_backend
from tui_charlm.core.checkpoints import History, RunDirectory
from tui_charlm.core.control import send_command
from tui_charlm.core.errors import CharlmError
from tui_charlm.core.eventlog import EventLogReader, RunLog
from tui_charlm.core.events import (
    BatchFinished,
    CheckpointSaved,
    EpochFinished,
    Log,
    TrainingFailed,
    TrainingFinished,
    TrainingPaused,
    TrainingResumed,
    TrainingStarted,
)
from tui_charlm.core.live_weights import WEIGHTS_FILE, read_weights
from tui_charlm.core.runs import holder_name, lock_holder
from tui_charlm.core.session import open_saved_run
from tui_charlm.tui.core_bridge import CoreBackend, RunInfo, TuiOptions

# How often the viewer reads the log and looks for new weights (twice a second: as often as its screen changes,
# and each wake-up on the trainer's cores costs it a little); how often it asks whether the trainer lives.
FOLLOW_SECONDS = 0.5
ALIVE_SECONDS = 1.0
# After a handover ('detached'), how long the new trainer may take to start (TensorFlow, the checkpoint) before
# the viewer calls it lost. A bound on a hang, not a speed.
HANDOVER_SECONDS = 300.0


def wait_for_trainer(run_path: Path, process, stop_event: threading.Event, timeout: float = HANDOVER_SECONDS):
    """Wait until `process` holds the run's lock: None, or one sentence on why it did not."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not stop_event.is_set():
        holder = lock_holder(run_path)
        if holder is not None and holder.get("pid") == process.pid:
            return None
        status = process.poll()
        if status is not None:
            return f"The headless trainer (pid {process.pid}) exited with status {status} before it took the run."
        stop_event.wait(0.1)
    if stop_event.is_set():
        return "Left before the headless trainer took the run."
    return f"The headless trainer (pid {process.pid}) did not take the run within {timeout:.0f} s."


class AttachBackend(CoreBackend):
    """The TrainingBackend of a viewer: `fit` follows another process's training instead of training."""

    attached = True

    def __init__(self, run_path: Path, *, offline: bool | None = None):
        super().__init__(TuiOptions(overrides={}, load=Path(run_path), train=False, offline=offline))
        self.run_path = Path(run_path)
        self.reader = EventLogReader(self.run_path)
        self.holder: dict | None = None
        self.who = "the trainer"
        self.handover_until: float | None = None  # after a 'detached' line: how long to wait for the next trainer
        self.continuing = False  # made by again(): the screen has shown the log up to this reader's place
        self.backlog: list[dict] = []  # lines prepare() read that the screen has not shown: fit reports them first

    def again(self) -> AttachBackend:
        """A viewer of the same run for the next trainer that takes it up, reading on where this one stopped."""
        backend = type(self)(self.run_path, offline=self.options.offline)
        backend.reader, backend.continuing = self.reader, True
        return backend

    def prepare(self, status: Log, notice: Log) -> RunInfo:
        self.holder = lock_holder(self.run_path)
        info = self.load_saved(status, notice)
        if self.holder is None:
            # Nobody trains it (it ended, or was killed): show it like --load, with what its log adds.
            if not (self.run_path / WEIGHTS_FILE).is_file() and self.saved is None:
                raise CharlmError(f"{self.run_path} has no weights yet, and nothing is training it.")
            self.can_train = False
            notice(
                f"Nothing is training {self.run_path} now: showing its newest checkpoint. "
                f"R resumes it in a trainer of its own that this screen watches (or: charlm-tui --resume "
                f"{self.run_path})."
            )
        else:
            self.can_train = True
            self.who = holder_name(self.holder)
        read = self.reader.poll()
        self.backlog = read if self.continuing else []  # a first look draws what it read from the history below
        log = self.reader.log
        history = merged_history(info.history, log)
        session = log.session or {}
        if session.get("parameters"):
            info = dataclasses.replace(info, parameters=int(session["parameters"]))
        # The trainer first: a narrow status line cuts its end.
        device = f"trainer {self.who}: {session.get('device', '?')}" if self.holder else "not training"
        last = log.last or {}
        return RunInfo(
            info.run_dir,
            info.corpus_name,
            info.corpus_chars,
            info.parameters,
            device,
            info.vocab,
            info.seq_len,
            info.default_mode,
            int(session.get("batches", 0) or 0),
            int(session.get("epochs") or info.epochs),  # a resume may have given the session new ones
            max([info.epoch, *log.epochs]),
            max(info.step, int(last.get("step", 0))),
            history,
            float(session.get("time_budget", info.time_budget) or 0.0),
            info.elapsed if log.elapsed is None else log.elapsed,  # the log's is the newer (kept every few seconds)
        )

    def load_saved(self, status: Log, notice: Log) -> RunInfo:
        """The run as its folder has it: configuration, vocabulary, corpus, the newest checkpoint's curve.

        Needs no checkpoint (a run is watched from its first batch, long
        before its first epoch ends) and no TensorFlow: generation runs on
        the newest weights file. Only a run without one (made before the
        event log existed) loads its checkpoint through Keras.
        """
        status("opening the run")
        run = RunDirectory.open(self.run_path)
        self.vocab, self.seq_len = run.vocab, run.config.seq_len
        latest = run.latest()
        state = latest.state if latest is not None else None
        name = self._open_corpus(run, notice)
        weights = self._newest_weights()
        if weights is None and latest is not None:
            status("loading TensorFlow")
            start_backend(quiet=False)  # the app sends fd 2 to its log
            self.saved = open_saved_run(self.run_path)
            weights = self.saved.weights
        parameters = 0 if weights is None else parameter_count(weights)
        return RunInfo(
            run.path,
            name,
            0 if self.ids is None else len(self.ids),
            parameters,
            "attached",
            run.vocab,
            run.config.seq_len,
            "stateful" if run.config.predicts_every_position else "window",
            0,
            run.config.epochs,
            state.epoch if state else 0,
            state.step if state else 0,
            state.history if state else History(),
            run.config.time_budget,
            state.elapsed if state else 0.0,
        )

    def publish_weights(self, weight_box) -> None:
        weights = self._newest_weights()
        if weights is not None:
            weight_box.publish(weights)
        else:
            super().publish_weights(weight_box)

    def _newest_weights(self):
        try:
            return read_weights(self.run_path)
        except CharlmError:
            return None  # damaged: the checkpoint's, or the next good file, will do

    def request(self, command: str) -> None:
        """Ask the trainer to pause, resume, save or stop (it acknowledges in the log)."""
        try:
            send_command(self.run_path, command)
        except OSError as error:
            raise CharlmError(f"Cannot reach the trainer through {self.run_path}: {error.strerror or error}.") from None

    def fit(self, report, *, stop_event: threading.Event, pause_event, save_event, weight_box, activity=None):
        """Follow the trainer until it ends or the viewer leaves (`stop_event`); the events it reported."""
        weights_seen = None
        last_alive = time.monotonic()
        if self.reader.log.paused:
            report(TrainingPaused(int((self.reader.log.last or {}).get("step", 0))))
        self.handover_until = None
        backlog, self.backlog = self.backlog, []
        while True:
            ended = self._take_log(report, backlog)
            backlog = []
            if ended is not None:
                self._publish_if_new(weight_box, None)
                return ended
            weights_seen = self._publish_if_new(weight_box, weights_seen)
            if stop_event.is_set():
                return TrainingFinished("left", 0, int((self.reader.log.last or {}).get("step", 0)), None)
            if self.handover_until is not None and time.monotonic() < self.handover_until:
                stop_event.wait(FOLLOW_SECONDS)
                continue
            if time.monotonic() - last_alive >= ALIVE_SECONDS:
                last_alive = time.monotonic()
                if lock_holder(self.run_path) is None:
                    ended = self._take_log(report)  # its last words, if it wrote them after the read above
                    if ended is None:
                        ended = self._lost()
                        report(ended)
                    return ended
            stop_event.wait(FOLLOW_SECONDS)

    def _take_log(self, report, backlog=()):
        """Report the log's new lines (after `backlog`, lines read before) as events; the event that ended the run.

        A session that ends 'detached' is not an end: another process takes
        the run over, and until its session starts (`handover_until`) the
        viewer waits for it rather than calling the trainer lost.
        """
        for record in [*backlog, *self.reader.poll()]:
            event = event_for(record, self.run_path)
            if event is None:
                continue
            if isinstance(event, TrainingFinished) and event.reason == "detached":
                self.handover_until = time.monotonic() + HANDOVER_SECONDS
                report(event)
                continue
            if isinstance(event, TrainingStarted):
                self.handover_until = None
                self._name_trainer()
            report(event)
            if isinstance(event, TrainingFinished | TrainingFailed):
                return event
        return None

    def _name_trainer(self) -> None:
        holder = lock_holder(self.run_path)
        if holder is not None:
            self.holder, self.who = holder, holder_name(holder)

    def _publish_if_new(self, weight_box, seen):
        try:
            stat = os.stat(self.run_path / WEIGHTS_FILE)
        except OSError:
            return seen
        identity = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        if identity == seen:
            return seen
        weights = self._newest_weights()
        if weights is not None:
            weight_box.publish(weights)
        return identity

    def _lost(self) -> TrainingFailed:
        step = int((self.reader.log.last or {}).get("step", 0))
        try:  # complete checkpoints only: one being written sits in a hidden folder until it is whole
            found = sorted(p for p in (self.run_path / "checkpoints").glob("step-*") if p.is_dir())
        except OSError:
            found = []
        newest = found[-1] if found else None
        where = f" Its newest checkpoint is {newest.name}." if newest is not None else ""
        return TrainingFailed(
            f"The trainer ({self.who}) is gone without a word (killed, or its machine went away).{where} "
            f"Press R to resume it in a trainer of its own that this screen watches, or elsewhere: charlm-tui "
            f"--resume {self.run_path}.",
            step,
            newest,
        )


def parameter_count(weights) -> int:
    """The network's parameters, counted from its weights."""
    arrays = [weights.embedding, weights.dense_kernel, weights.dense_bias]
    for layer in weights.lstm:
        arrays += [layer.kernel, layer.recurrent_kernel, layer.bias]
    return int(sum(np.size(a) for a in arrays))


def merged_history(saved: History, log: RunLog) -> History:
    """The checkpoint's curve up to where the log begins, then the log's (newer, and a point every few seconds)."""
    curve = log.curve()
    if not curve:
        return saved
    first = curve[0][0]
    batches = [point for point in saved.batches if point[0] < first] + curve
    epochs = {int(e["epoch"]): dict(e) for e in saved.epochs}
    for number, line in log.epochs.items():
        epochs[number] = {k: line[k] for k in ("epoch", "step", "train_loss", "val_loss", "seconds") if k in line}
    return History(batches=batches, epochs=[epochs[n] for n in sorted(epochs)])


def event_for(record: dict, run_path: Path) -> object | None:
    """The trainer event a log line stands for (None for lines the screen does not show)."""
    kind, step = record.get("type"), int(record.get("step", 0))
    try:
        if kind == "batch":
            rate = float(record.get("chars_per_second", 0.0))
            return BatchFinished(
                int(record["epoch"]),
                int(record["batch"]),
                int(record["batches"]),
                step,
                float(record["loss"]),
                rate,
                rate,
                float(record.get("elapsed", 0.0)),
            )
        if kind == "epoch":
            return EpochFinished(
                int(record["epoch"]),
                step,
                float(record["train_loss"]),
                float(record["val_loss"]),
                float(record.get("seconds", 0.0)),
            )
        if kind == "checkpoint":
            path = run_path / "checkpoints" / str(record.get("name", ""))
            return CheckpointSaved(path, int(record.get("epoch", 0)), step, str(record.get("reason", "")))
        if kind == "paused":
            return TrainingPaused(step)
        if kind == "resumed":
            return TrainingResumed(step)
        if kind == "started":
            return TrainingStarted(
                run_path,
                int(record.get("epoch", 0)),
                step,
                int(record.get("batches", 0)),
                int(record.get("parameters", 0)),
                str(record.get("device", "?")),
                bool(record.get("resumed", False)),
            )
        if kind == "finished":
            return TrainingFinished(str(record.get("reason", "?")), int(record.get("epoch", 0)), step, None)
        if kind == "failed":
            return TrainingFailed(str(record.get("message", "training failed")), step, None)
    except (KeyError, TypeError, ValueError):
        return None  # a line of an unexpected shape: skipped, as a damaged one is
    return None
