"""`charlm` as a user runs it: real files, exit codes and messages.

Training, signals, locks held by other processes and resource limits run
`charlm` as a real subprocess. The commands whose output, files and exit
status are all a test checks (generate, eval, cells, runs, refusals) run
in the test's process through `cli.main` (`charlm_here`): the same code,
without starting TensorFlow again for each command.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.conftest import (
    CHARLM,
    PATIENCE,
    TINY_FLAGS,
    both_backends,
    charlm_here,
    cli_env,
    make_text,
    tensorflow_only,
)

TINY = [*TINY_FLAGS, "--precision", "float32"]


@contextmanager
def training_elsewhere(run: Path, tmp_path: Path):
    """Another process holding `run`'s training lock, as `charlm train` does: yields it; killed on the way out."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from tui_charlm.core.checkpoints import RunDirectory\n"
            "RunDirectory.open(sys.argv[1]).lock_for_training()\n"
            "print('holding', flush=True)\n"
            "time.sleep(600)\n",
            str(run),
        ],
        stdout=subprocess.PIPE,
        text=True,
        env=cli_env(tmp_path),
    )
    try:
        assert holder.stdout.readline().strip() == "holding"
        yield holder
    finally:
        holder.kill()
        holder.wait(timeout=PATIENCE)


def charlm(*args, tmp_path, timeout=PATIENCE):
    return subprocess.run(
        [*CHARLM, *map(str, args)], capture_output=True, text=True, env=cli_env(tmp_path), timeout=timeout
    )


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "text.txt"
    path.write_text(make_text(5000))
    return path


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A tiny run trained once by `charlm train` for the tests that start from one (each gets its own copy)."""
    base = tmp_path_factory.mktemp("trained")
    corpus = base / "text.txt"
    corpus.write_text(make_text(5000))  # the same text as the `corpus` fixture's
    (base / "keras_home").mkdir()
    env = dict(os.environ, KERAS_HOME=str(base / "keras_home"), CHARLM_OFFLINE="1", TF_CPP_MIN_LOG_LEVEL="3")
    run = base / "run"
    result = subprocess.run(
        [*CHARLM, "train", "--corpus", str(corpus), "--run-dir", str(run), "--epochs", "2", *TINY],
        capture_output=True,
        text=True,
        env=env,
        timeout=PATIENCE,
    )
    assert result.returncode == 0, result.stderr
    return run


@pytest.fixture
def run_dir(tmp_path, corpus, trained_run):
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    return run


@both_backends
def test_train_writes_a_complete_run_with_the_options_given(run_dir):
    config = json.loads((run_dir / "config.json").read_text())
    assert (config["units"], config["seq_len"], config["epochs"]) == (8, 16, 2)
    latest = json.loads((run_dir / "latest.json").read_text())
    state = json.loads((run_dir / "checkpoints" / latest["checkpoint"] / "state.json").read_text())
    assert state["epoch"] == 2 and [e["epoch"] for e in state["history"]["epochs"]] == [1, 2]
    assert (run_dir / "checkpoints" / latest["checkpoint"] / "model.keras").is_file()
    assert "=== epoch 2" in (run_dir / "samples.txt").read_text()


def test_train_prints_plain_progress_lines_when_not_a_terminal(tmp_path, corpus):
    result = charlm("train", "--corpus", corpus, "--run-dir", tmp_path / "r", "--epochs", "1", *TINY, tmp_path=tmp_path)
    assert result.returncode == 0
    # at least the epoch's last batch, with loss, both rates and the time so far
    assert re.search(
        r"^epoch 1 batch (\d+)/\1 step \d+ loss [\d.]+ \([\d.]+ bits\) [\d,]+ chars/s "
        r"\(session [\d,]+\) elapsed \d+s$",
        result.stdout,
        re.M,
    ), result.stdout
    assert "epoch 1 done: train" in result.stdout and "held-out" in result.stdout and "bits" in result.stdout
    assert re.search(r"^epoch 1 time: [\d.]+s, [\d.]+s \(\d+%\) in training calls; ", result.stdout, re.M)
    assert "\x1b[" not in result.stdout  # no terminal control codes in a log


def test_progress_with_a_time_budget_says_how_much_of_it_is_left(monkeypatch, capsys):
    # The epoch's ETA is not when a budgeted run ends: the budget may end it first.
    import io

    from tui_charlm.cli import PlainProgress, RichProgress
    from tui_charlm.core.events import BatchFinished

    batch = BatchFinished(2, 10, 40, 90, 2.0, 1000.0, 900.0, 123.4)
    lines = io.StringIO()
    PlainProgress(lines, budget=600)(batch)
    assert lines.getvalue().rstrip().endswith("elapsed 123s of 600s")
    PlainProgress(lines, budget=0)(batch)
    assert lines.getvalue().rstrip().endswith("elapsed 123s")
    monkeypatch.setenv("COLUMNS", "200")
    with RichProgress(budget=600) as progress:
        progress(batch)
    assert "budget 7:56 left" in capsys.readouterr().out  # 600 - 123.4 s
    with RichProgress() as progress:
        progress(batch)
    assert "budget" not in capsys.readouterr().out


@both_backends
def test_generate_prints_text_for_each_temperature(run_dir, tmp_path):
    args = ("generate", run_dir, "--seed-text", "the cat", "-n", "30", "-t", "0.5", "-t", "0", "--rng-seed", "3")
    result = charlm_here(*args)
    assert result.returncode == 0, result.stderr
    assert "--- T=0.5 ---" in result.stdout and "--- greedy ---" in result.stdout
    again = charlm_here(*args)
    assert again.stdout == result.stdout


def test_generate_reports_unknown_seed_chars(run_dir, tmp_path):
    result = charlm_here("generate", run_dir, "--seed-text", "the \u263a cat", "-n", "5", "-t", "1")
    assert result.returncode == 0 and "never saw" in result.stderr


@both_backends
def test_runs_lists_every_run_with_its_status_newest_first(run_dir, tmp_path):
    root = tmp_path / "runs"
    root.mkdir()
    finished = root / "finished"
    shutil.copytree(run_dir, finished)
    stopped = root / "stopped"
    shutil.copytree(run_dir, stopped)
    config = json.loads((stopped / "config.json").read_text())
    (stopped / "config.json").write_text(json.dumps({**config, "epochs": 5}))  # 2 of 5 epochs done
    damaged = root / "damaged"
    shutil.copytree(run_dir, damaged)
    (damaged / "vocab.json").write_text("{")
    training = root / "training"
    shutil.copytree(run_dir, training)
    (root / "notes").mkdir()  # a folder that is not a run is not listed
    for age_hours, run in enumerate((training, finished, stopped, damaged)):
        for state in (run / "checkpoints").glob("*/state.json"):
            os.utime(state, (time.time() - 3600 * age_hours,) * 2)
        os.utime(run, (time.time() - 3600 * age_hours,) * 2)
    with training_elsewhere(training, tmp_path) as holder:
        listed = charlm_here("runs", root, "--json")
        table = charlm_here("runs", root)
    assert listed.returncode == 0, listed.stderr
    runs = json.loads(listed.stdout)
    assert [r["name"] for r in runs] == ["training", "finished", "stopped", "damaged"]
    by_name = {r["name"]: r for r in runs}
    assert by_name["training"]["status"] == "training" and by_name["training"]["pid"] == holder.pid
    assert by_name["finished"]["status"] == "finished" and by_name["stopped"]["status"] == "stopped"
    assert by_name["damaged"]["status"] == "damaged" and "vocab.json" in by_name["damaged"]["reason"]
    latest = json.loads((run_dir / "latest.json").read_text())["checkpoint"]
    state = json.loads((run_dir / "checkpoints" / latest / "state.json").read_text())
    best = min(e["val_loss"] for e in state["history"]["epochs"])
    run = by_name["finished"]
    assert (run["step"], run["epoch"], run["epochs"]) == (state["step"], 2, 2)
    assert run["best_heldout"] == pytest.approx(best) and run["best_heldout_bits"] == pytest.approx(best / math.log(2))
    assert run["training_seconds"] == pytest.approx(state["elapsed"])
    assert (run["layers"], run["units"], run["corpus"]) == (1, 8, "text.txt")
    # The table says the same, for people.
    assert table.returncode == 0, table.stderr
    rows = {line.split()[0]: line for line in table.stdout.splitlines() if line.split() and line.split()[0] in by_name}
    assert f"training (pid {holder.pid}" in rows["training"] and "finished" in rows["finished"]
    assert "2/5" in rows["stopped"] and "stopped" in rows["stopped"]
    assert "damaged" in table.stdout and "notes" not in rows
    assert f"{best:.4f} nats" in rows["finished"] and "1x8" in rows["finished"]
    empty = charlm_here("runs", tmp_path / "nowhere")
    assert empty.returncode == 0 and "No runs in" in empty.stdout


CELL_LINE = r"^{name} +((?:#\d+ [+-]\d\.\d\d(?: +|$)){{{top}}}|\(does not vary in this text\)$)"


def quoted(text: str) -> str:
    """`text` with some words in double quotes and some in brackets."""
    words = text.split(" ")
    return " ".join(f'"{w}"' if i % 7 == 0 else f"({w})" if i % 11 == 0 else w for i, w in enumerate(words))


@pytest.mark.slow
@both_backends
def test_cells_ranks_cells_per_feature_and_writes_a_page(tmp_path):
    corpus = tmp_path / "quoted.txt"
    corpus.write_text(quoted(make_text(5000)))
    run = tmp_path / "run"
    trained = charlm_here("train", "--corpus", corpus, "--run-dir", run, "--epochs", "1", *TINY)
    assert trained.returncode == 0, trained.stderr
    text_file = tmp_path / "other.txt"
    text_file.write_text(quoted(make_text(1500, seed=4)) + " {}")  # braces: chars the model never saw
    page = tmp_path / "cells.html"
    result = charlm_here("cells", run, "--text", text_file, "--top", "2", "--html", page)
    assert result.returncode == 0, result.stderr
    assert "not in the model's vocabulary ('{', '}'); dropped them" in result.stderr
    assert f"text: {text_file}" in result.stdout
    for name in ("inside quotes", "bracket depth", "position in line", "start of a word", "after a newline"):
        assert re.search(CELL_LINE.format(name=name, top=2), result.stdout, re.M), (name, result.stdout)
    html = page.read_text()
    listed = set(re.findall(r"#\d+", result.stdout))
    assert html.count("<section>") == len(listed) and html.startswith("<!DOCTYPE html>")
    assert "inside quotes (r = " in html and "&quot;" in html

    # The default text is the run's held-out text.
    held_out = charlm_here("cells", run, "--top", "1")
    assert held_out.returncode == 0, held_out.stderr
    assert "text: the held-out text of quoted.txt" in held_out.stdout
    assert re.search(CELL_LINE.format(name="inside quotes", top=1), held_out.stdout, re.M)


def test_cells_refuses_bad_numbers_and_missing_text(run_dir, tmp_path):
    for args, words in (
        (["--top", "0"], "--top must be at least 1"),
        (["--text", tmp_path / "missing.txt"], "Cannot read"),
    ):
        result = charlm_here("cells", run_dir, *args)
        assert result.returncode == 1 and words in result.stderr and "Traceback" not in result.stderr


@both_backends
def test_eval_scores_the_held_out_text_as_keras_does(run_dir, corpus, tmp_path):
    # Every 60-char window of the held-out tenth (more positions asked than there are), and the whole
    # held-out text read in order: both computed here from the checkpoint with Keras itself.
    result = charlm_here("eval", run_dir, "--positions", "100000")
    assert result.returncode == 0, result.stderr
    window = float(re.search(r"window loss \(([\d,]+) positions, 60-char context\): ([\d.]+) nats", result.stdout)[2])
    stateful = float(re.search(r"stateful loss .*?: ([\d.]+) nats/char \(([\d.]+) bits", result.stdout)[1])

    import keras
    import numpy as np

    chars = json.loads((run_dir / "vocab.json").read_text())["chars"]
    text = corpus.read_text()
    ids = np.array([chars.index(c) for c in text])
    heldout = ids[len(ids) - round(len(ids) * 0.1) :]
    latest = json.loads((run_dir / "latest.json").read_text())["checkpoint"]
    model = keras.saving.load_model(run_dir / "checkpoints" / latest / "model.keras", compile=False)

    def nll(logits, targets):
        logits = logits.astype(np.float64)
        top = logits.max(axis=-1, keepdims=True)
        log_probs = logits - top - np.log(np.exp(logits - top).sum(axis=-1, keepdims=True))
        return -np.take_along_axis(log_probs, targets[..., None], axis=-1).mean()

    starts = np.arange(len(heldout) - 61)
    windows = heldout[starts[:, None] + np.arange(60)]
    expected_window = nll(model.predict(windows, verbose=0)[:, -1], heldout[starts + 60])
    expected_stateful = nll(model.predict(heldout[None, :-1], verbose=0)[0], heldout[1:])
    assert window == pytest.approx(expected_window, abs=2e-4)
    assert stateful == pytest.approx(expected_stateful, abs=2e-4)


def test_corpora_lists_what_is_available(tmp_path):
    result = charlm_here("corpora")
    assert result.returncode == 0
    for name in ("nietzsche", "shakespeare", "builtin"):
        assert name in result.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "--corpus", "/no/such/file.txt"], "does not exist"),
        (["train", "--corpus", "nosuchcorpus"], "No corpus named"),
        (["train", "--corpus", "{tmp}/bin.dat"], "binary data"),
        (["train", "--seq-len", "0", "--corpus", "{tmp}/bin.dat"], "seq-len must be at least 1"),
        (["generate", "{tmp}"], "not a charlm run directory"),
        (["generate", "{tmp}/nothing"], "does not exist"),
        (["eval", "{tmp}"], "not a charlm run directory"),
    ],
)
def test_bad_input_is_one_sentence_no_traceback(tmp_path, args, message):
    (tmp_path / "bin.dat").write_bytes(b"\x00\x01\x02" * 100)
    result = charlm_here(*[a.format(tmp=tmp_path) for a in args])
    assert result.returncode == 1
    assert message in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("units", ["0", "-3", "wide"])
def test_units_takes_a_positive_width_or_auto_and_a_typed_zero_is_not_auto(tmp_path, units):
    # 0 is how 'auto' is stored in a config, so a typed 0 must be refused, not measured.
    (tmp_path / "text.txt").write_text("a small corpus of plain text. " * 40)
    run = tmp_path / "run"
    result = charlm_here("train", "--units", units, "--corpus", tmp_path / "text.txt", "--run-dir", run)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"expected a whole number of at least 1, or 'auto', not '{units}'" in result.stderr
    assert not run.exists()


def test_bad_temperature_is_refused(run_dir, tmp_path):
    result = charlm_here("generate", run_dir, "-t", "-1")
    assert result.returncode == 1 and "Temperature must be" in result.stderr


def _limit_file_size(limit: int):
    """For a child process: files may not grow past `limit` bytes (writes fail with EFBIG, like a full disk)."""
    import resource

    def apply():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # fail the write instead of killing the process
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def test_a_save_that_cannot_be_written_stops_training_with_a_clear_message(tmp_path, corpus):
    run = tmp_path / "full"
    # Room for the run's small files but not for a model checkpoint: every save fails as on a full disk.
    result = subprocess.run(
        [*CHARLM, "train", "--corpus", str(corpus), "--run-dir", str(run), "--epochs", "3", *TINY],
        capture_output=True,
        text=True,
        env=cli_env(tmp_path),
        timeout=PATIENCE,
        preexec_fn=_limit_file_size(12_000),
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Could not save a checkpoint" in result.stderr and "File too large" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (run / "latest.json").exists() and not list((run / "checkpoints").iterdir())  # no half-written save


@pytest.mark.parametrize("sig", [signal.SIGHUP, signal.SIGTERM, signal.SIGINT])
def test_hangup_terminate_and_interrupt_save_and_exit_with_128_plus_the_signal(tmp_path, corpus, sig):
    run = tmp_path / "signalled"
    process = subprocess.Popen(
        [*CHARLM, "train", "--corpus", str(corpus), "--run-dir", str(run), "--epochs", "500", *TINY],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=cli_env(tmp_path),
    )
    for line in process.stdout:
        if line.startswith("epoch 1 batch"):
            break
    process.send_signal(sig)
    output = process.communicate(timeout=PATIENCE)[0]
    assert process.returncode == 128 + sig, output
    assert "finished (stopped)" in output
    latest = json.loads((run / "latest.json").read_text())
    assert latest["step"] > 0 and (run / "checkpoints" / latest["checkpoint"] / "model.keras").is_file()


def test_a_second_process_cannot_train_the_same_run_until_the_first_is_gone(tmp_path, corpus, run_dir):
    with training_elsewhere(run_dir, tmp_path) as holder:
        refused = charlm("train", "--resume", run_dir, "--epochs", "3", tmp_path=tmp_path)
        assert refused.returncode == 1
        assert f"being trained by another process (pid {holder.pid}" in refused.stderr
        assert "Traceback" not in refused.stderr
    # (killed on the way out, as kill -9: the lock goes with the process)
    resumed = charlm("train", "--resume", run_dir, "--epochs", "3", tmp_path=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert "epoch 3 done" in resumed.stdout


@pytest.mark.slow
def test_fault_injection_script_loses_nothing(tmp_path):
    script = Path(__file__).resolve().parent.parent / "benchmarks" / "fault_injection.py"
    result = subprocess.run(
        [sys.executable, str(script), "--kills", "3", "--max-delay", "8", "--no-record"],
        capture_output=True,
        text=True,
        env=cli_env(tmp_path),
        timeout=PATIENCE,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    summary = result.stdout.strip().splitlines()[-1]
    assert summary.startswith("kills: 3,") and "corrupt runs: 0" in summary and "lost or failed resumes: 0" in summary
    assert " 0 (continued" not in summary  # at least one start resumed from a checkpoint


@pytest.mark.slow
@tensorflow_only
def test_threads_take_effect_in_new_runs_and_resumes_and_each_epoch_accounts_for_its_time(tmp_path, corpus):
    import re

    run = tmp_path / "threads"
    result = charlm("train", "--corpus", corpus, "--run-dir", run, "--epochs", "1", *TINY, tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    first = next(line for line in result.stdout.splitlines() if line.startswith(f"training {run}"))
    assert "1 thread)" in first  # as TensorFlow reports it in effect
    # The progress line's chars/s and the session's, both wall-clock figures.
    assert re.search(r"[\d,]+ chars/s \(session [\d,]+\)", result.stdout)
    # Where the epoch's wall time went: the parts add up to no more than the whole.
    line = re.search(r"^epoch 1 time: ([\d.]+)s, ([\d.]+)s \(\d+%\) in training calls; (.*)$", result.stdout, re.M)
    assert line, result.stdout
    parts = {name: float(value.rstrip("s")) for name, value in (p.rsplit(" ", 1) for p in line.group(3).split(", "))}
    assert {"held-out", "samples", "checkpoints", "other"} <= set(parts)
    assert float(line.group(2)) + sum(parts.values()) == pytest.approx(float(line.group(1)), abs=0.25)

    resumed = charlm("train", "--resume", run, "--epochs", "2", tmp_path=tmp_path)  # the run's own --threads 1
    assert resumed.returncode == 0, resumed.stderr
    assert "1 thread)" in next(line for line in resumed.stdout.splitlines() if line.startswith("resuming"))
    changed = charlm("train", "--resume", run, "--epochs", "3", "--threads", "2", tmp_path=tmp_path)
    assert changed.returncode == 0, changed.stderr
    assert "2 threads)" in next(line for line in changed.stdout.splitlines() if line.startswith("resuming"))
