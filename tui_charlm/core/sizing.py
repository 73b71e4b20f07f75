"""`--units auto`: the width (and batch) of a new run, chosen for this machine's speed and the run's horizon.

The width that learns most in a given time depends on how much a model can
see in it: a small LSTM sees many characters but can hold little, a wide
one holds more but sees fewer. Sweeps on four CPUs (benchmarks/README.md,
"The size that fits the machine") found the best width to be the widest one
that still sees about TARGETS_PER_PARAMETER characters per parameter in the
run's horizon. So at start a new run times a few training calls of an
LSTM(PROBE_UNITS) built with the run's own options (precision, threads,
window, batch), estimates every candidate width's speed from it with the
measured speed ratios below, and picks by that rule. The choice, the speed
and the reason go into config.json, so a resume never measures again.

A horizon too short for many optimizer steps (the first minute on a CPU:
under SHORT_HORIZON_STEPS at the default batch) is a regime of its own:
there half the batch learns more from the same minute (twice the updates,
each noisier, at about SHORT_BATCH_SPEED of the speed), and the best width
sees fewer characters per parameter (TARGETS_PER_PARAMETER_SHORT). That
applies only when the batch is 'auto' (the default); a --batch-size N keeps N.

In both regimes a width must also make at least MIN_STEPS optimizer steps
in the horizon: on a CPU where a step's time follows the width's
arithmetic (float32 without AVX-512), a width that sees enough characters
per parameter can still make too few updates in a minute to learn from
them, and a narrower one learns more.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

import numpy as np

from tui_charlm.core.config import DEFAULT_BATCH, TrainConfig
from tui_charlm.core.events import Log

# The widths `auto` chooses from: the widths swept.
WIDTHS = (128, 256, 384, 512, 768)
# The width whose speed the probe measures; the others' speeds are estimated from it.
PROBE_UNITS = 256
# Each width's training speed relative to PROBE_UNITS, in chars/s: the geometric mean over the sweep rows
# (3 CPUs, 2 cores and 1 core; benchmarks/README.md). Small widths are bound by per-step overheads,
# large ones by the matrix products, so the ratio is not the ratio of parameter counts.
RELATIVE_SPEED = {128: 2.06, 256: 1.0, 384: 0.60, 512: 0.37, 768: 0.23}
# The probe times training calls alone; a run's chars/s (what the sweeps record) also pays for its epoch ends
# (held-out scoring, samples, checkpoints): measured on this host, the probe reads this much higher.
PROBE_OVER_SESSION = 1.1
# The rule, fitted to the sweeps: the widest width that sees at least this many characters per parameter.
TARGETS_PER_PARAMETER = 3.0
# Without --time-budget, the horizon the width is chosen for: the first minute of watching a model learn.
DEFAULT_HORIZON_SECONDS = 60.0
# The probe stops starting training calls after this many seconds (model build and compile included): the
# whole measurement must add at most 3 s to start-up, and compiling alone took 1.2-3.3 s on the hosts measured.
PROBE_SECONDS = 2.0
# The short-horizon regime (fitted to the 60-s sweeps; benchmarks/README.md): a horizon in which LSTM(PROBE_UNITS)
# makes fewer optimizer steps than this at the default batch (the geometric middle of 718, the most where batch 32
# was measured best, and about 1,420, a host where the long rule's pick was the best of the widths at batch 64) ...
SHORT_HORIZON_STEPS = 1000
# ... trains at this batch (when the batch is 'auto') ...
SHORT_BATCH = 32
# ... which runs at about this fraction of the default batch's chars/s (measured: 0.64-0.80, same width) ...
SHORT_BATCH_SPEED = 0.68
# ... and takes the widest width that sees at least this many characters per parameter.
TARGETS_PER_PARAMETER_SHORT = 0.8
# Narrower widths keep the default batch there: their speed falls with the batch about as fast as the batch
# (LSTM(128) at batch 32: 0.49 and 0.58 of batch 64's chars/s on AMD EPYC family 25 model 1, 2 cores and 1), so
# half the batch buys no steps, and LSTM(128) at batch 64 beat batch 32 by 0.05 and 0.08 in the first minute there.
SHORT_BATCH_MIN_UNITS = 256
# In either regime a width must also make at least this many optimizer steps in the horizon, at the batch it would
# train at. Fitted to the 60-s sweeps (benchmarks/README.md, steps 7 and 13): the best width made 635-985 steps on the
# three CPUs swept first, where the rule estimated 584 and more for it, and the rule's picks with an estimate of at most
# 417 lost to the next width down, by 0.01 (AMD EPYC family 25 model 17, 1 core) and 0.05-0.19 (family 25 model 1,
# float32 on AVX2, where a step's time follows the width's arithmetic).
MIN_STEPS = 500
# On a GPU the probe's rule does not apply: a minute there is tens of epochs of a corpus of the nietzsche text's
# size, so the corpus, not the speed, limits what a run learns, and wider models or larger batches over-fit.
# Measured on an NVIDIA H200 (JAX, cuDNN; benchmarks/README.md, "On a GPU"), 60-s runs on that text:
# LSTM(512) at batch 64 scored best of five (256, 512 and 1024 at batch 64; 512 and 1024 at batch 256).
GPU_UNITS = 512
GPU_BATCH = DEFAULT_BATCH


@dataclass(frozen=True)
class SizeChoice:
    """What `--units auto` chose for a run and why; written into the run's config.json."""

    # The LSTM width chosen.
    units: int
    # The batch (windows per batch) the run trains at: chosen when it was 'auto', else the one given.
    batch_size: int
    # The seconds of training the choice was made for.
    horizon_seconds: float
    # Where the horizon came from: 'time budget' or 'default horizon' (no --time-budget).
    horizon: str
    # The width the probe trained, and its measured speed in scored chars per second (0 when not measured).
    probe_units: int
    probe_chars_per_second: float
    # Wall seconds the measurement took, building and compiling the probe model included.
    probe_seconds: float
    # The chosen width's estimated speed, chars per second.
    estimated_chars_per_second: float
    # One sentence a user reads: why this width.
    reason: str

    def to_dict(self) -> dict:
        """The record as stored in config.json."""
        return dataclasses.asdict(self)


