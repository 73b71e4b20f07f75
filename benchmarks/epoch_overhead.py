"""Where a real `charlm train` run's wall time goes: inside training calls, and everything else.

Runs `charlm train --time-budget B` on the lower-cased nietzsche text with
the default model, `--rounds` times, one after another, and reads the
per-epoch time lines it prints ("epoch 3 time: 21.0s, 19.9s (95%) in
training calls; held-out 0.6s, samples 0.1s, checkpoints 0.1s, other
0.0s"). The trainer measures those parts with its own clock; this script
also times the whole process from outside (start-up included) and checks
that the epoch lines account for the training part of it. With `--eval`,
each run is then scored with `charlm eval` (the README's yardstick), which
gives the learning curve's point at this budget once per round.

    python benchmarks/epoch_overhead.py [--budget 600] [--rounds 3] [--eval]

Target: over a 600-s default run, everything outside training calls is at
most 5% of the training session's wall time (held-out scoring included).
Results are appended, with the command, the date and the versions, to
benchmarks/results/epoch_overhead.txt.
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
from versions import append_results, versions_line  # noqa: E402

CORPUS = HERE.parent.parent / "shared" / "corpora" / "nietzsche.txt"
TIME_LINE = re.compile(r"^epoch (\d+)( \(part\))? time: ([\d.]+)s, ([\d.]+)s \(\d+%\) in training calls; (.*)$")
TARGET = 0.05


def run_once(budget: float, corpus: Path, run_dir: Path, extra: list[str]) -> dict:
    """One `charlm train` run; its epoch accounts, the process's wall time and when training began."""
    command = [
        sys.executable,
        "-m",
        "tui_charlm.cli",
        "train",
        "--corpus",
        str(corpus),
        "--lowercase",
        "--time-budget",
        str(budget),
        "--epochs",
        "100000",
        "--run-dir",
        str(run_dir),
        *extra,
    ]
    began = time.perf_counter()
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**__import__("os").environ, "PYTHONUNBUFFERED": "1"},
    )
    epochs, started_at, lines = [], None, []
    for line in process.stdout:
        line = line.rstrip("\n")
        lines.append(line)
        if started_at is None and line.startswith("training "):
            started_at = time.perf_counter() - began
        match = TIME_LINE.match(line)
        if match:
            named = (item.rsplit(" ", 1) for item in match.group(5).split(", "))
            parts = {name: float(seconds.rstrip("s")) for name, seconds in named}
            epochs.append(
                {
                    "epoch": int(match.group(1)),
                    "finished": match.group(2) is None,
                    "seconds": float(match.group(3)),
                    "training": float(match.group(4)),
                    "parts": parts,
                }
            )
    process.wait()
    wall = time.perf_counter() - began
    if process.returncode != 0:
        raise SystemExit(f"charlm train failed ({process.returncode}):\n" + "\n".join(lines[-30:]))
    losses = re.findall(r"^epoch \d+ done: train ([\d.]+) nats .* held-out ([\d.]+) nats", "\n".join(lines), re.M)
    return {
        "epochs": epochs,
        "wall": wall,
        "startup": started_at or 0.0,
        "log": lines,
        "last_losses": f"{float(losses[-1][0]):.3f} / {float(losses[-1][1]):.3f}" if losses else "-",
    }


def score(run_dir: Path) -> tuple[float, float]:
    """(window, stateful) held-out loss from `charlm eval`."""
    scored = subprocess.run(
        [sys.executable, "-m", "tui_charlm.cli", "eval", str(run_dir)], capture_output=True, text=True
    )
    if scored.returncode != 0:
        raise SystemExit(f"charlm eval failed:\n{scored.stderr[-2000:]}")
    window = float(re.search(r"window loss .*?: ([\d.]+) nats", scored.stdout).group(1))
    stateful = re.search(r"stateful loss .*?: ([\d.]+) nats", scored.stdout)
    return window, float(stateful.group(1)) if stateful else float("nan")


