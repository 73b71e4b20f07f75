"""No traceback for any input: `charlm` driven in-process with random options and damaged run files.

For every case: the command succeeds, or it exits non-zero with one
sentence on stderr and no traceback; a new run directory is either complete
or not there at all; and no checkpoint that existed before is lost or
changed. Cases are drawn by Hypothesis from a fixed seed (`derandomize`), so
CI runs the same ones every time; `CHARLM_FUZZ_EXAMPLES=500` runs more.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tests.conftest import PATIENCE, TINY_FLAGS, charlm_here, cli_env, make_text, quiet, tiny_config
from tests.ptys import on_pty, read_until, wait_for_exit
from tui_charlm.core import checkpoints
from tui_charlm.core.checkpoints import RunDirectory
from tui_charlm.core.session import new_training

pytestmark = pytest.mark.slow

EXAMPLES = int(os.environ.get("CHARLM_FUZZ_EXAMPLES", "0"))
FUZZ = settings(
    deadline=None,
    derandomize=not EXAMPLES,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
# The tiny model every training case starts from (drawn options come after and win), and what caps its time.
TINY = [*TINY_FLAGS, "--precision", "float32", "--checkpoint-every", "0"]
CAPS = ["--epochs", "1", "--time-budget", "3"]
RUN_FILES = ["run.json", "config.json", "vocab.json", "latest.json", "state.json", "model.keras"]


@pytest.fixture(scope="module")
def place(tmp_path_factory):
    """Corpora of every kind a user might point at, and a tiny trained run to copy and damage."""
    root = tmp_path_factory.mktemp("fuzz")
    files = {"text": make_text(3000), "one-char": "a" * 3000, "short": "abc", "empty": ""}
    for name, text in files.items():
        (root / f"{name}.txt").write_text(text)
    (root / "binary.dat").write_bytes(bytes(range(256)) * 20)
    (root / "latin1.txt").write_bytes("caf\xe9 ".encode("latin-1") * 600)
    (root / "folder").mkdir()
    with quiet():
        trainer = new_training(
            tiny_config(corpus=str(root / "text.txt"), epochs=1), run_dir=root / "template", log=lambda _: None
        )
        trainer.fit()
    trainer.run.release_training_lock()
    return root


# -- strategies ------------------------------------------------------------------------------------------


def _values(*values) -> st.SearchStrategy[str]:
    return st.sampled_from([str(v) for v in values])


WHOLE = _values(-1, 0, 1, 2, 3, 8, 17, "x", "1.5")
FRACTION = _values(-1, 0, 0.5, 0.99, 1, 2, "nan", "inf", "-inf", "1e-9", "abc")
TRAIN_OPTIONS = {
    "--units": WHOLE,
    "--layers": _values(-1, 0, 1, 2),
    "--seq-len": _values(-1, 0, 1, 2, 16, 3000, 10**6),
    "--batch-size": _values(-1, 0, 1, 8, 3000, 10**6),
    "--embedding-dim": WHOLE,
    "--window-step": WHOLE,
    "--steps-per-execution": _values(0, 1, 3, 10**6),
    "--epochs": WHOLE,
    "--max-vocab": _values(0, 1, 2, 10, 4096),
    "--val-max-chars": _values(-1, 0, 1, 16, 17, 10**12),
    "--threads": _values(-1, 0, 1, 10**12),
    "--seed": WHOLE,
    "--dropout": FRACTION,
    "--learning-rate": FRACTION,
    "--clipnorm": FRACTION,
    "--val-fraction": FRACTION,
    "--weight-decay": FRACTION,
    "--time-budget": FRACTION,
    "--checkpoint-every": FRACTION,
    "--optimizer": _values("adam", "rmsprop", "sgd", "bogus"),
    "--lr-schedule": _values("constant", "cosine", "x"),
    "--precision": _values("auto", "float32", "mixed_bfloat16", "mixed_float16", "x"),
    "--strategy": _values("default", "mirrored", "x"),
    "--recipe": _values("default", "seed", "x"),
    "--encoding": _values("utf-8", "latin-1", "utf-16", "bogus"),
    "--lowercase": st.just(None),
    "--no-lowercase": st.just(None),
    "--mixed-precision": st.just(None),
    "--offline": st.just(None),
    "--plain": st.just(None),
    "--corpus": _values(
        "{text}",
        "{one-char}",
        "{short}",
        "{empty}",
        "{binary}",
        "{latin1}",
        "{folder}",
        "/no/such/file.txt",
        "nietzsche",
        "no-such-name",
        "",
    ),
    "--run-dir": _values("{text}", "/proc/no/such"),
}
GENERATE_OPTIONS = {
    "--temperature": _values(-1, 0, 0.5, 1, 1e9, "nan", "inf", "x"),
    "--top-k": WHOLE,
    "--top-p": FRACTION,
    "--mode": _values("stateful", "window", "x"),
    "--length": _values(-1, 0, 1, 40),
    "--rng-seed": WHOLE,
    "--seed-text": st.text(max_size=30).filter(lambda t: not t.startswith("-")),
    "--seed-file": _values("{text}", "{binary}", "{folder}", "/no/such"),
    "--offline": st.just(None),
}
EVAL_OPTIONS = {"--positions": WHOLE, "--context": _values(-1, 0, 1, 60, 10**6), "--offline": st.just(None)}


def _options(table: dict[str, st.SearchStrategy]) -> st.SearchStrategy[list[tuple[str, str | None]]]:
    return st.lists(
        st.sampled_from(sorted(table)).flatmap(lambda flag: st.tuples(st.just(flag), table[flag])), max_size=4
    )


def _flatten(options, place: Path) -> list[str]:
    # --flag=value, so a value that starts with '-' is read as the value it is
    return [flag if value is None else f"{flag}={_at(value, place)}" for flag, value in options]


def _at(value: str, place: Path) -> str:
    for name in ("text", "one-char", "short", "empty", "latin1"):
        value = value.replace("{" + name + "}", str(place / f"{name}.txt"))
    return value.replace("{binary}", str(place / "binary.dat")).replace("{folder}", str(place / "folder"))


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**12), 10**12) | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)
DAMAGE = st.one_of(
    st.tuples(st.just("bytes"), st.binary(max_size=120)),
    st.tuples(st.just("json"), JSON),
    # one key of the file's own JSON object (the n-th, wrapping) given another value
    st.tuples(st.just("field"), st.tuples(st.integers(0, 20), JSON)),
    st.tuples(st.just("truncate"), st.floats(0, 0.99)),
    st.tuples(st.just("delete"), st.none()),
)


# -- running a command -----------------------------------------------------------------------------------


def run_charlm(argv: list[str]) -> tuple[int, str, str]:
    """`charlm ARGV` in this process: (exit status, stdout, stderr). Anything raised but SystemExit fails."""
    result = charlm_here(*argv)
    return result.returncode, result.stdout, result.stderr


def check_outcome(status: int, stderr: str, argv: list[str]) -> None:
    assert "Traceback" not in stderr, (argv, stderr)
    if status != 0:
        lines = [line for line in stderr.splitlines() if "error:" in line]
        # one sentence: the error line itself (argparse puts its usage lines before it)
        assert len(lines) == 1 and len(lines[0]) > len("charlm: error: "), (argv, stderr)


def checkpoint_files(run: Path) -> dict[str, str]:
    folder = run / "checkpoints"
    return {
        p.name: hashlib.sha256((p / "model.keras").read_bytes()).hexdigest()
        for p in (folder.iterdir() if folder.is_dir() else [])
        if p.name.startswith("step-") and (p / "model.keras").is_file()
    }


def damage(run: Path, target: str, how: tuple[str, object]) -> None:
    path = run / target
    if target == "state.json":
        path = next((run / "checkpoints").iterdir()) / "state.json"
    elif target == "model.keras":
        path = next((run / "checkpoints").iterdir()) / "model.keras"
    kind, value = how
    if kind == "delete":
        path.unlink()
    elif kind == "bytes":
        path.write_bytes(value)
    elif kind == "truncate":
        data = path.read_bytes()
        path.write_bytes(data[: int(len(data) * value)])
    elif kind == "json":
        path.write_text(json.dumps(value))
    elif path.suffix != ".json":  # the model's zip: written over with the value as text
        path.write_text(json.dumps(value[1]))
    else:
        index, new = value
        original = json.loads(path.read_text())
        key = sorted(original)[index % len(original)]
        original[key] = new
        path.write_text(json.dumps(original))


# -- the cases --------------------------------------------------------------------------------------------


@settings(FUZZ, max_examples=EXAMPLES or 30)
@given(options=_options(TRAIN_OPTIONS))
def test_train_with_any_options_succeeds_or_says_why(place, tmp_path_factory, options):
    run_dir = tmp_path_factory.mktemp("run") / "new"
    argv = [
        "train",
        *TINY,
        "--corpus",
        str(place / "text.txt"),
        "--run-dir",
        str(run_dir),
        *_flatten(options, place),
        *CAPS,
    ]
    status, _, stderr = run_charlm(argv)
    event(f"exit {status}")  # (pytest --hypothesis-show-statistics shows how the cases ended)
    check_outcome(status, stderr, argv)
    given_dir = next((Path(_at(v, place)) for f, v in reversed(options) if f == "--run-dir"), run_dir)
    if given_dir == run_dir and run_dir.exists():
        # nothing half-made: what exists is a whole run (training itself may still fail, e.g. a NaN loss)
        RunDirectory.open(run_dir)
        assert status == 0 or "loss became" in stderr or "held-out loss" in stderr, stderr


@settings(FUZZ, max_examples=EXAMPLES or 70)
@given(
    command=st.sampled_from(["generate", "eval", "resume", "corpora"]),
    target=st.sampled_from([*RUN_FILES, None]),
    how=DAMAGE,
    generate=_options(GENERATE_OPTIONS),
    evaluate=_options(EVAL_OPTIONS),
)
def test_any_command_on_any_damaged_run_succeeds_or_says_why(
    place, tmp_path_factory, command, target, how, generate, evaluate
):
    run = tmp_path_factory.mktemp("damaged") / "run"
    shutil.copytree(place / "template", run, ignore=shutil.ignore_patterns(".lock*"))
    if target is not None:
        damage(run, target, how)
    before = checkpoint_files(run)
    argv = {
        "generate": ["generate", str(run), "-n", "20", *_flatten(generate, place)],
        "eval": ["eval", str(run), "--positions", "50", *_flatten(evaluate, place)],
        # (a damaged config may ask for much more training: the run's total time is capped at 4 s)
        "resume": ["train", "--resume", str(run), "--epochs", "2", "--time-budget", "4", "--plain"],
        "corpora": ["corpora"],
    }[command]
    status, stdout, stderr = run_charlm(argv)
    event(f"{command}, {target or 'intact'}: exit {status}{', trained' if 'epoch 2 done' in stdout else ''}")
    check_outcome(status, stderr, argv)
    after = checkpoint_files(run)
    for name, digest in before.items():
        # still there and untouched, or pruned because training saved the newest few after it
        newer = [other for other in after if other > name]
        assert after.get(name) == digest or len(newer) >= checkpoints.KEEP_CHECKPOINTS, (argv, before, after)


# -- charlm-tui's start-up options, on a real terminal ------------------------------------------------

TUI_OPTIONS = {
    **{
        flag: TRAIN_OPTIONS[flag]
        for flag in (
            "--units",
            "--seq-len",
            "--batch-size",
            "--dropout",
            "--learning-rate",
            "--val-max-chars",
            "--precision",
            "--recipe",
            "--corpus",
        )
    },
    "--temperatures": _values("0.2,0.5", "", ",", "-1", "x", "0,0,0,0,0,0,0,0,0", "nan", "1e9"),
    "--chars-per-second": FRACTION,
    "--rng-seed": WHOLE,
    "--seed-text": _values("the ", "", "\u263a", "x" * 500),
    "--resume": _values("{template}", "{damaged}", "{text}", "/no/such"),
    "--load": _values("{template}", "{damaged}", "/no/such"),
    "--no-train": st.just(None),
}
SETTLED = (b"TRAINING", b"FINISHED", b"FAILED", b"GENERATING", b"STOPPED")


@settings(FUZZ, max_examples=EXAMPLES or 6)
@given(options=_options(TUI_OPTIONS), how=DAMAGE)
def test_charlm_tui_start_up_options_succeed_or_say_why(place, tmp_path_factory, options, how):
    work = tmp_path_factory.mktemp("tui")
    for name in ("template", "damaged"):
        shutil.copytree(place / "template", work / name, ignore=shutil.ignore_patterns(".lock*"))
    damage(work / "damaged", "config.json", how)
    runs = [
        (
            flag,
            value
            if value is None
            else value.replace("{template}", str(work / "template")).replace("{damaged}", str(work / "damaged")),
        )
        for flag, value in options
    ]
    opens_a_run = any(flag in ("--resume", "--load") for flag, _ in options)
    command = [
        sys.executable,
        "-m",
        "tui_charlm.tui.main",
        *TINY,
        "--corpus",
        str(place / "text.txt"),
        *([] if opens_a_run else ["--run-dir", str(work / "new")]),
        *_flatten(runs, place),
        *CAPS,
    ]
    with on_pty(command, cli_env(work), columns=120, rows=40) as (process, state, output):
        deadline = time.monotonic() + PATIENCE
        while process.poll() is None and not any(word in output for word in SETTLED) and time.monotonic() < deadline:
            read_until(state["master"], b"\x00never", output, timeout=0.5)
        if process.poll() is None:
            os.write(state["master"], b"q")
        exited = wait_for_exit(process, state["master"], output, timeout=PATIENCE)
        assert exited, output.decode(errors="replace")[-2000:]
    text = output.decode(errors="replace")
    event(f"exit {process.returncode}")
    # (an exception that escaped the training worker is shown as "unexpected error": a bug all the same)
    assert "Traceback" not in text and "unexpected error" not in text, (command, text[-3000:])
    if process.returncode != 0:
        assert "error:" in text or "charlm-tui: " in text, (command, text[-3000:])