def parameter_count(config: TrainConfig, vocab_size: int, units: int) -> int:
    """Trainable parameters of the default model family for `config` at width `units`."""
    inputs = config.embedding_dim or vocab_size
    total = vocab_size * config.embedding_dim  # the embedding (one-hot input trains nothing)
    for _ in range(config.layers):
        total += 4 * (units * (inputs + units) + units)
        inputs = units
    return total + units * vocab_size + vocab_size


def horizon_of(config: TrainConfig) -> tuple[float, str]:
    """(seconds, where from): the run's time budget, or the default horizon when it has none."""
    if config.time_budget:
        return config.time_budget, "time budget"
    return DEFAULT_HORIZON_SECONDS, "default horizon"


@dataclass(frozen=True)
class Fit:
    """What the rule chose for one probe measurement (choose_units)."""

    units: int
    batch_size: int
    # The chosen width's estimated chars/s in a run at that batch, and the chars it sees per parameter.
    chars_per_second: float
    per_parameter: float
    # The steps LSTM(PROBE_UNITS) would make in the horizon at the probe's batch, and the regime they put it in.
    probe_steps: float
    short: bool
    # The chars per parameter the chosen width had to see.
    target: float
    # The optimizer steps the chosen width makes in the horizon at that batch.
    steps: float = 0.0


def choose_units(config: TrainConfig, vocab_size: int, probe_chars_per_second: float) -> Fit:
    """The width (and batch, when 'auto') the fitted rule picks from the probe's speed (at the probe's batch:
    config.batch_size, or DEFAULT_BATCH when 'auto')."""
    horizon, _ = horizon_of(config)
    session = probe_chars_per_second / PROBE_OVER_SESSION
    probe_batch = config.batch_size or DEFAULT_BATCH
    steps = session * horizon / (probe_batch * config.seq_len)
    short = config.auto_batch and steps < SHORT_HORIZON_STEPS
    target = TARGETS_PER_PARAMETER_SHORT if short else TARGETS_PER_PARAMETER

    def batch_of(units: int) -> int:
        return SHORT_BATCH if short and units >= SHORT_BATCH_MIN_UNITS else probe_batch

    def rate_of(units: int) -> float:
        return session * RELATIVE_SPEED[units] * (SHORT_BATCH_SPEED if batch_of(units) != probe_batch else 1.0)

    def enough(units: int) -> bool:
        chars = rate_of(units) * horizon
        return (
            chars >= target * parameter_count(config, vocab_size, units)
            and chars >= MIN_STEPS * batch_of(units) * config.seq_len
        )

    chosen = max((units for units in WIDTHS if enough(units)), default=WIDTHS[0])
    batch, rate = batch_of(chosen), rate_of(chosen)
    per_parameter = rate * horizon / parameter_count(config, vocab_size, chosen)
    return Fit(chosen, batch, rate, per_parameter, steps, short, target, rate * horizon / (batch * config.seq_len))