def summarise(result: dict) -> dict:
    epochs = result["epochs"]
    session = sum(e["seconds"] for e in epochs)
    training = sum(e["training"] for e in epochs)
    parts: dict[str, float] = {}
    for epoch in epochs:
        for name, seconds in epoch["parts"].items():
            parts[name] = parts.get(name, 0.0) + seconds
    worst = max((1 - e["training"] / e["seconds"] for e in epochs if e["finished"] and e["seconds"] > 0), default=0.0)
    return {
        "session": session,
        "training": training,
        "outside": 1 - training / session if session else 0.0,
        "parts": parts,
        "full_epochs": sum(e["finished"] for e in epochs),
        "worst_epoch": worst,
        "longest_epoch": max((e["seconds"] for e in epochs if e["finished"]), default=0.0),
        "shortest_epoch": min((e["seconds"] for e in epochs if e["finished"]), default=0.0),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget", type=float, default=600.0, help="seconds of training per run (default 600)")
    parser.add_argument("--rounds", type=int, default=3, help="runs, one after another (default 3)")
    parser.add_argument("--eval", action="store_true", help="score each run with `charlm eval` afterwards")
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--train-flags", default="", help="extra `charlm train` flags, e.g. '--units 256'")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "epoch_overhead.txt")
    args = parser.parse_args()
    if not args.corpus.is_file():
        print(f"corpus {args.corpus} not found; skipping", file=sys.stderr)
        return 0
    command = f"python benchmarks/epoch_overhead.py --budget {args.budget:g} --rounds {args.rounds}"
    command += " --eval" * args.eval + (f" --train-flags '{args.train_flags}'" if args.train_flags else "")
    lines = [
        f"# {time.strftime('%Y-%m-%d %H:%M')}  {versions_line()}",
        f"# command: {command}",
        f"# default model, lower-cased {args.corpus.name}; session = the epoch time lines summed (training "
        f"start to the last save); process = the whole `charlm train` process, start-up included",
        "| round | process wall | start-up | session | full epochs | epoch wall (min-max) | training calls |"
        " outside training calls | worst full epoch | held-out | samples | checkpoints | other"
        " | last epoch train / held-out | window | stateful |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    print("\n".join(lines), flush=True)
    outside = []
    with tempfile.TemporaryDirectory() as tmp:
        for round_number in range(1, args.rounds + 1):
            run_dir = Path(tmp) / f"run-{round_number}"
            result = run_once(args.budget, args.corpus, run_dir, args.train_flags.split())
            summary = summarise(result)
            window, stateful = score(run_dir) if args.eval else (float("nan"), float("nan"))
            outside.append(summary["outside"])
            parts = summary["parts"]
            row = (
                f"| {round_number} | {result['wall']:.1f}s | {result['startup']:.1f}s | {summary['session']:.1f}s | "
                f"{summary['full_epochs']} | {summary['shortest_epoch']:.1f}-{summary['longest_epoch']:.1f}s | "
                f"{summary['training']:.1f}s | **{summary['outside']:.2%}** | {summary['worst_epoch']:.2%} | "
                f"{parts.get('held-out', 0):.1f}s | {parts.get('samples', 0):.1f}s | "
                f"{parts.get('checkpoints', 0):.1f}s | "
                f"{parts.get('other', 0) + parts.get('set-up', 0) + parts.get('snapshots', 0):.1f}s | "
                f"{result['last_losses']} | {window:.4f} | {stateful:.4f} |"
            )
            lines.append(row)
            print(row, flush=True)
    verdict = "met" if max(outside) <= TARGET else "MISSED"
    lines.append(
        f"outside training calls: {', '.join(f'{o:.2%}' for o in outside)} of the session "
        f"(target <= {TARGET:.0%} in every round: {verdict})"
    )
    print(lines[-1])
    append_results(args.out, lines, echo=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
