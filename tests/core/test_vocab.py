"""Vocabulary: ids, compact storage, seed text with unknown characters."""

from __future__ import annotations

import numpy as np
import pytest

from tui_charlm.core.errors import CharlmError
from tui_charlm.core.vocab import Vocabulary


def test_round_trip_and_sorted_ids():
    vocab = Vocabulary.from_text("hello world")
    assert vocab.chars == tuple(sorted(set("hello world")))
    ids = vocab.encode("hello")
    assert ids.dtype == np.uint8
    assert vocab.decode(ids) == "hello"


def test_large_vocabulary_uses_uint16():
    text = "".join(chr(0x100 + i) for i in range(300))
    vocab = Vocabulary.from_text(text)
    assert vocab.encode(text).dtype == np.uint16
    assert vocab.decode(vocab.encode(text)) == text


def test_encode_refuses_unknown_chars():
    vocab = Vocabulary.from_text("abc")
    with pytest.raises(CharlmError, match=r"outside the vocabulary.*'z'"):
        vocab.encode("abz")


def test_clean_seed_drops_or_replaces_and_reports():
    vocab = Vocabulary.from_text("ab c")
    dropped = vocab.clean_seed("aXb\u03a9c")
    assert dropped.text == "abc" and dropped.unknown == ("X", "\u03a9")
    assert "'X'" in dropped.describe() and "dropped" in dropped.describe()
    replaced = vocab.clean_seed("aXb", replacement=" ")
    assert replaced.text == "a b" and "replaced" in replaced.describe()
    assert vocab.clean_seed("abc").describe() == ""


def test_json_round_trip():
    vocab = Vocabulary.from_text("Zürich\n\t!")
    assert Vocabulary.from_json(vocab.to_json()) == vocab


def test_damaged_json_is_a_clear_error():
    with pytest.raises(CharlmError, match="vocabulary file is not valid"):
        Vocabulary.from_json("{not json")
