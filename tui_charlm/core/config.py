"""Training configuration: one frozen dataclass, saved in every run directory.

Every field maps one to one onto a `charlm train` flag (`seq_len` is
`--seq-len`); the help text lives in the field's metadata so the CLI and the
TUI build their options from the same place.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import Any

from tui_charlm.core.errors import CharlmError

OPTIMIZERS = ("adam", "rmsprop", "sgd")
LR_SCHEDULES = ("constant", "cosine", "cooldown")
STRATEGIES = ("default", "mirrored")
# Keras dtype policies for every layer but the logits, or 'auto' (see devices.resolve_precision).
PRECISIONS = ("auto", "float32", "mixed_bfloat16", "mixed_float16")
# Where the cosine and cooldown schedules end, as a fraction of the starting learning rate.
LR_FLOOR = 0.02
# The cooldown schedule holds the rate until this fraction of the run, then decays it linearly to the floor.
COOLDOWN_START = 0.8
# --dropout-start auto (Trainer.dropout_rate): a run whose --time-budget holds at least this many epochs
# (judged by the pace of its first calls) trains with dropout from there on, one that holds fewer without any:
# short runs under-fit and only lose by dropout, long ones over-fit without it (benchmarks/README.md, steps 8
# and 12: none wins by 0.045 at 7 epochs, dropout from the start by 0.008 at 15 and 0.022 at 19).
AUTO_DROPOUT_MIN_EPOCHS = 14
# ... judged after this many seconds of training past its first two calls (the first traces and compiles, the
# second is still slower than the rest), or at the end of the first epoch if that comes sooner.
AUTO_DROPOUT_JUDGE_SECONDS = 5.0
# ... and a run without a budget, whose length nobody said, trains its first this many epochs without dropout.
AUTO_DROPOUT_LATE_EPOCHS = 10
# The batch of a run whose --batch-size is 'auto', unless the width's measurement chooses another (core/sizing.py).
DEFAULT_BATCH = 64
# More TensorFlow threads than any machine has cores is a typo.
MAX_THREADS = 4096


def _field(default: Any, help: str, **extra: Any) -> Any:
    return field(default=default, metadata={"help": help, **extra})


@dataclass(frozen=True)
class TrainConfig:
    """Everything needed to rebuild the model and the data pipeline of a run."""

    # Which family of model and data pipeline: the tuned default, or the book's recipe.
    recipe: str = _field(
        "default",
        "model family: 'default' (next char at every position) or 'seed' (the book's recipe)",
        choices=("default", "seed"),
    )
    # Corpus given by the user: a path, a name in corpora/, a catalog name, or None for the default choice.
    corpus: str | None = _field(
        None, "path to a text file, a name in corpora/, or a catalog name (nietzsche, shakespeare, builtin)"
    )
    # Codec used to decode the corpus file.
    encoding: str = _field("utf-8", "text encoding of the corpus file")
    # Lower-case the corpus before building the vocabulary (the recipe does).
    lowercase: bool = _field(False, "lower-case the corpus (the recipe does)")
    # Characters of context per training window.
    seq_len: int = _field(50, "characters per training window")
    # Distance between the starts of consecutive windows; 0 means seq_len (non-overlapping).
    window_step: int = _field(0, "distance between training windows; 0 = seq_len (every char a target once per epoch)")
    # Width of the learned character embedding; 0 feeds one-hot vectors instead (the recipe).
    embedding_dim: int = _field(64, "character embedding width; 0 = one-hot input (the recipe)")
    # LSTM units per layer; 0 is 'auto': measured and chosen when a new run starts (core/sizing.py).
    units: int = _field(
        0,
        "LSTM units per layer, or 'auto': the width this machine trains best in the run's --time-budget (or "
        "its first minute without one), chosen from a 3-s measurement at start and saved with the run",
        auto=True,
    )
    # Number of stacked LSTM layers.
    layers: int = _field(1, "stacked LSTM layers")
    # Dropout between layers and before the output (not recurrent dropout, which would rule out cuDNN).
    dropout: float = _field(0.5, "dropout rate between layers and before the output layer")
    # When dropout starts, in epochs (counted across resumes); -1 is 'auto' (Trainer.dropout_rate says how).
    dropout_start: int = _field(
        -1,
        "epochs trained without dropout before --dropout is turned on (counted across resumes; 0 = from the "
        f"start), or 'auto': with a --time-budget, from a few seconds in if the pace of the first calls shows "
        f"the budget holds at least {AUTO_DROPOUT_MIN_EPOCHS} epochs, else none; without one, from epoch "
        f"{AUTO_DROPOUT_LATE_EPOCHS + 1}",
        start_or_auto=True,
    )
    # Windows per batch; 0 is 'auto': DEFAULT_BATCH, or what `--units auto` chooses with the width (core/sizing.py).
    batch_size: int = _field(
        0,
        f"windows per batch, or 'auto': {DEFAULT_BATCH}, or smaller where --units auto finds the run's horizon too "
        f"short for many steps (the first minute on a CPU)",
        auto=True,
    )
    # Batches run per TensorFlow call: fewer trips through Python (and its interpreter lock) between batches.
    steps_per_execution: int = _field(
        4, "batches per TensorFlow call: less Python between batches; progress, pause and save act every this many"
    )
    # Optimizer name.
    optimizer: str = _field("adam", "optimizer", choices=OPTIMIZERS)
    # Optimizer learning rate.
    learning_rate: float = _field(0.005, "learning rate")
    # Learning-rate schedule over the run: the time budget when there is one, else the epochs.
    lr_schedule: str = _field(
        "cooldown",
        "learning-rate schedule over the time budget if one is set, else over the epochs: "
        f"'constant'; 'cosine' (decays to {LR_FLOOR:.0%}% of --learning-rate); 'cooldown' (constant for "
        f"{COOLDOWN_START:.0%}% of the run, then linear to {LR_FLOOR:.0%}%)",
        choices=LR_SCHEDULES,
    )
    # Decoupled weight decay (as AdamW: each step shrinks every variable by rate x this); 0 disables it.
    weight_decay: float = _field(
        0.2, "decoupled weight decay, as AdamW (each step shrinks every variable by learning rate x this); 0 = none"
    )
    # Clip each gradient update to this global norm; 0 disables clipping.
    clipnorm: float = _field(1.0, "gradient clipping norm; 0 = none")
    # Fraction of the corpus, taken from its end, held out for validation.
    val_fraction: float = _field(0.1, "fraction of the corpus held out (from its end) for validation")
    # Upper bound on held-out characters scored each epoch, so huge corpora validate quickly.
    val_max_chars: int = _field(200_000, "held-out characters scored each epoch, at most")
    # Number of epochs to train (counted across resumes).
    epochs: int = _field(50, "epochs to train, counted across resumes")
    # Stop when the run has trained this many seconds in all (across resumes, like epochs); 0 means no limit.
    time_budget: float = _field(
        0.0,
        "stop when the run has trained this many seconds, counted across resumes like --epochs (the "
        "learning-rate schedule spans it; resume a finished run with a larger budget to go on); 0 = no limit",
    )
    # Also checkpoint mid-epoch when this many seconds passed since the last save; 0 = only at epoch ends.
    checkpoint_every: float = _field(300.0, "also checkpoint mid-epoch every this many seconds; 0 = epoch ends only")
    # Seed for weight initialisation and data order.
    seed: int = _field(0, "random seed for weights and data order")
    # TensorFlow intra-op threads; 0 lets TensorFlow choose.
    threads: int = _field(0, "TensorFlow threads; 0 = TensorFlow's choice")
    # How training uses the devices: TensorFlow's default (one device) or data-parallel over all visible GPUs.
    strategy: str = _field(
        "default",
        "'mirrored' trains data-parallel over all visible GPUs "
        "(tf.distribute.MirroredStrategy; --batch-size is per device)",
        choices=STRATEGIES,
    )
    # Layer compute dtype: Keras policies keep variables, logits and loss in float32 whatever is chosen.
    precision: str = _field(
        "auto",
        "layer compute dtype (variables, logits and loss stay float32): 'mixed_bfloat16' (CPUs with "
        "AVX512-BF16 or AMX), 'mixed_float16' (GPUs with tensor cores), 'float32', or 'auto' (mixed_bfloat16 "
        "on such a CPU, else float32; fixed when the run starts)",
        choices=PRECISIONS,
    )
    # Refuse corpora with more distinct characters than this: they are surely not text.
    max_vocab: int = _field(4096, "refuse corpora with more distinct characters than this")

    def __post_init__(self) -> None:
        problems = []
        if self.recipe not in RECIPES:
            problems.append(f"recipe must be one of {', '.join(RECIPES)}, not {self.recipe!r}")
        if self.optimizer not in OPTIMIZERS:
            problems.append(f"optimizer must be one of {', '.join(OPTIMIZERS)}, not {self.optimizer!r}")
        for name in ("seq_len", "layers", "steps_per_execution", "epochs", "max_vocab"):
            if getattr(self, name) < 1:
                problems.append(f"{name.replace('_', '-')} must be at least 1")
        for name in ("window_step", "embedding_dim", "threads", "units", "batch_size"):
            if getattr(self, name) < 0:
                problems.append(f"{name.replace('_', '-')} must not be negative")
        if not 0 <= self.seed < 2**32:
            problems.append("seed must be a whole number from 0 to 4294967295")
        if self.threads > MAX_THREADS:
            problems.append(f"threads must be at most {MAX_THREADS}")
        if self.units == 0 and self.recipe == "seed":
            problems.append("units auto sizes the default model; the book's recipe is LSTM(128) (or give --units N)")
        if self.batch_size == 0 and self.recipe == "seed":
            problems.append("batch-size auto is the default model's; the book's recipe is batch 128 (or give N)")
        if self.dropout_start < -1:
            problems.append("dropout-start must be a whole number of epochs (0 or more) or 'auto'")
        if not 0.0 <= self.dropout < 1.0:
            problems.append("dropout must be in [0, 1)")
        if not (self.learning_rate > 0 and math.isfinite(self.learning_rate)):
            problems.append("learning-rate must be a positive number")
        if self.lr_schedule not in LR_SCHEDULES:
            problems.append(f"lr-schedule must be one of {', '.join(LR_SCHEDULES)}, not {self.lr_schedule!r}")
        if self.precision not in PRECISIONS:
            problems.append(f"precision must be one of {', '.join(PRECISIONS)}, not {self.precision!r}")
        if self.strategy not in STRATEGIES:
            problems.append(f"strategy must be one of {', '.join(STRATEGIES)}, not {self.strategy!r}")
        if not (self.clipnorm >= 0 and math.isfinite(self.clipnorm)):
            problems.append("clipnorm must be zero or positive")
        if not (0 <= self.weight_decay < 1):
            problems.append("weight-decay must be in [0, 1)")
        if not 0.0 < self.val_fraction < 1.0:
            problems.append("val-fraction must be between 0 and 1")
        for name in ("time_budget", "checkpoint_every"):
            value = getattr(self, name)
            if not (value >= 0 and math.isfinite(value)):
                problems.append(f"{name.replace('_', '-')} must be zero or positive")
        if self.val_max_chars <= self.seq_len:
            problems.append(f"val-max-chars must be more than seq-len ({self.seq_len}): at least one held-out window")
        if problems:
            raise CharlmError("Invalid training options: " + "; ".join(problems) + ".")

    @property
    def stride(self) -> int:
        """Distance between consecutive training windows."""
        return self.window_step or self.seq_len

    @property
    def predicts_every_position(self) -> bool:
        """True for sequence models (loss at every char), False for the recipe (last char only)."""
        return self.recipe != "seed"

    @property
    def auto_units(self) -> bool:
        """True when the width is still to be chosen (`--units auto`); a run's saved config never says so."""
        return self.units == 0

    @property
    def auto_batch(self) -> bool:
        """True when the batch is still to be chosen (`--batch-size auto`); a run's saved config never says so."""
        return self.batch_size == 0

    def with_batch_settled(self) -> TrainConfig:
        """This config with an 'auto' batch made DEFAULT_BATCH (when nothing measures the run to choose it)."""
        return dataclasses.replace(self, batch_size=self.batch_size or DEFAULT_BATCH)

    def to_json(self, sizing: dict[str, Any] | None = None) -> str:
        """Serialise to the JSON stored as config.json in a run directory, with how its size was chosen."""
        data = dataclasses.asdict(self)
        if sizing is not None:
            data["sizing"] = sizing  # not a field: read back by RunDirectory, ignored by from_dict
        return json.dumps(data, indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: Any) -> TrainConfig:
        """Rebuild from config.json, ignoring keys a newer version may have added.

        Raises CharlmError, naming the field, for anything that is not a
        config: a value of the wrong type, or one the options would refuse.
        """
        if not isinstance(data, dict):
            raise CharlmError(f"the configuration must be a JSON object, not {type(data).__name__}")
        values = {}
        for spec in dataclasses.fields(cls):
            if spec.name in data:
                values[spec.name] = _checked(spec.name, data[spec.name], type(spec.default))
        if "weight_decay" not in data:  # written before --weight-decay existed: trained without it
            values["weight_decay"] = 0.0
        if "dropout_start" not in data:  # written before --dropout-start existed: dropout from the first batch
            values["dropout_start"] = 0
        if "precision" not in data:  # written before --precision existed: float32 unless --mixed-precision
            values["precision"] = "mixed_float16" if data.get("mixed_precision") is True else "float32"
        return cls(**values)


