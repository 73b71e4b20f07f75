"""Watching a headless run: what viewers cost the trainer, how fresh their weights are, how fast their keys answer.

* training speed with 0, 1 and 2 viewers: `charlm train --time-budget S`
  (LSTM(256), the lower-cased nietzsche text) with N `charlm-tui --attach`
  viewers on real pseudo-terminals, each generating its four streams at the
  default pace; the configurations alternate, round after round. Speed is
  read from the trainer's own event log: steps per training second between
  the first batch line after WARM_UP seconds (the viewers have loaded by
  then) and the last, times the chars per step.
* or, with --interleave SEGMENT: one trainer with two viewers on it
  throughout, the viewers stopped (SIGSTOP) and continued in turn so that
  0, 1 and 2 watch for SEGMENT seconds each, cycle after cycle (--rounds
  cycles); each cycle's speeds against its own unattended segment. The
  machine's speed drifts by more than the few per cent measured between
  whole runs minutes apart; neighbouring segments share it. A 95% interval
  for the median of those ratios (a bootstrap over the cycles) says
  whether the sitting can tell the target met. Also the CPU each watching
  viewer used (from /proc: all its threads), the cost the trainer's speed
  reflects but far less noisy. With --placebo SHARE, one more segment a
  cycle in which no viewer watches and two idle-class processes each burn
  SHARE of a core: what that much CPU costs the trainer, whatever uses it.
  With --trainer-cpus LIST, the trainer runs on those CPUs only: a machine
  with cores that training leaves free, as a GPU box has. --pool [SINCE]
  measures nothing: it pools the sittings on record, with a second
  interval that resamples sittings and then their cycles (sittings differ
  more than one sitting's cycles show).
* weights: while one viewer's code (AttachBackend, in this process) follows
  a run, the age of the newest weights when it takes them (now minus the
  weights file's time), and the seconds between the weights it generates
  from (the trainer writes them every 3 s).
* key latency in a viewer: Up/Down on a stream's temperature until the new
  title reaches the terminal; median and 95th percentile.
* the event log's size: the size of each run's events.jsonl, and with
  --log-seconds S, of one default run of S seconds.

    python benchmarks/viewers.py [--seconds 60] [--rounds 2] [--presses 40] [--log-seconds 600]
    python benchmarks/viewers.py --interleave 15 --rounds 8 --warm-up 0 --presses 0
    python benchmarks/viewers.py --interleave 15 --rounds 20 --warm-up 0 --presses 20 --seconds 30 --placebo 0.033
    python benchmarks/viewers.py --interleave 15 --rounds 12 --warm-up 0 --presses 0 --seconds 30 --trainer-cpus 0
    python benchmarks/viewers.py --interleave 15 --rounds 30 --viewers 0 2 --warm-up 0 --presses 20 --seconds 30
    python benchmarks/viewers.py --pool "2026-12-07 21:40"

Results are appended to benchmarks/results/viewers.txt. Targets (issue 26):
with viewers at least 97% of unattended speed; new weights reach a viewer
within 5 s; key to screen p95 under 100 ms.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import re
import select
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
from tui_responsiveness import BIN, CORPUS, Terminal  # noqa: E402
from versions import versions_line  # noqa: E402

# Training speed with viewers, as a share of unattended: the target.
TARGET = 0.97
# Seconds of training before speed is counted: the viewers load (and compile nothing) in this time.
WARM_UP = 15.0
# The time budget ends each run (the default 50 epochs would end a long sitting half way on a fast host).
SETTINGS = [
    *("--corpus", str(CORPUS), "--lowercase", "--units", "256", "--epochs", "10000"),
    *("--checkpoint-every", "0", "--plain"),
]


def log_lines(run: Path) -> list[dict]:
    try:
        text = (run / "events.jsonl").read_text()
    except OSError:
        return []
    out = []
    for line in text.splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            pass
    return out


def training_rate(records: list[dict], since: float = 0.0, until: float = float("inf")) -> float:
    """Steps per training second between the batch lines logged from `since` to `until` (wall-clock times).

    Gaps between two batch lines that hold another line (an epoch's end: its
    held-out pass and checkpoint, about half a second each epoch of ~14 s) are
    left out: whether a segment of a few seconds holds one or none is chance,
    not the viewers, and would only add to the noise.
    """
    batches = [r for r in records if r["type"] == "batch" and since <= r["time"] <= until]
    others = [r["time"] for r in records if r["type"] != "batch"]
    steps = seconds = 0.0
    for a, b in itertools.pairwise(batches):
        if b["step"] > a["step"] and not any(a["time"] < t < b["time"] for t in others):
            steps += b["step"] - a["step"]
            seconds += b["elapsed"] - a["elapsed"]
    return steps / seconds if seconds > 0 else 0.0


def speed(run: Path) -> float:
    """Scored chars per training second after WARM_UP, from the trainer's batch lines."""
    records = log_lines(run)
    batches = [r for r in records if r["type"] == "batch" and r["elapsed"] >= WARM_UP]
    return training_rate(records, since=batches[0]["time"]) * chars_per_step(run)


