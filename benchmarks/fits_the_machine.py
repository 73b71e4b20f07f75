"""Does the default size fit the machine? The default (`--units auto`) beside the best width of the sweep.

For each speed (all cores, and one core under `taskset -c 0`) and each time
budget, `charlm train` with the default options trains the lower-cased
nietzsche text and is scored with `charlm eval` (the 60-char window loss on
the held-out 10%), beside the best size row (`units=N`, `batch-size=B`) that benchmarks/sweep.py
recorded in benchmarks/results/sweep.txt on the same CPU, the same number
of cores and the same budget. A run without a budget is scored after 60 and
600 s of training (stopped with Ctrl+C, scored, resumed: resume is exact).
`--startup` times command-to-first-batch of the default against the same
width given by hand, interleaved, to show what the measurement adds.

    python benchmarks/fits_the_machine.py --budgets 60 600 --no-budget 60 600 --startup
    python benchmarks/fits_the_machine.py --speeds 1 --budgets 60

Rows go to benchmarks/results/fits_the_machine.txt as they come.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from versions import cpu_line, versions_line  # noqa: E402

CORPUS = HERE.parent.parent / "shared" / "corpora" / "nietzsche.txt"
SWEEP = HERE / "results" / "sweep.txt"
# Only sweep blocks from this time on ('YYYY-MM-DD HH:MM'; --since): rows swept under an older default do not
# count as the best width of the current one (late dropout changed the default on 2026-12-02).
SINCE = ""


def pinned(cores: int) -> list[str]:
    """The command prefix that runs on `cores` cores (nothing for all of them)."""
    return [] if cores >= (os.cpu_count() or 1) else ["taskset", "-c", ",".join(map(str, range(cores)))]


def cpu_name(line: str) -> str:
    """'AMD EPYC (family 26 model 2)' from a cpu_line() / results header."""
    return line.rsplit(", ", 1)[0].split("; ")[-1].strip()


# A sweep row of one size: `units=N`, with `batch-size=B` (else the default batch), with `seed=S` for a repeat.
SIZE_ROW = re.compile(
    r"units=(\d+)(?:,batch-size=(\d+))?(?:,seed=(\d+))?\s+epochs\s+\d+\s+chars/s\s+([\d,]+)\s+window ([\d.]+)"
)


def sweep_groups(since: str = "") -> dict[tuple[str, str, int], dict[tuple[int, int], tuple[float, float]]]:
    """Every size row in sweep.txt (from `since` on): {(cpu, cpus, budget): {(width, batch): (chars/s, window
    loss)}}: the mean over seeds of each seed's mean (a size run again with the same seed counts once)."""
    from tui_charlm.core.config import DEFAULT_BATCH

    runs: dict[tuple, dict[tuple[int, int], dict[int, list[tuple[float, float]]]]] = {}
    key = None
    for line in SWEEP.read_text().splitlines() if SWEEP.is_file() else []:
        if line.startswith("# 20"):
            found = re.search(r"; ([^;]*?), ((?:\d+ of )?\d+ CPUs);\s+budget (\d+)s", line)
            key = (found.group(1), found.group(2), int(found.group(3))) if found and line[2:18] >= since else None
        elif key and (row := SIZE_ROW.match(line)):
            size = (int(row.group(1)), int(row.group(2) or DEFAULT_BATCH))
            rate, loss = float(row.group(4).replace(",", "")), float(row.group(5))
            runs.setdefault(key, {}).setdefault(size, {}).setdefault(int(row.group(3) or 0), []).append((rate, loss))

    def mean(pairs):
        return tuple(sum(v) / len(v) for v in zip(*pairs))

    return {
        key: {size: mean([mean(pairs) for pairs in seeds.values()]) for size, seeds in sizes.items()}
        for key, sizes in runs.items()
    }


def size_name(size: tuple[int, int]) -> str:
    return f"LSTM({size[0]}) batch {size[1]}"


def best_widths(cpu: str, cpus: str, budget: float) -> tuple[str, float, int] | None:
    """(size, window loss, sizes swept) of the best size row in sweep.txt for this host (mean of its repeats)."""
    found = sweep_groups(SINCE).get((cpu, cpus, int(budget)))
    if not found:
        return None
    best = min(found, key=lambda size: found[size][1])
    return size_name(best), found[best][1], len(found)


