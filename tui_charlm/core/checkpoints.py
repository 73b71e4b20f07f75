"""Run directories: everything needed to resume, sample or evaluate a run.

Layout::

    RUN_DIR/
      run.json          format marker and corpus identity (written last at creation)
      config.json       the TrainConfig
      vocab.json        the vocabulary, in id order
      samples.txt       generations logged during training (append-only)
      events.jsonl      the event log viewers follow (eventlog.py; append-only)
      weights.npz       the newest weights, for viewers, every few seconds (live_weights.py)
      control/          commands from viewers to the trainer (control.py)
      .lock             held (flock) by the one process training this run
      .lock-owner       who holds it: pid, host, since when
      latest.json       names the newest complete checkpoint
      checkpoints/
        step-00001234/  one complete checkpoint:
          model.keras   weights and optimizer state
          state.json    epoch, step, elapsed time, loss history

A checkpoint is written into a hidden temporary folder and renamed into
place only when complete, then `latest.json` is replaced atomically: a kill
at any moment leaves the previous checkpoint loadable. Loading tries the
newest checkpoint first and falls back to older ones.

Only one process trains a run at a time: training holds an OS file lock
(flock, via filelock) on `.lock` until it exits. The kernel drops the lock
when its holder dies, however it dies, so a killed run never leaves its
directory locked.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import socket
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from tui_charlm.core.atomic import atomic_write_text, fsync_directory
from tui_charlm.core.config import TrainConfig, json_fits
from tui_charlm.core.errors import CharlmError
from tui_charlm.core.vocab import Vocabulary

FORMAT = "tui_charlm-run"
FORMAT_VERSION = 1
KEEP_CHECKPOINTS = 3
# Keep at most this many per-batch losses; older points are thinned to half resolution.
MAX_BATCH_POINTS = 4000


@dataclass
class History:
    """The loss curve: per-batch training loss (thinned when long) and per-epoch losses."""

    batches: list[list[float]] = field(default_factory=list)  # [step, loss]
    epochs: list[dict[str, float]] = field(default_factory=list)  # epoch, step, train_loss, val_loss, seconds

    def epoch_training_seconds(self) -> list[float]:
        """The run's training time at the end of each epoch: recorded (`elapsed`), or else, for runs saved before
        it was, the running sum of the epochs' wall times."""
        out, total = [], 0.0
        for epoch in self.epochs:
            total += float(epoch.get("seconds", 0.0))
            out.append(float(epoch.get("elapsed", total)))
        return out

    def add_batch(self, step: int, loss: float) -> None:
        """Record one batch loss, halving the resolution of old points when the list is long."""
        self.batches.append([step, loss])
        if len(self.batches) > MAX_BATCH_POINTS:
            self.batches = self.batches[::2]


@dataclass
class TrainingState:
    """Where training stands; saved with every checkpoint."""

    epoch: int = 0  # epochs completed
    batch_in_epoch: int = 0  # batches done in the epoch in progress (mid-epoch checkpoints)
    epoch_loss_sum: float = 0.0  # sum of batch losses so far in the epoch in progress
    step: int = 0  # optimizer steps taken
    elapsed: float = 0.0  # training seconds, across sessions, pauses excluded
    batch_size: int = 0  # windows per batch (all replicas) that batch_in_epoch counts; 0 = not recorded
    # Where each dropout layer's random stream stands (Keras does not save it with the model), so a resumed
    # run draws the same dropout masks as one trained straight.
    random_states: dict[str, list[int]] = field(default_factory=dict)
    history: History = field(default_factory=History)
    # The Keras backend that trained to here ('tensorflow' or 'jax'; '' before backends were recorded): its
    # random streams are its own, so a resume on the other backend cannot draw the same dropout masks.
    backend: str = ""
    # What --dropout-start auto decided in a budgeted run (Trainer.dropout_rate): {} before it has; else the
    # epochs the budget was judged to hold and the step dropout is on from (None: no dropout in this run).
    auto_dropout: dict = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)

    @classmethod
    def from_json(cls, text: str) -> TrainingState:
        """Inverse of to_json; ValueError for anything that is not a state this code wrote."""
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("state.json is not a JSON object")
        history = data.get("history", {})
        batches = history.get("batches", []) if isinstance(history, dict) else None
        epochs = history.get("epochs", []) if isinstance(history, dict) else None
        if not (
            isinstance(batches, list)
            and all(isinstance(b, list) and len(b) == 2 and _numbers(b) for b in batches)
            and isinstance(epochs, list)
            and all(isinstance(e, dict) and {"step", "val_loss"} <= e.keys() and _numbers(e.values()) for e in epochs)
        ):
            raise ValueError("state.json has a damaged loss history")
        values = {}
        for name in ("epoch", "batch_in_epoch", "step", "batch_size"):
            value = data.get(name, 0)
            if not json_fits(value, int) or value < 0:
                raise ValueError(f"state.json has {name} {json.dumps(value)[:40]}, not a whole number")
            values[name] = value
        for name in ("epoch_loss_sum", "elapsed"):
            value = data.get(name, 0.0)
            if not json_fits(value, float) or not math.isfinite(value):
                raise ValueError(f"state.json has {name} {json.dumps(value)[:40]}, not a number")
            values[name] = float(value)
        states = data.get("random_states", {})
        if not (
            isinstance(states, dict)
            and all(isinstance(v, list) and all(json_fits(i, int) for i in v) for v in states.values())
        ):
            raise ValueError("state.json has damaged random states")
        backend = data.get("backend", "")
        if not isinstance(backend, str):
            raise ValueError("state.json has a backend that is not a name")
        auto_dropout = data.get("auto_dropout", {})
        on_from = auto_dropout.get("step") if isinstance(auto_dropout, dict) else None
        if auto_dropout and not (
            isinstance(auto_dropout, dict)
            and json_fits(auto_dropout.get("holds"), float)
            and (on_from is None or (json_fits(on_from, int) and on_from >= 0))
        ):
            raise ValueError("state.json has a damaged dropout decision")
        return cls(
            history=History(batches=batches, epochs=epochs),
            random_states=states,
            backend=backend,
            auto_dropout=auto_dropout or {},
            **values,
        )