def chars_per_step(run: Path) -> int:
    """Chars scored by one training step of the run (batch x window), from its config.json."""
    config = json.loads((run / "config.json").read_text())
    return config["batch_size"] * config["seq_len"]


def start_trainer(run: Path, budget: float, cpus: set[int] | None = None) -> subprocess.Popen:
    """`charlm train` (SETTINGS) for `budget` seconds into `run`, once it has logged its first batch; only on
    `cpus` if given (set before it starts, so every thread it makes inherits it, and TensorFlow sizes its thread
    pools to them)."""
    trainer = subprocess.Popen(
        [str(BIN / "charlm"), "train", *SETTINGS, "--time-budget", str(budget), "--run-dir", str(run)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=None if cpus is None else lambda: os.sched_setaffinity(0, cpus),
    )
    while not any(r["type"] == "batch" for r in log_lines(run)):
        if trainer.poll() is not None:
            raise SystemExit(f"charlm train exited with {trainer.returncode}")
        time.sleep(0.1)
    return trainer


def train_with_viewers(seconds: float, viewers: int, tmp: Path) -> tuple[float, int]:
    """(chars/s, events.jsonl bytes) of one run watched by `viewers` viewers."""
    run = tmp / f"run-{viewers}-{time.monotonic_ns()}"
    trainer = start_trainer(run, seconds)
    terminals = [Terminal([str(BIN / "charlm-tui"), "--attach", str(run)]) for _ in range(viewers)]
    while trainer.poll() is None:
        for terminal in terminals:
            terminal.read(0.0)  # keep their terminals drained, as a terminal emulator would
        time.sleep(0.05)
    for terminal in terminals:
        terminal.close()
    return speed(run), (run / "events.jsonl").stat().st_size


def cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system, all threads) a process has used so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# A stand-in for a viewer that only burns CPU (--placebo): in the idle class, as a viewer runs, in one burst a second.
BURNER = """
import os, sys, time
os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
share, phase = float(sys.argv[1]), float(sys.argv[2])
while True:
    time.sleep((phase - time.time()) % 1.0)
    start = time.thread_time()
    while time.thread_time() - start < share:
        sum(range(2000))
"""
# The key of the placebo's segments among the viewer counts.
PLACEBO = -2


def label(arm: int) -> str:
    return "2 idle-class burners (placebo)" if arm == PLACEBO else f"{arm} viewer(s)"


