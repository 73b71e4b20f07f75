"""Vocabulary: the sorted distinct characters of a corpus, and text <-> ids."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np

from tui_charlm.core.errors import CharlmError


@dataclass(frozen=True)
class SeedReport:
    """What happened to seed text on its way into the vocabulary."""

    text: str  # the seed as it will be used
    unknown: tuple[str, ...]  # distinct chars that were not in the vocabulary, in order of appearance
    replacement: str | None  # what unknown chars became; None means they were dropped

    def describe(self) -> str:
        """One sentence for the user, or '' when nothing was changed."""
        if not self.unknown:
            return ""
        shown = ", ".join(repr(c) for c in self.unknown[:10])
        more = f" and {len(self.unknown) - 10} more" if len(self.unknown) > 10 else ""
        action = f"replaced them with {self.replacement!r}" if self.replacement else "dropped them"
        return f"Seed text has characters the model never saw ({shown}{more}); {action}."


@dataclass(frozen=True)
class Vocabulary:
    """The model's alphabet; ids are positions in `chars`, which is sorted."""

    chars: tuple[str, ...]
    _codepoints: np.ndarray = field(init=False, repr=False, compare=False)
    _char_to_id: dict = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if list(self.chars) != sorted(set(self.chars)) or not self.chars:
            raise CharlmError("A vocabulary must be a non-empty sorted list of distinct characters.")
        if any(len(c) != 1 for c in self.chars):
            raise CharlmError("Every vocabulary entry must be a single character.")
        object.__setattr__(self, "_codepoints", np.array([ord(c) for c in self.chars], dtype=np.uint32))
        object.__setattr__(self, "_char_to_id", {c: i for i, c in enumerate(self.chars)})

    @classmethod
    def from_text(cls, text: str) -> Vocabulary:
        """The sorted distinct characters of `text`."""
        return cls(tuple(sorted(set(text))))

    def __len__(self) -> int:
        return len(self.chars)

    def __contains__(self, char: object) -> bool:
        return char in self.char_to_id

    @property
    def char_to_id(self) -> dict[str, int]:
        """Map from character to id."""
        return self._char_to_id

    @property
    def id_dtype(self) -> np.dtype:
        """The smallest unsigned integer type that holds every id."""
        return np.dtype(np.uint8 if len(self.chars) <= 256 else np.uint16 if len(self.chars) <= 65536 else np.uint32)

    def encode(self, text: str) -> np.ndarray:
        """Ids of `text`, as the smallest integer type; every char must be in the vocabulary."""
        codepoints = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
        ids = np.searchsorted(self._codepoints, codepoints)
        ids_clipped = np.minimum(ids, len(self.chars) - 1)
        bad = self._codepoints[ids_clipped] != codepoints
        if bad.any():
            missing = sorted({text[i] for i in np.flatnonzero(bad)[:1000]})
            shown = ", ".join(repr(c) for c in missing[:10])
            raise CharlmError(f"Text has {int(bad.sum())} characters outside the vocabulary ({shown}).")
        return ids.astype(self.id_dtype)

    def decode(self, ids) -> str:
        """Text for a sequence of ids."""
        chars = self.chars
        return "".join(chars[int(i)] for i in ids)

    def missing_from(self, text: str) -> list[str]:
        """Distinct chars of `text` that are not in the vocabulary, sorted."""
        known = self.char_to_id
        return sorted({c for c in set(text) if c not in known})

    def clean_seed(self, text: str, replacement: str | None = None) -> SeedReport:
        """Make `text` usable as a seed: drop unknown chars, or replace them.

        Replacement is used only if it is itself in the vocabulary (a space,
        say); otherwise unknown characters are dropped.
        """
        known = self.char_to_id
        if replacement is not None and replacement not in known:
            replacement = None
        unknown: dict[str, None] = {}
        out = []
        for char in text:
            if char in known:
                out.append(char)
            else:
                unknown.setdefault(char)
                if replacement is not None:
                    out.append(replacement)
        return SeedReport("".join(out), tuple(unknown), replacement)

    def to_json(self) -> str:
        """JSON stored as vocab.json: the characters, in id order."""
        return json.dumps({"chars": list(self.chars)}, ensure_ascii=False, indent=0)

    @classmethod
    def from_json(cls, data: str) -> Vocabulary:
        """Inverse of to_json."""
        try:
            chars = json.loads(data)["chars"]
        except (ValueError, KeyError, TypeError) as error:
            raise CharlmError(f"The vocabulary file is not valid ({error}).") from None
        if not isinstance(chars, list) or not all(isinstance(c, str) for c in chars):
            raise CharlmError('The vocabulary file is not valid (its "chars" is not a list of characters).')
        return cls(tuple(chars))
