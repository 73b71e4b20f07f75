"""Corpus resolution, download and every kind of bad input a user can give."""

from __future__ import annotations

import http.server
import threading
from pathlib import Path

import pytest

from tests.reference import text_of
from tui_charlm.core import corpus as corpus_mod
from tui_charlm.core.corpus import CATALOG, load_corpus
from tui_charlm.core.errors import CharlmError


def test_path_corpus_is_read_decoded_and_newlines_normalised(tmp_path):
    path = tmp_path / "mine.txt"
    path.write_bytes("\ufeffHello\r\nWorld\rAgain\n".encode("utf-8"))
    corpus = load_corpus(str(path))
    assert text_of(corpus) == "Hello\nWorld\nAgain\n"
    assert corpus.source == "file" and corpus.name == "mine.txt"
    assert len(corpus.sha256) == 64


def test_lowercase(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("Hello WORLD")
    assert text_of(load_corpus(str(path), lowercase=True)) == "hello world"


def test_name_in_corpora_folder(isolated):
    (isolated / "corpora").mkdir()
    (isolated / "corpora" / "foo.txt").write_text("some text of mine\n")
    corpus = load_corpus("foo")
    assert corpus.source == "named" and text_of(corpus) == "some text of mine\n"


def test_name_from_corpora_env_folder(tmp_path, monkeypatch):
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    (folder / "bar.txt").write_text("bar text")
    monkeypatch.setenv("CHARLM_CORPORA", str(folder))
    assert text_of(load_corpus("bar")) == "bar text"


def write(path: Path, data: bytes) -> str:
    path.write_bytes(data)
    return str(path)


@pytest.mark.parametrize(
    "make, expected",
    [
        (lambda d: str(d / "missing.txt"), "does not exist"),
        (lambda d: str(d), "is a directory"),
        (lambda d: write(d / "empty.txt", b""), "is empty"),
        (lambda d: write(d / "bin.dat", b"abc\x00def"), "binary data"),
        (lambda d: write(d / "crlf-only.txt", b"\xef\xbb\xbf"), "is empty"),
        (lambda d: "nosuchname", "No corpus named 'nosuchname'"),
    ],
)
def test_bad_corpus_gives_one_clear_sentence(tmp_path, make, expected):
    with pytest.raises(CharlmError) as info:
        load_corpus(make(tmp_path))
    message = str(info.value)
    assert expected in message
    assert "\n" not in message and "Traceback" not in message


def test_binary_error_names_the_offset(tmp_path):
    path = tmp_path / "b.bin"
    path.write_bytes(b"0123456\x00")
    with pytest.raises(CharlmError, match="byte offset 7"):
        load_corpus(str(path))


def test_invalid_utf8_names_offset_and_encoding_flag_fixes_it(tmp_path):
    path = tmp_path / "latin.txt"
    path.write_bytes("caf\u00e9 au lait".encode("latin-1"))
    with pytest.raises(CharlmError) as info:
        load_corpus(str(path))
    assert "byte offset 3" in str(info.value) and "--encoding" in str(info.value)
    assert text_of(load_corpus(str(path), encoding="latin-1")) == "caf\u00e9 au lait"


def test_unknown_encoding(tmp_path):
    path = tmp_path / "x.txt"
    path.write_text("x")
    with pytest.raises(CharlmError, match="Unknown text encoding 'klingon'"):
        load_corpus(str(path), encoding="klingon")


def test_utf16_with_bom_decodes(tmp_path):
    path = tmp_path / "u16.txt"
    path.write_bytes("hello there".encode("utf-16"))
    assert text_of(load_corpus(str(path), encoding="utf-16")) == "hello there"


def test_huge_vocabulary_is_refused_with_the_count(tmp_path):
    path = tmp_path / "wide.txt"
    path.write_text("".join(chr(0x4E00 + i) for i in range(300)))
    with pytest.raises(CharlmError, match=r"more than 100 distinct characters \(--max-vocab\)"):
        load_corpus(str(path), max_vocab=100)


# -- catalog downloads, against a server on 127.0.0.1 ------------------------------


@pytest.fixture
def mirror(tmp_path, monkeypatch):
    """Serve a folder over HTTP on loopback and point the catalog at it."""
    root = tmp_path / "served"
    root.mkdir()
    (root / CATALOG["nietzsche"].filename).write_text("Served text for the catalog test.\n" * 20)

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(root), **kwargs)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("CHARLM_CORPUS_MIRROR", f"http://127.0.0.1:{server.server_address[1]}")
    monkeypatch.delenv("CHARLM_OFFLINE")
    yield root
    server.shutdown()
    server.server_close()


