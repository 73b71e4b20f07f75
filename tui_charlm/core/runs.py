"""The runs under a folder, summarised: what `charlm runs` lists and the TUI's start screen shows.

Everything is read from the run directories themselves (run.json,
config.json, vocab.json, the newest checkpoint's state.json, the `.lock`):
nothing is loaded into TensorFlow, so listing a hundred runs takes a
moment. A run that cannot be read is listed as damaged, with the reason.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from filelock import FileLock, Timeout

from tui_charlm.core.checkpoints import RunDirectory, lock_owner
from tui_charlm.core.config import TrainConfig
from tui_charlm.core.errors import CharlmError
from tui_charlm.core.units import to_bits

# Where runs go by default (core/checkpoints.default_run_dir), relative to the working directory.
RUNS_DIR = Path("runs")
STATUSES = ("training", "finished", "stopped", "damaged")


def parameter_count(config: TrainConfig, vocab_size: int) -> int:
    """What Keras's count_params() says of build_model(config, vocab_size), without building it."""
    width = config.embedding_dim or vocab_size  # one-hot input is an identity embedding (counted, not trained)
    total = vocab_size * width
    inputs = width
    layers = config.layers if config.predicts_every_position else 1
    for _ in range(layers):
        total += 4 * config.units * (inputs + config.units + 1)
        inputs = config.units
    return total + config.units * vocab_size + vocab_size


@dataclass(frozen=True)
class RunSummary:
    """One run, as the list shows it."""

    path: str
    name: str
    status: str  # one of STATUSES
    reason: str  # why it is damaged, or who trains it ('pid 123 on host'), else ''
    corpus: str | None = None
    layers: int | None = None
    units: int | None = None
    parameters: int | None = None
    step: int | None = None
    epoch: int | None = None
    epochs: int | None = None
    training_seconds: float | None = None
    best_heldout: float | None = None  # nats per char
    last_saved: float | None = None  # Unix time of the newest checkpoint
    pid: int | None = None  # the process training it, when status is 'training'

    @property
    def best_heldout_bits(self) -> float | None:
        return None if self.best_heldout is None else to_bits(self.best_heldout)

    def to_json(self) -> dict:
        """The summary as plain JSON values (what `charlm runs --json` prints for each run)."""
        data = asdict(self)
        data["best_heldout_bits"] = self.best_heldout_bits
        return data


def lock_holder(path: Path) -> dict | None:
    """Who holds the run's training lock ({'pid': ..., 'host': ...}, possibly empty), or None if nobody does."""
    lock_file = path / ".lock"
    if not lock_file.exists():
        return None
    lock = FileLock(lock_file, timeout=0, is_singleton=False)
    try:
        lock.acquire()
    except Timeout:
        return lock_owner(path)
    except OSError:
        return None  # cannot even open it (read-only folder): nobody we can see trains it
    lock.release()
    return None


def holder_name(holder: dict) -> str:
    """The process a lock_holder() answer names, as messages write it: 'pid 4242 on gpu-box'."""
    return f"pid {holder.get('pid', '?')} on {holder.get('host', '?')}"


def summarise(path: Path) -> RunSummary:
    """The summary of one run directory; never raises for a damaged one."""
    holder = lock_holder(path)
    pid = holder.get("pid") if holder else None
    who = "" if holder is None else " ".join(f"{k} {holder[k]}" for k in ("pid", "host") if k in holder) or "?"
    try:
        run = RunDirectory.open(path)
    except CharlmError as error:
        if holder is not None:
            return RunSummary(str(path), path.name, "training", who, pid=pid)  # still being created
        return RunSummary(str(path), path.name, "damaged", str(error))
    config = run.config
    checkpoint = run.latest()
    common = dict(
        corpus=run.meta.get("corpus", {}).get("name") or config.corpus,
        layers=config.layers if config.predicts_every_position else 1,
        units=config.units,
        parameters=parameter_count(config, len(run.vocab)),
        epochs=config.epochs,
        pid=pid if isinstance(pid, int) else None,
    )
    if checkpoint is None:
        if holder is not None:
            return RunSummary(str(path), path.name, "training", who, **common)
        return RunSummary(str(path), path.name, "damaged", "no complete checkpoint", **common)
    state = checkpoint.state
    losses = [e["val_loss"] for e in state.history.epochs if isinstance(e.get("val_loss"), (int, float))]
    try:
        saved = (checkpoint.path / "state.json").stat().st_mtime
    except OSError:
        saved = None
    if holder is not None:
        status, reason = "training", who
    elif state.epoch >= config.epochs or (config.time_budget > 0 and state.elapsed >= config.time_budget):
        status, reason = "finished", ""
    else:
        status, reason = "stopped", ""
    return RunSummary(
        str(path),
        path.name,
        status,
        reason,
        step=state.step,
        epoch=state.epoch,
        training_seconds=state.elapsed,
        best_heldout=min(losses) if losses else None,
        last_saved=saved,
        **common,
    )


