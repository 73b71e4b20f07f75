"""Generation speed: the recipe's predict loop against the NumPy engine, side by side in one run.

One LSTM(128) `--recipe seed` model is trained briefly on the lower-cased
nietzsche text, then the same weights generate with:

* the recipe's loop: one-hot encode the last 60 chars, `model.predict`,
  reweight by temperature, sample; once per char (the book runs its four
  temperatures one after another, so four streams cost four times one);
* the NumPy engine in `window` mode (same semantics: re-read the last 60
  chars from a zero state) and `stateful` mode (one LSTM step per char),
  each with one stream and with four streams advancing as one batch.

    python benchmarks/generation_speed.py [--train-seconds 60] [--seconds 5]

Results are appended to benchmarks/results/generation_speed.txt.
Targets: stateful, one stream, >= 2000x the recipe loop and >= 2x the
engine's earlier allocating step (measured in the same run); window >= 30x.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from versions import append_results, versions_line  # noqa: E402

CORPUS = HERE.parent.parent / "shared" / "corpora" / "nietzsche.txt"


def recipe_sample(preds: np.ndarray, temperature: float, rng) -> int:
    """The book's sample(): reweight by temperature and draw."""
    preds = np.asarray(preds).astype("float64")
    preds = np.log(preds) / temperature
    exp_preds = np.exp(preds)
    preds = exp_preds / np.sum(exp_preds)
    return int(np.argmax(rng.multinomial(1, preds, 1)))


def book_model(weights, vocab_size: int):
    """The book's exact Keras model (LSTM(128) on one-hot input, Dense softmax) holding our trained weights."""
    import keras

    model = keras.Sequential(
        [
            keras.Input(shape=(60, vocab_size)),
            keras.layers.LSTM(128),
            keras.layers.Dense(vocab_size, activation="softmax"),
        ]
    )
    layer = weights.lstm[0]
    # One-hot input times the kernel is our identity embedding times the kernel.
    model.layers[0].set_weights([weights.embedding @ layer.kernel, layer.recurrent_kernel, layer.bias])
    model.layers[1].set_weights([weights.dense_kernel, weights.dense_bias])
    return model


def check_same_model(model, weights, vocab, seed_text: str) -> None:
    """The book's model and the NumPy engine must give the same next-char probabilities."""
    from tui_charlm.core.inference import Network
    from tui_charlm.core.sampling import log_softmax

    ids = vocab.encode(seed_text).astype(np.int64)
    x = np.zeros((1, 60, len(vocab)), np.float32)
    x[0, np.arange(60), ids] = 1.0
    logits, _ = Network(weights).run(ids[None])
    difference = np.abs(model.predict(x, verbose=0)[0] - np.exp(log_softmax(logits[0].astype(np.float64)))).max()
    assert difference < 1e-5, f"book model and engine disagree by {difference}"


def recipe_loop_rate(model, vocab_size: int, seed_ids: list[int], seconds: float, temperature: float = 0.5) -> float:
    """Chars per second of the recipe's generation loop (predict on a one-hot window per char)."""
    rng = np.random.default_rng(0)
    window = list(seed_ids[-60:])
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds or count < 20:
        x = np.zeros((1, 60, vocab_size), dtype=np.float32)
        for t, char_id in enumerate(window):
            x[0, t, char_id] = 1.0
        preds = model.predict(x, verbose=0)[0]
        window = [*window[1:], recipe_sample(preds, temperature, rng)]
        count += 1
    return count / (time.perf_counter() - start)


def engine_rate(weights, vocab, seed_text: str, mode: str, streams: int, seconds: float) -> float:
    """Chars per second (all streams together) of the NumPy engine."""
    from tui_charlm.core.generation import Generator
    from tui_charlm.core.sampling import RECIPE_TEMPERATURES, SamplingSettings

    generator = Generator(
        weights,
        vocab,
        [SamplingSettings(t) for t in RECIPE_TEMPERATURES[:streams]],
        seed_text=seed_text,
        mode=mode,
        rng_seed=0,
    )
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        generator.step()
        count += 1
    return count * streams / (time.perf_counter() - start)


