"""The trainer: one training loop in the caller's thread, steered by threading.Events.

The loop drives Keras' own compiled training function (several batches per
call) over one feed of batches that runs through every epoch of the
session: on TensorFlow a tf.data iterator, on JAX NumPy batches
(core/backend.py holds all that differs). Keras' `fit` makes a fresh iterator per epoch, and tearing a
tf.data iterator down can sit idle for many seconds, so a `fit` per epoch
left the CPU doing nothing at every epoch end. Each epoch's window order is
deterministic, so a run resumed from a mid-epoch checkpoint skips exactly
the batches already trained and continues the same loss curve. Between
TensorFlow calls the trainer reports progress, honours pause / stop /
save-now requests, enforces the time budget and stops on a non-finite loss
without saving the bad weights.
"""

from __future__ import annotations

import dataclasses
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from contextlib import contextmanager, nullcontext

import numpy as np

from tui_charlm.core.backend import backend_name, train_call, training_feed
from tui_charlm.core.checkpoints import (
    RunDirectory,
    TrainingState,
    checkpoint_folder_name,
)
from tui_charlm.core.config import (
    AUTO_DROPOUT_JUDGE_SECONDS,
    AUTO_DROPOUT_LATE_EPOCHS,
    AUTO_DROPOUT_MIN_EPOCHS,
    COOLDOWN_START,
    LR_FLOOR,
)
from tui_charlm.core.control import ControlReader
from tui_charlm.core.dataset import Split, Windows
from tui_charlm.core.devices import MIRRORED_STEPS_PER_EXECUTION, replicas
from tui_charlm.core.distributed import agree
from tui_charlm.core.errors import CharlmError
from tui_charlm.core.eventlog import EventLogWriter
from tui_charlm.core.events import (
    BatchFinished,
    CheckpointSaved,
    EpochFinished,
    EpochTimed,
    SamplesWritten,
    TrainingFailed,
    TrainingFinished,
    TrainingPaused,
    TrainingResumed,
    TrainingStarted,
)
from tui_charlm.core.generation import Generator
from tui_charlm.core.inference import weights_from_model
from tui_charlm.core.live_weights import WEIGHTS_SECONDS, publish_weights
from tui_charlm.core.model import dropout_as_configured, prepare_to_train, random_states, set_dropout
from tui_charlm.core.sampling import RECIPE_TEMPERATURES, SamplingSettings
from tui_charlm.core.stopping import CALLS, SAVES, Activity

Report = Callable[[object], None]
# After each epoch, like the recipe: this many chars at each of these temperatures, into samples.txt.
SAMPLE_CHARS = 200
# Windows per held-out batch (a multiple of the replicas): large batches score faster, and the mean is the same.
HELDOUT_BATCH_WINDOWS = 1024
# The chars/s figure covers this many seconds of wall time, everything between TensorFlow calls included.
RATE_WINDOW_SECONDS = 10.0


