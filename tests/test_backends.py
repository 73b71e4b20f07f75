"""One core on two Keras backends: a run trained on one generates, scores and resumes on the other."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.conftest import CHARLM, PATIENCE, TINY_FLAGS, cli_env, make_text

pytest.importorskip("jax", reason="JAX is not installed (pip install -e '.[jax]')")


def charlm(backend: str, *args, tmp_path) -> subprocess.CompletedProcess:
    env = cli_env(tmp_path) | {"KERAS_BACKEND": backend}
    return subprocess.run([*CHARLM, *map(str, args)], capture_output=True, text=True, env=env, timeout=PATIENCE)


def newest_state(run) -> dict:
    latest = json.loads((run / "latest.json").read_text())["checkpoint"]
    return json.loads((run / "checkpoints" / latest / "state.json").read_text())


# One direction: the code is the same both ways (core/backend.py, session.resume_training), and each run
# of this test costs about 20 s of a slow CI machine's 12 minutes.
@pytest.mark.slow
@pytest.mark.parametrize("first, then", [("jax", "tensorflow")])
def test_a_run_trained_on_one_backend_generates_scores_and_resumes_on_the_other(tmp_path, first, then):
    corpus = tmp_path / "text.txt"
    corpus.write_text(make_text(4000))
    run = tmp_path / "run"
    trained = charlm(
        first, "train", "--corpus", corpus, "--run-dir", run, "--epochs", "1", *TINY_FLAGS, tmp_path=tmp_path
    )
    assert trained.returncode == 0, trained.stderr
    assert ("(JAX" in trained.stdout) == (first == "jax")  # the device line names the backend
    assert newest_state(run)["backend"] == first

    generated = charlm(then, "generate", run, "--seed-text", "the cat", "-n", "20", "-t", "0", tmp_path=tmp_path)
    assert generated.returncode == 0 and "--- greedy ---" in generated.stdout, generated.stderr
    scored = charlm(then, "eval", run, tmp_path=tmp_path)
    assert scored.returncode == 0 and "window loss" in scored.stdout, scored.stderr

    resumed = charlm(then, "train", "--resume", run, "--epochs", "2", tmp_path=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    # It goes on from the first backend's checkpoint, and says why it is not bit-for-bit the same run.
    assert f"was trained on {first} up to here and resumes on {then}" in resumed.stdout + resumed.stderr
    state = newest_state(run)
    assert state["epoch"] == 2 and state["backend"] == then
    assert [e["epoch"] for e in state["history"]["epochs"]] == [1, 2]


@pytest.mark.slow
def test_the_gpu_check_says_when_there_is_no_gpu_and_runs_every_step_on_the_cpu_when_allowed(tmp_path):
    import re
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"
    env = cli_env(tmp_path) | {"KERAS_BACKEND": "jax"}
    out = tmp_path / "gpu_check.txt"

    def check(*flags):
        command = [sys.executable, str(script), "--out", str(out), *flags]
        return subprocess.run(command, capture_output=True, text=True, env=env, timeout=PATIENCE)

    plain = check()
    if "No GPU" not in plain.stdout:
        pytest.skip("a GPU is visible: the check would measure it")
    assert plain.returncode == 0 and not out.exists()

    full = check("--allow-cpu", "--tiny")
    assert full.returncode == 0, full.stderr[-3000:]
    assert "LSTM kernel: fell back to the scan loop" in full.stdout  # no GPU, so no cuDNN
    assert len(re.findall(r"(float32|mixed_bfloat16) +[\d,]+ chars/s +\(CPU \(JAX", full.stdout)) == 4
    assert re.search(r"resume: .* max \|diff\| \S+, exact", full.stdout), full.stdout
    assert re.search(r"checkpoint save: [\d,]+ parameters, .* in [\d.]+ s", full.stdout)
    assert out.read_text().strip().splitlines()[1:] == full.stdout.strip().splitlines()[1:]


@pytest.mark.slow
def test_the_batch_speed_benchmark_times_each_batch_it_is_given_and_names_the_lstm_kernel(tmp_path):
    import re
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "batch_speed.py"
    out = tmp_path / "batch_speed.txt"
    command = [sys.executable, str(script), "--widths", "8", "--batches", "4", "8", "--seconds", "0.2"]
    done = subprocess.run(
        [*command, "--out", str(out)],
        capture_output=True,
        text=True,
        env=cli_env(tmp_path) | {"KERAS_BACKEND": "jax"},
        timeout=PATIENCE,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    cells = re.findall(r"LSTM\( *(\d+)\) batch +(\d+): +([\d,]+) chars/s +([\d.]+) steps/s", done.stdout)
    assert [(units, batch) for units, batch, *_ in cells] == [("8", "4"), ("8", "8")]
    assert all(float(rate.replace(",", "")) > 0 and float(steps) > 0 for _, _, rate, steps in cells)
    assert "LSTM kernel: " in done.stdout and "backend jax" in done.stdout
    assert out.read_text().strip().splitlines() == done.stdout.strip().splitlines()
