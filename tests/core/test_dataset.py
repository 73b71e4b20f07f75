"""Windows: targets, memory, deterministic order, coverage, resuming mid-epoch."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import tiny_config
from tui_charlm.core.dataset import Windows, split_ids
from tui_charlm.core.errors import CharlmError


def ids_of(n: int) -> np.ndarray:
    return (np.arange(n) % 50).astype(np.uint8)


def test_split_holds_out_the_end():
    ids = ids_of(1000)
    split = split_ids(ids, tiny_config())
    assert len(split.heldout) == 100 and np.array_equal(split.heldout, ids[900:])
    assert np.shares_memory(split.train, ids)  # views, not copies


def test_too_short_corpus_is_a_clear_error():
    with pytest.raises(CharlmError, match=r"too few for one training window.*--seq-len"):
        split_ids(ids_of(100), tiny_config(seq_len=16))


def test_sequence_targets_are_inputs_shifted_by_one():
    config = tiny_config()
    windows = Windows(ids_of(500), config, shuffle=True)
    x, y = next(windows.iterate(0))
    assert x.shape == (config.batch_size, config.seq_len) and x.dtype == np.int32
    assert np.array_equal(x[:, 1:], y[:, :-1])
    assert np.array_equal((x[:, -1] + 1) % 50, y[:, -1])


def test_recipe_targets_are_the_char_after_the_window():
    config = tiny_config(recipe="seed")
    windows = Windows(ids_of(500), config, shuffle=False)
    starts = windows.starts(0)
    assert np.array_equal(starts[:3], [0, 3, 6])  # every 3 chars, as the recipe
    x, y = next(windows.iterate(0))
    assert x.shape == (config.batch_size, 12) and y.shape == (config.batch_size,)
    assert np.array_equal(y, (x[:, -1] + 1) % 50)


def test_order_depends_only_on_seed_and_epoch():
    config = tiny_config()
    a = Windows(ids_of(2000), config, shuffle=True)
    b = Windows(ids_of(2000), config, shuffle=True)
    assert np.array_equal(a.starts(3), b.starts(3))
    assert not np.array_equal(a.starts(0), a.starts(1))


def test_the_order_is_the_one_earlier_versions_trained_in():
    # Runs saved by earlier versions resume mid-epoch on the batches they would have trained next: the order is
    # still default_rng([seed, epoch]).permutation of the epoch's window starts.
    config = tiny_config(seed=7)
    windows = Windows(ids_of(5000), config, shuffle=True)
    for epoch in range(3):
        rng = np.random.default_rng([7, epoch])
        offset = int(rng.integers(0, config.seq_len))
        assert np.array_equal(
            windows.starts(epoch), rng.permutation(np.arange(offset, 5000 - config.seq_len, config.seq_len))
        )


def test_every_position_is_a_target_once_per_epoch():
    config = tiny_config()
    windows = Windows(ids_of(2001), config, shuffle=True)
    starts = np.sort(windows.starts(0))
    assert np.all(np.diff(starts) == config.seq_len)  # non-overlapping
    assert starts[0] < config.seq_len and starts[-1] + 2 * config.seq_len > 2001 - 1


def test_skip_resumes_mid_epoch_with_the_same_batches():
    config = tiny_config()
    windows = Windows(ids_of(3000), config, shuffle=True)
    full = [x for x, _ in windows.iterate(2)]
    resumed = [x for x, _ in windows.iterate(2, skip=3)]
    assert len(resumed) == len(full) - 3
    assert all(np.array_equal(a, b) for a, b in zip(full[3:], resumed))


@pytest.mark.parametrize("in_graph", [True, False], ids=["tensor", "memory-map"])
@pytest.mark.parametrize("recipe", ["default", "seed"])
def test_tf_dataset_matches_numpy_batches(tmp_path, monkeypatch, in_graph, recipe):
    from tui_charlm.core import dataset

    if not in_graph:  # a corpus this large stays in its memory map, gathered batch by batch
        monkeypatch.setattr(dataset, "IN_GRAPH_CHARS", 100)
    ids = ids_of(1000)
    mapped = np.memmap(tmp_path / "ids", dtype=ids.dtype, mode="w+", shape=ids.shape)
    mapped[:] = ids
    windows = Windows(mapped, tiny_config(recipe=recipe), shuffle=True)
    from_tf = [(x.numpy(), y.numpy()) for x, y in windows.tf_dataset(1, skip=1)]
    assert len(from_tf) == windows.num_batches(1) - 1
    for (x, y), (a, b) in zip(from_tf, windows.iterate(1, skip=1), strict=True):
        assert np.array_equal(x, a) and np.array_equal(y, b) and x.dtype == np.int32
    # One pipeline through several epochs (what training keeps for a whole run): the same batches, epoch after
    # epoch, the first resumed mid-way.
    through = [(x.numpy(), y.numpy()) for x, y in windows.tf_dataset(1, skip=1, until_epoch=4)]
    expected = [*windows.iterate(1, skip=1), *windows.iterate(2), *windows.iterate(3)]
    assert len(through) == len(expected) == sum(windows.num_batches(e) for e in (1, 2, 3)) - 1
    for (x, y), (a, b) in zip(through, expected, strict=True):
        assert np.array_equal(x, a) and np.array_equal(y, b) and x.dtype == np.int32


@pytest.mark.parametrize("shuffle", [True, False])
@pytest.mark.parametrize("length,seq_len,batch", [(1000, 16, 8), (1000, 16, 1000), (97, 10, 3), (5000, 7, 64)])
def test_counted_batches_match_the_built_ones(shuffle, length, seq_len, batch):
    windows = Windows(np.zeros(length, np.uint8), tiny_config(seq_len=seq_len, batch_size=batch), shuffle=shuffle)
    for epoch in range(4):
        assert windows.num_batches(epoch) == len(windows.batch_starts(epoch))
        if shuffle:  # the training pipeline's one-array form holds the same batches
            matrix = windows.batch_matrix(epoch, skip=1)
            assert [list(row) for row in matrix] == [list(b) for b in windows.batch_starts(epoch)[1:]]


@pytest.mark.parametrize("shuffle", [True, False])
@pytest.mark.parametrize("length,batch", [(410, 8), (1000, 8), (97, 3), (300, 100)])
def test_every_batch_splits_evenly_between_replicas(shuffle, length, batch):
    # Keras adds the replicas' results elementwise: a batch of 61 windows over 2 devices (31 + 30) crashes it.
    windows = Windows(np.zeros(length, np.uint8), tiny_config(batch_size=batch), shuffle=shuffle, replicas=2)
    alone = Windows(np.zeros(length, np.uint8), tiny_config(batch_size=2 * batch), shuffle=shuffle)
    for epoch in range(3):
        batches = windows.batch_starts(epoch)
        assert batches and all(len(b) % 2 == 0 and len(b) > 0 for b in batches)
        assert windows.num_batches(epoch) == len(batches)
        used, available = sum(map(len, batches)), sum(map(len, alone.batch_starts(epoch)))
        assert available - 2 < used <= available  # at most one window left over


def test_too_few_windows_for_the_replicas_is_one_clear_sentence():
    with pytest.raises(CharlmError, match="fewer windows than the 4 devices"):
        Windows(np.zeros(50, np.uint8), tiny_config(seq_len=16), shuffle=False, replicas=4)
