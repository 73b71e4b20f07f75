"""Compare training configurations for the same wall-clock budget on one machine.

Each configuration is trained with `charlm train --time-budget BUDGET` on
the lower-cased nietzsche text (first 90% train, last 10% held out), one
after another so they do not share the CPU, then scored with `charlm eval`
(the 60-char window yardstick and the stateful number). The table is
appended to benchmarks/results/sweep.txt.

    python benchmarks/sweep.py --budget 600 "units=512" "units=256" "units=512,batch-size=128"

Each argument is a comma-separated list of `charlm train` flags without
their dashes (`batch-size=128`); `recipe=seed` trains the book's recipe.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from versions import versions_line  # noqa: E402

CORPUS = HERE.parent.parent / "shared" / "corpora" / "nietzsche.txt"


def flags(spec: str) -> list[str]:
    out = []
    for item in filter(None, spec.split(",")):
        key, _, value = item.partition("=")
        out += [f"--{key}", value] if value else [f"--{key}"]
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("configs", nargs="+")
    parser.add_argument("--budget", type=float, default=600)
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "sweep.txt")
    parser.add_argument(
        "--curves",
        type=Path,
        default=None,
        help="also append each configuration's per-epoch train and held-out losses to this file",
    )
    parser.add_argument(
        "--train-log", type=Path, default=None, help="also append each `charlm train`'s whole output to this file"
    )
    args = parser.parse_args()
    if not args.corpus.is_file():
        print(f"corpus {args.corpus} not found; skipping", file=sys.stderr)
        return 0
    header = (
        f"# {time.strftime('%Y-%m-%d %H:%M')}  {versions_line()};  budget {args.budget:.0f}s  "
        f"corpus {args.corpus.name} (lower-cased)\n"
        f"# command: {' '.join(sys.argv)}\n"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "a") as handle:
        handle.write(header)

    def record(row: str) -> None:
        print(row, flush=True)
        with open(args.out, "a") as handle:  # each row as it comes: a sweep is hours long
            handle.write(row + "\n")

    with tempfile.TemporaryDirectory() as tmp:
        for index, spec in enumerate(args.configs):
            run_dir = Path(tmp) / f"run{index}"
            command = [
                sys.executable,
                "-m",
                "tui_charlm.cli",
                "train",
                "--corpus",
                str(args.corpus),
                "--lowercase",
                "--time-budget",
                str(args.budget),
                "--epochs",
                "10000",
                "--checkpoint-every",
                "0",
                "--run-dir",
                str(run_dir),
                *flags(spec),
            ]
            started = time.time()
            train = subprocess.run(command, capture_output=True, text=True)
            if args.train_log:
                with open(args.train_log, "a") as handle:
                    handle.write(f"# {spec}: {' '.join(command)}\n{train.stdout}{train.stderr}\n")
            if train.returncode != 0:
                print(train.stdout[-2000:], train.stderr[-2000:], file=sys.stderr)
                record(f"{spec:<45} FAILED (exit {train.returncode})")
                continue
            epochs = re.findall(r"epoch (\d+) done: train ([\d.]+) .* held-out ([\d.]+)", train.stdout)
            evaluation = subprocess.run(
                [sys.executable, "-m", "tui_charlm.cli", "eval", str(run_dir)],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            window = float(re.search(r"window loss .*?: ([\d.]+) nats", evaluation).group(1))
            stateful = re.search(r"stateful loss .*?: ([\d.]+) nats", evaluation)
            rate = re.findall(r"([\d,]+) chars/s", train.stdout)
            # The last epoch's train and held-out losses, and the best held-out epoch, show over- or under-fitting.
            fit = (
                (
                    f"last train {float(epochs[-1][1]):.3f} held-out {float(epochs[-1][2]):.3f}, best held-out "
                    f"{min(float(e[2]) for e in epochs):.3f} at epoch "
                    f"{min(epochs, key=lambda e: float(e[2]))[0]}"
                )
                if epochs
                else "no epoch finished"
            )
            row = (
                f"{spec:<45} epochs {epochs[-1][0] if epochs else 0:>4}  "
                f"chars/s {rate[-1] if rate else '?':>8}  window {window:.4f}  "
                f"stateful {float(stateful.group(1)) if stateful else float('nan'):.4f}  "
                f"({time.time() - started:.0f}s wall; {fit})"
            )
            record(row)
            if args.curves and epochs:
                with open(args.curves, "a") as handle:
                    handle.write(f"{header.splitlines()[0]}\n{spec}\n")
                    handle.write("".join(f"  epoch {e} train {t} held-out {h}\n" for e, t, h in epochs))
    with open(args.out, "a") as handle:
        handle.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