def fit_table() -> str:
    """For each swept host, speed and budget: each size's chars per parameter and loss, the best, the rule's pick."""
    from tui_charlm.core.config import DEFAULT_BATCH, make_config
    from tui_charlm.core.sizing import PROBE_OVER_SESSION, PROBE_UNITS, choose_units, parameter_count

    vocab = len(set(CORPUS.read_text(encoding="utf-8").lower()))
    lines = []
    for (cpu, cpus, budget), rows in sweep_groups().items():
        probe = (PROBE_UNITS, DEFAULT_BATCH)
        if len(rows) < 3 or probe not in rows:
            continue
        config = make_config(time_budget=float(budget))
        cells = [
            f"{w}/{b}: {rate * budget / parameter_count(config, vocab, w):5.1f}/p {loss:.4f}"
            for (w, b), (rate, loss) in sorted(rows.items())
        ]
        best = min(rows, key=lambda size: rows[size][1])
        # The probe times training calls alone; a session's rate also pays for epoch ends (PROBE_OVER_SESSION).
        fit = choose_units(config, vocab, rows[probe][0] * PROBE_OVER_SESSION)
        pick = (fit.units, fit.batch_size)
        gap = rows[pick][1] - rows[best][1] if pick in rows else float("nan")
        lines.append(
            f"{cpu[:40]:<40} {cpus:<11} {budget:>4}s  "
            + "  ".join(cells)
            + f"   best {best[0]}/{best[1]}, rule {pick[0]}/{pick[1]} ({gap:+.4f})"
        )
    return "\n".join(lines)


def charlm(*args: str) -> list[str]:
    return [sys.executable, "-m", "tui_charlm.cli", *args]


def score(run: Path) -> float:
    out = subprocess.run(charlm("eval", str(run)), capture_output=True, text=True, check=True).stdout
    return float(re.search(r"window loss .*?: ([\d.]+) nats", out).group(1))


def trained_seconds(run: Path) -> float:
    """Training seconds the run's newest checkpoint holds."""
    from tui_charlm.core.checkpoints import RunDirectory

    return RunDirectory.open(run).latest().state.elapsed


def train_budgeted(prefix: list[str], budget: float, run: Path) -> tuple[str, float, str]:
    """(width chosen and the probe's speed, held-out loss, chars/s) of the default trained for `budget` seconds."""
    command = [*prefix, *charlm("train", "--corpus", str(CORPUS), "--lowercase", "--time-budget", str(budget))]
    command += ["--epochs", "10000", "--checkpoint-every", "0", "--run-dir", str(run), "--plain"]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    probe = re.search(r"size: LSTM\(\d+\).*? at ([\d,]+) chars/s", out)
    rate = re.findall(r"session ([\d,]+)\)", out)
    chosen = (
        f"{chosen_size(run)} (probe: LSTM(256) at {probe.group(1)} chars/s{dropout_decision(run)})" if probe else "?"
    )
    return chosen, score(run), (rate[-1] if rate else "?")


def dropout_decision(run: Path) -> str:
    """'; dropout from step 36 (holds 17.2 epochs), 15 epochs': what --dropout-start auto decided, from the newest
    checkpoint's state (empty for a run without a budget, which decides by epochs)."""
    from tui_charlm.core.checkpoints import RunDirectory

    state = RunDirectory.open(run).latest().state
    decided = state.auto_dropout
    if not decided:
        return f"; {state.epoch} epochs"
    when = f"dropout from step {decided['step']}" if decided["step"] is not None else "no dropout"
    return f"; {when} (holds {decided['holds']:g} epochs), {state.epoch} epochs"


def chosen_size(run: Path) -> str:
    """'LSTM(384) batch 32': the size a run trains, from its config.json."""
    config = json.loads((run / "config.json").read_text())
    return size_name((config["units"], config["batch_size"]))


def train_until(prefix: list[str], run: Path, seconds: float, resume: bool) -> tuple[str, float]:
    """Train the default without a budget until `seconds` of training in all, then Ctrl+C; (width, seconds)."""
    if resume:
        command = [*prefix, *charlm("train", "--resume", str(run), "--plain")]
        already = trained_seconds(run)
    else:
        command = [*prefix, *charlm("train", "--corpus", str(CORPUS), "--lowercase", "--epochs", "10000")]
        command += ["--checkpoint-every", "0", "--run-dir", str(run), "--plain"]
        already = 0.0
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    for line in process.stdout:
        if line.startswith(("training ", "resuming ")):  # the first batch starts now: training time counts
            break
    time.sleep(max(0.0, seconds - already))
    process.send_signal(signal.SIGINT)
    process.communicate()
    return chosen_size(run), trained_seconds(run)