def interleaved(
    cycles: int,
    segment: float,
    viewers: list[int],
    tmp: Path,
    placebo: float = 0.0,
    trainer_cpus: set[int] | None = None,
) -> tuple[dict[int, list[float]], dict[int, list[float]]]:
    """One trainer, max(viewers) viewers on it, and the number watching switched every `segment` seconds.

    The viewers not watching in a segment are stopped (SIGSTOP: no CPU at
    all) and the others continued (SIGCONT), in the order of `viewers` and
    then reversed, cycle after cycle; each segment's speed is read from the
    trainer's batch lines (training_rate) after the first 3 s (a continued
    viewer catches up on a post's worth of chars and redraws). Neighbouring
    segments see the same machine, so the ratio of each cycle's segments to
    its own unattended one is far steadier than whole runs minutes apart.
    With `placebo` (a share of a core), one more segment a cycle in which
    no viewer watches and two processes in the idle class burn that share
    each: what the CPU alone costs the trainer, whoever uses it. With
    `trainer_cpus`, the trainer runs on those CPUs only and the viewers
    anywhere: a machine with cores that training leaves free, as on a GPU box.
    Chars/s by viewers watching (PLACEBO: the burners), one value per cycle
    in cycle order; and the share of a core each watching viewer (or
    burner) used in its segments, one value per process and segment.
    """
    settle = 3.0
    arms = [*viewers, PLACEBO] if placebo else list(viewers)
    run = tmp / f"interleaved-{time.monotonic_ns()}"
    trainer = start_trainer(run, WARM_UP + cycles * len(arms) * (segment + 1) + 60, trainer_cpus)
    terminals = [Terminal([str(BIN / "charlm-tui"), "--attach", str(run)]) for _ in range(max(viewers))]
    burners = [
        subprocess.Popen([sys.executable, "-c", BURNER, str(placebo), str(phase)])
        for phase in ((0.0, 0.37) if placebo else ())
    ]

    def drain(seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            for terminal in terminals:
                terminal.read(0.0)  # keep their terminals drained, as a terminal emulator would
            time.sleep(0.05)

    drain(WARM_UP)  # the viewers load and draw their first screen
    per_step = chars_per_step(run)
    rates: dict[int, list[float]] = {n: [] for n in arms}
    cpu: dict[int, list[float]] = {n: [] for n in arms}
    try:
        for cycle in range(cycles):
            for arm in arms if cycle % 2 == 0 else list(reversed(arms)):
                pids = [t.process.pid for t in terminals] + [b.pid for b in burners]
                running = [b.pid for b in burners] if arm == PLACEBO else [t.process.pid for t in terminals[:arm]]
                for pid in pids:
                    os.kill(pid, signal.SIGCONT if pid in running else signal.SIGSTOP)
                drain(settle)
                since = time.time()
                started, used = time.monotonic(), [cpu_seconds(pid) for pid in running]
                drain(segment - settle)
                if trainer.poll() is not None:
                    raise SystemExit(f"the trainer ended (exit status {trainer.returncode}) in cycle {cycle + 1}")
                rates[arm].append(training_rate(log_lines(run), since, time.time()) * per_step)
                wall = time.monotonic() - started
                cpu[arm] += [(cpu_seconds(pid) - u) / wall for pid, u in zip(running, used)]
    finally:
        for burner in burners:
            burner.kill()
            burner.wait()
        for terminal in terminals:
            os.kill(terminal.process.pid, signal.SIGCONT)
            terminal.close()
        subprocess.run([str(BIN / "charlm"), "control", str(run), "stop"], capture_output=True)
        trainer.wait()
    return rates, cpu


def median_interval(values: list[float], resamples: int = 4000, seed: int = 0) -> tuple[float, float]:
    """A 95% interval for the median of `values` (percentile bootstrap over the rounds or cycles).

    One round's ratio scatters by about 6% on these shared machines (two
    unattended segments side by side, 2026-12-07), so the median of 8 can
    miss by 3% either way: the interval says how far a sitting can be trusted.
    """
    return bootstrap_interval(lambda rng: rng.choices(values, k=len(values)), resamples, seed)


def bootstrap_interval(resample, resamples: int, seed: int) -> tuple[float, float]:
    """The 2.5th and 97.5th percentiles of the medians of `resamples` draws of `resample(rng)`."""
    rng = random.Random(seed)
    medians = sorted(statistics.median(resample(rng)) for _ in range(resamples))
    return medians[int(0.025 * resamples)], medians[int(0.975 * resamples) - 1]


def summary(ratios: list[float]) -> str:
    """'median M (95% interval L-H: verdict)' for per-cycle (or per-round) ratios to unattended speed."""
    low, high = median_interval(ratios)
    return f"median {statistics.median(ratios):.1%} (95% interval {low:.1%}-{high:.1%}: {verdict(low, high)})"


def verdict(low: float, high: float, target: float = TARGET) -> str:
    """Whether the interval says the target is met, missed, or cannot tell."""
    if low >= target:
        return f"{target:.0%} met"
    if high < target:
        return f"{target:.0%} missed"
    return f"too close to {target:.0%} to tell"


def sittings_interval(sittings: list[list[float]], resamples: int = 4000, seed: int = 0) -> tuple[float, float]:
    """A 95% interval for the median of pooled per-cycle ratios that also covers how sittings differ: a two-level
    (hierarchical) bootstrap, the sittings drawn with replacement and then the cycles within each.

    A sitting's own cycles share its host's mood that day: the medians of
    sittings of one viewer range over several per cent (89.3% to 100.0% for
    two viewers, 2026-12-07), more than a sitting's interval allows for, so
    pooled cycles resampled as if independent make too narrow an interval.
    With few sittings this interval is wide: that is what they can say.
    """
    return bootstrap_interval(
        lambda rng: [c for s in rng.choices(sittings, k=len(sittings)) for c in rng.choices(s, k=len(s))],
        resamples,
        seed,
    )


def pool(results: Path, since: str = "0", trainer_cpus: str | None = None) -> int:
    """Print the per-cycle ratios of the interleaved sittings in `results` (those from `since` on, 'YYYY-MM-DD
    HH:MM'), pooled by arm, with two intervals: the cycles resampled as one sample, and sittings then cycles
    (sittings_interval); those whose trainer ran on every CPU, or with `trainer_cpus`, those whose trainer ran on
    these.

    One sitting's interval is wide (8 to 20 cycles); the sittings on record
    together say more, though from different hosts on different days.
    """
    pooled: dict[str, list[list[float]]] = {}
    sittings = 0
    for sitting in re.split(r"^(?=# \d{4}-\d\d-\d\d )", results.read_text(), flags=re.M):
        head = sitting.partition("\n\n")[0]
        pinned = re.search(r"--trainer-cpus (\S+)", head)
        if "--interleave" not in head or sitting[2:18] < since or (pinned and pinned.group(1)) != trainer_cpus:
            continue
        sittings += 1
        for arm, ratios in re.findall(r"^(.+?): median [\d,]+ chars/s; per round (.+?) of unattended", sitting, re.M):
            pooled.setdefault(arm, []).append([float(r.strip().rstrip("%")) / 100 for r in ratios.split(",")])
    where = f", the trainer on CPUs {trainer_cpus}" if trainer_cpus else ""
    print(f"{sittings} interleaved sittings in {results}{where}" + (f" from {since} on" if since != "0" else ""))
    for arm, groups in pooled.items():
        ratios = [r for group in groups for r in group]
        medians = ", ".join(f"{statistics.median(group):.1%}" for group in groups)
        low, high = sittings_interval(groups)
        print(f"{arm}: {len(ratios)} cycles against unattended, {summary(ratios)}")
        print(
            f"{arm}: by sitting (medians {medians}), sittings then cycles resampled: 95% interval "
            f"{low:.1%}-{high:.1%}: {verdict(low, high)}"
        )
    return 0


def weights_freshness(seconds: float, tmp: Path) -> tuple[list[float], list[float]]:
    """(age of the weights when the viewer took them, seconds between the weights it took)."""
    from tui_charlm.core.generation import WeightBox
    from tui_charlm.tui.attach import AttachBackend

    run = tmp / "fresh"
    trainer = subprocess.Popen(
        [str(BIN / "charlm"), "train", *SETTINGS, "--time-budget", str(seconds), "--run-dir", str(run)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    while not (run / "weights.npz").is_file():
        time.sleep(0.1)
    ages, taken = [], []

    class Timed(WeightBox):
        def publish(self, weights) -> None:
            now = time.time()
            ages.append(now - os.stat(run / "weights.npz").st_mtime)
            taken.append(now)
            super().publish(weights)

    backend = AttachBackend(run)
    backend.prepare(lambda _: None, lambda _: None)
    stop = threading.Event()
    follower = threading.Thread(
        target=backend.fit,
        args=(lambda _: None,),
        kwargs=dict(stop_event=stop, pause_event=None, save_event=None, weight_box=Timed()),
        daemon=True,
    )
    follower.start()
    trainer.wait()
    stop.set()
    follower.join(30)
    return ages, [b - a for a, b in itertools.pairwise(taken)]


def key_latency(presses: int, tmp: Path) -> list[float]:
    run = tmp / "keys"
    trainer = subprocess.Popen(
        [str(BIN / "charlm"), "train", *SETTINGS, "--time-budget", "600", "--run-dir", str(run)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    while not any(r["type"] == "batch" for r in log_lines(run)):
        time.sleep(0.1)
    terminal = Terminal([str(BIN / "charlm-tui"), "--attach", str(run)])
    terminal.wait_for(b"TRAINING", timeout=120)
    time.sleep(3)
    latencies = []
    for index in range(presses):
        key, expected = (b"\x1b[A", b"T=0.3") if index % 2 == 0 else (b"\x1b[B", b"T=0.2")
        while terminal.read(0.0) and select.select([terminal.master], [], [], 0)[0]:
            pass
        start = len(terminal.output)
        terminal.send(key)
        seconds = terminal.wait_for(expected, start=start, timeout=5)
        latencies.append(seconds if seconds is not None else 5.0)
        time.sleep(0.15)
    terminal.close()
    subprocess.run([str(BIN / "charlm"), "control", str(run), "stop"], capture_output=True)
    trainer.wait()
    return latencies


def default_log_size(seconds: float, tmp: Path) -> tuple[int, int]:
    """(bytes, lines) of events.jsonl after a default run of `seconds`."""
    run = tmp / "log"
    command = [str(BIN / "charlm"), "train", "--corpus", str(CORPUS), "--lowercase", "--plain"]
    subprocess.run([*command, "--time-budget", str(seconds), "--run-dir", str(run)], capture_output=True, check=True)
    text = (run / "events.jsonl").read_bytes()
    return len(text), text.count(b"\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--viewers", type=int, nargs="*", default=[0, 1, 2])
    parser.add_argument("--presses", type=int, default=40)
    parser.add_argument("--warm-up", type=float, default=30.0, help="seconds of an uncounted first run (0: none)")
    parser.add_argument("--log-seconds", type=float, default=0.0, help="also the log size of a default run")
    parser.add_argument(
        "--priority",
        choices=("idle", "nice", "none"),
        default="idle",
        help="how the viewers lower themselves (CHARLM_VIEWER_PRIORITY; idle is charlm-tui's default)",
    )
    parser.add_argument(
        "--interleave",
        type=float,
        default=0.0,
        metavar="SEGMENT",
        help="instead of whole runs: one run, the viewers stopped and continued every SEGMENT seconds (--rounds "
        "cycles)",
    )
    parser.add_argument(
        "--placebo",
        type=float,
        default=0.0,
        metavar="SHARE",
        help="with --interleave: also segments in which two idle-class processes burn SHARE of a core each (0.033: "
        "what a viewer used) and no viewer watches",
    )
    parser.add_argument(
        "--pool",
        nargs="?",
        const="0",
        metavar="SINCE",
        help="measure nothing: pool the per-cycle ratios of every --interleave sitting recorded in --out (from "
        "SINCE on, 'YYYY-MM-DD HH:MM', if given), with an interval over the cycles and one over sittings then cycles",
    )
    parser.add_argument(
        "--trainer-cpus",
        metavar="LIST",
        help="with --interleave: the trainer on these CPUs only (e.g. 0, or 0,1), the viewers anywhere: a machine "
        "with cores that training leaves free; with --pool: pool the sittings run so",
    )
    parser.add_argument("--out", type=Path, default=HERE / "results" / "viewers.txt")
    args = parser.parse_args()
    if args.pool:
        return pool(args.out, args.pool, args.trainer_cpus)
    trainer_cpus = {int(c) for c in args.trainer_cpus.split(",")} if args.trainer_cpus else None
    os.environ["CHARLM_VIEWER_PRIORITY"] = args.priority  # the viewers inherit it
    if not CORPUS.is_file():
        print(f"corpus {CORPUS} not found; skipping", file=sys.stderr)
        return 0
    lines = [f"# {time.strftime('%Y-%m-%d %H:%M')}  {versions_line()}", f"# command: {' '.join(sys.argv)}"]

    def say(text: str) -> None:
        print(text, flush=True)
        lines.append(text)

    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        if args.warm_up:
            # The first run in a fresh sitting trains slower (seen twice: 32,000 and 37,000 chars/s against 46,000
            # after); one unattended run first, not counted.
            train_with_viewers(args.warm_up, 0, tmp)
        rates: dict[int, list[float]] = {n: [] for n in args.viewers}
        if args.interleave:
            rates, cpu = interleaved(args.rounds, args.interleave, args.viewers, tmp, args.placebo, trainer_cpus)
            for arm, values in rates.items():
                say(f"{label(arm)}, by cycle: {', '.join(f'{v:,.0f}' for v in values)} chars/s")
            for arm, shares in cpu.items():
                if shares:
                    say(
                        f"{label(arm)}: each used a median {statistics.median(shares):.1%} of a core, "
                        f"max {max(shares):.1%} ({len(shares)} process-segments)"
                    )
        for round_ in range(0 if args.interleave else args.rounds):
            order = args.viewers if round_ % 2 == 0 else list(reversed(args.viewers))
            for viewers in order:
                rate, size = train_with_viewers(args.seconds, viewers, tmp)
                rates[viewers].append(rate)
                say(f"round {round_ + 1}, {viewers} viewer(s): {rate:,.0f} chars/s, events.jsonl {size:,} bytes")
        alone = rates.get(0)
        for arm, values in rates.items():
            share = ""
            if alone and arm:
                # Each round against its own unattended run (the machine's speed drifts between rounds).
                ratios = sorted(v / a for v, a in zip(values, alone))
                share = f"; per round {', '.join(f'{r:.1%}' for r in ratios)} of unattended, {summary(ratios)}"
            say(f"{label(arm)}: median {statistics.median(values):,.0f} chars/s{share}")
        ages, gaps = weights_freshness(args.seconds, tmp)
        if ages:
            say(
                f"weights: age when taken median {statistics.median(ages):.2f} s, max {max(ages):.2f} s; "
                f"between the weights taken median {statistics.median(gaps):.2f} s, max {max(gaps):.2f} s "
                f"({len(ages)} taken)"
            )
        if args.presses:
            latencies = sorted(key_latency(args.presses, tmp))
            p95 = latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))]
            say(f"viewer key to screen: median {statistics.median(latencies) * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms")
        if args.log_seconds:
            size, count = default_log_size(args.log_seconds, tmp)
            say(f"events.jsonl after a default {args.log_seconds:g}-s run: {size:,} bytes, {count:,} lines")
    with open(args.out, "a") as handle:
        handle.write("\n".join(lines) + "\n\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
