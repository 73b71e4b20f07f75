"""Training speed by width and batch on this machine's device: where the batch is the lever, and where the width.

On a CPU a step's cost grows with the batch; on a GPU a small batch leaves
most of the device idle, so a larger one costs little more per step. This
times the project's own training calls (the sizing probe's: a model built
and compiled as a run's, trained on one repeated batch of random windows)
for each width and batch, after the call that compiles, and prints chars/s,
steps/s and each batch's chars/s over the smallest batch's at that width.

    python benchmarks/batch_speed.py [--widths 512 1024 2048] [--batches 64 256 1024] [--seconds 3]
    KERAS_BACKEND=jax python benchmarks/batch_speed.py ...   # on a GPU box with JAX

It also says which LSTM kernel Keras' JAX backend ran (cuDNN or its scan
loop). Results are appended to benchmarks/results/batch_speed.txt.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

# The lower-cased nietzsche text has 57 distinct characters; the speed barely depends on it.
VOCAB = 57


def chars_per_second(units: int, batch: int, seconds: float, precision: str) -> tuple[float, float, float]:
    """(chars/s, steps/s, set-up seconds: build and compile) of training LSTM(units) at `batch`, timed for
    `seconds` after the call that compiles (the sizing probe's measurement, sizing.measure_speed)."""
    from tui_charlm.core.config import make_config
    from tui_charlm.core.sizing import measure_speed

    config = make_config(units=units, batch_size=batch, precision=precision)
    rate, wall = measure_speed(config, VOCAB, seconds=seconds)
    return rate, rate / (batch * config.seq_len), max(0.0, wall - seconds)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--widths", type=int, nargs="+", default=[512, 1024, 2048])
    parser.add_argument("--batches", type=int, nargs="+", default=[64, 256, 1024])
    parser.add_argument("--seconds", type=float, default=3.0, help="timed seconds per cell, after its compile")
    parser.add_argument("--precision", default="float32")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "batch_speed.txt")
    args = parser.parse_args()

    from gpu_check import watching_lstm
    from versions import append_results, versions_line

    from tui_charlm.core.backend import backend_name, jax_gpu_name, start_backend

    start_backend()
    where = (jax_gpu_name() or "CPU") if backend_name() == "jax" else "TensorFlow's default device"
    lines = [
        f"# {time.strftime('%Y-%m-%d %H:%M')}  {versions_line()}; backend {backend_name()} on {where}; "
        f"{args.precision}; command: {' '.join(sys.argv)}"
    ]
    print(lines[0], flush=True)
    with watching_lstm() as kernels:
        for units in args.widths:
            base = None
            for batch in args.batches:
                rate, steps, set_up = chars_per_second(units, batch, args.seconds, args.precision)
                base = base or rate
                line = (
                    f"LSTM({units:>4}) batch {batch:>5}: {rate:>12,.0f} chars/s  {steps:>8.1f} steps/s  "
                    f"{rate / base:>5.2f}x batch {args.batches[0]}  (set-up {set_up:.1f} s)"
                )
                print(line, flush=True)
                lines.append(line)
    if backend_name() == "jax":
        line = f"LSTM kernel: {kernels[0] if kernels else 'not called (Keras took another path)'}"
        print(line)
        lines.append(line)
    append_results(args.out, lines, echo=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
