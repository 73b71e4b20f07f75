"""Training over several processes: real `charlm train` processes meeting on 127.0.0.1 (JAX, gloo collectives)."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import CHARLM, PATIENCE, TINY_FLAGS, cli_env, make_text
from tui_charlm.core.distributed import ENV_ADDRESSES, ENV_PROCESS_ID, ENV_PROCESSES, cluster_from
from tui_charlm.core.errors import CharlmError

pytest.importorskip("jax")

FLAGS = [*TINY_FLAGS, "--precision", "float32", "--plain"]
# How far the weights of one model trained by two processes and by one may differ: float sums in another order.
TOLERANCE = {"rtol": 1e-3, "atol": 1e-4}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def corpus(tmp_path) -> Path:
    path = tmp_path / "text.txt"
    path.write_text(make_text(12000))
    return path


def jax_env(tmp_path: Path) -> dict[str, str]:
    return cli_env(tmp_path) | {"KERAS_BACKEND": "jax"}


def start(tmp_path: Path, flags: list[str], process_id: int, port: int, processes: int = 2, cwd: Path | None = None):
    cluster = ["--coordinator", f"127.0.0.1:{port}", "--processes", str(processes), "--process-id", str(process_id)]
    return subprocess.Popen(
        [*CHARLM, "train", *flags, *cluster],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=jax_env(tmp_path),
        cwd=cwd,
        start_new_session=True,  # a process group of its own, as on a host of its own (with its supervised child)
    )


def end(process) -> None:
    """Kill what `start` started, if still there: the process and the child it trains in (its group)."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()


def finish(process) -> tuple[int, str, str]:
    try:
        out, err = process.communicate(timeout=PATIENCE)
    finally:
        end(process)
    return process.returncode, out, err


def heldout_lines(out: str) -> list[str]:
    """Each 'epoch N done: train ... held-out ...' line without its closing duration (each process times its own)."""
    return [
        re.sub(r", [\d.]+s$", "", line) for line in out.splitlines() if line.startswith("epoch ") and " done: " in line
    ]


def newest_weights(run: Path) -> list:
    import keras

    latest = json.loads((run / "latest.json").read_text())["checkpoint"]
    return keras.saving.load_model(run / "checkpoints" / latest / "model.keras", compile=False).get_weights()


# -- the options ----------------------------------------------------------------------------


def test_a_cluster_is_read_from_the_flags_or_from_the_variables_keras_reads():
    assert cluster_from(None, None, None, environ={}) is None
    flags = cluster_from("10.0.0.1:8476", 2, 1, environ={})
    assert (flags.coordinator, flags.processes, flags.process_id, flags.writer) == ("10.0.0.1:8476", 2, 1, False)
    environ = {ENV_ADDRESSES: "10.0.0.1:8476,10.0.0.2:8476", ENV_PROCESSES: "2", ENV_PROCESS_ID: "0"}
    from_environ = cluster_from(None, None, None, environ=environ)
    assert (from_environ.coordinator, from_environ.processes, from_environ.writer) == ("10.0.0.1:8476", 2, True)
    assert cluster_from(None, None, 1, environ=environ).process_id == 1  # a flag wins over its variable


@pytest.mark.parametrize(
    "coordinator, processes, process_id, says",
    [
        ("10.0.0.1:8476", None, 0, "needs all three"),
        ("10.0.0.1", 2, 0, "not HOST:PORT"),
        ("10.0.0.1:99999", 2, 0, "not HOST:PORT"),
        ("10.0.0.1:8476", 2, 2, "--process-id must be 0 to 1"),
        ("10.0.0.1:8476", 0, 0, "--processes must be at least 1"),
    ],
)
def test_a_cluster_given_wrong_is_refused_in_one_sentence(coordinator, processes, process_id, says):
    with pytest.raises(CharlmError, match=says):
        cluster_from(coordinator, processes, process_id, environ={})


def test_training_over_several_processes_is_refused_on_tensorflow(tmp_path, corpus):
    env = cli_env(tmp_path) | {"KERAS_BACKEND": "tensorflow"}
    command = [*CHARLM, "train", "--corpus", str(corpus), *FLAGS, "--coordinator", "127.0.0.1:1", "--processes", "2"]
    done = subprocess.run([*command, "--process-id", "0"], capture_output=True, text=True, env=env, timeout=PATIENCE)
    assert done.returncode == 1 and "KERAS_BACKEND=jax" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "runs").exists()


