"""Corpora: find the text the user meant, fetch it once if needed, and check it is text.

A corpus is named in one of four ways:

* a path to a text file (anything that is not a bare name, or a bare name
  that exists in the current directory and nowhere else);
* a bare name of a file in a `corpora/` folder (`foo` finds `corpora/foo.txt`);
* a catalog name (`nietzsche`, `shakespeare`), fetched once with
  `keras.utils.get_file` into the Keras cache, its sha256 recorded at first
  download and checked on every later load;
* `builtin`, the standard library's docstrings (no network, nothing shipped).
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tui_charlm.core.atomic import atomic_write_text
from tui_charlm.core.builtin_corpus import build_builtin_text, builtin_corpus_name
from tui_charlm.core.encoded import encode_file
from tui_charlm.core.errors import CharlmError
from tui_charlm.core.events import Log
from tui_charlm.core.vocab import Vocabulary

BUILTIN = "builtin"
DEFAULT_CORPUS = "nietzsche"
# How long the default corpus may take to start arriving before we fall back to the built-in one.
DEFAULT_FETCH_TIMEOUT = 5.0
# Environment variables a user (or a test) can set.
OFFLINE_ENV = "CHARLM_OFFLINE"  # "1": never touch the network
MIRROR_ENV = "CHARLM_CORPUS_MIRROR"  # base URL serving catalog files by their file name
CORPORA_ENV = "CHARLM_CORPORA"  # extra folder searched for named corpora

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class CatalogEntry:
    """A corpus that can be downloaded by name."""

    name: str
    filename: str  # name in the Keras cache
    url: str
    description: str


CATALOG: dict[str, CatalogEntry] = {
    "nietzsche": CatalogEntry(
        "nietzsche",
        "nietzsche.txt",
        "https://s3.amazonaws.com/text-datasets/nietzsche.txt",
        "Nietzsche in English translation (Project Gutenberg), the recipe's corpus, 600 KB",
    ),
    "shakespeare": CatalogEntry(
        "shakespeare",
        "tinyshakespeare.txt",
        "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",
        "tiny-shakespeare from karpathy/char-rnn, 1.1 MB",
    ),
}


def is_offline(offline: bool | None = None) -> bool:
    """Whether the network is forbidden, by flag or by CHARLM_OFFLINE."""
    if offline is not None and offline:
        return True
    return os.environ.get(OFFLINE_ENV, "").strip().lower() not in ("", "0", "false", "no")


def cache_dir() -> Path:
    """The Keras dataset cache (KERAS_HOME/datasets, else ~/.keras/datasets)."""
    base = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return Path(base) / "datasets"


def encoded_cache_dir() -> Path:
    """Where corpora encoded as ids are kept: beside the Keras dataset cache."""
    return cache_dir().parent / "charlm-encoded"


def corpora_dirs() -> list[Path]:
    """Folders searched for named corpora, in order."""
    dirs = []
    if os.environ.get(CORPORA_ENV):
        dirs.append(Path(os.environ[CORPORA_ENV]))
    dirs.append(Path.cwd() / "corpora")
    dirs.append(Path(__file__).resolve().parents[2] / "corpora")  # the project's own, in a checkout
    unique: list[Path] = []
    for d in dirs:
        if d.resolve() not in [u.resolve() for u in unique]:
            unique.append(d)
    return unique


def is_bare_name(spec: str) -> bool:
    """A name (not a path): letters, digits, '_', '.', '-', no separators, no leading dot."""
    return bool(_NAME.match(spec)) and ".." not in spec


def find_named(name: str) -> Path | None:
    """The file `name` or `name.txt` in a corpora folder, if any."""
    if not is_bare_name(name) or name.lower().startswith("readme"):
        return None
    for folder in corpora_dirs():
        for candidate in (folder / f"{name}.txt", folder / name):
            if candidate.is_file():
                return candidate
    return None


def catalog_path(entry: CatalogEntry) -> Path:
    """Where a catalog corpus lives once fetched."""
    return cache_dir() / entry.filename


def is_cached(entry: CatalogEntry) -> bool:
    """Whether the catalog corpus is already in the cache."""
    return catalog_path(entry).is_file()


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch_catalog(entry: CatalogEntry, *, offline: bool | None = None, timeout: float | None = None) -> Path:
    """Download a catalog corpus into the Keras cache once; verify its sha256 on later loads.

    No hash is published for these files, so the sha256 of the first download
    is recorded beside it (`<file>.sha256`) and every later load must match.
    """
    path = catalog_path(entry)
    record = path.with_name(path.name + ".sha256")
    if path.is_file():
        actual = _sha256_file(path)
        if record.is_file():
            recorded = record.read_text().split()
            expected = recorded[0] if recorded else ""
            if expected and actual != expected:
                raise CharlmError(
                    f"The cached {entry.name} corpus at {path} has changed since it was downloaded "
                    f"(sha256 {actual[:12]}..., recorded {expected[:12]}...); delete it to download it again."
                )
        else:
            atomic_write_text(record, f"{actual}  {entry.filename}\n")
        return path
    if is_offline(offline):
        raise CharlmError(
            f"The {entry.name} corpus is not cached and the network is off (--offline or {OFFLINE_ENV}); "
            f"use --corpus builtin or a path to a text file."
        )
    import keras  # heavy: only when a download is really needed

    mirror = os.environ.get(MIRROR_ENV)
    url = f"{mirror.rstrip('/')}/{entry.filename}" if mirror else entry.url
    path.parent.mkdir(parents=True, exist_ok=True)
    # Download under a private name and rename when complete, so a kill mid-download
    # never leaves a truncated file under the real name.
    partial = f".{entry.filename}.{os.getpid()}.part"
    previous_timeout = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout)
    try:
        downloaded = keras.utils.get_file(
            fname=partial, origin=url, cache_dir=str(path.parent.parent), cache_subdir=path.parent.name
        )
    except Exception as error:  # get_file wraps every network failure in a plain Exception
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise CharlmError(f"Could not download the {entry.name} corpus from {url} ({reason}).") from None
    finally:
        socket.setdefaulttimeout(previous_timeout)
    os.replace(downloaded, path)
    atomic_write_text(record, f"{_sha256_file(path)}  {entry.filename}\n")
    return path


def builtin_path(log: Log = print) -> Path:
    """Build the built-in corpus once and return its cached file."""
    path = cache_dir() / builtin_corpus_name()
    if not path.is_file():
        # Seconds of parsing (11 s on a slow 2-core machine): said, so a first start does not look stuck.
        log(f"Building the built-in corpus from the docstrings of Python's standard library (once; kept in {path}).")
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, build_builtin_text())
    return path


def choose_default(*, offline: bool | None = None, log: Log = print) -> str:
    """The corpus used when none is given: nietzsche if it can be had quickly, else built-in."""
    entry = CATALOG[DEFAULT_CORPUS]
    if is_cached(entry):
        return entry.name
    if is_offline(offline):
        log(f"No --corpus given and the network is off: using the built-in corpus ({BUILTIN}).")
        return BUILTIN
    try:
        fetch_catalog(entry, timeout=DEFAULT_FETCH_TIMEOUT)
    except CharlmError as error:
        log(f"No --corpus given and {entry.name} could not be fetched ({error}); using the built-in corpus.")
        return BUILTIN
    return entry.name


def resolve(spec: str | None, *, offline: bool | None = None, log: Log = print) -> tuple[str, Path, str]:
    """Turn what the user typed into (display name, file path, source kind)."""
    if spec is None or spec == "":
        spec = choose_default(offline=offline, log=log)
    if spec == BUILTIN:
        return BUILTIN, builtin_path(log), "builtin"
    if is_bare_name(spec):
        named = find_named(spec)
        if named is not None:
            return spec, named, "named"
        if spec in CATALOG:
            return spec, fetch_catalog(CATALOG[spec], offline=offline), "catalog"
    path = Path(spec).expanduser()
    if path.is_dir():
        raise CharlmError(f"Corpus {spec!r} is a directory; give the path of a text file inside it.")
    if path.is_file():
        return path.name, path, "file"
    if is_bare_name(spec) and not Path(spec).suffix:
        names = ", ".join([*CATALOG, BUILTIN])
        raise CharlmError(
            f"No corpus named {spec!r}: it is not a file, not in a corpora/ folder "
            f"({', '.join(str(d) for d in corpora_dirs())}), and not one of {names}."
        )
    raise CharlmError(f"Corpus file {spec!r} does not exist; check the path.")


def _label(name: str, path: Path, source: str) -> str:
    """How messages name a corpus: by its name, or by its path when the user gave one."""
    return f"corpus {name!r}" if source != "file" else f"corpus file {str(path)!r}"


@dataclass(frozen=True)
class Corpus:
    """A corpus as ids, the form training uses: a memory map of its cached id file (see encoded.py)."""

    name: str  # what to call it on screen
    path: Path  # the file it was read from
    source: str  # 'file', 'named', 'catalog' or 'builtin'
    sha256: str  # of the file's bytes
    ids: np.ndarray  # in `vocab`'s ids
    vocab: Vocabulary  # the corpus's own characters (after lower-casing, if asked)

    def __len__(self) -> int:
        return len(self.ids)

    def missing_from(self, vocab: Vocabulary) -> list[str]:
        """Characters of the corpus that `vocab` lacks."""
        return [c for c in self.vocab.chars if c not in vocab]

    def ids_in(self, vocab: Vocabulary, *, drop_unknown: bool = False) -> np.ndarray:
        """The corpus in `vocab`'s ids: the memory map itself when the vocabularies agree, else a renumbered copy."""
        if vocab == self.vocab:
            return self.ids
        table = np.array([vocab.char_to_id.get(c, -1) for c in self.vocab.chars], dtype=np.int64)
        mapped = table[self.ids]
        if (mapped < 0).any():
            if not drop_unknown:
                raise CharlmError(f"The corpus has characters outside the vocabulary ({self.missing_from(vocab)[:5]}).")
            mapped = mapped[mapped >= 0]
        return mapped.astype(vocab.id_dtype)


