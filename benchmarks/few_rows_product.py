"""The generation thread's matrix products: a few rows (the streams) times an LSTM's matrix, three ways side by side.

For each shape (rows x inputs times inputs x 4*inputs, float32, BLAS kept
to one thread as generation keeps it), in one process, one after another:

* one product (`np.matmul`), as NumPy does it;
* row by row (one vector product per stream: the engine's way before);
* in column blocks (`FewRowsProduct`, core/inference.py: the engine's way now).

Then a generator step of 4 streams (temperatures 0.2, 0.5, 1.0, 1.2) of
LSTM(256) and LSTM(512) with random weights, with the blocks and with them
turned off (BLOCK_MULTIPLY_ADDS raised out of reach, so one product).

    python benchmarks/few_rows_product.py [--repeats 2000]

Results are appended to benchmarks/results/few_rows_product.txt. Target
(issue 26): a generator step of the app's default 4 streams takes at most
0.75x as long with the blocks as with one product, for LSTM(256) and
LSTM(512) (a ratio in one run); the table shows the other shapes.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
from versions import append_results, versions_line  # noqa: E402

from tui_charlm.core import inference  # noqa: E402
from tui_charlm.core.generation import Generator  # noqa: E402
from tui_charlm.core.inference import FewRowsProduct, LSTMWeights, NetworkWeights  # noqa: E402
from tui_charlm.core.sampling import SamplingSettings  # noqa: E402
from tui_charlm.core.vocab import Vocabulary  # noqa: E402

SHAPES = [(rows, units) for units in (128, 256, 512) for rows in (2, 3, 4, 8)]


def per_call(function, repeats: int) -> float:
    """Microseconds per call, the best of three timings of `repeats` calls (after a warm-up)."""
    for _ in range(repeats // 10):
        function()
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        for _ in range(repeats):
            function()
        best = min(best, (time.perf_counter() - started) / repeats * 1e6)
    return best


def products(rows: int, units: int, repeats: int) -> tuple[int, float, float, float]:
    """(FewRowsProduct's block width, and microseconds for one product, row by row, and FewRowsProduct)."""
    rng = np.random.default_rng(0)
    matrix = rng.standard_normal((units, 4 * units)).astype(np.float32)
    x = rng.standard_normal((rows, units)).astype(np.float32)
    out = np.empty((rows, 4 * units), np.float32)
    blocked = FewRowsProduct(matrix)

    def row_by_row():
        for row, result in zip(x, out):
            np.matmul(row, matrix, out=result)

    return (
        blocked.width(rows),
        per_call(lambda: np.matmul(x, matrix, out=out), repeats),
        per_call(row_by_row, repeats),
        per_call(lambda: blocked(x, out=out), repeats),
    )


def generator_step(units: int, repeats: int) -> float:
    vocab = Vocabulary.from_text("abcdefghijklmnopqrstuvwxyz .,;:!?'\"-\n0123456789()ABCDEFGHIJKLMN")
    size = len(vocab)
    rng = np.random.default_rng(0)
    weights = NetworkWeights(
        np.eye(size, dtype=np.float32),
        (
            LSTMWeights(
                rng.normal(0, 0.1, (size, 4 * units)).astype(np.float32),
                rng.normal(0, 0.1, (units, 4 * units)).astype(np.float32),
                np.zeros(4 * units, np.float32),
            ),
        ),
        rng.normal(0, 0.1, (units, size)).astype(np.float32),
        np.zeros(size, np.float32),
        True,
        100,
    )
    settings = [SamplingSettings(temperature=t) for t in (0.2, 0.5, 1.0, 1.2)]
    generator = Generator(weights, vocab, settings, seed_text="the meaning of ", mode="stateful")
    return per_call(generator.step, repeats)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2000)
    args = parser.parse_args()
    threadpool_limits(limits=1, user_api="blas")
    lines = [
        f"# {time.strftime('%Y-%m-%d %H:%M')}  {versions_line()}",
        f"# command: python benchmarks/few_rows_product.py --repeats {args.repeats}",
        f"{'rows x units':<14}{'blocks':>8}{'one product':>13}{'row by row':>12}{'FewRowsProduct':>16}{'/ best':>8}",
    ]
    for rows, units in SHAPES:
        width, one, by_row, blocks = products(rows, units, args.repeats)
        split = f"{-(-4 * units // width)} x {width}" if width < 4 * units else "none"
        ratio = blocks / min(one, by_row)
        lines.append(f"{rows} x {units:<10}{split:>8}{one:>13.1f}{by_row:>12.1f}{blocks:>16.1f}{ratio:>8.2f}")
    lines.append("(microseconds a product, the best of three timings; blocks: how many, of how many columns)")
    limit = inference.BLOCK_MULTIPLY_ADDS
    worst = 0.0
    for units in (256, 512):
        steps = []
        for _ in range(2):  # alternating, twice
            inference.BLOCK_MULTIPLY_ADDS = 1 << 62
            steps.append(("one product", generator_step(units, args.repeats // 4)))
            inference.BLOCK_MULTIPLY_ADDS = limit
            steps.append(("blocks", generator_step(units, args.repeats // 4)))
        one = min(t for name, t in steps if name == "one product")
        blocks = min(t for name, t in steps if name == "blocks")
        worst = max(worst, blocks / one)
        lines.append(
            f"generator step, 4 streams, LSTM({units}): {one:.0f} us with one product, {blocks:.0f} us in blocks "
            f"({blocks / one:.2f}x)"
        )
    verdict = "met" if worst <= 0.75 else "missed"
    lines.append(f"target: a step of 4 streams at most 0.75x as long in blocks ({verdict}: at most {worst:.2f}x)")
    append_results(HERE / "results" / "few_rows_product.txt", lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