def choose_size(
    config: TrainConfig,
    vocab_size: int,
    strategy=None,
    *,
    windows: int | None = None,
    on_gpu: bool = False,
    log: Log = print,
) -> SizeChoice:
    """Measure this machine and choose the width of a new run whose config says units 0 ('auto').

    `windows` is how many training windows the corpus has (a batch never
    holds more). Returns a SizeChoice. Build nothing else while it runs: it
    trains a throwaway model for about PROBE_SECONDS, then frees it.
    """
    horizon, source = horizon_of(config)
    if on_gpu:
        batch = config.batch_size or GPU_BATCH
        return SizeChoice(
            GPU_UNITS,
            batch,
            horizon,
            source,
            0,
            0.0,
            0.0,
            0.0,
            f"LSTM({GPU_UNITS}) at batch {batch} on a GPU, where nothing is timed at start: "
            f"there the corpus limits a run more than the speed (on an H200 a minute is about 60 epochs of the "
            f"nietzsche text, and wider models or larger batches over-fit it); --units N and --batch-size N choose "
            f"by hand",
        )
    log(f"measuring this machine's training speed (LSTM({PROBE_UNITS}), about {PROBE_SECONDS:.0f} s)")
    # One batch a call: a call of the run's steps_per_execution batches took over a second on a slow CPU, and the
    # probe waits for two (the first compiles), which made the measurement cost 5 s of start-up there.
    probe = dataclasses.replace(
        config, units=PROBE_UNITS, batch_size=config.batch_size or DEFAULT_BATCH, steps_per_execution=1
    )
    if windows is not None:  # a corpus shorter than one batch trains every window as one batch
        probe = dataclasses.replace(probe, batch_size=max(1, min(probe.batch_size, windows)))
    rate, seconds = measure_speed(probe, vocab_size, strategy)
    fit = choose_units(config, vocab_size, rate)
    units = fit.units
    span = f"a {horizon:g}-s time budget" if source == "time budget" else f"the first {horizon:g} s (no --time-budget)"
    sees = (
        f"in that time LSTM({units}) sees about {fit.per_parameter:.1f} chars per parameter in about "
        f"{fit.steps:,.0f} steps"
    )
    wanted = f"at least {fit.target:g} in at least {MIN_STEPS} steps"
    if fit.per_parameter >= fit.target and fit.steps >= MIN_STEPS:
        why = f"{sees}, the widest width that sees {wanted}"
    else:
        short_of = [f"sees fewer than {fit.target:g} per parameter"] if fit.per_parameter < fit.target else []
        short_of += [f"makes fewer than {MIN_STEPS} steps"] if fit.steps < MIN_STEPS else []
        why = f"{sees}: the narrowest width, though it {' and '.join(short_of)}"
    batch, by_hand = "", "--units N chooses the width"
    if fit.short and fit.batch_size == SHORT_BATCH:  # halved for this horizon (LSTM(128) keeps its batch)
        batch = (
            f"; batch {fit.batch_size}, as the horizon holds only about {fit.probe_steps:,.0f} steps of "
            f"LSTM({PROBE_UNITS}) at batch {probe.batch_size}"
        )
        by_hand = "--units N and --batch-size N choose by hand"
    reason = (
        f"LSTM({units}) for {span}: this machine trains LSTM({PROBE_UNITS}) at {rate:,.0f} chars/s; {why}{batch} "
        f"({by_hand})"
    )
    return SizeChoice(units, fit.batch_size, horizon, source, PROBE_UNITS, rate, seconds, fit.chars_per_second, reason)


def measure_speed(
    config: TrainConfig, vocab_size: int, strategy=None, *, seconds: float | None = None
) -> tuple[float, float]:
    """(scored chars per second, wall seconds taken) of training `config`'s model on this machine.

    The model is built and compiled as a run's would be, then trained on
    random windows: the first call (which compiles) is not timed; calls
    are timed until PROBE_SECONDS have passed since the start, at least one
    (or, given `seconds`, for that long after the first call: benchmarks/batch_speed.py).
    Builds under `strategy` when given. Leaves no state behind that a run
    built next would see (build_model seeds every run itself).
    """
    from tui_charlm.core.backend import repeated_feed, start_backend, train_call
    from tui_charlm.core.devices import replicas, strategy_scope
    from tui_charlm.core.model import build_model, prepare_to_train

    start_backend()
    started = time.perf_counter()
    with strategy_scope(strategy):
        model = build_model(config, vocab_size)
    batch = config.batch_size * replicas(model)
    steps = max(1, config.steps_per_execution)
    model.steps_per_execution = steps  # before the training function is made: JAX's reads it then
    prepare_to_train(model, config, batch)
    rng = np.random.default_rng(0)
    inputs = rng.integers(0, vocab_size, size=(batch, config.seq_len), dtype=np.int32)
    batches = repeated_feed(model, inputs, inputs)
    train_call(model, batches, steps, steps)  # compiles
    calls, timed_from = 0, time.perf_counter()
    until = started + PROBE_SECONDS if seconds is None else timed_from + seconds
    while calls == 0 or time.perf_counter() < until:
        train_call(model, batches, steps, steps)  # reading the loss waits for the call to finish
        calls += 1
    timed = time.perf_counter() - timed_from
    del batches, model
    targets = calls * steps * batch * config.seq_len
    return targets / timed, time.perf_counter() - started