def allocating_rate(weights, vocab, seed_text: str, seconds: float) -> float:
    """Chars per second of one stateful stream as the engine ran before issue 16, kept here to compare side by side.

    Each char: the batched sampler (sample_distributions, pick_rows) and
    Network.step, which allocates its outputs; the engine now steps in place
    and samples a lone temperature-only stream with a third of the calls.
    """
    from tui_charlm.core.generation import Generator
    from tui_charlm.core.sampling import SamplingSettings, batch_plan, pick_rows, sample_distributions

    settings = [SamplingSettings(0.2)]
    generator = Generator(weights, vocab, settings, seed_text=seed_text, mode="stateful", rng_seed=0)
    network, plan, chars = generator.network, batch_plan(settings), vocab.chars
    state, logits = generator.state, generator.next_logits()
    history: list[int] = []
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        probs, entropies, log_probs = sample_distributions(logits, settings, plan)
        chosen = pick_rows(probs, generator.rng.random(1))
        model_probs = np.exp(log_probs[np.arange(len(chosen)), chosen])
        for char_id, _, _ in zip(chosen.tolist(), model_probs.tolist(), entropies.tolist()):
            history.append(char_id)
            _ = chars[char_id]
        del history[:-60]
        logits, state = network.step(chosen, state)
        count += 1
    return count / (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train-seconds", type=float, default=60)
    parser.add_argument("--seconds", type=float, default=5, help="measuring time per configuration")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "generation_speed.txt")
    args = parser.parse_args()
    if not CORPUS.is_file():
        print(f"{CORPUS} not found; skipping", file=sys.stderr)
        return 0
    from tui_charlm.core.config import make_config
    from tui_charlm.core.session import new_training

    with tempfile.TemporaryDirectory() as tmp:
        config = make_config(
            "seed", corpus=str(CORPUS), time_budget=args.train_seconds, epochs=1000, checkpoint_every=0
        )
        trainer = new_training(config, run_dir=Path(tmp) / "run", log=lambda _: None)
        trainer.fit()
        vocab = trainer.run.vocab
        weights = trainer.snapshot()
        text = CORPUS.read_text(encoding="utf-8").lower()
        seed_text = text[len(text) // 2 : len(text) // 2 + 60]
        seed_ids = list(vocab.encode(seed_text))
        model = book_model(weights, len(vocab))
        check_same_model(model, weights, vocab, seed_text)
        rows = []
        recipe = recipe_loop_rate(model, len(vocab), seed_ids, args.seconds)
        rows.append(("recipe predict loop", 1, recipe))
        rows.append(("recipe predict loop (4 temperatures in turn)", 4, recipe))
        for mode in ("window", "stateful"):
            for streams in (1, 4):
                rows.append(
                    (f"{mode} mode", streams, engine_rate(weights, vocab, seed_text, mode, streams, args.seconds))
                )
        rows.append(
            ("stateful, allocating step (before issue 16)", 1, allocating_rate(weights, vocab, seed_text, args.seconds))
        )
    lines = [
        f"# {time.strftime('%Y-%m-%d %H:%M')}  {versions_line()};  LSTM(128) recipe-seed model, vocab {len(vocab)}, "
        f"trained {args.train_seconds:.0f}s; {args.seconds:.0f}s per row",
        "# command: python benchmarks/generation_speed.py "
        f"--train-seconds {args.train_seconds:g} --seconds {args.seconds:g}",
        f"{'generator':<46} {'streams':>7} {'chars/s':>12} {'x recipe':>10}",
    ]
    for name, streams, rate in rows:
        lines.append(f"{name:<46} {streams:>7} {rate:>12,.0f} {rate / recipe:>10,.0f}")
    one_stream = max(r for n, s, r in rows if n == "stateful mode" and s == 1)
    stateful = one_stream / recipe
    window = max(r for n, s, r in rows if n == "window mode" and s == 1) / recipe
    before = one_stream / max(r for n, s, r in rows if n.startswith("stateful, allocating"))
    lines.append(
        f"targets: stateful one stream >= 2000x the recipe ({'met' if stateful >= 2000 else 'MISSED'}: "
        f"{stateful:,.0f}x) and >= 2x the allocating step ({'met' if before >= 2 else 'MISSED'}: {before:.2f}x); "
        f"window >= 30x ({'met' if window >= 30 else 'MISSED'}: {window:,.0f}x)"
    )
    append_results(args.out, lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