# -- real processes ---------------------------------------------------------------------------


@pytest.mark.slow
def test_two_processes_train_the_model_one_process_would_only_process_0_writes_and_either_resumes_on_the_other(
    tmp_path, corpus
):
    run, alone = tmp_path / "run", tmp_path / "alone"
    flags = ["--corpus", str(corpus), *FLAGS, "--epochs", "2"]
    elsewhere = tmp_path / "elsewhere"  # process 1 works from a folder of its own: it must leave it empty
    elsewhere.mkdir()
    port = free_port()
    processes = [
        start(tmp_path, [*flags, "--run-dir", str(run)], i, port, cwd=elsewhere if i else None) for i in (0, 1)
    ]
    (status0, out0, err0), (status1, out1, err1) = (finish(process) for process in processes)
    assert status0 == 0, err0[-3000:]
    assert status1 == 0, err1[-3000:]
    single = subprocess.run(
        [*CHARLM, "train", *flags, "--run-dir", str(alone)],
        capture_output=True,
        text=True,
        env=jax_env(tmp_path),
        timeout=PATIENCE,
    )
    assert single.returncode == 0, single.stderr[-3000:]

    # Both processes scored the same held-out loss after each epoch: one model, replicated.
    assert len(heldout_lines(out0)) == 2 and heldout_lines(out0) == heldout_lines(out1)
    assert any(line.startswith("training ") and ", 2 processes," in line for line in out0.splitlines())
    # ...and it is the model one process trains with the same global batch (float sums in another order: after two
    # epochs they differed by up to 1.8e-5 on a float32 CPU without AVX-512, where a step of Adam at the default
    # rate moves a weight by up to 5e-3, so a step lost, repeated or taken on other data shows far above TOLERANCE).
    for a, b in zip(newest_weights(run), newest_weights(alone), strict=True):
        np.testing.assert_allclose(a, b, **TOLERANCE)

    # Process 0 wrote the run; process 1 wrote nothing, there or where it ran.
    assert sorted(p.name for p in run.iterdir()) == sorted(p.name for p in alone.iterdir())
    assert list(elsewhere.iterdir()) == []
    writers = {json.loads(line)["pid"] for line in (run / "events.jsonl").read_text().splitlines() if '"pid"' in line}
    assert writers == {processes[0].pid}

    # Either run goes on with the other number of processes, and they stay the same model: the two-process run
    # on one, the one-process run on two, for a third epoch each.
    resume = ["--epochs", "3", "--plain"]
    on_one = subprocess.run(
        [*CHARLM, "train", "--resume", str(run), *resume],
        capture_output=True,
        text=True,
        env=jax_env(tmp_path),
        timeout=PATIENCE,
    )
    assert on_one.returncode == 0, on_one.stderr[-3000:]
    port = free_port()
    on_two = [start(tmp_path, ["--resume", str(alone), *resume], i, port) for i in (0, 1)]
    (status0, out0, err0), (status1, _, err1) = (finish(process) for process in on_two)
    assert status0 == 0 and status1 == 0, err0[-3000:] + err1[-3000:]
    assert any(line.startswith("resuming") and ", 2 processes," in line for line in out0.splitlines()), out0
    for run_dir in (run, alone):
        latest = json.loads((run_dir / "latest.json").read_text())["checkpoint"]
        assert json.loads((run_dir / "checkpoints" / latest / "state.json").read_text())["epoch"] == 3, run_dir
    assert len(heldout_lines(on_one.stdout)) == 1
    for a, b in zip(newest_weights(run), newest_weights(alone), strict=True):
        np.testing.assert_allclose(a, b, **TOLERANCE)


@pytest.mark.slow
def test_processes_asked_for_different_models_are_refused_at_start_in_one_sentence(tmp_path, corpus):
    port = free_port()
    flags = ["--corpus", str(corpus), *FLAGS, "--epochs", "1", "--run-dir", str(tmp_path / "run")]
    first = start(tmp_path, flags, 0, port)
    second = start(tmp_path, [*flags, "--learning-rate", "0.001"], 1, port)
    for status, _, err in (finish(first), finish(second)):
        assert status == 1, err[-2000:]
        assert "Process 1 differs from process 0 in learning_rate" in err and "Traceback" not in err
    assert not (tmp_path / "run" / "run.json").exists()