def _numbers(values) -> bool:
    """True if every item is a JSON number."""
    return all(json_fits(v, float) for v in values)


@dataclass(frozen=True)
class Checkpoint:
    """A complete checkpoint folder and the state saved in it."""

    path: Path
    state: TrainingState

    @property
    def model_path(self) -> Path:
        return self.path / "model.keras"


def checkpoint_folder_name(step: int) -> str:
    """The folder name of the checkpoint written at `step` (names sort by step)."""
    return f"step-{step:08d}"


def default_run_dir(corpus_name: str, root: Path | None = None) -> Path:
    """runs/<corpus>-<date>-<time> under the current directory."""
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in corpus_name)[:40] or "corpus"
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = (root or Path.cwd() / "runs") / f"{safe}-{stamp}"
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    return path


def _read(path: Path, parse):
    """parse(text of `path`), or a CharlmError that names the file and what is wrong with it."""
    try:
        return parse(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CharlmError(f"{path.parent} is damaged: {path.name} is missing.") from None
    except OSError as error:
        raise CharlmError(f"Cannot read {path}: {error.strerror or error}.") from None
    except (CharlmError, ValueError) as error:  # (UnicodeDecodeError and JSONDecodeError are ValueErrors)
        raise CharlmError(f"{path} is damaged: {str(error).rstrip('.')}.") from None


def lock_owner(path: Path) -> dict[str, Any]:
    """What `.lock-owner` says of the process that holds a run's lock (pid, host, since); {} if it says nothing."""
    try:
        owner = json.loads((Path(path) / ".lock-owner").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return owner if isinstance(owner, dict) else {}


# Run-directory locks this process holds (a FileLock releases when garbage-collected, so keep them here).
_HELD_LOCKS: dict[str, Any] = {}


class RunDirectory:
    """A run directory on disk; create one, or open one to resume, sample or evaluate."""

    def __init__(
        self,
        path: Path,
        config: TrainConfig,
        vocab: Vocabulary,
        meta: dict[str, Any],
        sizing: dict[str, Any] | None = None,
    ):
        self.path = path
        self.config = config
        self.vocab = vocab
        self.meta = meta
        # How `--units auto` chose the width (sizing.SizeChoice as a dict), or None for a width given by hand.
        self.sizing = sizing

    @property
    def checkpoints_dir(self) -> Path:
        return self.path / "checkpoints"

    @property
    def samples_path(self) -> Path:
        return self.path / "samples.txt"

    @classmethod
    def create(
        cls,
        path: Path,
        config: TrainConfig,
        vocab: Vocabulary,
        corpus_meta: dict[str, Any],
        sizing: dict[str, Any] | None = None,
    ) -> RunDirectory:
        """Make a new run directory; refuses one that already holds a run. `sizing` goes into config.json."""
        path = Path(path)
        if (path / "run.json").exists():
            raise CharlmError(
                f"{path} already holds a run; resume it with --resume {path}, or choose another --run-dir."
            )
        if path.exists() and not path.is_dir():
            raise CharlmError(f"Run directory {path} exists and is not a folder.")
        try:
            (path / "checkpoints").mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise CharlmError(f"Cannot create run directory {path}: {error.strerror or error}.") from None
        run = cls(path, config, vocab, {}, sizing)
        run.lock_for_training()  # before run.json: a second process aiming at the same folder is refused
        try:
            atomic_write_text(path / "config.json", config.to_json(sizing))
            atomic_write_text(path / "vocab.json", vocab.to_json())
            meta = {
                "format": FORMAT,
                "version": FORMAT_VERSION,
                "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
                "corpus": corpus_meta,
            }
            # run.json last: its presence means the directory is complete.
            atomic_write_text(path / "run.json", json.dumps(meta, indent=2))
        except OSError as error:
            raise CharlmError(f"Cannot create run directory {path}: {error.strerror or error}.") from None
        run.meta = meta
        return run

    def lock_for_training(self) -> None:
        """Hold this run for training until the process exits; refuse if another process holds it.

        Re-entrant within one process (the app and the tests may open a run
        more than once); exclusive between processes.
        """
        lock = FileLock(self.path / ".lock", is_singleton=True, thread_local=False)
        try:
            lock.acquire(blocking=False)
        except Timeout:
            owner = lock_owner(self.path)
            try:
                who = f" (pid {owner['pid']} on {owner['host']}, since {owner['since']})"
            except KeyError:
                who = ""
            raise CharlmError(
                f"{self.path} is being trained by another process{who}. Wait for it to finish or "
                f"stop it; a process that is killed releases the run by itself."
            ) from None
        except OSError as error:
            raise CharlmError(f"Cannot lock run directory {self.path}: {error.strerror or error}.") from None
        _HELD_LOCKS[str(self.path.resolve())] = lock  # held for the life of the process, whatever holds this object
        owner = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%d %H:%M:%S")}
        try:
            atomic_write_text(self.path / ".lock-owner", json.dumps(owner))
        except OSError:
            pass  # only used to name the holder in the message above

    def release_training_lock(self) -> None:
        """Let go of this run (a headless trainer takes it over); nothing happens if this process does not hold it."""
        lock = _HELD_LOCKS.pop(str(self.path.resolve()), None)
        if lock is not None:
            lock.release(force=True)

    @classmethod
    def open(cls, path: str | os.PathLike) -> RunDirectory:
        """Open an existing run directory, refusing anything that is not a complete one."""
        path = Path(path)
        if not path.exists():
            raise CharlmError(f"Run directory {path} does not exist.")
        if not path.is_dir():
            raise CharlmError(f"{path} is a file, not a run directory.")
        try:
            meta = json.loads((path / "run.json").read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise CharlmError(f"{path} is not a charlm run directory (it has no run.json).") from None
        except (OSError, ValueError) as error:
            raise CharlmError(f"{path} is not a usable run directory: run.json is unreadable ({error}).") from None
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise CharlmError(f"{path} is not a charlm run directory (run.json is of another format).")
        version = meta.get("version", 0)
        if isinstance(version, bool) or not isinstance(version, int):
            raise CharlmError(
                f"{path / 'run.json'} is damaged: its version is {json.dumps(version)[:40]}, not a whole number."
            )
        if version > FORMAT_VERSION:
            raise CharlmError(f"{path} was written by a newer tui_charlm (format {version}); upgrade to use it.")
        if not isinstance(meta.get("corpus", {}), dict):
            meta["corpus"] = {}  # only informative (the corpus identity); the config names the corpus
        raw = _read(path / "config.json", json.loads)
        config = _read(path / "config.json", lambda _: TrainConfig.from_dict(raw))
        vocab = _read(path / "vocab.json", Vocabulary.from_json)
        sizing = raw.get("sizing")
        return cls(path, config, vocab, meta, sizing if isinstance(sizing, dict) else None)

    # -- checkpoints -------------------------------------------------------

    def checkpoints(self) -> list[Path]:
        """Complete checkpoint folders, newest first (the one latest.json names comes first)."""
        if not self.checkpoints_dir.is_dir():
            return []
        found = sorted(
            (p for p in self.checkpoints_dir.iterdir() if p.is_dir() and p.name.startswith("step-")),
            key=lambda p: p.name,
            reverse=True,
        )
        try:
            named = json.loads((self.path / "latest.json").read_text())["checkpoint"]
            preferred = self.checkpoints_dir / named
            if preferred in found:
                found.remove(preferred)
                found.insert(0, preferred)
        except (OSError, ValueError, KeyError, TypeError):
            pass  # latest.json is missing or damaged: fall back to the newest folder
        return found

    def latest(self) -> Checkpoint | None:
        """The newest checkpoint whose state can be read, or None if there is none yet."""
        for folder in self.checkpoints():
            try:
                state = TrainingState.from_json((folder / "state.json").read_text(encoding="utf-8"))
            except (OSError, ValueError, TypeError):
                continue
            if (folder / "model.keras").is_file():
                return Checkpoint(folder, state)
        return None

    def load_model(self, *, compile: bool = True):
        """Load the newest loadable checkpoint: (keras model, checkpoint), or (None, None) if none exists.

        Models load in Keras safe mode: nothing in a checkpoint can run code.
        """
        from tui_charlm.core.backend import start_backend

        start_backend()
        import keras

        errors = []
        for folder in self.checkpoints():
            try:
                state = TrainingState.from_json((folder / "state.json").read_text(encoding="utf-8"))
                model = keras.saving.load_model(folder / "model.keras", compile=compile, safe_mode=True)
            except Exception as error:  # a damaged file can fail in many ways; try an older one
                errors.append(f"{folder.name}: {str(error).splitlines()[0] if str(error) else type(error).__name__}")
                continue
            self._check_model_fits(model)
            return model, Checkpoint(folder, state)
        if errors:
            raise CharlmError(f"No checkpoint in {self.path} could be loaded ({'; '.join(errors[:3])}).")
        return None, None

    def _check_model_fits(self, model) -> None:
        """Refuse a model that vocab.json or config.json does not describe (an edited or mixed-up run)."""
        outputs = model.output_shape[-1]
        if outputs != len(self.vocab):
            raise CharlmError(
                f"{self.path / 'vocab.json'} does not match the model: it lists {len(self.vocab)} "
                f"characters, the model predicts {outputs}."
            )
        units = [layer.units for layer in model.layers if type(layer).__name__ == "LSTM"]
        if units != [self.config.units] * self.config.layers:
            raise CharlmError(
                f"{self.path / 'config.json'} does not match the model: it says {self.config.layers} "
                f"x {self.config.units} LSTM units, the model has {' + '.join(map(str, units)) or 'none'}."
            )

    def save_checkpoint(self, model, state: TrainingState) -> Path:
        """Write a checkpoint atomically, point latest.json at it, and prune old ones."""
        name = checkpoint_folder_name(state.step)
        final = self.checkpoints_dir / name
        tmp = self.checkpoints_dir / f".tmp-{name}-{os.getpid()}"
        try:
            self.checkpoints_dir.mkdir(parents=True, exist_ok=True)
            if tmp.exists():
                shutil.rmtree(tmp)
            tmp.mkdir()
            model.save(tmp / "model.keras")
            with open(tmp / "model.keras", "rb+") as handle:
                os.fsync(handle.fileno())
            atomic_write_text(tmp / "state.json", state.to_json())
            if final.exists():
                # Same step saved again (e.g. 's' then quit with no training in between): replace it.
                old = self.checkpoints_dir / f".old-{name}-{os.getpid()}"
                os.replace(final, old)
                os.replace(tmp, final)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(tmp, final)
            fsync_directory(self.checkpoints_dir)
            atomic_write_text(
                self.path / "latest.json", json.dumps({"checkpoint": name, "step": state.step, "epoch": state.epoch})
            )
        except OSError as error:
            shutil.rmtree(tmp, ignore_errors=True)
            raise CharlmError(f"Could not save a checkpoint in {self.path}: {error.strerror or error}.") from None
        self._prune(keep=final)
        return final

    def _prune(self, keep: Path) -> None:
        """Delete all but the newest checkpoints, and leftovers of interrupted saves."""
        for leftover in self.checkpoints_dir.glob(".old-step-*"):
            # A checkpoint moved aside to be replaced by a new save of the same step. If that process died
            # before the new one was in place, this is the only copy: put it back; else it is superseded.
            original = self.checkpoints_dir / leftover.name[len(".old-") :].rsplit("-", 1)[0]
            if leftover.name.endswith(f"-{os.getpid()}"):
                continue
            if original.exists():
                shutil.rmtree(leftover, ignore_errors=True)
            else:
                try:
                    os.replace(leftover, original)
                except OSError:
                    pass
        folders = [p for p in self.checkpoints() if p != keep]
        for old in folders[KEEP_CHECKPOINTS - 1 :]:
            shutil.rmtree(old, ignore_errors=True)
        for leftover in self.checkpoints_dir.glob(".tmp-*"):
            if not leftover.name.endswith(f"-{os.getpid()}"):
                shutil.rmtree(leftover, ignore_errors=True)

    def append_samples(self, text: str) -> None:
        """Add generated text to samples.txt (append-only: a cut-off last line is harmless)."""
        with open(self.samples_path, "a", encoding="utf-8") as handle:
            handle.write(text)