def test_catalog_corpus_is_fetched_once_and_sha_recorded(mirror, monkeypatch):
    corpus = load_corpus("nietzsche")
    assert corpus.source == "catalog"
    assert text_of(corpus).startswith("Served text")
    cached = corpus_mod.catalog_path(CATALOG["nietzsche"])
    record = cached.with_name(cached.name + ".sha256")
    assert cached.is_file() and record.read_text().split()[0] == corpus.sha256
    assert not list(cached.parent.glob(".*.part"))  # no partial download left behind
    # Later loads use the cache: no network needed.
    monkeypatch.setenv("CHARLM_OFFLINE", "1")
    assert text_of(load_corpus("nietzsche")) == text_of(corpus)


def test_tampered_cache_is_refused(mirror):
    corpus = load_corpus("nietzsche")
    cached = corpus_mod.catalog_path(CATALOG["nietzsche"])
    cached.write_text(text_of(corpus) + "tampered")
    with pytest.raises(CharlmError, match="has changed since it was downloaded"):
        load_corpus("nietzsche")


def test_default_corpus_is_nietzsche_when_it_can_be_fetched(mirror):
    messages = []
    corpus = load_corpus(None, log=messages.append)
    # nothing said but that the text is being encoded (once)
    assert corpus.name == "nietzsche" and [m.split()[0] for m in messages] == ["Encoding"]


def test_default_falls_back_to_builtin_when_fetch_fails(monkeypatch, tmp_path):
    monkeypatch.delenv("CHARLM_OFFLINE")
    monkeypatch.setenv("CHARLM_CORPUS_MIRROR", "http://127.0.0.1:9")  # discard port: connection refused
    monkeypatch.setattr(corpus_mod, "build_builtin_text", lambda: "built-in stand-in text\n" * 10)
    messages = []
    corpus = load_corpus(None, log=messages.append)
    assert corpus.source == "builtin"
    choice = [m for m in messages if not m.startswith(("Encoding", "Building"))]
    assert len(choice) == 1 and "built-in" in choice[0] and "\n" not in choice[0]
    assert any(m.startswith("Building the built-in corpus") for m in messages)  # this test's cache starts empty


def test_offline_catalog_name_not_cached_is_a_clear_error():
    with pytest.raises(CharlmError, match="not cached and the network is off"):
        load_corpus("shakespeare")


@pytest.mark.slow
def test_offline_default_uses_builtin_corpus_built_from_the_stdlib():
    messages = []
    corpus = load_corpus(None, log=messages.append)
    assert corpus.source == "builtin" and "network is off" in messages[0]
    assert "Building the built-in corpus" in messages[1]  # the first time takes seconds: it says why
    assert len(text_of(corpus)) > 500_000 and len(set(text_of(corpus))) < 100
    # Built once, then served from the cache, byte for byte the same, without building it again.
    said_again = []
    again = load_corpus("builtin", log=said_again.append)
    assert again.sha256 == corpus.sha256
    assert not any("Building" in message for message in said_again)


def test_builtin_text_is_deterministic_and_printable(tmp_path):
    from tui_charlm.core.builtin_corpus import build_builtin_text

    lib = tmp_path / "lib"
    (lib / "pkg").mkdir(parents=True)
    (lib / "b.py").write_text('"""Module b."""\ndef f():\n    """Does f."""\ndef _hidden():\n    """Private."""\n')
    (lib / "pkg" / "a.py").write_text('"""Module a \u00e9."""\nclass C:\n    """A class."""\n')
    (lib / "test").mkdir()
    (lib / "test" / "t.py").write_text('"""Test scaffolding."""\n')
    text = build_builtin_text(lib)
    assert text == build_builtin_text(lib)
    # The first n chars, built from only the files they need, are the whole text's first n chars.
    assert all(build_builtin_text(lib, limit=n) == text[:n] for n in (1, 10, len(text) // 2, len(text), len(text) + 5))
    assert "Module b." in text and "Does f." in text and "A class." in text
    assert "Private" not in text and "scaffolding" not in text and "\u00e9" not in text


def test_list_corpora_shows_catalog_builtin_and_named(isolated):
    (isolated / "corpora").mkdir()
    (isolated / "corpora" / "mine.txt").write_text("x")
    (isolated / "corpora" / "README.md").write_text("docs")
    names = {row.name: row for row in corpus_mod.list_corpora()}
    assert {"nietzsche", "shakespeare", "builtin", "mine"} <= set(names)
    assert "README" not in names and not names["nietzsche"].available
