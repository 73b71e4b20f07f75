"""Where training runs: MirroredStrategy over two logical CPUs, mixed precision, and what the status says."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import ON_JAX, cli_env, cpu_device, make_text, tensorflow_only, tiny_config
from tui_charlm.core.checkpoints import RunDirectory
from tui_charlm.core.config import TrainConfig, make_config
from tui_charlm.core.devices import cpu_has_bfloat16, cudnn_conditions
from tui_charlm.core.errors import CharlmError
from tui_charlm.core.events import EpochFinished, TrainingFinished
from tui_charlm.core.generation import Generator, WeightBox
from tui_charlm.core.sampling import SamplingSettings
from tui_charlm.core.session import new_training, resume_training
from tui_charlm.core.tf_startup import CPU_DEVICES_ENV, logical_cpu_count

# Logical devices can only be configured before TensorFlow's runtime starts, which in the test process
# has long happened: this runs in a fresh interpreter with CHARLM_CPU_DEVICES=2.
MIRRORED_SCRIPT = textwrap.dedent("""
    import json, sys, threading
    from pathlib import Path
    from tests.conftest import tiny_config
    from tui_charlm.core.checkpoints import RunDirectory
    from tui_charlm.core.events import EpochFinished, TrainingStarted
    from tui_charlm.core.generation import WeightBox
    from tui_charlm.core.session import new_training, resume_training

    corpus, run_dir = sys.argv[1], Path(sys.argv[2])

    def train_until(trainer, step, events):
        stop, box = threading.Event(), WeightBox()
        def report(event):
            events.append(event)
            if getattr(event, "step", 0) >= step:
                stop.set()
        trainer.fit(report, stop_event=stop, weight_box=box, snapshot_every=1)
        return box.latest().version

    notes, events = [], []
    # 156 held-out chars make 9 windows of 16: one short held-out batch that two devices cannot split evenly.
    config = tiny_config(corpus=corpus, strategy="mirrored", epochs=2, steps_per_execution=4, val_fraction=0.039)
    trainer = new_training(config, run_dir=run_dir, log=notes.append)
    snapshot = train_until(trainer, 3, events)
    first = {"device": trainer.device, "replicas": trainer.replicas, "global_batch": trainer.train_windows.batch_size,
             "steps_per_execution": trainer.model.steps_per_execution, "notes": notes, "snapshot_version": snapshot,
             "saved": RunDirectory.open(run_dir).latest().state.batch_in_epoch}
    # Resume under the same strategy and stop again, still in the first epoch.
    events = []
    again = resume_training(run_dir, log=notes.append)
    train_until(again, 5, events)
    started = [e for e in events if isinstance(e, TrainingStarted)][0]
    state = RunDirectory.open(run_dir).latest().state
    second = {"device": again.device, "resumed_at": started.step, "saved": state.batch_in_epoch,
              "saved_batch_size": state.batch_size}
    # Once more, through the end of the first epoch (its held-out score, under the strategy) into the second.
    events = []
    third = resume_training(run_dir, log=notes.append)
    batches = third.train_windows.num_batches(0)
    train_until(third, batches + 5, events)
    state = RunDirectory.open(run_dir).latest().state
    ended = {"held_out": [e.val_loss for e in events if isinstance(e, EpochFinished)], "epoch": state.epoch,
             "saved": state.batch_in_epoch}
    print(json.dumps({"first": first, "second": second, "ended": ended}))
