"""A fake training backend: real events and real NumPy weights, no TensorFlow, no waiting."""

from __future__ import annotations

import math
import threading
import time
from pathlib import Path

import numpy as np

from tui_charlm.core.checkpoints import History, checkpoint_folder_name
from tui_charlm.core.errors import CharlmError
from tui_charlm.core.events import (
    BatchFinished,
    CheckpointSaved,
    EpochFinished,
    TrainingFailed,
    TrainingFinished,
    TrainingPaused,
    TrainingResumed,
    TrainingStarted,
)
from tui_charlm.core.inference import LSTMWeights, NetworkWeights
from tui_charlm.core.vocab import Vocabulary
from tui_charlm.tui.attach import AttachBackend
from tui_charlm.tui.core_bridge import RunInfo

VOCAB = Vocabulary.from_text('abcdefghijklmnopqrstuvwxyz .,\n"()')


def random_weights(version: int = 0, units: int = 8, seed: int = 0) -> NetworkWeights:
    rng = np.random.default_rng(seed + version)
    v = len(VOCAB)
    layer = LSTMWeights(
        rng.normal(0, 0.5, (4, 4 * units)).astype(np.float32),
        rng.normal(0, 0.5, (units, 4 * units)).astype(np.float32),
        np.zeros(4 * units, np.float32),
    )
    return NetworkWeights(
        rng.normal(0, 1, (v, 4)).astype(np.float32),
        (layer,),
        rng.normal(0, 1, (units, v)).astype(np.float32),
        np.zeros(v, np.float32),
        True,
        16,
        version,
    )


def canned_history(points: int = 200, epochs: int = 3) -> History:
    history = History()
    for step in range(1, points + 1):
        history.batches.append([step, 3.3 * math.exp(-step / 60) + 1.4 + 0.05 * math.sin(step)])
    for epoch in range(1, epochs + 1):
        step = epoch * points // epochs
        history.epochs.append(
            {"epoch": epoch, "step": step, "train_loss": 2.0, "val_loss": 1.5 + 1.5 / epoch, "seconds": 10.0}
        )
    return history


class FakeBackend:
    """Trains nothing, but reports like the trainer and honours the same events."""

    def __init__(
        self,
        *,
        batches_per_epoch: int = 200,
        epochs: int = 3,
        delay: float = 0.02,
        can_train: bool = True,
        prepare_error: str | None = None,
        fail_at_step: int | None = None,
        frozen: bool = False,
        run_dir: Path | None = None,
        time_budget: float = 0.0,
    ):
        self.time_budget = time_budget
        self.batches_per_epoch = batches_per_epoch
        self.epochs = epochs
        self.delay = delay
        self.can_train = can_train
        self.prepare_error = prepare_error
        self.fail_at_step = fail_at_step
        self.frozen = frozen  # report one batch, then wait: a screen that stays the same (snapshots)
        self.run_dir = run_dir or Path("/tmp/fake-run")
        self.saves: list[str] = []
        self.max_step = 0
        self.seeds = 0

    def prepare(self, status, notice) -> RunInfo:
        status("loading the fake")
        if self.prepare_error:
            raise CharlmError(self.prepare_error)
        history = canned_history() if self.frozen else History()
        return RunInfo(
            self.run_dir,
            "fake corpus",
            123_456,
            4_321,
            "CPU",
            VOCAB,
            16,
            "stateful",
            self.batches_per_epoch,
            self.epochs,
            0,
            0,
            history,
            self.time_budget,
        )

    def publish_weights(self, box) -> None:
        box.publish(random_weights())

    def random_seed(self, rng, length):
        self.seeds += 1
        word = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")[self.seeds % 10]
        return f"seed number {word} for the fake", f"random corpus slice at char {self.seeds * 100}"

    def heldout_text(self, length):
        text = 'he said "one (two) three"\nand then "four, five"\n(six) seven.\n' * 40
        return text[:length], "the start of the held-out text"

    def fit(
        self,
        report,
        *,
        stop_event: threading.Event,
        pause_event: threading.Event,
        save_event: threading.Event,
        weight_box,
        activity=None,
    ):
        weight_box.publish(random_weights())
        report(TrainingStarted(self.run_dir, 0, 0, self.batches_per_epoch, 4_321, "CPU", False))
        step = 0

        def save(reason):
            self.saves.append(reason)
            report(
                CheckpointSaved(
                    self.run_dir / "checkpoints" / checkpoint_folder_name(step),
                    step // self.batches_per_epoch,
                    step,
                    reason,
                )
            )

        if self.frozen:
            time.sleep(0.3)  # past the reporter's coalescing interval, so this batch is shown at once
            report(BatchFinished(0, 5, self.batches_per_epoch, 205, 1.61, 12_345.0, 11_900.0, 65.0))
            stop_event.wait()
            save("stopped")
            report(TrainingFinished("stopped", 0, 205, None))
            return
        for epoch in range(self.epochs):
            for batch in range(1, self.batches_per_epoch + 1):
                step += 1
                self.max_step = step
                loss = 3.0 * math.exp(-step / 30) + 1.0
                if self.fail_at_step == step:
                    failure = TrainingFailed(f"The loss became nan at step {step}; training stopped.", step, None)
                    report(failure)
                    return failure
                report(
                    BatchFinished(
                        epoch, batch, self.batches_per_epoch, step, loss, 10_000.0, 9_500.0, step * self.delay
                    )
                )
                if step % 5 == 0:
                    weight_box.publish(random_weights(step))
                if pause_event.is_set():
                    report(TrainingPaused(step))
                    while pause_event.is_set() and not stop_event.is_set():
                        if save_event.is_set():
                            save_event.clear()
                            save("requested")
                        time.sleep(0.01)
                    report(TrainingResumed(step))
                if save_event.is_set():
                    save_event.clear()
                    save("requested")
                if stop_event.is_set():
                    save("stopped")
                    report(TrainingFinished("stopped", epoch, step, None))
                    return
                time.sleep(self.delay)
            report(EpochFinished(epoch + 1, step, loss, loss + 0.1, 1.0))
            save("epoch")
        report(TrainingFinished("completed", self.epochs, step, None))


