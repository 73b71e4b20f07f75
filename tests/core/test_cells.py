"""The cell recorder reproduces Keras's LSTM; the finder finds a cell built to track quotes; features are right."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from tests.conftest import make_text, tiny_config
from tui_charlm.core.cells import (
    FEATURES,
    after_newline,
    bracket_depth,
    correlations,
    inside_quotes,
    position_in_line,
    rank_cells,
    record_states,
    word_start,
)
from tui_charlm.core.cells_page import Section, cells_page
from tui_charlm.core.dataset import Windows
from tui_charlm.core.inference import LSTMWeights, NetworkWeights, weights_from_model
from tui_charlm.core.model import build_model
from tui_charlm.core.vocab import Vocabulary

QUOTE_VOCAB = Vocabulary.from_text('ab "')


def quote_tracker() -> NetworkWeights:
    """Hand-set weights: cell 0 flips between +1 and -1 at each double quote and holds otherwise; cell 1 follows a/b.

    Gates are Keras's order (input, forget, cell, output), each `units` wide.
    On `"` the input gate opens and the forget gate shuts, and the new cell
    value is tanh(-20 h + 2): minus the sign of what the cell held, or +0.96
    from zero. On any other char the cell keeps its value.
    """
    units, vocab = 2, len(QUOTE_VOCAB)
    quote, a, b = (QUOTE_VOCAB.char_to_id[c] for c in '"ab')
    kernel = np.zeros((vocab, 4 * units), np.float32)
    recurrent = np.zeros((units, 4 * units), np.float32)
    bias = np.zeros(4 * units, np.float32)
    input_gate, forget_gate, cell_gate, output_gate = (g * units for g in range(4))
    kernel[quote, input_gate] = 40.0
    bias[input_gate] = -20.0
    kernel[quote, forget_gate] = -40.0
    bias[forget_gate] = 20.0
    recurrent[0, cell_gate] = -20.0
    bias[cell_gate] = 2.0
    bias[output_gate] = 20.0
    # Cell 1: half open gates, pushed up by 'a' and down by 'b': it follows the letters, not the quotes.
    kernel[a, cell_gate + 1], kernel[b, cell_gate + 1] = 3.0, -3.0
    return NetworkWeights(
        embedding=np.eye(vocab, dtype=np.float32),
        lstm=(LSTMWeights(kernel, recurrent, bias),),
        dense_kernel=np.zeros((units, vocab), np.float32),
        dense_bias=np.zeros(vocab, np.float32),
        every_position=True,
        seq_len=10,
    )


def quoted_text(chars: int, seed: int = 0) -> str:
    rng = np.random.default_rng(seed)
    words = ["".join(rng.choice(list("ab"), size=int(rng.integers(1, 6)))) for _ in range(chars)]
    out, inside = [], False
    for word in words:
        if rng.random() < 0.2:
            word = ('"' + word) if not inside else (word + '"')
            inside = not inside
        out.append(word)
    return " ".join(out)[:chars]


def test_the_finder_ranks_the_quote_cell_first_for_inside_quotes():
    text = quoted_text(3000)
    states = record_states(quote_tracker(), QUOTE_VOCAB.encode(text))
    ranked = rank_cells(states.activations, text, top=2)
    best = ranked["inside quotes"][0]
    assert best.cell.index == 0
    assert best.correlation >= 0.9
    # The other cell follows the letters, not the quotes.
    assert abs(ranked["inside quotes"][1].correlation) < 0.5
    # And the quote cell really is +1 inside and -1 outside once the first quote has been read.
    inside = inside_quotes(text).astype(bool)
    after_first = np.arange(len(text)) > text.index('"')
    values = states.activations[0][:, 0]
    assert values[inside & after_first].min() > 0.6
    assert values[~inside & after_first].max() < -0.6


def test_long_texts_read_in_pieces_agree_with_one_stream_where_the_model_forgets():
    text = quoted_text(5000, seed=3)
    ids = QUOTE_VOCAB.encode(text)
    whole = record_states(quote_tracker(), ids, piece_chars=len(ids))
    pieces = record_states(quote_tracker(), ids, piece_chars=1000)
    # The letter cell forgets within a few chars, so a piece warmed on 256 chars before it reads as one stream.
    assert np.abs(whole.cells[0][:, 1] - pieces.cells[0][:, 1]).max() < 1e-5
    # The first piece starts where the text starts: exact for every cell.
    assert np.array_equal(whole.cells[0][:1000], pieces.cells[0][:1000])
    # (The quote cell counts quotes from its zero state, so a piece's cell can start on the wrong parity:
    # the documented limit of reading in pieces.)


def trained_tiny_model(layers: int):
    config = tiny_config(layers=layers, units=6)
    vocab = Vocabulary.from_text(make_text(2000))
    model = build_model(config, len(vocab))
    ids = vocab.encode(make_text(2000))
    model.fit(Windows(ids, config, shuffle=True).tf_dataset(0), epochs=1, verbose=0)
    return config, vocab, model


@pytest.mark.parametrize("layers", [1, 2])
def test_recorded_states_equal_keras_lstm_per_step(layers):
    config, vocab, model = trained_tiny_model(layers)
    text = make_text(300, seed=5)
    ids = vocab.encode(text)
    states = record_states(weights_from_model(model, seq_len=config.seq_len), ids)
    # Keras's own LSTM cells, stepped char by char on the model's embedding: (h, c) after each char.
    lstm_layers = [layer for layer in model.layers if isinstance(layer, keras.layers.LSTM)]
    embedding = next(layer for layer in model.layers if isinstance(layer, keras.layers.Embedding))
    inputs = keras.ops.convert_to_numpy(embedding(ids[None, :].astype("int32")))[0]
    for number, layer in enumerate(lstm_layers):
        h = np.zeros((1, layer.units), np.float32)
        c = np.zeros((1, layer.units), np.float32)
        outputs = []
        for t in range(len(ids)):
            _, (h, c) = layer.cell(inputs[t : t + 1], [h, c])
            h, c = keras.ops.convert_to_numpy(h), keras.ops.convert_to_numpy(c)
            assert np.abs(states.cells[number][t] - c[0]).max() < 1e-5, (number, t)
            assert np.abs(states.hidden[number][t] - h[0]).max() < 1e-5, (number, t)
            outputs.append(h[0])
        inputs = np.array(outputs)
    # And the last layer's h is the layer's own output over the whole sequence (return_sequences).
    sequence = keras.ops.convert_to_numpy(lstm_layers[0](embedding(ids[None, :].astype("int32"))))
    assert np.abs(sequence[0] - states.hidden[0]).max() < 1e-5


def test_features_of_a_small_text():
    text = 'a "b (c)\n"d'
    assert inside_quotes(text).tolist() == [0, 0, 1, 1, 1, 1, 1, 1, 1, 0, 0]
    assert bracket_depth(text).tolist() == [0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0]
    assert position_in_line(text).tolist() == [1, 2, 3, 4, 5, 6, 7, 8, 0, 1, 2]
    assert word_start(text).tolist() == [1, 0, 0, 1, 0, 0, 1, 0, 0, 0, 1]
    assert after_newline(text).tolist() == [0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0]
    assert set(FEATURES) == {"inside quotes", "bracket depth", "position in line", "start of a word", "after a newline"}


def test_correlations_match_numpy_and_are_zero_for_constant_cells():
    rng = np.random.default_rng(0)
    values = rng.normal(size=(200, 3))
    values[:, 2] = 0.5  # a cell that never moves
    feature = values[:, 0] * 2 + rng.normal(size=200)
    r = correlations(values, feature)
    assert r[0] == pytest.approx(np.corrcoef(values[:, 0], feature)[0, 1])
    assert r[1] == pytest.approx(np.corrcoef(values[:, 1], feature)[0, 1])
    assert r[2] == 0.0


def test_a_feature_absent_from_the_text_has_no_cells():
    text = "ab ab ab"
    states = record_states(quote_tracker(), QUOTE_VOCAB.encode(text))
    assert rank_cells(states.activations, text)["inside quotes"] == []


def test_the_page_is_self_contained_and_escapes_the_text():
    text = 'x <b>&"\n'
    values = np.linspace(-1, 1, len(text))
    page = cells_page("cells <of> run", text, [Section("cell #3: inside quotes", values)])
    assert page.startswith("<!DOCTYPE html>")
    assert "<script" not in page and "http" not in page and "src=" not in page
    assert "<b>" not in page and all(escaped in page for escaped in ("&lt;", "&gt;", "&amp;", "&quot;"))
    assert "cells &lt;of&gt; run" in page
    assert "<h2>cell #3: inside quotes</h2>" in page
    assert 'class="v0"' in page and 'class="v20"' in page  # -1 and +1 take the two ends of the scale