class Trainer:
    """Trains one model on one split, checkpointing into one run directory."""

    def __init__(
        self,
        run: RunDirectory,
        model,
        split: Split,
        state: TrainingState | None = None,
        *,
        device: str = "CPU",
        resumed: bool = False,
        log: Callable[[str], None] = lambda message: None,
        cluster=None,
    ):
        self.run = run
        self.config = run.config
        self.model = model
        self.state = state or TrainingState()
        self.device = device
        self.resumed = resumed
        self.split = split
        # Training over several processes (distributed.Cluster), or None for one: only process 0 writes files.
        self.cluster = cluster
        self.writer = cluster is None or cluster.writer
        self.replicas = replicas(model)
        self.train_windows = Windows(split.train, self.config, shuffle=True, replicas=self.replicas)
        heldout = split.heldout[: self.config.val_max_chars]
        # Scoring needs no gradients, so held-out batches are large: fewer calls, about 40% less time per epoch.
        scoring = dataclasses.replace(
            self.config, batch_size=max(self.config.batch_size, HELDOUT_BATCH_WINDOWS // self.replicas)
        )
        self.heldout_windows = Windows(heldout, scoring, shuffle=False, replicas=self.replicas)
        # Held-out windows are few (at most val_max_chars): gathered once, scored batch by batch every epoch.
        self.heldout_batches = list(self.heldout_windows.iterate(0))
        self._continue_epoch_in_new_batches()
        latest = run.latest() if resumed and self.writer else None
        self.last_checkpoint = latest.path if latest else None
        # Why a run ends when its stop_event is set: 'stopped', or 'detached' when a headless trainer takes it over.
        self.stop_reason = "stopped"
        self.log = log
        # Read when fit() builds its train function (a resumed model may have been saved with another value).
        steps = self.config.steps_per_execution
        if self.config.strategy == "mirrored" and steps != MIRRORED_STEPS_PER_EXECUTION:
            log(
                f"Note: --strategy mirrored runs {MIRRORED_STEPS_PER_EXECUTION} batch per TensorFlow call "
                f"(Keras cannot run {steps} under MirroredStrategy: keras-team/keras#19246)."
            )
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

    def schedule_fraction(self, elapsed: float) -> float:
        """How far through its schedule the run is, 0..1: the run's time budget if set, else its epochs.

        Both count the whole run across resumes (`elapsed` is the run's
        training seconds, `state.step` its steps), so a resumed run goes on
        with the rates it would have had.
        """
        if self.config.time_budget:
            return min(1.0, elapsed / self.config.time_budget)
        total = self.config.epochs * max(1, self.train_windows.num_batches(0))
        return min(1.0, self.state.step / total)

    def learning_rate(self, elapsed: float) -> float:
        """The learning rate for the next batch under the config's schedule, `elapsed` training seconds in."""
        base = self.config.learning_rate
        if self.config.lr_schedule == "constant":
            return base
        fraction = self.schedule_fraction(elapsed)
        if self.config.lr_schedule == "cooldown":
            left = min(1.0, (1 - fraction) / (1 - COOLDOWN_START))  # 1 until COOLDOWN_START, then down to 0
        else:
            left = 0.5 * (1 + math.cos(math.pi * fraction))
        return base * (LR_FLOOR + (1 - LR_FLOOR) * left)

    def dropout_rate(self, epoch: int, step: int) -> float:
        """The dropout rate the batch after `step` (in epoch `epoch`, 0-based) trains with.

        An explicit --dropout-start is an epoch. 'auto' follows how long the
        run will train, in epochs: with a --time-budget, once the pace of the
        first calls has shown how long an epoch takes (_judge_auto_dropout),
        dropout is on from there if the budget holds at least
        AUTO_DROPOUT_MIN_EPOCHS of them, and off for the whole run if not
        (the decision is kept in every checkpoint's state, so a resume
        trains the same); without a budget, from epoch
        AUTO_DROPOUT_LATE_EPOCHS + 1.
        """
        config = self.config
        if not config.dropout:
            return 0.0
        if config.dropout_start >= 0 or not config.time_budget:
            start = config.dropout_start if config.dropout_start >= 0 else AUTO_DROPOUT_LATE_EPOCHS
            return config.dropout if epoch >= start else 0.0
        on_from = self.state.auto_dropout.get("step")
        return config.dropout if on_from is not None and step >= on_from else 0.0

    def _judging_dropout(self) -> bool:
        """True while a budgeted run with --dropout-start auto has yet to decide on dropout."""
        config = self.config
        return config.dropout_start < 0 and bool(config.time_budget and config.dropout) and not self.state.auto_dropout

    def _judge_auto_dropout(
        self, epoch_seconds: float, warm_up: float, pace: str | None, on_from: int | None = None
    ) -> bool:
        """Decide --dropout-start auto from an epoch's training time and say so; True if dropout is on.

        The budget less the warm-up of the first calls (their tracing and
        compiling, which later epochs do not pay), over the epoch's time, is
        the epochs it holds: the count the threshold was fitted on (epochs
        trained in a budget). Dropout is on from `on_from` (default: this
        step). `pace` says how the epoch was timed; None decides silently
        (a decision said when it was first made).
        """
        config, state = self.config, self.state
        holds = (config.time_budget - warm_up) / max(epoch_seconds, 1e-9)
        on = holds >= AUTO_DROPOUT_MIN_EPOCHS
        on_from = state.step if on_from is None else on_from
        state.auto_dropout = {"holds": round(holds, 2), "step": on_from if on else None}
        if pace is None:
            return on
        if on:
            self.log(
                f"Dropout {config.dropout:g} on from step {on_from}: the {config.time_budget:g}-s budget holds "
                f"about {holds:.0f} epochs at {pace}, at least the {AUTO_DROPOUT_MIN_EPOCHS} for which dropout pays "
                f"off (--dropout-start N chooses by hand)."
            )
        else:
            self.log(
                f"No dropout in this run: its {config.time_budget:g}-s budget holds about {holds:.0f} epochs at "
                f"{pace}, fewer than the {AUTO_DROPOUT_MIN_EPOCHS} that dropout needs to pay off (--dropout-start N "
                f"turns it on)."
            )
        return on

    def _judge_from_the_first_epoch(self) -> bool:
        """Decide --dropout-start auto from the first epoch's recorded time where no earlier judgement was made:
        a first epoch shorter than the judging time, or a run saved before judgements were kept (which then
        trains as it would have: dropout from the 2nd epoch if the first showed enough, said back then)."""
        first = self.state.history.epochs[0]
        seconds = float(first.get("elapsed") or first.get("seconds") or 0.0)
        warm_up = min(float(first.get("warm_up", 0.0) or 0.0), seconds / 2)
        at_its_end = self.state.step == int(first["step"])
        pace = "the first epoch's pace (its warm-up not counted)" if at_its_end else None
        return self._judge_auto_dropout(seconds - warm_up, warm_up, pace, on_from=int(first["step"]))

    def budget_spent(self, elapsed: float) -> bool:
        """True when the run has trained for its whole --time-budget (counted across resumes)."""
        return bool(self.config.time_budget) and elapsed >= self.config.time_budget

    def snapshot(self):
        """The current weights as a NumPy NetworkWeights snapshot (a copy, safe to hand to another thread)."""
        return weights_from_model(self.model, seq_len=self.config.seq_len, version=self.state.step)

    def write_samples(self) -> SamplesWritten:
        """Generate from a held-out seed at the recipe's temperatures and append the text to samples.txt."""

        state, heldout = self.state, self.split.heldout
        rng = np.random.default_rng([self.config.seed, state.epoch])
        length = min(60, self.config.seq_len, len(heldout) - 1)
        start = int(rng.integers(0, max(1, len(heldout) - length)))
        seed = self.run.vocab.decode(heldout[start : start + length])
        generator = Generator(
            self.snapshot(),
            self.run.vocab,
            [SamplingSettings(t) for t in RECIPE_TEMPERATURES],
            seed_text=seed,
            rng_seed=int(rng.integers(2**31)),
        )
        samples = dict(zip(RECIPE_TEMPERATURES, generator.generate(SAMPLE_CHARS)))
        lines = [f"=== epoch {state.epoch}, step {state.step}, {generator.mode} mode; seed: {seed!r}"]
        lines += [f"--- T={t}\n{text}" for t, text in samples.items()]
        try:
            self.run.append_samples("\n".join(lines) + "\n\n")
        except OSError:
            pass  # samples are a log for reading; a full disk is reported by the checkpoint that follows
        return SamplesWritten(state.epoch, state.step, seed, samples)

    def heldout_loss(self) -> float:
        """Mean loss per char on the held-out windows, batch by batch (no tf.data iterator to tear down)."""
        total = count = 0.0
        for inputs, targets in self.heldout_batches:
            loss = self.model.test_on_batch(inputs, targets)
            total += float(loss) * len(inputs)
            count += len(inputs)
        return total / max(count, 1.0)

    def fit(
        self,
        report: Report = lambda event: None,
        *,
        stop_event: threading.Event | None = None,
        pause_event: threading.Event | None = None,
        save_event: threading.Event | None = None,
        weight_box=None,
        snapshot_every: int = 20,
        activity: Activity | None = None,
    ):
        """Train until the epochs are done, the time budget is spent, or `stop_event` is set.

        `pause_event` set means paused (checked between TensorFlow calls);
        setting `save_event` writes a checkpoint at the next call boundary.
        With a `weight_box` (generation.WeightBox), a snapshot of the weights
        is published before the first batch, every `snapshot_every` batches
        and at each epoch end, for generator threads to pick up. With an
        `activity` (stopping.Activity), each piece of work is marked on it, so
        a stop knows how long to wait for the checkpoint. Returns the final
        TrainingFinished or TrainingFailed event, also reported.
        """
        if self.cluster is None:
            return self._fit(report, stop_event, pause_event, save_event, weight_box, snapshot_every, activity)
        from tui_charlm.core.distributed import scope

        with scope():  # Keras keeps its distribution per thread: this one trains the replicated model
            return self._fit(report, stop_event, pause_event, save_event, weight_box, snapshot_every, activity)

    def _fit(self, report, stop_event, pause_event, save_event, weight_box, snapshot_every, activity):
        # Everything reported also goes to the run's events.jsonl, for viewers in other processes.
        if self.writer:
            report = _Tee(report, EventLogWriter(self.run.path))
        stop_event = stop_event or threading.Event()
        pause_event = pause_event or threading.Event()
        save_event = save_event or threading.Event()
        # Viewers in other processes steer through the run folder (control.py): the same events as the keys.
        control = (
            ControlReader(self.run.path, stop_event=stop_event, pause_event=pause_event, save_event=save_event)
            if self.writer
            else _NoControl()
        )
        config, state, model = self.config, self.state, self.model
        clock = _Clock(state.elapsed)
        rate = _Rate(RATE_WINDOW_SECONDS)
        spent = _TimeSpent(activity)
        last_save = time.perf_counter()
        saved_elapsed = state.elapsed  # the training time the newest checkpoint on disk holds
        steps = max(1, int(model.steps_per_execution))
        # (training time, step) at the start and after each of this session's first two calls in the first
        # epoch, on the clock all processes agree on (so they all judge alike): the first call also traces and
        # compiles, which the pace of later calls does not pay (_judge_auto_dropout).
        warm_marks: list[tuple[float, int]] = []

        def warm_up(pace: float) -> float:
            # The first call's time beyond what its batches take at `pace` (seconds a batch): its warm-up.
            (start, start_step), (one, one_step) = warm_marks[:2]
            return max(0.0, (one - start) - pace * (one_step - start_step))

        def judge_by_pace(now: float, batches: int) -> bool:
            # --dropout-start auto, judged by the pace of this session's calls after its first two, up to `now`
            # (training time), for an epoch of `batches`.
            two, two_step = warm_marks[2]
            pace = (now - two) / max(state.step - two_step, 1)  # seconds a batch, warm-up done
            judged = f"the pace of its calls after the first two ({pace * 1000:.0f} ms a batch)"
            return self._judge_auto_dropout(pace * batches, warm_up(pace), judged)

        def agreed() -> tuple[float, bool, bool]:
            # (training time, paused, stopped): this process's own, or over several, agreed between them all.
            elapsed = clock.elapsed()
            if self.cluster is None:
                return elapsed, pause_event.is_set(), stop_event.is_set()
            with spent.on("agreeing"):  # a collective: what it costs shows in each epoch's time line
                return agree(self.cluster, elapsed=elapsed, pause=pause_event.is_set(), stop=stop_event.is_set())

        def save(reason: str) -> None:
            nonlocal last_save, saved_elapsed
            if not self.writer:
                return
            with spent.on(SAVES):
                state.random_states = random_states(model)
                state.backend = backend_name()
                with dropout_as_configured(model, config.dropout), self._saving():
                    path = self.run.save_checkpoint(model, state)
            self.last_checkpoint = path
            saved_elapsed = state.elapsed
            last_save = time.perf_counter()
            report(CheckpointSaved(path, state.epoch, state.step, reason))

        last_file = float("-inf")

        def publish() -> None:
            if weight_box is not None:
                with spent.on("snapshots"):
                    weight_box.publish(self.snapshot())

        def publish_file(force: bool = False) -> None:
            # The newest weights for viewers in other processes (live_weights.py): every few seconds.
            nonlocal last_file
            if not self.writer:
                return
            if force or time.perf_counter() - last_file >= WEIGHTS_SECONDS:
                with spent.on("snapshots"):
                    try:
                        publish_weights(self.run.path, self.snapshot())
                    except OSError:
                        pass  # for watching only: a full disk is reported by the next checkpoint
                last_file = time.perf_counter()

        def fail(message: str) -> TrainingFailed:
            failure = TrainingFailed(message, state.step, self.last_checkpoint)
            report(failure)
            return failure

        publish()
        report(
            TrainingStarted(
                self.run.path,
                state.epoch,
                state.step,
                self.train_windows.num_batches(state.epoch),
                int(model.count_params()),
                self.device,
                self.resumed,
                self.config.time_budget,
                self.config.epochs,
            )
        )
        reason = None
        elapsed, _, stopped = agreed()
        warm_marks.append((elapsed, state.step))
        if state.epoch >= config.epochs:
            reason = "completed"
        elif self.budget_spent(state.elapsed):
            reason = "time budget"
        elif stopped:
            reason = self.stop_reason  # asked before the first batch (a hang-up while loading, say): save and stop
        try:
            batches_left = None
            if reason is None:
                with spent.on("set-up"):
                    batches_left = self._batch_iterator()
            while reason is None:
                batches = self.train_windows.num_batches(state.epoch)
                if state.batch_in_epoch < batches:
                    ran = min(steps, batches - state.batch_in_epoch)
                    if config.lr_schedule != "constant":
                        # Over several processes, the time they agreed on at the last call (process 0's).
                        model.optimizer.learning_rate = self.learning_rate(
                            clock.elapsed() if self.cluster is None else elapsed
                        )
                    with spent.on(CALLS):
                        loss = self._train_call(batches_left, ran, steps)
                    if not math.isfinite(loss):
                        return fail(
                            f"The loss became {loss} by step {state.step + ran}; training stopped and the "
                            f"bad weights were not saved. Try a lower --learning-rate or a --clipnorm."
                        )
                    before = state.step
                    state.step += ran
                    state.batch_in_epoch += ran
                    state.epoch_loss_sum += loss * ran
                    state.elapsed = clock.elapsed()
                    state.history.add_batch(state.step, loss)
                    rate.add(ran * self.train_windows.targets_per_batch())
                    report(
                        BatchFinished(
                            state.epoch,
                            state.batch_in_epoch,
                            batches,
                            state.step,
                            loss,
                            rate.recent(),
                            rate.total / max(clock.session(), 1e-9),
                            state.elapsed,
                        )
                    )
                    every = max(snapshot_every, 1)
                    if state.step // every != before // every:
                        publish()
                    publish_file()
                    control.poll()
                    elapsed, paused, stopped = agreed()
                    if state.epoch == 0 and len(warm_marks) < 3:
                        warm_marks.append((elapsed, state.step))
                    elif (
                        self._judging_dropout()
                        and state.epoch == 0
                        and len(warm_marks) == 3
                        and elapsed - warm_marks[2][0] >= AUTO_DROPOUT_JUDGE_SECONDS
                        and judge_by_pace(elapsed, batches)
                    ):
                        set_dropout(model, self.dropout_rate(state.epoch, state.step))
                        model.make_train_function(force=True)  # Keras reads the rate when it traces
                    if paused and not stopped:
                        clock.pause()
                        report(TrainingPaused(state.step))
                        with spent.on("paused"):
                            while paused and not stopped:
                                control.poll()
                                if save_event.is_set():
                                    save_event.clear()
                                    save("requested")
                                stop_event.wait(0.05 if self.cluster is None else 0.25)
                                elapsed, paused, stopped = agreed()
                        clock.resume()
                        rate.restart()
                        report(TrainingResumed(state.step))
                    if save_event.is_set():
                        save_event.clear()
                        save("requested")
                    elif config.checkpoint_every and time.perf_counter() - last_save >= config.checkpoint_every:
                        save("interval")
                    if stopped:
                        reason = self.stop_reason
                    elif self.budget_spent(elapsed):
                        reason = "time budget"
                    if reason is not None or state.batch_in_epoch < batches:
                        continue
                calls_elapsed = elapsed  # training time at the end of the epoch's last call, before its scoring
                with spent.on("held-out"):
                    val_loss = self.heldout_loss()
                train_loss = state.epoch_loss_sum / max(batches, 1)
                state.epoch += 1
                state.batch_in_epoch = 0
                state.epoch_loss_sum = 0.0
                state.elapsed, _, _ = agreed()
                seconds = spent.seconds()
                state.history.epochs.append(
                    {
                        "epoch": state.epoch,
                        "step": state.step,
                        "train_loss": train_loss,
                        "val_loss": val_loss,
                        "seconds": seconds,
                        "elapsed": state.elapsed,  # training time so far: lets runs be compared by time
                    }
                )
                if state.epoch == 1 and len(warm_marks) == 3:
                    (one, one_step), (two, two_step) = warm_marks[1:]
                    state.history.epochs[-1]["warm_up"] = warm_up((two - one) / max(two_step - one_step, 1))
                if self._judging_dropout():  # a first epoch shorter than the judging time
                    if len(warm_marks) == 3 and state.step > warm_marks[2][1]:
                        # As a longer epoch is judged, up to its last call: the epoch's time also holds its first
                        # held-out scoring, which compiles (3 of a first epoch's 7 s on a GPU, where later epochs
                        # took 0.9 s: benchmarks/README.md, "On a GPU").
                        judge_by_pace(calls_elapsed, batches)
                    else:  # an epoch of three calls or fewer: by its whole time
                        self._judge_from_the_first_epoch()
                if set_dropout(model, self.dropout_rate(state.epoch, state.step)):
                    # Keras reads the rate when it traces: one retrace, a second or two, once in a run.
                    model.make_train_function(force=True)
                    if config.dropout_start >= 0 or not config.time_budget:  # (auto's judgement says it)
                        self.log(f"Dropout {config.dropout:g} on from epoch {state.epoch + 1} (--dropout-start).")
                report(EpochFinished(state.epoch, state.step, train_loss, val_loss, seconds))
                if not math.isfinite(val_loss):
                    return fail(
                        f"The held-out loss became {val_loss} after epoch {state.epoch}; "
                        f"the bad weights were not saved."
                    )
                publish()
                publish_file(force=True)
                if self.writer:
                    with spent.on("samples"):
                        samples = self.write_samples()
                    report(samples)
                save("epoch")
                report(spent.close(state.epoch, finished=True))
                elapsed, _, stopped = agreed()
                if state.epoch >= config.epochs:
                    reason = "completed"
                elif stopped:
                    reason = self.stop_reason
                elif self.budget_spent(elapsed):
                    reason = "time budget"
            state.elapsed = clock.elapsed() if self.cluster is None else elapsed
            # The budget can run out during an epoch's end (scoring, samples, its save): that checkpoint holds
            # less time than the run trained, and a resume would train one more call. Save the spent budget.
            budget_unsaved = reason == "time budget" and saved_elapsed < (config.time_budget or 0.0)
            if (
                self.last_checkpoint is None
                or self.last_checkpoint.name != checkpoint_folder_name(state.step)
                or budget_unsaved
            ):
                save(reason)
            if batches_left is not None:
                publish_file(force=True)
            if spent.seconds() > 0.5 or state.batch_in_epoch:
                report(spent.close(state.epoch + 1, finished=False))
            finished = TrainingFinished(reason, state.epoch, state.step, self.last_checkpoint)
            report(finished)
            return finished
        except CharlmError as error:
            return fail(str(error))

    def _saving(self):
        """Where a checkpoint is saved: over several processes, with nothing of Keras' own replicated."""
        if self.cluster is None:
            return nullcontext()
        from tui_charlm.core.distributed import unreplicated

        return unreplicated()

    def _batch_iterator(self):
        """One iterator over every batch left in the run (epochs state.epoch .. config.epochs - 1)."""
        state = self.state
        if self._judging_dropout() and state.history.epochs:  # a run saved before judgements were kept
            self._judge_from_the_first_epoch()
        set_dropout(self.model, self.dropout_rate(state.epoch, state.step))
        prepare_to_train(self.model, self.config, self.train_windows.batch_size)
        return training_feed(
            self.model, self.train_windows, state.epoch, state.batch_in_epoch, self.config.epochs, self.cluster
        )

    def _train_call(self, batches, ran: int, steps: int) -> float:
        """Train `ran` batches from the iterator in one call to the backend (backend.py); their mean loss."""
        return train_call(self.model, batches, ran, steps, self.cluster)


class _NoControl:
    """What a process other than process 0 reads for control: nothing (viewers steer process 0, which agrees)."""

    def poll(self) -> None:
        pass


class _Tee:
    """Reports each event to the caller, then to the event log (which never raises)."""

    def __init__(self, report: Report, log: EventLogWriter):
        self.report, self.log = report, log

    def __call__(self, event: object) -> None:
        try:
            self.report(event)
        finally:
            self.log(event)


class _Rate:
    """Scored chars per second of wall time: over the last few seconds, and over the session."""

    def __init__(self, window: float):
        self.window = window
        self.total = 0
        self.marks: deque[tuple[float, int]] = deque([(time.perf_counter(), 0)])

    def add(self, chars: int) -> None:
        now = time.perf_counter()
        self.total += chars
        self.marks.append((now, chars))
        while len(self.marks) > 2 and now - self.marks[1][0] >= self.window:
            self.marks.popleft()

    def restart(self) -> None:
        """Start the recent window afresh (after a pause, whose seconds are not training time)."""
        self.marks = deque([(time.perf_counter(), 0)])

    def recent(self) -> float:
        """Chars per second since the oldest mark in the window: everything between calls counts."""
        first, last = self.marks[0][0], self.marks[-1][0]
        chars = sum(count for _, count in list(self.marks)[1:])
        return chars / max(last - first, 1e-9)


class _TimeSpent:
    """Where the wall time of a stretch of training went, part by part; the rest is 'other'.

    Each part is also marked on the run's Activity (if any): what a stop
    waits for, and how long it may.
    """

    def __init__(self, activity: Activity | None = None):
        self.start = time.perf_counter()
        self.parts: dict[str, float] = {}
        self.activity = activity

    @contextmanager
    def on(self, part: str):
        began = time.perf_counter()
        try:
            if self.activity is None:
                yield
            else:
                with self.activity.on(part):
                    yield
        finally:
            self.parts[part] = self.parts.get(part, 0.0) + time.perf_counter() - began

    def seconds(self) -> float:
        """Wall seconds since the stretch began, pauses excluded."""
        return time.perf_counter() - self.start - self.parts.get("paused", 0.0)

    def close(self, epoch: int, *, finished: bool) -> EpochTimed:
        """The stretch's account as an event; the next stretch starts now."""
        seconds = self.seconds()
        parts = {name: value for name, value in self.parts.items() if name != "paused"}
        self.start, self.parts = time.perf_counter(), {}
        return EpochTimed(epoch, finished, seconds, parts)


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