def first_batch_seconds(prefix: list[str], extra: list[str], run: Path) -> tuple[float, str]:
    """Seconds from the command to its first batch line, and the width it trained."""
    command = [*prefix, *charlm("train", "--corpus", str(CORPUS), "--lowercase", "--time-budget", "60")]
    command += ["--checkpoint-every", "0", "--run-dir", str(run), "--plain", *extra]
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    width = "?"
    for line in process.stdout:
        if found := re.match(r"size: LSTM\((\d+)\)", line):
            width = found.group(1)
        if re.match(r"epoch 1 batch \d+/", line):
            break
    seconds = time.perf_counter() - started
    process.kill()
    process.wait()
    return seconds, width


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--speeds", type=int, nargs="*", default=[os.cpu_count() or 1, 1], help="cores to use")
    parser.add_argument("--budgets", type=float, nargs="*", default=[60.0, 600.0])
    parser.add_argument("--no-budget", type=float, nargs="*", default=[60.0, 600.0], help="score points, seconds")
    parser.add_argument("--startup", action="store_true", help="also time command-to-first-batch (3 pairs)")
    parser.add_argument("--fit", action="store_true", help="only print the rule against every sweep row; no training")
    parser.add_argument("--sweep", type=Path, default=None, help="the sweep rows to compare with (results/sweep.txt)")
    parser.add_argument("--since", default="", help="only sweep blocks from this 'YYYY-MM-DD HH:MM' on")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "fits_the_machine.txt")
    args = parser.parse_args()
    global SWEEP, SINCE
    SWEEP = args.sweep or SWEEP
    SINCE = args.since
    if not CORPUS.is_file():
        print(f"corpus {CORPUS} not found; skipping", file=sys.stderr)
        return 0
    if args.fit:
        print(fit_table())
        return 0
    with open(args.out, "a") as handle:
        handle.write(f"# {time.strftime('%Y-%m-%d %H:%M')}  {versions_line()}\n# command: {' '.join(sys.argv)}\n")

    def record(row: str) -> None:
        print(row, flush=True)
        with open(args.out, "a") as handle:
            handle.write(row + "\n")

    cpu = cpu_name(cpu_line())
    total = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as tmp:
        for cores in args.speeds:
            prefix = pinned(cores)
            cpus = f"{total} CPUs" if cores >= total else f"{cores} of {total} CPUs"

            def beside(budget: float, cpus: str = cpus) -> str:
                best = best_widths(cpu, cpus, budget)
                if best is None:
                    return "best width of the sweep: no sweep rows for this CPU, cores and budget"
                return f"best of {best[2]} swept sizes: {best[0]} {best[1]:.4f}"

            for budget in args.budgets:
                run = Path(tmp) / f"b{cores}-{budget:g}"
                width, loss, rate = train_budgeted(prefix, budget, run)
                best = best_widths(cpu, cpus, budget)
                gap = f"  gap {loss - best[1]:+.4f}" if best else ""
                record(
                    f"{cpus:<12} budget {budget:>5g}s  default chose {width}, trained at {rate} chars/s: "
                    f"{loss:.4f}   {beside(budget)}{gap}"
                )
            if args.no_budget:
                run = Path(tmp) / f"n{cores}"
                for index, point in enumerate(sorted(args.no_budget)):
                    width, seconds = train_until(prefix, run, point, resume=index > 0)
                    scored = Path(tmp) / f"n{cores}-{point:g}"
                    shutil.copytree(run, scored)
                    loss = score(scored)
                    best = best_widths(cpu, cpus, point)
                    gap = f"  gap {loss - best[1]:+.4f}" if best else ""
                    record(
                        f"{cpus:<12} no budget, {seconds:>5.1f}s trained  default {width}: {loss:.4f}   "
                        f"{beside(point)}{gap}"
                    )
            if args.startup:
                pairs: dict[str, list[float]] = {"auto": [], "explicit": []}
                width = "512"
                for index in range(3):
                    seconds, width = first_batch_seconds(prefix, [], Path(tmp) / f"s{cores}-a{index}")
                    pairs["auto"].append(seconds)
                    seconds, _ = first_batch_seconds(prefix, ["--units", width], Path(tmp) / f"s{cores}-e{index}")
                    pairs["explicit"].append(seconds)
                auto, explicit = statistics.median(pairs["auto"]), statistics.median(pairs["explicit"])
                record(
                    f"{cpus:<12} command to first batch (median of 3, interleaved): default {auto:.1f}s, "
                    f"--units {width} {explicit:.1f}s: the measurement adds {auto - explicit:.1f}s"
                )
    with open(args.out, "a") as handle:
        handle.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
