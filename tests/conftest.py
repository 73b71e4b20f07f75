"""Shared fixtures: an isolated cache and working directory, tiny configs, small corpora."""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

# The suite runs on TensorFlow (the default) and, in CI, its training tests again on JAX (KERAS_BACKEND=jax).
ON_JAX = os.environ.get("KERAS_BACKEND", "").strip() == "jax"
# For tests of what only TensorFlow has (tf.distribute, its thread counts, oneDNN's bfloat16 as 'auto').
tensorflow_only = pytest.mark.skipif(ON_JAX, reason="TensorFlow's own (this run is on KERAS_BACKEND=jax)")


# The tests CI runs a second time on JAX (`KERAS_BACKEND=jax python -m pytest -m both_backends`): training,
# exact resume, checkpoints, every CLI command and the app, on the backend-specific seam (core/backend.py).
both_backends = pytest.mark.both_backends


def cpu_device(*tags: str) -> str:
    """The device line of training on the CPU with these tags, as this backend writes it ('CPU (JAX, ...)')."""
    tags = ("JAX", *tags) if ON_JAX else tags
    return "CPU" + (f" ({', '.join(tags)})" if tags else "")


WORDS = [
    "the",
    "cat",
    "sat",
    "on",
    "a",
    "mat",
    "and",
    "a",
    "dog",
    "ran",
    "to",
    "the",
    "old",
    "red",
    "barn",
    "while",
    "rain",
    "fell",
    "over",
    "quiet",
    "fields",
    "of",
    "wheat",
    "near",
    "the",
    "river",
    "where",
    "children",
    "played",
    "each",
    "long",
    "summer",
    "evening",
]


def make_text(chars: int = 6000, seed: int = 0) -> str:
    """Deterministic made-up English-like text (our own words; the project ships no third-party text)."""
    rng = np.random.default_rng(seed)
    out, size = [], 0
    while size < chars:
        sentence = " ".join(rng.choice(WORDS, size=int(rng.integers(4, 10)))).capitalize() + ". "
        if rng.random() < 0.15:
            sentence += "\n"
        out.append(sentence)
        size += len(sentence)
    return "".join(out)[:chars]


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """Every test gets its own Keras cache and working directory, and no network by default."""
    home = tmp_path / "keras_home"
    home.mkdir()
    monkeypatch.setenv("KERAS_HOME", str(home))
    monkeypatch.setenv("CHARLM_OFFLINE", "1")
    monkeypatch.delenv("CHARLM_CORPUS_MIRROR", raising=False)
    monkeypatch.delenv("CHARLM_CORPORA", raising=False)
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "3")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return work


@pytest.fixture
def corpus_file(tmp_path) -> Path:
    path = tmp_path / "tiny.txt"
    path.write_text(make_text(6000), encoding="utf-8")
    return path


def tiny_config(**overrides):
    from tui_charlm.core.config import make_config

    # One batch per TensorFlow call, so tests can steer at any batch; test_training covers several per call.
    # float32 whatever the CPU ('auto' would pick bfloat16 on some); test_devices covers the other precisions.
    # No dropout: an 8-unit model has nothing to spare (the default's dropout is for a 512-unit one).
    # A constant rate, so a run resumed with more epochs follows the same rates as one trained straight
    # (a schedule spans the epochs asked for); test_training covers the schedules.
    values = dict(
        units=8,
        embedding_dim=4,
        seq_len=16,
        batch_size=8,
        epochs=1,
        learning_rate=0.01,
        threads=1,
        checkpoint_every=0,
        steps_per_execution=1,
        precision="float32",
        dropout=0.0,
        lr_schedule="constant",
    )
    recipe = overrides.pop("recipe", "default")
    if recipe == "seed":
        values = dict(
            units=8,
            seq_len=12,
            window_step=3,
            batch_size=16,
            epochs=1,
            threads=1,
            checkpoint_every=0,
            steps_per_execution=1,
        )
    values.update(overrides)
    return make_config(recipe, **values)


