"""weights.npz: the newest weights of a training run, for viewers in other processes."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import make_text, tiny_config
from tui_charlm.core.errors import CharlmError
from tui_charlm.core.inference import Network, weights_from_model
from tui_charlm.core.live_weights import WEIGHTS_FILE, publish_weights, read_weights
from tui_charlm.core.session import new_training


def test_a_run_leaves_its_final_weights_for_viewers_and_they_predict_as_the_model(tmp_path):
    corpus = tmp_path / "text.txt"
    corpus.write_text(make_text(3000))
    trainer = new_training(tiny_config(corpus=str(corpus), epochs=1), run_dir=tmp_path / "run", log=lambda _: None)
    trainer.fit()
    published = read_weights(tmp_path / "run")
    expected = weights_from_model(trainer.model, seq_len=trainer.config.seq_len, version=trainer.state.step)
    assert published.version == trainer.state.step > 0
    for a, b in zip(
        [published.embedding, published.dense_kernel, *(w for layer in published.lstm for w in vars(layer).values())],
        [expected.embedding, expected.dense_kernel, *(w for layer in expected.lstm for w in vars(layer).values())],
    ):
        assert np.array_equal(a, b)
    ids = np.array([1, 2], np.int32)
    a, b = Network(published), Network(expected)
    assert np.allclose(a.step(ids, a.zero_state(2))[0], b.step(ids, b.zero_state(2))[0])


def test_no_file_is_none_and_a_damaged_one_says_so(tmp_path):
    assert read_weights(tmp_path) is None
    (tmp_path / WEIGHTS_FILE).write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(CharlmError, match="is damaged"):
        read_weights(tmp_path)
    np.savez(tmp_path / WEIGHTS_FILE, meta=np.array([1, 1, 16, 0]), embedding=np.zeros((3, 2)))
    with pytest.raises(CharlmError, match="is damaged"):
        read_weights(tmp_path)


def test_publishing_replaces_the_file_whole(tmp_path):
    from tests.tui.fakes import random_weights

    run = tmp_path / "run"
    run.mkdir()
    publish_weights(run, random_weights(version=1))
    publish_weights(run, random_weights(version=2, seed=5))
    assert read_weights(run).version == 2
    assert [p.name for p in run.iterdir()] == [WEIGHTS_FILE]  # no temporary file left behind
