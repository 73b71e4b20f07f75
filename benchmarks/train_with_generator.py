"""Training throughput with a generator thread streaming at full speed beside it.

The default model trains on the nietzsche text in alternating phases, alone
and with a generator thread producing four streams as fast as it can from
the weight snapshots the trainer publishes (so drift in a shared machine
hits both sides alike). Throughput is scored characters per second of
training.

    python benchmarks/train_with_generator.py [--phase-seconds 30] [--rounds 3]

Results are appended to benchmarks/results/train_with_generator.txt.
Target: training keeps at least 90% of its throughput alone.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from versions import append_results, versions_line  # noqa: E402

CORPUS = HERE.parent.parent / "shared" / "corpora" / "nietzsche.txt"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--phase-seconds", type=float, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-nice", action="store_true", help="do not lower the generator thread's priority")
    parser.add_argument(
        "--plain-thread",
        action="store_true",
        help="a plain generator thread: no make_room_for_training() (for comparison)",
    )
    parser.add_argument(
        "--yield-seconds",
        type=float,
        default=0.0,
        help="sleep this long after each step (releases the interpreter lock)",
    )
    parser.add_argument(
        "--idle", action="store_true", help="the generator thread at idle priority (SCHED_IDLE) instead of niced"
    )
    parser.add_argument("--switch-interval", type=float, help="override sys.setswitchinterval (seconds)")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "train_with_generator.txt")
    args = parser.parse_args()
    if not CORPUS.is_file():
        print(f"{CORPUS} not found; skipping", file=sys.stderr)
        return 0
    from tui_charlm.core.config import make_config
    from tui_charlm.core.events import BatchFinished
    from tui_charlm.core.generation import Generator, WeightBox, make_room_for_training
    from tui_charlm.core.sampling import RECIPE_TEMPERATURES, SamplingSettings
    from tui_charlm.core.session import new_training

    tmp = tempfile.TemporaryDirectory()
    config = make_config(corpus=str(CORPUS), lowercase=True, epochs=100_000, checkpoint_every=0)
    trainer = new_training(config, run_dir=Path(tmp.name) / "run", log=lambda _: None)
    box = WeightBox()
    generating = threading.Event()
    finished = threading.Event()
    generated = [0]

    def generate() -> None:
        if args.plain_thread:
            pass
        elif args.no_nice:
            sys.setswitchinterval(args.switch_interval or sys.getswitchinterval())
        else:
            make_room_for_training()
            if args.idle:  # idle priority on top (a scheduling policy: the thread's nice value no longer counts)
                os.sched_setscheduler(threading.get_native_id(), os.SCHED_IDLE, os.sched_param(0))
            if args.switch_interval:
                sys.setswitchinterval(args.switch_interval)
        while box.latest() is None:
            time.sleep(0.01)
        generator = Generator(
            box.latest(),
            trainer.run.vocab,
            [SamplingSettings(t) for t in RECIPE_TEMPERATURES],
            seed_text="the philosopher ",
            rng_seed=0,
        )
        while not finished.is_set():
            if not generating.is_set():
                generating.wait(0.05)
                continue
            generator.set_weights(box.latest())
            generator.step()
            generated[0] += 4
            if args.yield_seconds:
                time.sleep(args.yield_seconds)  # hand the interpreter lock over between chars

    # Phases: alone, with generator, alone, with generator, ... ; the first
    # seconds (graph tracing) are discarded.
    schedule = [("warm-up", False)] + [
        (kind, kind == "with generator") for _ in range(args.rounds) for kind in ("alone", "with generator")
    ]
    phase = {"index": 0, "start": None, "chars": 0, "step0": 0}
    totals: dict[str, list[float]] = {"alone": [0.0, 0.0], "with generator": [0.0, 0.0]}
    gen_counts = [0, 0.0]
    stop = threading.Event()

    def report(event) -> None:
        if not isinstance(event, BatchFinished):
            return
        now = time.perf_counter()
        name, _ = schedule[phase["index"]]
        if phase["start"] is None:
            phase["start"], phase["step0"], phase["gen0"] = now, event.step, generated[0]
            return
        # Steps, not reports: a report covers config.steps_per_execution batches.
        phase["chars"] = (event.step - phase["step0"]) * trainer.train_windows.targets_per_batch()
        length = args.phase_seconds if name != "warm-up" else 10
        if now - phase["start"] >= length:
            if name != "warm-up":
                totals[name][0] += phase["chars"]
                totals[name][1] += now - phase["start"]
                if name == "with generator":
                    gen_counts[0] += generated[0] - phase["gen0"]
                    gen_counts[1] += now - phase["start"]
            phase["index"] += 1
            if phase["index"] == len(schedule):
                stop.set()
                return
            if schedule[phase["index"]][1]:
                generating.set()
            else:
                generating.clear()
            phase["start"] = None

    thread = threading.Thread(target=generate, daemon=True)
    thread.start()
    trainer.fit(report, stop_event=stop, weight_box=box, snapshot_every=20)
    finished.set()
    thread.join(timeout=10)
    tmp.cleanup()
    alone = totals["alone"][0] / totals["alone"][1]
    beside = totals["with generator"][0] / totals["with generator"][1]
    ratio = beside / alone
    thread_kind = (
        "plain"
        if args.plain_thread
        else "not niced"
        if args.no_nice
        else "make_room_for_training()" + (", SCHED_IDLE" if args.idle else "")
    )
    lines = [
        f"# {time.strftime('%Y-%m-%d %H:%M')}  {versions_line()};  default model ({config.units} units, "
        f"batch {config.batch_size}, {config.steps_per_execution} batches per TensorFlow call), "
        f"{args.rounds} rounds of {args.phase_seconds:.0f}s phases, generator thread: "
        f"{thread_kind}"
        f"{f', switch interval {args.switch_interval}' if args.switch_interval else ''}",
        f"# command: python benchmarks/train_with_generator.py --phase-seconds {args.phase_seconds:g} "
        f"--rounds {args.rounds}"
        + (" --no-nice" if args.no_nice else "")
        + (" --plain-thread" if args.plain_thread else "")
        + (" --idle" if args.idle else "")
        + (f" --switch-interval {args.switch_interval}" if args.switch_interval else ""),
        f"training alone:            {alone:>10,.0f} chars/s",
        f"training beside generator: {beside:>10,.0f} chars/s  ({ratio:.1%} of alone; target >= 90%: "
        f"{'met' if ratio >= 0.9 else 'MISSED'})",
        f"generator meanwhile:       {gen_counts[0] / max(gen_counts[1], 1e-9):>10,.0f} chars/s (4 streams)",
    ]
    append_results(args.out, lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