def cli_env(tmp_path: Path) -> dict[str, str]:
    """Environment for running `charlm` in a subprocess, isolated like the tests."""
    env = dict(os.environ)
    env["KERAS_HOME"] = os.environ["KERAS_HOME"]
    env["CHARLM_OFFLINE"] = "1"
    env["PYTHONUNBUFFERED"] = "1"
    return env


# How long a test waits for a program or thread before calling it a hang. It bounds a hang, not a speed: what
# takes a second here must still pass on a machine many times slower and shared with others.
PATIENCE = 300.0

CHARLM = [sys.executable, "-m", "tui_charlm.cli"]


@contextlib.contextmanager
def quiet():
    """stdout and stderr caught in two StringIOs (yielded), as a pipe would catch them."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        yield out, err


def charlm_here(*args) -> subprocess.CompletedProcess:
    """`charlm ARGS` run in this process through `cli.main`, as `subprocess.run` would report it.

    The same code as the program, without starting TensorFlow again (6 s on a slow machine) for each
    command: for the tests that check only what a command prints, writes and returns. Signals, terminals,
    lost pipes and resource limits need a process of their own (CHARLM). Anything raised but SystemExit
    (argparse's usage errors) fails the test.
    """
    from tui_charlm import cli
    from tui_charlm.core import checkpoints

    argv = [str(a) for a in args]
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    with quiet() as (out, err):
        try:
            status = cli.main(argv)
        except SystemExit as exit:
            status = exit.code if isinstance(exit.code, int) else 1
        finally:
            for number, handler in handlers.items():
                signal.signal(number, handler)
            for path in list(checkpoints._HELD_LOCKS):  # what training took in this process, let go
                checkpoints._HELD_LOCKS.pop(path).release(force=True)
    return subprocess.CompletedProcess(["charlm", *argv], status, out.getvalue(), err.getvalue())


# The tiny model of tiny_config as command-line flags, for tests that run `charlm` or `charlm-tui` as programs.
TINY_FLAGS = ["--units", "8", "--embedding-dim", "4", "--seq-len", "16", "--batch-size", "8", "--threads", "1"]


def wait_for(condition, what: str, timeout: float = PATIENCE, *, reading: tuple | None = None) -> None:
    """Wait until `condition()` is true; fail naming `what` if it is not within `timeout` (a hang, not a speed).

    With `reading` (a terminal's state and output, tests/ptys.py), the terminal is read while waiting, as a real
    one is: an unread one fills, the program blocks writing to it, and what it showed meanwhile is never drawn.
    """
    from tests.ptys import read_until

    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        if reading is not None and reading[0]["master"] is not None:
            read_until(reading[0]["master"], b"\x00never", reading[1], timeout=0.05)
        else:
            time.sleep(0.05)


def log_lines(run: Path) -> list[dict]:
    """The whole lines of a run's events.jsonl, parsed ([] before it exists)."""
    try:
        text = (run / "events.jsonl").read_text()
    except OSError:
        return []
    lines = []
    for line in text.splitlines():
        try:
            lines.append(json.loads(line))
        except ValueError:
            pass  # the last line, being written
    return lines


@pytest.fixture
def background_trainer(tmp_path):
    """A real `charlm train` of a tiny model in its own process, training for as long as the test needs.

    Yields (process, run folder) once the run's event log shows a batch.
    """
    corpus = tmp_path / "trained-text.txt"
    corpus.write_text(make_text(20000))
    run = tmp_path / "run"
    command = [*CHARLM, "train", "--corpus", str(corpus), "--run-dir", str(run), "--plain", *TINY_FLAGS]
    command += ["--epochs", "100000", "--checkpoint-every", "0"]
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=cli_env(tmp_path)
    )
    try:
        wait_for(lambda: any(r["type"] == "batch" for r in log_lines(run)), "the trainer's first logged batch")
        yield process, run
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate()


def pytest_collection_modifyitems(config, items):
    """The tests marked slow first: the two workers then end together, not one waiting on a long test begun last."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)
