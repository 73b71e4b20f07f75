"""Recording every LSTM cell over the nietzsche held-out text: the time `charlm cells` and the cell view spend.

Trains the default model (LSTM(448)) for --train-seconds on the lower-cased
nietzsche text (first 90% train), then records the cell and hidden state of
every cell after each char of the held-out text (about 60,000 chars), with
the NumPy engine as core/cells.py does it: pieces of PIECE_CHARS read side by
side. Beside it, in the same run, the same text read as one stream (exact,
one vector product per char), and the ranking of cells against the features.

    python benchmarks/cell_recording.py [--train-seconds 60]

Results are appended to benchmarks/results/cell_recording.txt.
Target: recording at most 3 s on this 2-core machine.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from versions import append_results, versions_line  # noqa: E402

CORPUS = HERE.parent.parent / "shared" / "corpora" / "nietzsche.txt"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train-seconds", type=float, default=60)
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "cell_recording.txt")
    args = parser.parse_args()
    if not args.corpus.is_file():
        print(f"{args.corpus} not found; skipping", file=sys.stderr)
        return 0
    from tui_charlm.core.cells import PIECE_CHARS, best_cells, rank_cells, record_states
    from tui_charlm.core.config import make_config
    from tui_charlm.core.session import new_training

    with tempfile.TemporaryDirectory() as tmp:
        config = make_config(
            "default",
            corpus=str(args.corpus),
            lowercase=True,
            time_budget=args.train_seconds,
            epochs=1000,
            checkpoint_every=0,
        )
        trainer = new_training(config, run_dir=Path(tmp) / "run", log=lambda _: None)
        trainer.fit()
        weights, heldout, vocab = trainer.snapshot(), trainer.split.heldout, trainer.run.vocab
    text = vocab.decode(heldout)
    start = time.perf_counter()
    states = record_states(weights, heldout)
    pieces = time.perf_counter() - start
    start = time.perf_counter()
    record_states(weights, heldout, piece_chars=len(heldout))
    one_stream = time.perf_counter() - start
    start = time.perf_counter()
    ranked = rank_cells(states.activations, text, top=3)
    ranking = time.perf_counter() - start
    units = weights.lstm[0].units
    lines = [
        f"# {time.strftime('%Y-%m-%d %H:%M')}  {versions_line()};  default model LSTM({units}), "
        f"trained {args.train_seconds:.0f}s; held-out text {len(heldout):,} chars",
        f"# command: python benchmarks/cell_recording.py --train-seconds {args.train_seconds:g}",
        f"recording, {PIECE_CHARS:,}-char pieces side by side   {pieces:6.2f} s",
        f"recording, one stream (exact)              {one_stream:6.2f} s  ({one_stream / pieces:.1f}x the pieces)",
        f"ranking {units} cells against 5 features      {ranking:6.2f} s",
        *(
            f"best for {name:<18} #{match.cell.index:<4} r = {match.correlation:+.2f}"
            for name, match in best_cells(ranked)
        ),
        f"target: recording at most 3 s ({'met' if pieces <= 3 else 'MISSED'}: {pieces:.2f} s)",
    ]
    append_results(args.out, lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
