"""Corpora larger than memory: a text file encoded once, in chunks, into a cached memory-mapped id file.

One streaming pass reads the file in chunks, decodes it incrementally
(multi-byte characters and CR LF pairs may straddle chunks), normalises
newlines, lower-cases if asked, checks it is text, hashes the bytes, finds
the vocabulary and writes provisional ids (in order of first appearance). A
second pass over those ids, not the text, renumbers them into the sorted
vocabulary's ids in the smallest integer type. The result is cached beside
the Keras cache, keyed by the file's path, size, modification time and the
decoding options, and reused until the file changes; training then reads
windows straight from the memory map. Peak memory depends on the chunk
size, not the corpus: about 25 x CHUNK_BYTES (195 MB encoding a 1 GB file,
benchmarks/large_corpus.py).
"""

from __future__ import annotations

import codecs
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tui_charlm.core.errors import CharlmError
from tui_charlm.core.events import Log
from tui_charlm.core.vocab import Vocabulary

CHUNK_BYTES = 8 << 20  # text read per step of the first pass (it sets the peak memory: see above)
IDS_CHUNK = 16 << 20  # ids renumbered per step of the second pass
FORMAT_VERSION = 1


@dataclass(frozen=True)
class IdFile:
    """A text file's ids in a read-only memory map, with its vocabulary and the hash of its bytes."""

    ids: np.ndarray  # np.memmap of vocab.id_dtype
    vocab: Vocabulary
    sha256: str
    cache: Path  # the id file
    reused: bool  # True when the cache was already there


def _key(path: Path, encoding: str, lowercase: bool) -> tuple[str, dict]:
    stat = path.stat()
    identity = {
        "path": str(path.resolve()),
        "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
        "encoding": codecs.lookup(encoding).name,
        "lowercase": bool(lowercase),
        "version": FORMAT_VERSION,
    }
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:32]
    return digest, identity


def encode_file(
    path: Path,
    *,
    cache: Path,
    encoding: str = "utf-8",
    lowercase: bool = False,
    max_vocab: int = 4096,
    label: str = "corpus",
    log: Log = lambda _: None,
) -> IdFile:
    """The ids of the text file at `path`, from the id files in folder `cache` if the file has not changed."""
    try:
        codec = codecs.lookup(encoding)
    except LookupError:
        raise CharlmError(f"Unknown text encoding {encoding!r}; try utf-8, latin-1 or cp1252.") from None
    try:
        with open(path, "rb"):
            pass
        digest, identity = _key(path, encoding, lowercase)
    except PermissionError:
        raise CharlmError(f"Cannot read {label}: permission denied.") from None
    except OSError as error:
        raise CharlmError(f"Cannot read {label}: {error.strerror or error}.") from None
    folder = cache
    ids_path, meta_path = folder / f"{digest}.ids", folder / f"{digest}.json"
    cached = _open_cached(ids_path, meta_path, identity)
    if cached is not None:
        return cached
    folder.mkdir(parents=True, exist_ok=True)
    log(f"Encoding {label} into {ids_path} (once; reused until the file changes)...")
    part = folder / f".{digest}.{os.getpid()}.part"
    provisional = folder / f".{digest}.{os.getpid()}.provisional"
    try:
        chars, sha256, count = _first_pass(path, codec.name, lowercase, max_vocab, label, provisional)
        vocab = Vocabulary(tuple(sorted(chars)))
        _renumber(provisional, part, chars, vocab, count)
        meta = {
            "identity": identity,
            "sha256": sha256,
            "chars": list(vocab.chars),
            "length": count,
            "dtype": vocab.id_dtype.name,
        }
        os.replace(part, ids_path)
        tmp_meta = folder / f".{digest}.{os.getpid()}.json"
        tmp_meta.write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")
        os.replace(tmp_meta, meta_path)  # the meta file last: its presence means the id file is complete
    except OSError as error:
        raise CharlmError(f"Cannot encode {label} into {folder}: {error.strerror or error}.") from None
    finally:
        for leftover in (part, provisional):
            leftover.unlink(missing_ok=True)
    result = _open_cached(ids_path, meta_path, identity)
    assert result is not None
    return IdFile(result.ids, result.vocab, result.sha256, result.cache, reused=False)


