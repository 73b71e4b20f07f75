"""Encoding a corpus file in chunks into a cached memory map gives what decoding it whole gives."""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.reference import decode_whole
from tui_charlm.core import encoded
from tui_charlm.core.corpus import encoded_cache_dir
from tui_charlm.core.encoded import encode_file
from tui_charlm.core.errors import CharlmError
from tui_charlm.core.vocab import Vocabulary


def whole(data: bytes, lowercase: bool = False, encoding: str = "utf-8") -> str:
    return decode_whole(data, encoding, lowercase)


@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 64, 1 << 20])
def test_chunked_encoding_equals_decoding_the_whole_file(tmp_path, monkeypatch, chunk):
    monkeypatch.setattr(encoded, "CHUNK_BYTES", chunk)
    data = "\ufeffÜber die Straße\r\nnaïve café\r\rend\rΩmega 𝄞 Clef\r\n".encode("utf-8")
    path = tmp_path / "text.txt"
    path.write_bytes(data)
    for lowercase in (False, True):
        result = encode_file(path, cache=encoded_cache_dir(), lowercase=lowercase)
        text = whole(data, lowercase)
        assert result.vocab == Vocabulary.from_text(text)
        assert result.vocab.decode(result.ids) == text
        assert result.ids.dtype == np.uint8 and isinstance(result.ids, np.memmap)


@settings(max_examples=60, deadline=None)
@given(
    text=st.text(max_size=300),
    newline=st.sampled_from(["\n", "\r\n", "\r"]),
    chunk=st.integers(1, 40),
    encoding=st.sampled_from(["utf-8", "utf-16", "latin-1"]),
)
def test_any_text_in_any_chunks_encodes_like_the_whole(tmp_path_factory, text, newline, chunk, encoding):
    folder = tmp_path_factory.mktemp("enc")
    os.environ["KERAS_HOME"] = str(folder / "keras")
    data = text.replace("\n", newline).encode(encoding, errors="replace")
    path = folder / "text.txt"
    path.write_bytes(data)
    original = encoded.CHUNK_BYTES
    encoded.CHUNK_BYTES = chunk
    try:
        try:
            expected = whole(data, encoding=encoding)
        except UnicodeError:
            expected = None
        if not expected or "\x00" in expected:  # not text, empty, or binary: refused with one sentence
            with pytest.raises(CharlmError, match=r"^The corpus (is not valid|is empty|looks like binary data)"):
                encode_file(path, cache=encoded_cache_dir(), encoding=encoding)
            return
        result = encode_file(path, cache=encoded_cache_dir(), encoding=encoding)
        assert result.vocab.decode(result.ids) == expected
    finally:
        encoded.CHUNK_BYTES = original


def test_the_cache_is_reused_until_the_file_changes(tmp_path):
    path = tmp_path / "text.txt"
    path.write_text("first version of the text\n")
    built = encode_file(path, cache=encoded_cache_dir())
    again = encode_file(path, cache=encoded_cache_dir())
    assert not built.reused and again.reused and again.cache == built.cache
    assert again.vocab.decode(again.ids) == "first version of the text\n"
    path.write_text("second, longer version of the text!\n")
    changed = encode_file(path, cache=encoded_cache_dir())
    assert not changed.reused and changed.vocab.decode(changed.ids) == "second, longer version of the text!\n"
    assert (
        encode_file(path, cache=encoded_cache_dir(), lowercase=True).cache != changed.cache
    )  # options are part of the key


def test_a_damaged_cache_is_rebuilt(tmp_path):
    path = tmp_path / "text.txt"
    path.write_text("some text to encode\n")
    built = encode_file(path, cache=encoded_cache_dir())
    with open(built.cache, "r+b") as handle:
        handle.truncate(3)
    rebuilt = encode_file(path, cache=encoded_cache_dir())
    assert not rebuilt.reused and rebuilt.vocab.decode(rebuilt.ids) == "some text to encode\n"


@pytest.mark.parametrize("chunk", [4, 1 << 20])
def test_errors_name_the_byte_offset_even_across_chunks(tmp_path, monkeypatch, chunk):
    monkeypatch.setattr(encoded, "CHUNK_BYTES", chunk)
    path = tmp_path / "bad.txt"
    path.write_bytes("abcdé".encode() + b"\xff" + b"tail")
    with pytest.raises(CharlmError, match="not valid utf-8 at byte offset 6"):
        encode_file(path, cache=encoded_cache_dir())
    path.write_bytes(b"0123456789\x00rest")
    with pytest.raises(CharlmError, match=r"binary data.*byte offset 10"):
        encode_file(path, cache=encoded_cache_dir())
    path.write_bytes(b"")
    with pytest.raises(CharlmError, match="empty"):
        encode_file(path, cache=encoded_cache_dir())
    path.write_text("".join(chr(0x4E00 + i) for i in range(50)))
    with pytest.raises(CharlmError, match="more than 20 distinct characters"):
        encode_file(path, cache=encoded_cache_dir(), max_vocab=20)
    assert not [p for p in encoded_cache_dir().glob(".*")]  # no leftovers from the failed passes
