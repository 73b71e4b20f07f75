"""The built-in corpus: docstrings of the running interpreter's standard library.

It needs no network and ships no text: it is read from the `.py` files of the
standard library with `ast` (nothing is imported or executed), in sorted path
order, so the same Python version always builds the same text.
"""

from __future__ import annotations

import ast
import sys
import sysconfig
from pathlib import Path

from tui_charlm.core.errors import CharlmError

# Directories whose docstrings are test scaffolding rather than prose.
_SKIPPED_PARTS = {"test", "tests", "idle_test", "site-packages", "dist-packages", "__pycache__"}
_PRINTABLE = set(chr(c) for c in range(32, 127)) | {"\n"}


def builtin_corpus_name() -> str:
    """File name of the cached built-in corpus; keyed by Python version, since the text depends on it."""
    return f"charlm-builtin-py{sys.version_info.major}.{sys.version_info.minor}.txt"


def _docstrings(tree: ast.Module):
    """Docstrings of the module, its classes, and its public functions and methods."""
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name.startswith("_"):
            continue
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            doc = ast.get_docstring(node, clean=True)
            if doc:
                yield doc


def build_builtin_text(stdlib: Path | None = None, *, limit: int | None = None) -> str:
    """Build the corpus text; deterministic for a given standard library.

    Docstrings with characters outside printable ASCII are left out, which
    keeps the vocabulary to about 95 characters. With `limit`, the first
    `limit` chars of the same text, read from only as many files as they need
    (the whole text takes seconds to build: about 1.5 MB from some 700 files).
    """
    root = Path(stdlib or sysconfig.get_paths()["stdlib"])
    parts: list[str] = []
    length = 0  # the length of the text so far, plus one (each doc counted with its "\n\n")
    for path in sorted(root.rglob("*.py")):
        if limit is not None and length > limit:
            break
        if _SKIPPED_PARTS.intersection(path.relative_to(root).parts):
            continue
        try:
            tree = ast.parse(path.read_bytes())
        except (SyntaxError, ValueError, OSError):
            continue
        docs = [doc for doc in _docstrings(tree) if set(doc) <= _PRINTABLE]
        parts.extend(docs)
        length += sum(len(doc) + 2 for doc in docs)
    if not parts:
        raise CharlmError(
            f"The built-in corpus could not be built: no Python sources were found under {root}; "
            "give a corpus with --corpus instead."
        )
    text = "\n\n".join(parts) + "\n"
    return text if limit is None else text[:limit]
