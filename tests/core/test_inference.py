"""The NumPy forward pass reproduces Keras; generation behaves as documented."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import tiny_config
from tui_charlm.core.errors import CharlmError
from tui_charlm.core.generation import Generator
from tui_charlm.core.inference import (
    BLOCK_MAX_ROWS,
    FewRowsProduct,
    Network,
    OneStream,
    weights_from_model,
)
from tui_charlm.core.model import build_model
from tui_charlm.core.sampling import SamplingSettings, distribution, entropy_bits, log_softmax, pick
from tui_charlm.core.vocab import Vocabulary

VOCAB = Vocabulary.from_text("abcdefghij")


def randomised(model, seed=1):
    """Move weights away from their initial values so every gate matters."""
    rng = np.random.default_rng(seed)
    for variable in model.trainable_variables:
        variable.assign(variable.numpy() + rng.normal(0, 0.3, variable.shape).astype("float32"))
    return model


@pytest.mark.parametrize("recipe, extra", [("default", dict(layers=2, units=6)), ("seed", {})])
def test_numpy_probabilities_match_keras(recipe, extra):
    config = tiny_config(recipe=recipe, **extra)
    model = randomised(build_model(config, len(VOCAB)))
    ids = np.random.default_rng(0).integers(0, len(VOCAB), size=(5, config.seq_len)).astype(np.int32)
    keras_out = model.predict(ids, verbose=0)
    network = Network(weights_from_model(model, seq_len=config.seq_len))
    if recipe == "seed":
        logits, _ = network.run(ids)
        numpy_probs = np.exp(log_softmax(logits.astype(np.float64)))
        assert np.abs(numpy_probs - keras_out).max() < 1e-5
    else:
        logits, _ = network.run_all(ids)
        keras_probs = np.exp(log_softmax(keras_out.astype(np.float64)))
        numpy_probs = np.exp(log_softmax(logits.astype(np.float64)))
        assert np.abs(numpy_probs - keras_probs).max() < 1e-5


def make_generator(settings, mode=None, rng_seed=7, seed_text="abcabc"):
    config = tiny_config(layers=2, units=6)
    weights = weights_from_model(randomised(build_model(config, len(VOCAB))), seq_len=config.seq_len)
    return Generator(weights, VOCAB, settings, seed_text=seed_text, mode=mode, rng_seed=rng_seed)


def test_same_rng_seed_gives_the_same_text():
    settings = [SamplingSettings(1.0)]
    assert make_generator(settings).generate(50) == make_generator(settings).generate(50)
    assert make_generator(settings).generate(50) != make_generator(settings, rng_seed=8).generate(50)


def test_stateful_and_window_modes_agree_within_the_first_window():
    stateful = make_generator([SamplingSettings(0.0)], mode="stateful", seed_text="ab")
    window = make_generator([SamplingSettings(0.0)], mode="window", seed_text="ab")
    # Seed (2) + generated chars stay inside one training window (16): same context, same logits.
    for _ in range(10):
        assert np.allclose(stateful.next_logits(), window.next_logits(), atol=1e-5)
        assert stateful.step()[0].char == window.step()[0].char


def test_batched_streams_equal_streams_run_alone():
    temperatures = [0.2, 0.5, 1.0, 1.2]
    batched = make_generator([SamplingSettings(t) for t in temperatures]).generate(40)
    draws = np.random.default_rng(7).random((40, 4))
    for index, t in enumerate(temperatures):
        alone = make_generator([SamplingSettings(t)])
        alone.rng = _Replay(draws[:, index])
        assert alone.generate(40)[0] == batched[index]


class _Replay:
    """Feeds a stream the uniform draws it would have had inside the batch."""

    def __init__(self, values):
        self.values = list(values)

    def random(self, n=None):
        if n is None:
            return self.values.pop(0)
        out, self.values = self.values[:n], self.values[n:]
        return np.array(out)


def test_greedy_picks_the_most_likely_char_and_reports_probability():
    generator = make_generator([SamplingSettings(0.0)])
    logits = generator.next_logits()[0]
    char = generator.step()[0]
    assert char.char == VOCAB.chars[int(np.argmax(logits))]
    assert char.entropy == 0.0
    assert char.probability == pytest.approx(float(np.exp(log_softmax(logits.astype(np.float64))).max()))


def test_seed_with_unknown_chars_is_cleaned_not_a_crash():
    generator = make_generator([SamplingSettings(1.0)], seed_text="abZZ\u00e9c")
    assert generator.seed_report.text == "abc" and "'Z'" in generator.seed_report.describe()
    assert len(generator.generate(5)[0]) == 5


def test_streams_can_be_added_removed_and_retuned_mid_generation():
    generator = make_generator([SamplingSettings(0.5)])
    generator.generate(5)
    generator.add_stream(SamplingSettings(1.0))
    assert len(generator.generate(5)) == 2
    generator.set_settings(1, SamplingSettings(0.0, top_k=2))
    generator.set_mode("window")
    generator.remove_stream(0)
    assert len(generator.generate(5)) == 1
    with pytest.raises(CharlmError, match="At least one stream"):
        generator.remove_stream(0)


def test_mismatched_vocabulary_is_refused():
    config = tiny_config()
    weights = weights_from_model(build_model(config, 5), seq_len=config.seq_len)
    with pytest.raises(CharlmError, match="vocabulary has 10"):
        Generator(weights, VOCAB, [SamplingSettings(1.0)])


def test_stream_yields_chars_of_every_stream_in_turn_with_probability_and_entropy():
    generator = make_generator([SamplingSettings(0.5), SamplingSettings(1.0)])
    stream = generator.stream()
    chars = [next(stream) for _ in range(6)]
    assert [c.stream for c in chars] == [0, 1, 0, 1, 0, 1]
    assert all(0.0 < c.probability <= 1.0 and c.entropy >= 0.0 and c.char in VOCAB for c in chars)


def test_a_held_stream_waits_while_the_others_go_on():
    generator = make_generator([SamplingSettings(1.0), SamplingSettings(0.5)])
    generator.hold(0)
    before = list(generator.histories[0])
    chars = [c for _ in range(20) for c in generator.step()]
    assert {c.stream for c in chars} == {1} and len(chars) == 20
    assert generator.histories[0] == before
    generator.hold(0, False)
    assert {c.stream for c in generator.step()} == {0, 1}


def test_held_streams_continue_exactly_as_if_never_held():
    # A held stream's state is untouched by the others' steps: greedy text after holding equals greedy text alone.
    alone = make_generator([SamplingSettings(0.0)]).generate(30)[0]
    generator = make_generator([SamplingSettings(0.0), SamplingSettings(1.0)])
    generator.hold(0)
    for _ in range(7):
        generator.step()
    generator.hold(0, False)
    assert generator.generate(30)[0] == alone


def test_writing_a_char_steers_the_stream_like_a_seed():
    generator = make_generator([SamplingSettings(0.0)], seed_text="abc")
    odds = generator.odds(0)
    third = int(odds.order[2])
    written = generator.write(0, third)
    assert written.char == VOCAB.chars[third]
    assert written.probability == pytest.approx(float(odds.model[third]))
    # The state moved on by the written char: the same as a stream seeded with it.
    seeded = make_generator([SamplingSettings(0.0)], seed_text="abc" + VOCAB.chars[third])
    assert np.allclose(generator.next_logits(), seeded.next_logits(), atol=1e-6)
    with pytest.raises(CharlmError):
        generator.write(0, len(VOCAB))


def test_draw_moves_only_the_stream_asked_for():
    generator = make_generator([SamplingSettings(1.0), SamplingSettings(1.0)])
    generator.hold(0)
    generator.hold(1)
    drawn = generator.draw(1)
    assert drawn.stream == 1 and len(generator.histories[1]) == len(generator.histories[0]) + 1


@pytest.mark.parametrize(
    "settings",
    [SamplingSettings(0.7), SamplingSettings(1.0, top_k=3), SamplingSettings(1.3, top_p=0.5), SamplingSettings(0.0)],
)
def test_odds_are_the_distribution_the_stream_samples_from(settings):
    generator = make_generator([settings, SamplingSettings(1.0)])
    odds = generator.odds(0)
    logits = generator.next_logits()[0].astype(np.float64)
    # The sampler's own function, and a direct computation of softmax(logits / T) with the cuts applied.
    assert np.array_equal(odds.probs, distribution(logits, settings))
    assert odds.probs.sum() == pytest.approx(1.0)
    if settings.temperature > 0:
        direct = np.exp(logits / settings.temperature)
        direct /= direct.sum()
        keep = np.argsort(-direct)[: settings.top_k or len(direct)]
        if settings.top_p is not None:
            keep = keep[: int(np.searchsorted(np.cumsum(direct[keep]), settings.top_p)) + 1]
        expected = np.zeros_like(direct)
        expected[keep] = direct[keep] / direct[keep].sum()
        assert np.allclose(odds.probs, expected, atol=1e-12)
    assert odds.entropy == pytest.approx(entropy_bits(odds.probs))
    assert list(odds.probs[odds.order]) == sorted(odds.probs, reverse=True)
    assert [p for _, p in odds.top(3)] == sorted(odds.probs, reverse=True)[:3]
    # draw() picks from exactly these odds: the char the inverse CDF gives for its uniform draw.
    generator.rng = _Replay([0.37])
    assert generator.draw(0).char == VOCAB.chars[pick(odds.probs, 0.37)]


@pytest.mark.parametrize("inputs", [8, 256])
def test_the_product_in_column_blocks_is_the_matrix_product(inputs):
    rng = np.random.default_rng(5)
    matrix = rng.standard_normal((inputs, 4 * inputs)).astype(np.float32)
    product = FewRowsProduct(matrix)
    # For 256 inputs, 3 to BLOCK_MAX_ROWS rows go in blocks (of 64 columns or more, the last one narrower for 3
    # rows), 1, 2 and more rows in one product; for 8 inputs, every count in one product.
    blocked = [rows for rows in range(1, BLOCK_MAX_ROWS + 3) if product.width(rows) < matrix.shape[1]]
    assert blocked == (list(range(3, BLOCK_MAX_ROWS + 1)) if inputs == 256 else [])
    for rows in range(1, BLOCK_MAX_ROWS + 3):
        x = rng.standard_normal((rows, inputs)).astype(np.float32)
        expected = x.astype(np.float64) @ matrix.astype(np.float64)
        out = np.full((rows, 4 * inputs), np.nan, np.float32)
        assert product(x, out=out) is out
        np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)
        np.testing.assert_array_equal(product(x), out)


# units=256: the recurrent products of 3 streams go in column blocks (FewRowsProduct), in step() as in advance().
@pytest.mark.parametrize("layers, units", [(1, 6), (2, 6), (2, 256)])
def test_in_place_steps_equal_the_allocating_step(layers, units):
    config = tiny_config(layers=layers, units=units)
    network = Network(weights_from_model(randomised(build_model(config, len(VOCAB))), seq_len=config.seq_len))
    ids = np.random.default_rng(3).integers(0, len(VOCAB), size=(20, 3))
    state = network.zero_state(3)
    in_place = network.zero_state(3)
    in_place_logits = np.zeros((3, len(VOCAB)), np.float32)
    one_state = network.zero_state(1)
    one_logits = np.zeros((1, len(VOCAB)), np.float32)
    one = OneStream(network, one_state, one_logits)
    for row in ids:
        logits, state = network.step(row, state)
        network.advance(row, in_place, in_place_logits)
        one.step(int(row[0]))
        assert np.array_equal(logits, in_place_logits)
        # One stream's products (of one row) sum in another order than 3 rows' (in blocks): float32 rounding apart.
        assert np.allclose(logits[0], one_logits[0], rtol=1e-4, atol=1e-4)
        for (h, c), (h2, c2), (h1, c1) in zip(state, in_place, one_state):
            assert np.array_equal(h, h2) and np.array_equal(c, c2)
            assert np.allclose(h[0], h1[0], rtol=1e-4, atol=1e-4) and np.allclose(c[0], c1[0], rtol=1e-4, atol=1e-4)
