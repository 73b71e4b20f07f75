"""Reference implementations the tests compare the real code with: short, obvious, whole-file.

`tui_charlm.core.encoded` decodes corpora in chunks of any size into ids;
these decode a whole file at once, the way anyone would write it, so a
chunking mistake shows as a difference.
"""

from __future__ import annotations

import codecs
import tempfile
from pathlib import Path

from tui_charlm.core.encoded import encode_file


def decode_whole(data: bytes, encoding: str = "utf-8", lowercase: bool = False) -> str:
    """The text of a corpus file: decoded whole, byte-order mark dropped, every line end made '\\n'."""
    text = data.decode(codecs.lookup(encoding).name)
    if text.startswith("\ufeff"):
        text = text[1:]
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text.lower() if lowercase else text


def decode_real(data: bytes, encoding: str = "utf-8", *, max_vocab: int = 4096) -> str:
    """What the real decoder makes of `data` as a corpus file (raises its CharlmError for what it refuses)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "corpus.txt"
        path.write_bytes(data)
        encoded = encode_file(path, cache=Path(folder) / "cache", encoding=encoding, max_vocab=max_vocab)
        text = encoded.vocab.decode(encoded.ids)
        del encoded  # (the memory map, before its folder goes)
        return text


def text_of(corpus) -> str:
    """A loaded corpus's text, decoded from its ids."""
    return corpus.vocab.decode(corpus.ids)
