"""TensorFlow against JAX: the same model trained by `charlm train` on each Keras backend, side by side.

Speed: LSTM(256) (the width `--units auto` measures) on the lower-cased
nietzsche text for `--seconds` of training per trial, on each backend in
float32 and mixed_bfloat16; trials alternate round by round, so drift on a
shared machine hits every side alike. The figure is the trainer's own
session chars/s (the last progress line: everything between training calls
included), read from `charlm train --plain` output.

Loss (`--budgets 60 600`): the default (`--units auto`, `--precision auto`)
on each backend with that `--time-budget`, scored with `charlm eval` (the
60-char window loss on the held-out 10%).

    python benchmarks/backends.py [--seconds 40] [--rounds 2] [--budgets 60 600]

Rows go to benchmarks/results/backends.txt as they come.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from versions import versions_line  # noqa: E402

CORPUS = HERE.parent.parent / "shared" / "corpora" / "nietzsche.txt"
BACKENDS = ("tensorflow", "jax")
PRECISIONS = ("float32", "mixed_bfloat16")


def train(backend: str, run: Path, flags: list[str]) -> str:
    """`charlm train` on `backend`; its stdout."""
    command = [sys.executable, "-m", "tui_charlm.cli", "train", "--corpus", str(CORPUS), "--lowercase"]
    command += ["--epochs", "100000", "--checkpoint-every", "0", "--plain", "--run-dir", str(run), *flags]
    env = dict(os.environ, KERAS_BACKEND=backend)
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        raise SystemExit(f"{backend} {' '.join(flags)} failed:\n{result.stderr[-3000:]}")
    return result.stdout


def session_rate(stdout: str) -> float:
    rates = re.findall(r"\(session ([\d,]+)\)", stdout)
    return float(rates[-1].replace(",", "")) if rates else float("nan")


def window_loss(backend: str, run: Path) -> float:
    env = dict(os.environ, KERAS_BACKEND=backend)
    command = [sys.executable, "-m", "tui_charlm.cli", "eval", str(run)]
    out = subprocess.run(command, capture_output=True, text=True, env=env, check=True).stdout
    return float(re.search(r"window loss .*?: ([\d.]+) nats", out).group(1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=40)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--budgets", type=float, nargs="*", default=[])
    parser.add_argument("--out", type=Path, default=HERE / "results" / "backends.txt")
    args = parser.parse_args()
    if not CORPUS.is_file():
        print(f"{CORPUS} not found; skipping", file=sys.stderr)
        return 0

    def record(line: str) -> None:
        print(line, flush=True)
        with open(args.out, "a") as handle:
            handle.write(line + "\n")

    record(f"# {time.strftime('%Y-%m-%d %H:%M')}  {versions_line()}")
    record(f"# command: {' '.join(sys.argv)}")
    rates: dict[tuple[str, str], list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for round_number in range(args.rounds):
            trials = [(b, p) for b in BACKENDS for p in PRECISIONS]
            if round_number % 2:
                trials.reverse()
            for index, (backend, precision) in enumerate(trials):
                run = Path(tmp) / f"speed-{round_number}-{index}"
                flags = ["--units", "256", "--precision", precision, "--time-budget", str(args.seconds)]
                rate = session_rate(train(backend, run, flags))
                rates.setdefault((backend, precision), []).append(rate)
                record(f"round {round_number + 1}: {backend:<10} {precision:<14} LSTM(256) {rate:>9,.0f} chars/s")
        base = statistics.median(rates.get(("tensorflow", "mixed_bfloat16"), [float("nan")]))
        for (backend, precision), values in rates.items():
            median = statistics.median(values)
            record(
                f"{backend:<10} {precision:<14} median {median:>9,.0f} chars/s  "
                f"({median / base:.2f}x TensorFlow mixed_bfloat16)"
            )
        for budget in args.budgets:
            for backend in BACKENDS:
                run = Path(tmp) / f"loss-{backend}-{budget:g}"
                out = train(backend, run, ["--time-budget", str(budget)])
                size = re.search(r"size: (LSTM\(\d+\))", out)
                device = re.search(r"parameters on (.*?), epoch", out)
                end = re.search(r"^finished \(.*?\) at epoch (\d+), step (\d+)", out, re.M)
                record(
                    f"{backend:<10} default, --time-budget {budget:g}: window {window_loss(backend, run):.4f}  "
                    f"({size.group(1) if size else '?'}, {device.group(1) if device else '?'}, "
                    f"session {session_rate(out):,.0f} chars/s, "
                    f"{f'{end.group(2)} steps in {end.group(1)} epochs' if end else 'steps ?'})"
                )
    with open(args.out, "a") as handle:
        handle.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