def is_run_directory(path: Path) -> bool:
    """A folder that is (or was meant to be) a run: it has a run.json, a config.json or a .lock."""
    return path.is_dir() and any((path / name).exists() for name in ("run.json", "config.json", ".lock"))


def list_runs(root: Path = RUNS_DIR) -> list[RunSummary]:
    """Every run directly under `root`, newest first (by the newest checkpoint, else the folder's time)."""
    root = Path(root)
    if not root.exists():
        return []
    if not root.is_dir():
        raise CharlmError(f"{root} is a file, not a folder of runs.")
    if is_run_directory(root):
        folders = [root]  # given one run: list just it
    else:
        try:
            folders = [p for p in root.iterdir() if is_run_directory(p)]
        except OSError as error:
            raise CharlmError(f"Cannot read {root}: {error.strerror or error}.") from None
    summaries = [summarise(folder) for folder in folders]

    def newest(summary: RunSummary) -> float:
        if summary.last_saved is not None:
            return summary.last_saved
        try:
            return os.stat(summary.path).st_mtime
        except OSError:
            return 0.0

    return sorted(summaries, key=newest, reverse=True)


def age(seconds_since: float | None, now: float | None = None) -> str:
    """'12 s', '5 min', '3 h', '2 days' ago, or '—'."""
    if seconds_since is None:
        return "—"
    delta = max(0.0, (time.time() if now is None else now) - seconds_since)
    for limit, unit, size in ((120, "s", 1), (7200, "min", 60), (172800, "h", 3600)):
        if delta < limit:
            return f"{delta / size:.0f} {unit}"
    return f"{delta / 86400:.0f} days"


def format_seconds(seconds: float | None) -> str:
    """'45s', '12m 05s', '3h 02m', or '—'."""
    if seconds is None:
        return "—"
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m {seconds % 60:02d}s"
    return f"{seconds // 3600}h {seconds % 3600 // 60:02d}m"


# The columns of a runs table, as summary_cells() fills them.
COLUMNS = ("run", "status", "corpus", "model", "steps", "epochs", "trained", "best held-out", "saved")


def summary_cells(run: RunSummary, now: float | None = None) -> list[str]:
    """One run as the cells of a table row (COLUMNS): what `charlm runs` and the TUI's start screen show.

    The status comes second: on a narrow screen the table scrolls sideways, and it is what decides what you can do.
    """
    model = f"{run.layers}x{run.units}, {run.parameters:,} params" if run.units is not None else "—"
    best = f"{run.best_heldout:.4f} nats ({run.best_heldout_bits:.3f} bits)" if run.best_heldout is not None else "—"
    status = run.status
    if run.reason:
        status += f" ({run.reason})" if run.status == "training" else f": {run.reason}"
    return [
        run.name,
        status,
        run.corpus or "—",
        model,
        f"{run.step:,}" if run.step is not None else "—",
        f"{run.epoch}/{run.epochs}" if run.epoch is not None else "—",
        format_seconds(run.training_seconds),
        best,
        age(run.last_saved, now) + (" ago" if run.last_saved is not None else ""),
    ]


@dataclass(frozen=True)
class HeldoutCurve:
    """A run's held-out loss after each epoch, against step and against training time."""

    name: str
    steps: list[int]
    seconds: list[float]  # training time at each point
    losses: list[float]  # nats per char


def heldout_curve(path: Path) -> HeldoutCurve | None:
    """The held-out curve saved in a run's newest checkpoint, or None if it has none (or cannot be read).

    Training time per point: History.epoch_training_seconds().
    """
    try:
        checkpoint = RunDirectory.open(path).latest()
    except CharlmError:
        return None
    if checkpoint is None or not checkpoint.state.history.epochs:
        return None
    history = checkpoint.state.history
    return HeldoutCurve(
        Path(path).name,
        [int(epoch["step"]) for epoch in history.epochs],
        history.epoch_training_seconds(),
        [float(epoch["val_loss"]) for epoch in history.epochs],
    )