""")


@pytest.fixture
def corpus_path(tmp_path):
    path = tmp_path / "text.txt"
    path.write_text(make_text(4000))
    return path


def without_threads(device: str) -> str:
    """The device line less its thread count (this process's TensorFlow kept the first test's count)."""
    import re

    return re.sub(r" \(\)$", "", re.sub(r",? ?\d+ threads?", "", device))


@pytest.mark.slow
@tensorflow_only
def test_mirrored_strategy_over_two_logical_cpus_trains_checkpoints_and_resumes(corpus_path, tmp_path):
    root = Path(__file__).resolve().parents[2]
    env = cli_env(tmp_path) | {CPU_DEVICES_ENV: "2", "PYTHONPATH": str(root)}
    result = subprocess.run(
        [sys.executable, "-c", MIRRORED_SCRIPT, str(corpus_path), str(tmp_path / "run")],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    first, second = report["first"], report["second"]
    per_device = tiny_config().batch_size
    # tiny_config's --threads 1 took effect: TensorFlow started once, with the run's settings.
    assert first["device"] == second["device"] == "2 logical CPUs mirrored (1 thread)"
    assert first["replicas"] == 2 and first["global_batch"] == 2 * per_device  # --batch-size is per device
    # Keras cannot run several batches per call under MirroredStrategy: one, and the user is told why.
    assert first["steps_per_execution"] == 1 and any("keras-team/keras#19246" in n for n in first["notes"])
    assert first["saved"] == 3 and first["snapshot_version"] == 3  # generation got the stopped step's weights
    assert second["resumed_at"] == 3 and second["saved"] == 5 and second["saved_batch_size"] == 2 * per_device
    ended = report["ended"]
    assert len(ended["held_out"]) == 1 and np.isfinite(ended["held_out"][0])  # scored under the strategy
    assert ended["epoch"] == 1 and ended["saved"] == 5

    # Back on one device (this process has one CPU): the 5 global batches of epoch 2 are 10 of the smaller
    # batch, and the run finishes from there.
    resumed = resume_training(tmp_path / "run", {"strategy": "default"}, log=lambda _: None)
    assert resumed.replicas == 1 and "mirrored" not in resumed.device
    assert resumed.device.startswith("GPU: " if visible_gpus() else "CPU")
    assert (resumed.state.batch_in_epoch, resumed.state.batch_size) == (10, per_device)
    events = []
    outcome = resumed.fit(events.append)
    assert isinstance(outcome, TrainingFinished) and resumed.state.epoch == 2
    assert all(np.isfinite(e.val_loss) for e in events if isinstance(e, EpochFinished))
    assert RunDirectory.open(tmp_path / "run").latest().state.epoch == 2


@pytest.mark.slow
def test_mixed_float16_trains_on_cpu_with_float32_logits_checkpoints_and_resumes(corpus_path, tmp_path):
    notes = []
    trainer = new_training(
        tiny_config(corpus=str(corpus_path), precision="mixed_float16"), run_dir=tmp_path / "run", log=notes.append
    )
    layers = {layer.name: layer for layer in trainer.model.layers}
    assert layers["lstm_0"].compute_dtype == "float16" and layers["lstm_0"].variable_dtype == "float32"
    assert layers["logits"].compute_dtype == "float32"
    # on a CPU the user is told float16 is slower there (a GPU with tensor cores is where it pays off)
    assert "mixed fp16" in trainer.device and any("slower" in note for note in notes) == (not visible_gpus())
    box, events = WeightBox(), []
    outcome = trainer.fit(events.append, weight_box=box)
    assert isinstance(outcome, TrainingFinished)
    epoch = next(e for e in events if isinstance(e, EpochFinished))
    assert np.isfinite(epoch.val_loss) and epoch.val_loss < np.log(len(trainer.run.vocab))  # it learned
    # Generation reads float32 weights from the snapshot and writes text.
    text = Generator(box.latest(), trainer.run.vocab, [SamplingSettings(0.5)], seed_text="the ").generate(40)[0]
    assert len(text) == 40

    resumed = resume_training(tmp_path / "run", {"epochs": 2}, log=lambda _: None)
    assert {layer.name: layer for layer in resumed.model.layers}["lstm_0"].compute_dtype == "float16"
    assert isinstance(resumed.fit(), TrainingFinished) and resumed.state.epoch == 2
    with pytest.raises(CharlmError, match="--precision cannot change"):
        resume_training(tmp_path / "run", {"epochs": 3, "precision": "float32"}, log=lambda _: None)


def test_mixed_bfloat16_learns_with_float32_variables_and_logits_and_resumes_as_bfloat16(corpus_path, tmp_path):
    import keras

    notes = []
    trainer = new_training(
        tiny_config(corpus=str(corpus_path), precision="mixed_bfloat16", epochs=2),
        run_dir=tmp_path / "run",
        log=notes.append,
    )
    layers = {layer.name: layer for layer in trainer.model.layers}
    assert layers["lstm_0"].compute_dtype == "bfloat16" and layers["lstm_0"].variable_dtype == "float32"
    assert layers["logits"].compute_dtype == "float32"
    # bfloat16 has float32's exponent range: no loss scaling.
    assert not isinstance(trainer.model.optimizer, keras.optimizers.LossScaleOptimizer)
    gpu = bool(visible_gpus())
    assert "mixed bf16" in trainer.device and (gpu or without_threads(trainer.device) == cpu_device("mixed bf16"))
    assert any("no bfloat16 hardware" in note for note in notes) == (not gpu and not cpu_has_bfloat16())
    events = []
    assert isinstance(trainer.fit(events.append), TrainingFinished)
    losses = [e.val_loss for e in events if isinstance(e, EpochFinished)]
    assert len(losses) == 2 and all(np.isfinite(losses)) and losses[-1] < np.log(len(trainer.run.vocab))

    resumed = resume_training(tmp_path / "run", {"epochs": 3}, log=lambda _: None)
    assert {layer.name: layer for layer in resumed.model.layers}["lstm_0"].compute_dtype == "bfloat16"
    assert json.loads((tmp_path / "run" / "config.json").read_text())["precision"] == "mixed_bfloat16"
    with pytest.raises(CharlmError, match="--precision cannot change"):
        resume_training(tmp_path / "run", {"precision": "float32"}, log=lambda _: None)


def visible_gpus() -> bool:
    from tui_charlm.core.devices import gpu_visible

    return gpu_visible()


def test_auto_precision_is_settled_for_this_machine_when_the_run_starts(corpus_path, tmp_path):
    trainer = new_training(
        tiny_config(corpus=str(corpus_path), precision="auto"), run_dir=tmp_path / "run", log=lambda _: None
    )
    gpu = bool(visible_gpus())
    # A GPU keeps float32; so does JAX, whose CPU bfloat16 is slower than its float32 (issue 27).
    expected = "mixed_bfloat16" if cpu_has_bfloat16() and not gpu and not ON_JAX else "float32"
    assert json.loads((tmp_path / "run" / "config.json").read_text())["precision"] == expected
    lstm = {layer.name: layer for layer in trainer.model.layers}["lstm_0"]
    assert lstm.compute_dtype == ("bfloat16" if expected == "mixed_bfloat16" else "float32")
    if gpu:
        assert trainer.device.startswith("GPU: ") and "cuDNN" in trainer.device
    else:
        assert without_threads(trainer.device) == (
            cpu_device("mixed bf16") if expected == "mixed_bfloat16" else cpu_device()
        )
    # The book's recipe computes in float32, as the book does, on any machine.
    assert make_config("seed").precision == "float32"


def test_cpu_bfloat16_support_is_read_from_the_cpu_flags(tmp_path):
    zen4 = tmp_path / "zen4"
    zen4.write_text(
        "processor\t: 0\nflags\t\t: fpu sse avx2 avx512f avx512_bf16 avx512_vnni\n\n"
        "processor\t: 1\nflags\t\t: fpu sse avx2 avx512f avx512_bf16 avx512_vnni\n"
    )
    sapphire = tmp_path / "spr"
    sapphire.write_text("flags\t\t: avx512f amx_bf16 amx_tile\n")
    older = tmp_path / "skylake"
    older.write_text("flags\t\t: fpu sse avx2 avx512f avx512bw\n")
    assert cpu_has_bfloat16(str(zen4)) and cpu_has_bfloat16(str(sapphire))
    assert not cpu_has_bfloat16(str(older)) and not cpu_has_bfloat16(str(tmp_path / "no-such-file"))


def test_configs_written_before_precision_existed_keep_their_precision():
    base = json.loads(make_config().to_json())
    del base["precision"]
    assert TrainConfig.from_dict(base).precision == "float32"
    assert TrainConfig.from_dict({**base, "mixed_precision": True}).precision == "mixed_float16"
    with pytest.raises(CharlmError, match="precision must be one of"):
        make_config(precision="bfloat16")


def test_the_models_keep_to_the_cudnn_kernels_conditions(corpus_path, tmp_path):
    import keras

    for recipe in ("default", "seed"):
        trainer = new_training(
            tiny_config(recipe=recipe, corpus=str(corpus_path), layers=2, dropout=0.2),
            run_dir=tmp_path / recipe,
            log=lambda _: None,
        )
        lstms = [layer for layer in trainer.model.layers if type(layer).__name__ == "LSTM"]
        assert lstms and all(cudnn_conditions(layer) == [] for layer in lstms)
        if visible_gpus():
            assert "(cuDNN" in trainer.device and "no cuDNN" not in trainer.device
        else:
            assert without_threads(trainer.device) == cpu_device()  # no GPU: no cuDNN claim either
    assert cudnn_conditions(keras.layers.LSTM(4, recurrent_dropout=0.1)) == ["recurrent dropout"]
    assert cudnn_conditions(keras.layers.LSTM(4, activation="relu", unroll=True)) == [
        "activation is not tanh",
        "unrolled",
    ]


def test_a_bad_logical_cpu_count_is_one_clear_sentence(monkeypatch):
    monkeypatch.setenv(CPU_DEVICES_ENV, "two")
    with pytest.raises(CharlmError, match="CHARLM_CPU_DEVICES='two' is not a whole number"):
        logical_cpu_count()
    monkeypatch.setenv(CPU_DEVICES_ENV, "2")
    assert logical_cpu_count() == 2
    monkeypatch.delenv(CPU_DEVICES_ENV)
    assert logical_cpu_count() == 1


def test_an_unknown_strategy_is_refused_before_anything_is_written(corpus_path, tmp_path):
    with pytest.raises(CharlmError, match="strategy must be one of default, mirrored"):
        tiny_config(corpus=str(corpus_path), strategy="tpu")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "tui_charlm.cli",
            "train",
            "--corpus",
            str(corpus_path),
            "--strategy",
            "tpu",
            "--run-dir",
            str(tmp_path / "run"),
        ],
        capture_output=True,
        text=True,
        env=cli_env(tmp_path),
    )
    assert result.returncode == 2 and "invalid choice: 'tpu'" in result.stderr
    assert not (tmp_path / "run").exists()