@pytest.mark.slow
def test_a_process_whose_corpus_is_another_text_is_refused_in_one_sentence(tmp_path, corpus):
    # The same command on each host, `--corpus text.txt`, but the second host's copy is another text.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / corpus.name).write_text(make_text(12000)[::-1])
    port = free_port()
    flags = ["--corpus", corpus.name, *FLAGS, "--epochs", "1", "--run-dir", str(tmp_path / "run")]
    first = start(tmp_path, flags, 0, port, cwd=tmp_path)
    second = start(tmp_path, flags, 1, port, cwd=elsewhere)
    (status0, _, err0), (status1, _, err1) = finish(first), finish(second)
    assert status0 == 1 and status1 == 1, err0[-2000:] + err1[-2000:]
    assert "is not the text process 0 trains on" in err1 and "Traceback" not in err1
    assert "Process 1:" in err0 and "is not the text process 0 trains on" in err0
    assert list(elsewhere.iterdir()) == [elsewhere / corpus.name]


@pytest.mark.slow
# SIGSTOP stands for a host gone: its connections stay open, and it never answers again. Process 0 is the
# coordinator and the writer: without it the others cannot even reach each other.
@pytest.mark.parametrize(
    "lost, how",
    [(1, signal.SIGKILL), (1, signal.SIGSTOP), (0, signal.SIGKILL)],
    ids=["killed", "host gone", "coordinator killed"],
)
def test_a_lost_process_stops_the_others_saying_which_leaving_a_checkpoint_that_loads_and_resumes(
    tmp_path, corpus, lost, how
):
    run = tmp_path / "run"
    flags = ["--corpus", str(corpus), *FLAGS, "--epochs", "100000", "--run-dir", str(run)]
    port = free_port()
    processes = [start(tmp_path, flags, 0, port), start(tmp_path, flags, 1, port)]
    victim, survivor = processes[lost], processes[1 - lost]
    try:
        # Training is under way past an epoch's end (a checkpoint on disk): then one process dies.
        deadline = time.monotonic() + PATIENCE
        while not (run / "latest.json").exists():
            assert all(p.poll() is None for p in processes) and time.monotonic() < deadline, "no checkpoint"
            time.sleep(0.2)
        if how == signal.SIGSTOP:
            os.killpg(victim.pid, how)  # the host, with everything of the run on it, stops answering
        else:
            victim.send_signal(how)  # the process (a supervised child ends with its parent)
        status, _, err = finish(survivor)  # within PATIENCE: no collective left waiting forever
    finally:
        for process in processes:
            end(process)
    assert status == 1, err[-3000:]
    assert "Traceback" not in err, err[-3000:]
    # Its own sentence, last: naming the lost process, and where the newest checkpoint is. (Losing process 0, the
    # coordinator, JAX's runtime aborts the trainer first, with a dump of its own; the supervisor speaks after.)
    said = err.strip().splitlines()[-1]
    assert said.startswith(f"charlm: process {lost}") and "training stopped" in said, err[-3000:]
    assert ("is intact" if lost else "process 0 keeps the run's checkpoints") in said, err[-3000:]
    # The checkpoint it named is whole, and the run goes on with one process (the same global batch). Once is
    # enough: the others' checkpoints are written the same way, and the first test here resumes 2 -> 1 too.
    if how == signal.SIGSTOP or lost == 0:
        assert newest_weights(run)
        return
    step = json.loads((run / "latest.json").read_text())["step"]
    state_file = run / "checkpoints" / json.loads((run / "latest.json").read_text())["checkpoint"] / "state.json"
    elapsed = json.loads(state_file.read_text())["elapsed"]
    again = subprocess.run(
        [*CHARLM, "train", "--resume", str(run), "--time-budget", str(elapsed + 1), "--plain"],
        capture_output=True,
        text=True,
        env=jax_env(tmp_path),
        timeout=PATIENCE,
    )
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.startswith("resuming") and json.loads((run / "latest.json").read_text())["step"] > step
