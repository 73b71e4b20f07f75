"""The trainer: `model.fit` in the caller's thread, steered by threading.Events.

One `fit` call per epoch over that epoch's deterministic window order, so a
run resumed from a mid-epoch checkpoint skips exactly the batches already
trained and continues the same loss curve. Between batches the trainer
reports progress, honours pause / stop / save-now requests, enforces the
time budget and stops on a non-finite loss without saving the bad weights.
"""

from __future__ import annotations

import math
import threading
import time
from typing import Callable

from tui_charlm.core.checkpoints import RunDirectory, TrainingState
from tui_charlm.core.dataset import Split, Windows
from tui_charlm.core.errors import CharlmError
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

Report = Callable[[object], None]
# After each epoch, like the recipe: this many chars at each of these temperatures, into samples.txt.
SAMPLE_CHARS = 200
SAMPLE_TEMPERATURES = (0.2, 0.5, 1.0, 1.2)
# Weight of the newest batch in the smoothed chars/s figure.
_RATE_SMOOTHING = 0.1


class Trainer:
    """Trains one model on one split, checkpointing into one run directory."""

    def __init__(self, run: RunDirectory, model, split: Split, state: TrainingState | None = None,
                 *, device: str = "CPU", resumed: bool = False, log: Callable[[str], None] = lambda message: None):
        from tui_charlm.core.devices import MIRRORED_STEPS_PER_EXECUTION, replicas

        self.run = run
        self.config = run.config
        self.model = model
        self.state = state or TrainingState()
        self.device = device
        self.resumed = resumed
        self.split = split
        self.replicas = replicas(model)
        self.train_windows = Windows(split.train, self.config, shuffle=True, replicas=self.replicas)
        heldout = split.heldout[: self.config.val_max_chars]
        self.heldout_windows = Windows(heldout, self.config, shuffle=False, replicas=self.replicas)
        self._continue_epoch_in_new_batches()
        latest = run.latest() if resumed else None
        self.last_checkpoint = latest.path if latest else None
        # Read when fit() builds its train function (a resumed model may have been saved with another value).
        steps = self.config.steps_per_execution
        if self.config.strategy == "mirrored" and steps != MIRRORED_STEPS_PER_EXECUTION:
            log(f"Note: --strategy mirrored runs {MIRRORED_STEPS_PER_EXECUTION} batch per TensorFlow call "
                f"(Keras cannot run {steps} under MirroredStrategy: keras-team/keras#19246).")
            steps = MIRRORED_STEPS_PER_EXECUTION
        model.steps_per_execution = steps

    def _continue_epoch_in_new_batches(self) -> None:
        """Re-count a mid-epoch position saved with another global batch size (a different number of replicas).

        The epoch's window order does not depend on the batch size, so the
        windows already trained stay skipped: rounded down, at most one batch
        of them is trained again.
        """
        state, batch = self.state, self.train_windows.batch_size
        if state.batch_size and state.batch_size != batch and state.batch_in_epoch:
            state.batch_in_epoch = state.batch_in_epoch * state.batch_size // batch
        state.batch_size = batch

    # -- the loop ------------------------------------------------------------

    def schedule_fraction(self, session_seconds: float) -> float:
        """How far through its schedule the run is, 0..1: this session's time budget if set, else the epochs."""
        if self.config.time_budget:
            return min(1.0, session_seconds / self.config.time_budget)
        total = self.config.epochs * max(1, self.train_windows.num_batches(0))
        return min(1.0, self.state.step / total)

    def learning_rate(self, session_seconds: float) -> float:
        """The learning rate for the next batch under the config's schedule."""
        from tui_charlm.core.config import COOLDOWN_START, LR_FLOOR

        base = self.config.learning_rate
        if self.config.lr_schedule == "constant":
            return base
        fraction = self.schedule_fraction(session_seconds)
        if self.config.lr_schedule == "cooldown":
            left = min(1.0, (1 - fraction) / (1 - COOLDOWN_START))  # 1 until COOLDOWN_START, then down to 0
        else:
            left = 0.5 * (1 + math.cos(math.pi * fraction))
        return base * (LR_FLOOR + (1 - LR_FLOOR) * left)

    def snapshot(self):
        """The current weights as a NumPy NetworkWeights snapshot (a copy, safe to hand to another thread)."""
        from tui_charlm.core.inference import weights_from_model

        return weights_from_model(self.model, seq_len=self.config.seq_len, version=self.state.step)

    def write_samples(self) -> SamplesWritten:
        """Generate from a held-out seed at the recipe's temperatures and append the text to samples.txt."""
        import numpy as np

        from tui_charlm.core.generation import Generator
        from tui_charlm.core.sampling import SamplingSettings

        state, heldout = self.state, self.split.heldout
        rng = np.random.default_rng([self.config.seed, state.epoch])
        length = min(60, self.config.seq_len, len(heldout) - 1)
        start = int(rng.integers(0, max(1, len(heldout) - length)))
        seed = self.run.vocab.decode(heldout[start:start + length])
        generator = Generator(self.snapshot(), self.run.vocab, [SamplingSettings(t) for t in SAMPLE_TEMPERATURES],
                              seed_text=seed, rng_seed=int(rng.integers(2**31)))
        samples = dict(zip(SAMPLE_TEMPERATURES, generator.generate(SAMPLE_CHARS)))
        lines = [f"=== epoch {state.epoch}, step {state.step}, {generator.mode} mode; seed: {seed!r}"]
        lines += [f"--- T={t}\n{text}" for t, text in samples.items()]
        try:
            self.run.append_samples("\n".join(lines) + "\n\n")
        except OSError:
            pass  # samples are a log for reading; a full disk is reported by the checkpoint that follows
        return SamplesWritten(state.epoch, state.step, seed, samples)

    def fit(self, report: Report = lambda event: None, *, stop_event: threading.Event | None = None,
            pause_event: threading.Event | None = None, save_event: threading.Event | None = None,
            weight_box=None, snapshot_every: int = 20):
        """Train until the epochs are done, the time budget is spent, or `stop_event` is set.

        `pause_event` set means paused (checked between batches); setting
        `save_event` writes a checkpoint at the next batch boundary. With a
        `weight_box` (generation.WeightBox), a snapshot of the weights is
        published before the first batch, every `snapshot_every` batches and
        at each epoch end, for generator threads to pick up. Returns the
        final TrainingFinished or TrainingFailed event, also reported.
        """
        import keras

        stop_event = stop_event or threading.Event()
        pause_event = pause_event or threading.Event()
        save_event = save_event or threading.Event()
        config, state = self.config, self.state
        clock = _Clock(state.elapsed)
        outcome: dict[str, object] = {}
        last_save = [time.perf_counter()]
        trainer = self

        def save(reason: str) -> None:
            path = trainer.run.save_checkpoint(trainer.model, trainer.state)
            trainer.last_checkpoint = path
            last_save[0] = time.perf_counter()
            report(CheckpointSaved(path, trainer.state.epoch, trainer.state.step, reason))

        class BatchHook(keras.callbacks.Callback):
            """Runs between TensorFlow calls (each `steps_per_execution` batches): report, then pause / save / stop.

            Keras numbers batches within this fit() call; begin and end give
            how many batches the call ran (fewer at the end of an epoch).
            """

            def __init__(self, epoch: int, batches: int, skip: int):
                super().__init__()
                self.epoch, self.batches, self.done = epoch, batches, skip
                self.begin = 0
                self.rate = 0.0
                self.tick = time.perf_counter()
                self.first = True  # the first call of a fit() includes graph tracing: keep it out of chars/s

            def on_train_batch_begin(self, batch, logs=None):
                # Reset the running mean so logs["loss"] is the mean over this call's batches alone.
                self.model.reset_metrics()
                self.begin = batch
                if config.lr_schedule != "constant":
                    self.model.optimizer.learning_rate = trainer.learning_rate(clock.session())

            def on_train_batch_end(self, batch, logs=None):
                loss = float((logs or {}).get("loss", math.nan))
                # Keras may number a short last call as a full one when the dataset's length is unknown.
                ran = max(1, min(batch - self.begin + 1, self.batches - self.done))
                now = time.perf_counter()
                if not math.isfinite(loss):
                    outcome["failed"] = (
                        f"The loss became {loss} by step {state.step + ran}; training stopped and the bad weights "
                        f"were not saved. Try a lower --learning-rate or a --clipnorm."
                    )
                    self.model.stop_training = True
                    return
                before = state.step
                self.done += ran
                state.step += ran
                state.batch_in_epoch = self.done
                state.epoch_loss_sum += loss * ran
                state.elapsed = clock.elapsed()
                state.history.add_batch(state.step, loss)
                seconds = max(now - self.tick, 1e-9)
                instant = ran * trainer.train_windows.targets_per_batch() / seconds
                if not self.first or self.rate == 0.0:
                    self.rate = instant if self.rate == 0.0 or self.first else (
                        (1 - _RATE_SMOOTHING) * self.rate + _RATE_SMOOTHING * instant)
                self.first = False
                report(BatchFinished(self.epoch, self.done, self.batches, state.step, loss, self.rate, state.elapsed))
                every = max(snapshot_every, 1)
                if weight_box is not None and state.step // every != before // every:
                    weight_box.publish(trainer.snapshot())
                if pause_event.is_set():
                    clock.pause()
                    report(TrainingPaused(state.step))
                    while pause_event.is_set() and not stop_event.is_set():
                        if save_event.is_set():
                            save_event.clear()
                            save("requested")
                        stop_event.wait(0.05)
                    clock.resume()
                    report(TrainingResumed(state.step))
                if save_event.is_set():
                    save_event.clear()
                    save("requested")
                elif config.checkpoint_every and time.perf_counter() - last_save[0] >= config.checkpoint_every:
                    save("interval")
                if stop_event.is_set():
                    outcome["stopped"] = "stopped"
                    self.model.stop_training = True
                elif config.time_budget and clock.session() >= config.time_budget:
                    outcome["stopped"] = "time budget"
                    self.model.stop_training = True
                self.tick = time.perf_counter()

        if weight_box is not None:
            weight_box.publish(self.snapshot())
        report(TrainingStarted(self.run.path, state.epoch, state.step, self.train_windows.num_batches(state.epoch),
                               int(self.model.count_params()), self.device, self.resumed))
        try:
            while state.epoch < config.epochs and not outcome:
                epoch = state.epoch
                batches = self.train_windows.num_batches(epoch)
                skip = min(state.batch_in_epoch, batches)
                started = time.perf_counter()
                if skip < batches:
                    hook = BatchHook(epoch, batches, skip)
                    self.model.fit(self.train_windows.tf_dataset(epoch, skip), epochs=1, verbose=0, shuffle=False,
                                   callbacks=[hook])
                if "failed" in outcome:
                    failure = TrainingFailed(str(outcome["failed"]), state.step, self.last_checkpoint)
                    report(failure)
                    return failure
                if outcome:
                    break
                val_loss = float(self.model.evaluate(self.heldout_windows.tf_dataset(0), verbose=0))
                train_loss = state.epoch_loss_sum / max(batches, 1)
                state.epoch += 1
                state.batch_in_epoch = 0
                state.epoch_loss_sum = 0.0
                state.elapsed = clock.elapsed()
                seconds = time.perf_counter() - started
                state.history.epochs.append({"epoch": state.epoch, "step": state.step, "train_loss": train_loss,
                                             "val_loss": val_loss, "seconds": seconds})
                report(EpochFinished(state.epoch, state.step, train_loss, val_loss, seconds))
                if weight_box is not None:
                    weight_box.publish(self.snapshot())
                if math.isfinite(val_loss):
                    report(self.write_samples())
                if not math.isfinite(val_loss):
                    failure = TrainingFailed(f"The held-out loss became {val_loss} after epoch {state.epoch}; "
                                             f"the bad weights were not saved.", state.step, self.last_checkpoint)
                    report(failure)
                    return failure
                save("epoch")
                if stop_event.is_set():
                    outcome["stopped"] = "stopped"
                elif config.time_budget and clock.session() >= config.time_budget:
                    outcome["stopped"] = "time budget"
            reason = str(outcome.get("stopped", "completed"))
            state.elapsed = clock.elapsed()
            if self.last_checkpoint is None or self.last_checkpoint.name != f"step-{state.step:08d}":
                save(reason)
            finished = TrainingFinished(reason, state.epoch, state.step, self.last_checkpoint)
            report(finished)
            return finished
        except CharlmError as error:
            failure = TrainingFailed(str(error), state.step, self.last_checkpoint)
            report(failure)
            return failure


class _Clock:
    """Training time: this session's wall time minus pauses, plus earlier sessions'."""

    def __init__(self, earlier: float):
        self.earlier = earlier
        self.start = time.perf_counter()
        self.paused_total = 0.0
        self.paused_at: float | None = None

    def pause(self) -> None:
        if self.paused_at is None:
            self.paused_at = time.perf_counter()

    def resume(self) -> None:
        if self.paused_at is not None:
            self.paused_total += time.perf_counter() - self.paused_at
            self.paused_at = None

    def session(self) -> float:
        """Seconds trained in this session."""
        now = self.paused_at if self.paused_at is not None else time.perf_counter()
        return now - self.start - self.paused_total

    def elapsed(self) -> float:
        """Seconds trained across sessions."""
        return self.earlier + self.session()
