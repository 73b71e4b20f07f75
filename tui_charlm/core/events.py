"""What the trainer reports, as small immutable dataclasses.

The trainer calls one plain callable with these; the CLI prints them, the
TUI forwards them as Textual messages. Losses are in nats per character;
`bits` properties divide by ln 2.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tui_charlm.core.units import LN2

# The core's other channel: one-line notes for the user ("Note: the corpus changed ..."), printed or shown.
Log = Callable[[str], None]


@dataclass(frozen=True)
class TrainingStarted:
    """Training is about to run its first batch."""

    run_dir: Path
    epoch: int  # epochs already completed (non-zero when resumed)
    step: int  # optimizer steps already taken
    batches_per_epoch: int
    parameters: int
    device: str
    resumed: bool
    time_budget: float = 0.0  # this session's --time-budget (a resume may give a new one; 0: none)
    epochs: int = 0  # and its --epochs (0: not said)


@dataclass(frozen=True)
class BatchFinished:
    """One TensorFlow call finished: up to --steps-per-execution optimizer steps."""

    epoch: int  # the epoch in progress, counting from 0
    batch: int  # batches done in this epoch, counting from 1
    batches: int  # batches in this epoch
    step: int  # global optimizer steps so far
    loss: float  # mean loss of the call's batches, nats per char
    chars_per_second: float  # scored characters per second of wall time over the last few seconds
    average_chars_per_second: float  # the same over this session (pauses excluded): every second counts
    elapsed: float  # training seconds so far, across resumes, pauses excluded


@dataclass(frozen=True)
class EpochFinished:
    """An epoch ended and the held-out text was scored."""

    epoch: int  # epochs completed, counting from 1
    step: int
    train_loss: float
    val_loss: float
    seconds: float  # wall time of this epoch in this session

    @property
    def train_bits(self) -> float:
        return self.train_loss / LN2

    @property
    def val_bits(self) -> float:
        return self.val_loss / LN2


@dataclass(frozen=True)
class EpochTimed:
    """Where the wall time of an epoch went (pauses excluded): inside training calls, and everything else."""

    epoch: int  # the epoch, counting from 1
    finished: bool  # False for the part of an epoch a run trained before it stopped
    seconds: float  # wall time since the previous epoch's account (or since training started)
    parts: dict[str, float]  # 'training calls', 'held-out', 'samples', 'checkpoints', 'snapshots', 'set-up'

    @property
    def other(self) -> float:
        """Seconds not in any named part."""
        return max(0.0, self.seconds - sum(self.parts.values()))

    @property
    def outside_training(self) -> float:
        """Fraction of the wall time spent outside training calls."""
        return 1.0 - self.parts.get("training calls", 0.0) / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class CheckpointSaved:
    """A checkpoint was written and is now the one a resume would load."""

    path: Path
    epoch: int
    step: int
    reason: str  # 'epoch', 'interval', 'requested', 'stopped', 'time budget', 'finished'


@dataclass(frozen=True)
class SamplesWritten:
    """Text generated after an epoch (as the recipe does) and appended to samples.txt."""

    epoch: int
    step: int
    seed: str
    samples: dict[float, str]  # temperature -> generated text


@dataclass(frozen=True)
class TrainingPaused:
    """Training is waiting between batches until resumed."""

    step: int


@dataclass(frozen=True)
class TrainingResumed:
    """Training goes on after a pause."""

    step: int


@dataclass(frozen=True)
class TrainingFinished:
    """Training ended normally."""

    reason: str  # 'completed' (all epochs), 'time budget' or 'stopped'
    epoch: int
    step: int
    checkpoint: Path | None


@dataclass(frozen=True)
class TrainingFailed:
    """Training stopped because of a problem; the last good checkpoint is kept."""

    message: str  # one sentence for the user
    step: int
    checkpoint: Path | None  # the last good checkpoint, if any