def load_corpus(
    spec: str | None,
    *,
    encoding: str = "utf-8",
    lowercase: bool = False,
    offline: bool | None = None,
    max_vocab: int = 4096,
    log: Log = print,
) -> Corpus:
    """Find the corpus `spec` names, fetch it if needed, check it is text, and give it as ids (encoded once)."""
    name, path, source = resolve(spec, offline=offline, log=log)
    label = _label(name, path, source)
    encoded = encode_file(
        path,
        cache=encoded_cache_dir(),
        encoding=encoding,
        lowercase=lowercase,
        max_vocab=max_vocab,
        label=label,
        log=log,
    )
    return Corpus(name=name, path=path, source=source, sha256=encoded.sha256, ids=encoded.ids, vocab=encoded.vocab)


@dataclass(frozen=True)
class CorpusListing:
    """One row of `charlm corpora`."""

    name: str
    source: str
    available: bool  # usable now without the network
    path: Path | None
    size: int | None
    description: str


def list_corpora() -> list[CorpusListing]:
    """Every corpus the user can name: catalog, built-in, and files in corpora/ folders."""
    rows = []
    for entry in CATALOG.values():
        path = catalog_path(entry)
        cached = path.is_file()
        rows.append(
            CorpusListing(
                entry.name,
                "catalog",
                cached,
                path if cached else None,
                path.stat().st_size if cached else None,
                entry.description,
            )
        )
    built = cache_dir() / builtin_corpus_name()
    rows.append(
        CorpusListing(
            BUILTIN,
            "builtin",
            True,
            built if built.is_file() else None,
            built.stat().st_size if built.is_file() else None,
            "docstrings of this Python's standard library (built on first use, no network)",
        )
    )
    seen = set()
    for folder in corpora_dirs():
        if not folder.is_dir():
            continue
        for path in sorted(folder.iterdir()):
            name = path.stem if path.suffix == ".txt" else path.name
            if not path.is_file() or path.name.lower() == "readme.md" or name in seen or not is_bare_name(name):
                continue
            seen.add(name)
            rows.append(CorpusListing(name, "named", True, path, path.stat().st_size, f"file in {folder}"))
    return rows
