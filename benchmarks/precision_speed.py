"""Training speed by compute precision: float32 against mixed_bfloat16 (and optionally mixed_float16).

The default model (at each width asked for) trains on the lower-cased
nietzsche text for a few seconds per trial in this one process; trials
alternate between the precisions round by round, so drift on a shared
machine hits every side alike. Speed is training characters per second,
measured after the first fifth of each trial (graph tracing and warm-up
excluded). Reported per width: the median over rounds of each precision
and the ratio to float32.

    python benchmarks/precision_speed.py [--units 256,384,512] [--seconds 20] [--rounds 3]

Results are appended to benchmarks/results/precision_speed.txt. What it
shows depends on the CPU: with AVX512-BF16 or AMX, oneDNN runs the LSTM's
matrix products in bfloat16; without, bfloat16 is emulated and slower.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from versions import versions_line  # noqa: E402

CORPUS = HERE.parent.parent / "shared" / "corpora" / "nietzsche.txt"


def trial(units: int, precision: str, seconds: float, tmp: Path, index: int) -> float:
    """Train for `seconds`; chars/s over all but the first fifth of the time."""
    from tui_charlm.core.config import make_config
    from tui_charlm.core.events import BatchFinished
    from tui_charlm.core.session import new_training

    config = make_config(
        corpus=str(CORPUS),
        lowercase=True,
        units=units,
        precision=precision,
        epochs=100_000,
        time_budget=seconds,
        checkpoint_every=0,
    )
    trainer = new_training(config, run_dir=tmp / f"run{index}", log=lambda _: None)
    marks: list[tuple[float, int]] = []

    def report(event) -> None:
        if isinstance(event, BatchFinished):
            marks.append((time.perf_counter(), event.step))

    trainer.fit(report)
    start = marks[0][0] + (marks[-1][0] - marks[0][0]) / 5
    first = next(mark for mark in marks if mark[0] >= start)
    steps = marks[-1][1] - first[1]
    return steps * trainer.train_windows.targets_per_batch() / (marks[-1][0] - first[0])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--units", default="256,384,512")
    parser.add_argument("--precisions", default="float32,mixed_bfloat16")
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "precision_speed.txt")
    args = parser.parse_args()
    if not CORPUS.is_file():
        print(f"{CORPUS} not found; skipping", file=sys.stderr)
        return 0
    from tui_charlm.core.devices import cpu_has_bfloat16

    precisions = args.precisions.split(",")
    widths = [int(units) for units in args.units.split(",")]
    lines = [
        f"# {time.strftime('%Y-%m-%d %H:%M')}  {versions_line()};  {args.seconds:g}s per trial, {args.rounds} rounds; "
        f"CPU bfloat16 hardware: {'yes' if cpu_has_bfloat16() else 'no'}",
        f"# command: python benchmarks/precision_speed.py --units {args.units} --precisions {args.precisions} "
        f"--seconds {args.seconds:g} --rounds {args.rounds}",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        index = 0
        for units in widths:
            rates: dict[str, list[float]] = {precision: [] for precision in precisions}
            for round_ in range(args.rounds):
                order = precisions if round_ % 2 == 0 else precisions[::-1]
                for precision in order:
                    rate = trial(units, precision, args.seconds, Path(tmp), index)
                    index += 1
                    rates[precision].append(rate)
                    print(f"LSTM({units}) {precision:<15} round {round_ + 1}: {rate:,.0f} chars/s", flush=True)
            base = statistics.median(rates[precisions[0]])
            for precision in precisions:
                median = statistics.median(rates[precision])
                each = ", ".join(f"{rate:,.0f}" for rate in rates[precision])
                lines.append(
                    f"LSTM({units}) {precision:<15} median {median:>8,.0f} chars/s  "
                    f"x{median / base:.2f} of {precisions[0]}  (rounds: {each})"
                )
    text = "\n".join(lines) + "\n\n"
    print(text, end="")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("a", encoding="utf-8") as file:
        file.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