def _open_cached(ids_path: Path, meta_path: Path, identity: dict) -> IdFile | None:
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if meta.get("identity") != identity:
            return None
        vocab = Vocabulary(tuple(meta["chars"]))
        dtype = np.dtype(meta["dtype"])
        length = int(meta["length"])
        if ids_path.stat().st_size != length * dtype.itemsize:
            return None
        ids = np.memmap(ids_path, dtype=dtype, mode="r", shape=(length,)) if length else np.zeros(0, dtype)
    except (OSError, ValueError, KeyError, TypeError, CharlmError):
        return None
    return IdFile(ids, vocab, str(meta["sha256"]), ids_path, reused=True)


def _first_pass(
    path: Path, codec: str, lowercase: bool, max_vocab: int, label: str, out: Path
) -> tuple[list[str], str, int]:
    """Decode, check and hash the file; write provisional ids (uint16 or uint32).

    Returns (chars by id, sha256, count).
    """
    wide = codec.startswith(("utf-16", "utf-32"))
    decoder = codecs.getincrementaldecoder(codec)(errors="strict")
    hasher = hashlib.sha256()
    lookup = np.full(0x110000, -1, dtype=np.int32)  # code point -> provisional id
    chars: list[str] = []
    dtype = np.dtype(np.uint16 if max_vocab <= 65536 else np.uint32)
    count = 0
    offset = 0  # bytes read so far
    first = True
    pending_cr = False  # a chunk that ended in CR: it may be the first half of CR LF
    with open(path, "rb") as source, open(out, "wb") as sink:
        while True:
            data = source.read(CHUNK_BYTES)
            final = not data
            hasher.update(data)
            if not wide:
                nul = data.find(b"\x00")
                if nul >= 0:
                    raise CharlmError(
                        f"The {label} looks like binary data, not text (a NUL byte at byte offset {offset + nul})."
                    )
            carried = len(decoder.getstate()[0])  # bytes of a char split across the previous chunk's end
            try:
                text = decoder.decode(data, final=final)
            except UnicodeError as error:  # UnicodeDecodeError, or a UTF-16/32 text with no byte-order mark
                where = (
                    f" at byte offset {offset - carried + error.start}" if hasattr(error, "start") else f" ({error})"
                )
                raise CharlmError(
                    f"The {label} is not valid {codec}{where}; "
                    f"if it uses another encoding, pass it with --encoding (for example --encoding latin-1)."
                ) from None
            offset += len(data)
            if first and text:
                text = text.removeprefix("\ufeff")
                first = False
            if pending_cr:
                text = "\r" + text
                pending_cr = False
            if not final and text.endswith("\r"):
                text, pending_cr = text[:-1], True
            text = text.replace("\r\n", "\n").replace("\r", "\n")
            if wide and "\x00" in text:
                raise CharlmError(f"The {label} looks like binary data, not text (a NUL character).")
            if lowercase:
                text = text.lower()
            if text:
                codes = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
                ids = lookup[codes]
                if (ids < 0).any():
                    for code in np.unique(codes[ids < 0]):
                        lookup[code] = len(chars)
                        chars.append(chr(int(code)))
                    if len(chars) > max_vocab:
                        raise CharlmError(
                            f"The {label} has more than {max_vocab} distinct characters (--max-vocab): it is "
                            f"probably not text (raise --max-vocab if it is)."
                        )
                    ids = lookup[codes]
                sink.write(ids.astype(dtype).tobytes())
                count += len(codes)
            if final:
                break
    if count == 0:
        raise CharlmError(f"The {label} is empty.")
    return chars, hasher.hexdigest(), count


def _renumber(provisional: Path, out: Path, chars: list[str], vocab: Vocabulary, count: int) -> None:
    """Rewrite provisional ids (order of first appearance) as the sorted vocabulary's ids."""
    table = np.array([vocab.char_to_id[c] for c in chars], dtype=vocab.id_dtype)
    source_dtype = np.dtype(np.uint16 if provisional.stat().st_size == count * 2 else np.uint32)
    # Plain reads, not a memory map: mapped pages of a file read once would count as this process's memory.
    with open(provisional, "rb") as source, open(out, "wb") as sink:
        while True:
            ids = np.fromfile(source, dtype=source_dtype, count=IDS_CHUNK)
            if not len(ids):
                break
            sink.write(table[ids].tobytes())
