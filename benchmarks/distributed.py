"""Two processes against one: what training over processes costs, measured on one machine.

Three sides, each `charlm train` on JAX (float32) on the lower-cased
nietzsche text for `--seconds` of training, rounds alternating so drift on a
shared machine hits every side alike:

* one process on both cores (XLA's threads), global batch B;
* two processes on 127.0.0.1, one core each (`taskset`, `--threads 1`),
  global batch B (B/2 rows each), gradients averaged over gloo;
* one process on one core, batch B/2: the compute one of the two does,
  without the collectives.

Per step: the two-process step time minus the one-core B/2 step time is
what the collectives cost (the gradient all-reduce, and the agreement on
time, pause and stop between calls, which the trainer also times on its
own: 'agreeing' in the epoch time line). From the measured gradient size, it
then says on paper what an all-reduce would cost per step between N GPU
hosts at common network speeds.

    python benchmarks/distributed.py [--seconds 30] [--rounds 2] [--units 256] [--batch 64]

Rows go to benchmarks/results/distributed.txt as they come.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from versions import append_results, versions_line  # noqa: E402

CORPUS = HERE.parent.parent / "shared" / "corpora" / "nietzsche.txt"
SEQ_LEN = 50  # the default model's window (config.seq_len)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def command(run: Path, seconds: float, units: int, batch: int, extra: list[str]) -> list[str]:
    return [
        sys.executable, "-m", "tui_charlm.cli", "train", "--corpus", str(CORPUS), "--lowercase",
        "--units", str(units), "--batch-size", str(batch), "--precision", "float32", "--epochs", "100000",
        "--checkpoint-every", "0", "--time-budget", str(seconds), "--plain", "--run-dir", str(run), *extra,
    ]  # fmt: skip


def launch(cores: str, arguments: list[str]) -> subprocess.Popen:
    env = dict(os.environ, KERAS_BACKEND="jax")
    return subprocess.Popen(
        ["taskset", "-c", cores, *arguments], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )


def outcome(process: subprocess.Popen, what: str) -> str:
    out, err = process.communicate()
    if process.returncode != 0:
        raise SystemExit(f"{what} failed:\n{err[-3000:]}")
    return out


def measured(stdout: str, batch: int) -> dict[str, float]:
    """Steps/s (the trainer's own session chars/s over the global batch), and seconds agreeing per step."""
    rate = float(re.findall(r"\(session ([\d,]+)\)", stdout)[-1].replace(",", ""))
    steps = int(re.findall(r" step (\d+) ", stdout)[-1])
    agreeing = sum(float(s) for s in re.findall(r"agreeing ([\d.]+)s", stdout))
    parameters = int(re.search(r"([\d,]+) parameters", stdout).group(1).replace(",", ""))
    return {
        "steps_per_s": rate / (batch * SEQ_LEN),
        "agree_ms": 1000 * agreeing / max(steps, 1),
        "parameters": parameters,
    }


def one_round(tmp: Path, number: int, args) -> dict[str, dict[str, float]]:
    base = tmp / f"round-{number}"
    half = args.batch // 2
    results = {}
    both = launch("0,1", command(base / "one-2cores", args.seconds, args.units, args.batch, []))
    results["1 process, 2 cores"] = measured(outcome(both, "one process"), args.batch)
    port = free_port()
    pair = [
        launch(
            str(i),
            command(
                base / "two",
                args.seconds,
                args.units,
                args.batch,
                ["--threads", "1", "--coordinator", f"127.0.0.1:{port}", "--processes", "2", "--process-id", str(i)],
            ),
        )
        for i in (0, 1)
    ]
    outs = [outcome(process, f"process {i}") for i, process in enumerate(pair)]
    results["2 processes, 1 core each"] = measured(outs[0], args.batch)
    alone = launch("0", command(base / "one-1core", args.seconds, args.units, half, ["--threads", "1"]))
    results[f"1 process, 1 core, batch {half}"] = measured(outcome(alone, "one core"), half)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--units", type=int, default=256)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "distributed.txt")
    args = parser.parse_args()
    if not CORPUS.exists():
        print(f"skipped: {CORPUS} is not here")
        return 0
    lines = [
        f"# {time.strftime('%Y-%m-%d %H:%M')}  {versions_line()}",
        f"# command: python benchmarks/distributed.py --seconds {args.seconds:g} --rounds {args.rounds} "
        f"--units {args.units} --batch {args.batch}",
    ]
    rounds = []
    with tempfile.TemporaryDirectory() as tmp:
        for number in range(args.rounds):
            rounds.append(one_round(Path(tmp), number, args))
            print(f"round {number + 1}: {rounds[-1]}", flush=True)
    median = {
        side: {key: statistics.median(r[side][key] for r in rounds) for key in rounds[0][side]} for side in rounds[0]
    }
    for side, values in median.items():
        lines.append(
            f"{side:<28} {values['steps_per_s']:7.2f} steps/s  {1000 / values['steps_per_s']:7.1f} ms/step"
            + (f"  (agreeing between calls {values['agree_ms']:.2f} ms/step)" if values["agree_ms"] else "")
        )
    two, alone = median["2 processes, 1 core each"], median[f"1 process, 1 core, batch {args.batch // 2}"]
    overhead = 1000 / two["steps_per_s"] - 1000 / alone["steps_per_s"]
    lines.append(
        f"collectives per step (two processes minus one core at half the batch): {overhead:.1f} ms, "
        f"{overhead / (1000 / two['steps_per_s']):.0%} of the step; of it agreeing {two['agree_ms']:.2f} ms"
    )
    gradient_mb = two["parameters"] * 4 / 1e6
    lines.append(f"on paper: {int(two['parameters']):,} parameters, a {gradient_mb:.1f} MB float32 gradient per step")
    for hosts in (2, 4, 8):
        # A ring all-reduce sends and receives 2 (N - 1) / N of the gradient per host per step.
        sent = 2 * (hosts - 1) / hosts * gradient_mb
        cost = ", ".join(f"{sent * 8 / gbit:.1f} ms at {gbit} Gb/s" for gbit in (10, 25, 100))
        lines.append(f"  {hosts} hosts: {sent:.1f} MB each way per host per step: {cost}")
    append_results(args.out, lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
