"""The GPU path, checked on Keras' JAX backend: cuDNN, speed, exact resume and a large checkpoint's save.

Needs only Keras, JAX and this project: on a machine with JAX and CUDA but
no TensorFlow (and no network), install Keras and this project as wheels
with `--no-deps` and run

    KERAS_BACKEND=jax python benchmarks/gpu_check.py [--seconds 20]

Wheels for such a machine (Python 3.12 there), made where the index is reachable:

    pip download --no-deps --only-binary=:all: --python-version 3.12 --platform manylinux2014_x86_64 \
        -d wheels keras namex optree
    pip wheel --no-deps -w wheels .
    # there: python3 -m pip install --no-deps wheels/*.whl

(Keras' other needs, and this project's core's, are in that image: numpy,
ml-dtypes, h5py, absl-py, rich, packaging, filelock, threadpoolctl.) The
work is four --seconds speed trials and their compiles, four epochs of an
LSTM(256) for the resume and one save: made to fit one 8-minute call, not
yet timed on a GPU (none was lent while it was written).

It trains through the project's own trainer on the built-in corpus (no
network), and reports:

* whether Keras ran the LSTM on cuDNN (jax.experimental.rnn) or fell back
  to its scan loop, and why;
* chars/s of the default GPU model (LSTM(512), batch 64) and of a large one
  (3 x LSTM(1024), batch 256), in float32 and mixed_bfloat16, each trained
  for --seconds after its compile (the rate over the last four fifths);
* exact resume: two epochs straight against one, saved, resumed for another,
  the largest weight difference;
* how long saving a checkpoint of the large model takes.

Without a GPU it says so and exits 0; `--allow-cpu --tiny` runs every step on
the CPU with tiny models (a check of the script itself, used by the tests).
Results are printed and appended to benchmarks/results/gpu_check.txt.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20.0, help="training seconds per speed trial")
    parser.add_argument("--allow-cpu", action="store_true", help="run on the CPU when there is no GPU")
    parser.add_argument("--tiny", action="store_true", help="tiny models and short trials (checks the script)")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "gpu_check.txt")
    args = parser.parse_args()

    import jax
    from versions import append_results

    from tui_charlm.core.backend import backend_name, jax_gpu_name

    if backend_name() != "jax":
        print(f"gpu_check runs on Keras' JAX backend; this process has {backend_name()} (unset KERAS_BACKEND).")
        return 2
    gpu = jax_gpu_name()
    if gpu is None and not args.allow_cpu:
        print(f"No GPU: JAX sees only {', '.join(sorted({d.platform for d in jax.devices()}))}; nothing measured.")
        return 0
    lines: list[str] = []

    def say(text: str) -> None:
        print(text, flush=True)
        lines.append(text)

    import keras

    say(
        f"# {time.strftime('%Y-%m-%d %H:%M')}  keras {keras.__version__}, jax {jax.__version__}, "
        f"{gpu or 'no GPU (--allow-cpu)'}; command: {' '.join(sys.argv)}"
    )
    seconds = None if args.tiny else args.seconds  # tiny: one epoch of the tiny corpus, on any machine
    small = dict(units=16, embedding_dim=8, seq_len=32, batch_size=16) if args.tiny else {}
    large = (
        dict(units=32, layers=2, embedding_dim=8, seq_len=32, batch_size=32)
        if args.tiny
        else dict(units=1024, layers=3, batch_size=256)
    )
    default = small or dict(units=512)
    global CORPUS
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if args.tiny:
            from tui_charlm.core.builtin_corpus import build_builtin_text

            (tmp / "tiny.txt").write_text(build_builtin_text(limit=30_000))
            CORPUS = str(tmp / "tiny.txt")
        names = ("tiny", "tiny x 2") if args.tiny else ("default LSTM(512), batch 64", "3 x LSTM(1024), batch 256")
        with watching_lstm() as kernels:  # the first trial's first LSTM call says which kernel ran
            for name, options in zip(names, (default, large), strict=True):
                for precision in ("float32", "mixed_bfloat16"):
                    rate, device = speed(tmp, dict(options, precision=precision), seconds)
                    if name == names[0] and precision == "float32":
                        say(f"LSTM kernel: {kernels[0] if kernels else 'not called (Keras took another path)'}")
                    say(f"{name:<28} {precision:<14} {rate:>12,.0f} chars/s  ({device})")
        say(resume_line(tmp, small or dict(units=256)))
        say(save_line(tmp, large))
    append_results(args.out, lines, echo=False)
    return 0


# The corpus: the built-in one (no network); with --tiny, its first 30,000 chars (set in main).
CORPUS = "builtin"


def config(**options):
    from tui_charlm.core.config import make_config

    values = dict(corpus=CORPUS, epochs=100_000, checkpoint_every=0)
    values.update(options)
    return make_config(**values)


def trainer_for(run: Path, **options):
    from tui_charlm.core.session import new_training

    return new_training(config(**options), run_dir=run, offline=True, log=lambda _: None)


@contextlib.contextmanager
def watching_lstm():
    """While inside: each call of Keras' JAX LSTM says whether it took the cuDNN path (a list of outcomes)."""
    from keras.src import backend

    outcomes: list[str] = []
    original = backend.lstm

    def watched(*args, **kwargs):
        try:
            result = original(*args, **kwargs)
        except NotImplementedError as error:
            outcomes.append(f"fell back to the scan loop ({str(error) or 'cuDNN conditions not met'})")
            raise
        outcomes.append("cuDNN (jax.experimental.rnn)")
        return result

    backend.lstm = watched
    try:
        yield outcomes
    finally:
        backend.lstm = original