def write_trainer_files(run: Path, *, pid: int = 4242, host: str = "gpu-box", paused: bool = True) -> None:
    """What a trainer in another process leaves in its run folder: its lock owner, event log and newest weights.

    The caller holds `run/.lock` (as the trainer would). The log is the one
    a run of the fake's size writes: a session start, batch lines to step
    205, an epoch end with its held-out loss, a checkpoint, and a pause.
    """
    import json

    from tui_charlm.core.live_weights import publish_weights

    run.mkdir(parents=True, exist_ok=True)
    (run / ".lock-owner").write_text(json.dumps({"pid": pid, "host": host, "since": "2026-12-02 09:00:00"}))
    lines = [
        {
            "type": "started",
            "step": 0,
            "epoch": 0,
            "batches": 200,
            "parameters": 4_321,
            "resumed": False,
            "device": "GPU: NVIDIA H200 (cuDNN)",
            "pid": pid,
            "host": host,
            "version": 1,
        },
    ]
    for step in range(5, 206, 5):
        loss = 3.3 * math.exp(-step / 60) + 1.4 + 0.05 * math.sin(step)
        lines.append(
            {
                "type": "batch",
                "step": step,
                "epoch": step // 200,
                "batch": step % 200 or 200,
                "batches": 200,
                "loss": loss,
                "chars_per_second": 812_345.0,
                "elapsed": step * 0.3,
            }
        )
        if step == 200:
            lines.append(
                {"type": "epoch", "step": 200, "epoch": 1, "train_loss": 2.0, "val_loss": 1.75, "seconds": 60.0}
            )
            lines.append({"type": "checkpoint", "step": 200, "epoch": 1, "name": "step-00000200", "reason": "epoch"})
    if paused:
        lines.append({"type": "paused", "step": 205})
    text = "".join(json.dumps({"time": 1_764_666_000.0 + i, **line}) + "\n" for i, line in enumerate(lines))
    (run / "events.jsonl").write_text(text)
    publish_weights(run, random_weights())


class FollowingBackend(AttachBackend):
    """The real viewer (it follows the run folder's log, weights and lock), with the run's checkpoint faked:

    no TensorFlow, the fake's vocabulary and seeds.
    """

    def load_saved(self, status, notice) -> RunInfo:
        """The fake's run, with the budget and the training time of the run folder's config and checkpoint
        where the test made them."""
        from tui_charlm.core.checkpoints import RunDirectory

        budget = elapsed = 0.0
        if (self.run_path / "config.json").is_file():
            run = RunDirectory.open(self.run_path)
            latest = run.latest()
            budget, elapsed = run.config.time_budget, latest.state.elapsed if latest else 0.0
        return RunInfo(
            self.run_path,
            "fake corpus",
            123_456,
            4_321,
            "attached",
            VOCAB,
            16,
            "stateful",
            200,
            3,
            time_budget=budget,
            elapsed=elapsed,
        )

    def random_seed(self, rng, length):
        return "seed number one for the fake", "random corpus slice at char 100"

    def heldout_text(self, length):
        return FakeBackend.heldout_text(self, length)