def json_fits(value: Any, kind: type) -> bool:
    """True if a JSON value can stand for a field of type `kind` (ints pass as floats; true/false are not numbers)."""
    if kind is type(None):  # optional strings (the corpus)
        return value is None or isinstance(value, str)
    if kind in (int, float):
        return isinstance(value, int if kind is int else (int, float)) and not isinstance(value, bool)
    return isinstance(value, kind)


def _checked(name: str, value: Any, kind: type) -> Any:
    """`value` if it has the JSON type of a field whose default is of type `kind`, else a CharlmError naming it."""
    if not json_fits(value, kind):
        wanted = _TYPE_NAMES.get(kind, "string")
        raise CharlmError(f"{name.replace('_', '-')} is {json.dumps(value)[:40]}, not a {wanted}")
    return float(value) if kind is float else value


_TYPE_NAMES = {float: "number", int: "whole number", bool: "true or false", str: "string", type(None): "string or null"}


# The book's recipe, field for field; anything not named keeps the default.
RECIPES: dict[str, dict[str, Any]] = {
    "default": {},
    "seed": {
        "lowercase": True,
        "seq_len": 60,
        "window_step": 3,
        "embedding_dim": 0,
        "units": 128,
        "layers": 1,
        "dropout": 0.0,
        "batch_size": 128,
        "optimizer": "rmsprop",
        "learning_rate": 0.01,
        "clipnorm": 0.0,
        "weight_decay": 0.0,
        "lr_schedule": "constant",
        "precision": "float32",
    },
}


def make_config(recipe: str = "default", **overrides: Any) -> TrainConfig:
    """Build a config from a recipe preset, then explicit overrides (None means 'not given')."""
    if recipe not in RECIPES:
        raise CharlmError(f"Unknown recipe {recipe!r}; choose one of {', '.join(RECIPES)}.")
    values = dict(RECIPES[recipe])
    values.update({k: v for k, v in overrides.items() if v is not None})
    return TrainConfig(recipe=recipe, **values)