def speed(tmp: Path, options: dict, seconds: float | None) -> tuple[float, str]:
    """Chars/s of training `options` for `seconds` (None: one epoch) after its first call, over the last four fifths."""
    from tui_charlm.core.events import BatchFinished

    length = dict(time_budget=seconds) if seconds else dict(time_budget=0.0, epochs=1)
    trainer = trainer_for(tmp / f"speed-{len(list(tmp.iterdir()))}", **length, **options)
    marks: list[tuple[float, int]] = []
    trainer.fit(lambda e: marks.append((time.perf_counter(), e.step)) if isinstance(e, BatchFinished) else None)
    if len(marks) < 3:
        return float("nan"), trainer.device
    start = marks[0][0] + (marks[-1][0] - marks[0][0]) / 5
    first = next(mark for mark in marks if mark[0] >= start)
    steps = marks[-1][1] - first[1]
    elapsed = marks[-1][0] - first[0]
    return steps * trainer.train_windows.targets_per_batch() / max(elapsed, 1e-9), trainer.device


def resume_line(tmp: Path, options: dict) -> str:
    """Two epochs straight against one, stopped, resumed for the other: the largest weight difference.

    Both runs are configured for two epochs (the cool-down spans them) with
    dropout on from the 2nd, so the resume carries the schedule, the
    optimizer state and the dropout streams.
    """
    import threading

    import numpy as np

    from tui_charlm.core.events import EpochFinished
    from tui_charlm.core.session import resume_training

    settings = dict(options, epochs=2, dropout=0.5, dropout_start=1, time_budget=0.0)
    straight = trainer_for(tmp / "straight", **settings)
    straight.fit()
    first = trainer_for(tmp / "resumed", **settings)
    stop = threading.Event()
    first.fit(lambda e: stop.set() if isinstance(e, EpochFinished) else None, stop_event=stop)
    second = resume_training(tmp / "resumed", offline=True, log=lambda _: None)
    second.fit()
    diff = max(float(np.max(np.abs(a - b))) for a, b in zip(straight.model.get_weights(), second.model.get_weights()))
    verdict = "exact (<= 1e-5)" if diff <= 1e-5 else "NOT exact"
    return f"resume: 2 epochs straight vs 1 + resumed 1 ({straight.state.step} steps): max |diff| {diff:.2e}, {verdict}"


def save_line(tmp: Path, options: dict) -> str:
    """Seconds to write a checkpoint of the model `options` builds (weights, optimizer state, state.json)."""
    trainer = trainer_for(tmp / "save", time_budget=0.5, **options)
    trainer.fit()  # builds the optimizer state a real checkpoint holds
    started = time.perf_counter()
    path = trainer.run.save_checkpoint(trainer.model, trainer.state)
    seconds = time.perf_counter() - started
    size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    return f"checkpoint save: {int(trainer.model.count_params()):,} parameters, {size / 1e6:,.0f} MB in {seconds:.2f} s"


if __name__ == "__main__":
    sys.exit(main())
