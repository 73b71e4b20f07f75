"""Held-out loss against training time: the book's recipe and the default, same budgets, same run.

For each budget (seconds of training) and each recipe, a fresh run is
trained with `charlm train --time-budget B` on the lower-cased nietzsche text
(first 90% train, last 10% held out), then scored with `charlm eval` (the
yardstick in the README: 20,000 60-char windows drawn with
default_rng(0), and the held-out text read in order with carried state). Budgets run
from short to long, the two recipes alternating, so slow and busy spells of
a shared machine fall on both.

    python benchmarks/learning_curve.py [--budgets 60,150,300,600]

Writes the table (appended, with the command) to
benchmarks/results/learning_curve.txt, a sample of the longest-trained
default model at T=0.5 beside it, and, when matplotlib is installed
(`pip install -e ".[bench]"`), the plot benchmarks/results/learning_curve.png.

Targets: the default reaches the recipe's longest-budget loss within 60 s,
and at most 1.50 nats/char after 60 s and 1.28 after 600 s (window yardstick).
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
RECIPES = ("seed", "default")
SAMPLE_SEED = "the philosopher "
# Targets for the default model's window loss (nats/char) after 60 and 600 s of training.
TARGET_60, TARGET_600 = 1.50, 1.28


def charlm(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tui_charlm.cli", *args], capture_output=True, text=True)


def train_and_score(recipe: str, budget: float, corpus: Path, run_dir: Path, extra: list[str]) -> dict:
    train = charlm(
        "train",
        "--recipe",
        recipe,
        "--corpus",
        str(corpus),
        "--lowercase",
        "--time-budget",
        str(budget),
        "--epochs",
        "100000",
        "--checkpoint-every",
        "0",
        "--run-dir",
        str(run_dir),
        *(extra if recipe == "default" else []),
    )
    if train.returncode != 0:
        raise SystemExit(f"training {recipe} for {budget:g}s failed:\n{train.stdout[-2000:]}\n{train.stderr[-2000:]}")
    scored = charlm("eval", str(run_dir))
    if scored.returncode != 0:
        raise SystemExit(f"charlm eval failed:\n{scored.stderr[-2000:]}")
    window = float(re.search(r"window loss .*?: ([\d.]+) nats", scored.stdout).group(1))
    stateful = re.search(r"stateful loss .*?: ([\d.]+) nats", scored.stdout)
    epochs = re.findall(r"epoch (\d+) done: train ([\d.]+) .* held-out ([\d.]+)", train.stdout)
    rates = re.findall(r"\(session ([\d,]+)\)", train.stdout)  # chars/s over the whole session, end to end
    return {
        "recipe": recipe,
        "budget": budget,
        "window": window,
        "stateful": float(stateful.group(1)) if stateful else float("nan"),
        "epochs": int(epochs[-1][0]) if epochs else 0,
        "rate": rates[-1] if rates else "?",
        # the last epoch's training loss and held-out loss (the trainer's own, every position): the gap is overfitting
        "last_epoch": f"train {epochs[-1][1]} / held-out {epochs[-1][2]}" if epochs else "no full epoch",
    }


def plot(rows: list[dict], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    figure, axis = plt.subplots(figsize=(7, 4.2), dpi=120)
    for recipe, style in zip(RECIPES, ("o--", "o-")):
        points = sorted((r["budget"], r["window"]) for r in rows if r["recipe"] == recipe)
        label = "book's recipe (--recipe seed)" if recipe == "seed" else "default"
        axis.plot([p[0] for p in points], [p[1] for p in points], style, label=label)
    axis.axhline(TARGET_600, color="grey", linewidth=0.8, linestyle=":", label=f"target at 600 s ({TARGET_600:.2f})")
    axis.set_xlabel("training time (s, 2-core CPU)")
    axis.set_ylabel("held-out loss (nats/char, 60-char windows)")
    axis.set_title("Lower-cased nietzsche, last 10% held out")
    axis.grid(alpha=0.3)
    axis.legend()
    figure.tight_layout()
    figure.savefig(path)
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budgets", default="60,150,300,600", help="comma-separated seconds of training")
    parser.add_argument("--recipes", default=",".join(RECIPES), help="which to train: seed,default (default both)")
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument(
        "--default-flags", default="", help="extra `charlm train` flags for the default, e.g. '--units 256'"
    )
    parser.add_argument("--out", type=Path, default=HERE / "results" / "learning_curve.txt")
    args = parser.parse_args()
    if not args.corpus.is_file():
        print(f"corpus {args.corpus} not found; skipping", file=sys.stderr)
        return 0
    budgets = sorted(float(b) for b in args.budgets.split(","))
    extra = args.default_flags.split()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for budget in budgets:
            for recipe in [r for r in RECIPES if r in args.recipes.split(",")]:
                row = train_and_score(recipe, budget, args.corpus, Path(tmp) / f"{recipe}-{budget:g}", extra)
                rows.append(row)
                print(
                    f"{recipe:<8} {budget:>5.0f}s  epochs {row['epochs']:>3}  chars/s {row['rate']:>7}  "
                    f"window {row['window']:.4f}  stateful {row['stateful']:.4f}  last epoch {row['last_epoch']}",
                    flush=True,
                )
        longest = Path(tmp) / f"default-{budgets[-1]:g}"
        sample = charlm(
            "generate",
            str(longest),
            "--temperature",
            "0.5",
            "--length",
            "600",
            "--rng-seed",
            "0",
            "--seed-text",
            SAMPLE_SEED,
        ).stdout.strip()

    def row_for(recipe: str, budget: float) -> dict:
        return next(
            (r for r in rows if r["recipe"] == recipe and r["budget"] == budget),
            {"window": float("nan"), "stateful": float("nan"), "epochs": "-", "last_epoch": "not trained"},
        )

    def loss(recipe: str, budget: float) -> float:
        return row_for(recipe, budget)["window"]

    command = "python benchmarks/learning_curve.py --budgets " + ",".join(f"{b:g}" for b in budgets)
    if args.recipes != ",".join(RECIPES):
        command += f" --recipes {args.recipes}"
    if extra:
        command += f" --default-flags '{args.default_flags}'"
    lines = [
        f"# {time.strftime('%Y-%m-%d %H:%M')}  {versions_line()};  lower-cased {args.corpus.name}, last 10% held out; "
        f"window = 60-char yardstick, stateful = held-out text read in order (nats/char)",
        f"# command: {command}",
        "| training time | recipe: window | default: window | default: stateful"
        " | default: epochs, last epoch's losses |",
        "|---|---|---|---|---|",
    ]
    for budget in budgets:
        seed, default = row_for("seed", budget), row_for("default", budget)
        lines.append(
            f"| {budget:g} s | {seed['window']:.4f} | {default['window']:.4f} | {default['stateful']:.4f} | "
            f"{default['epochs']}, {default['last_epoch']} |"
        )
    recipe_best = loss("seed", budgets[-1])
    first = budgets[0]
    lines.append(
        f"default at {first:g} s: {loss('default', first):.4f} vs the recipe at {budgets[-1]:g} s: "
        f"{recipe_best:.4f} (target: default within 60 s at or below it: "
        f"{'met' if first <= 60 and loss('default', first) <= recipe_best else 'MISSED'})"
    )
    if 600 in budgets:
        lines.append(
            f"default at 600 s: {loss('default', 600):.4f} (target <= {TARGET_600:.2f}: "
            f"{'met' if loss('default', 600) <= TARGET_600 else 'MISSED'})"
        )
    if 60 in budgets:
        lines.append(
            f"default at 60 s: {loss('default', 60):.4f} (target <= {TARGET_60:.2f}: "
            f"{'met' if loss('default', 60) <= TARGET_60 else 'MISSED'})"
        )
    lines.append(f"sample, default after {budgets[-1]:g} s, T=0.5, seed {SAMPLE_SEED!r}:")
    lines.append(sample)
    append_results(args.out, lines)
    if plot(rows, args.out.with_suffix(".png")):
        print(f"plot: {args.out.with_suffix('.png')}")
    else:
        print("matplotlib is not installed: no plot (pip install -e '.[bench]')")
    return 0


if __name__ == "__main__":
    sys.exit(main())
