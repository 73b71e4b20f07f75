"""A self-contained HTML page of a text coloured by chosen LSTM cells: one section per cell, no server needed.

Each char's background is its cell's activation (tanh of the cell state):
blue for -1, white for 0, red for +1, as in Karpathy et al.'s figures. The
activation is rounded to one of LEVELS shades so runs of chars share one
span and the page stays small; the exact value is in each span's title.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# Shades from -1 to +1 (odd, so 0 has its own: white).
LEVELS = 21
NEGATIVE = (66, 110, 220)  # -1
POSITIVE = (220, 60, 50)  # +1


def shade(value: float) -> tuple[int, int, int]:
    """The colour of an activation in [-1, 1]: white at 0, NEGATIVE at -1, POSITIVE at +1."""
    value = max(-1.0, min(1.0, float(value)))
    end = POSITIVE if value >= 0 else NEGATIVE
    weight = abs(value)
    return tuple(round(255 + (channel - 255) * weight) for channel in end)


def level_of(values: np.ndarray) -> np.ndarray:
    """Each activation's shade index, 0 (-1) to LEVELS - 1 (+1)."""
    return np.rint((np.clip(values, -1, 1) + 1) / 2 * (LEVELS - 1)).astype(int)


@dataclass(frozen=True)
class Section:
    """One cell's colouring of the text."""

    title: str  # e.g. "#17: inside quotes (r = +0.91)"
    values: np.ndarray  # the cell's activation after each char


def _style() -> str:
    rules = []
    for level in range(LEVELS):
        red, green, blue = shade(level / (LEVELS - 1) * 2 - 1)
        rules.append(f".v{level}{{background:rgb({red},{green},{blue})}}")
    return "\n".join(rules)


def _colour_text(text: str, values: np.ndarray) -> str:
    levels = level_of(values)
    spans, begin = [], 0
    for end in range(1, len(text) + 1):
        if end == len(text) or levels[end] != levels[begin]:
            chunk = html.escape(text[begin:end]).replace("\n", "⏎\n")
            title = f"{values[begin]:+.2f}" if end - begin == 1 else f"{values[begin]:+.2f}…{values[end - 1]:+.2f}"
            spans.append(f'<span class="v{levels[begin]}" title="{title}">{chunk}</span>')
            begin = end
    return "".join(spans)


def cells_page(title: str, text: str, sections: Sequence[Section], *, notes: Sequence[str] = ()) -> str:
    """The page, as one HTML string (styles inline, no scripts, no links)."""
    negative, positive = (f"rgb{shade(v)}" for v in (-1.0, 1.0))
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title>",
        "<style>",
        "body{font-family:sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}",
        ".text{font-family:monospace;white-space:pre-wrap;line-height:1.5;border:1px solid #ccc;padding:.5rem}",
        ".key span{display:inline-block;padding:0 .5rem;font-family:monospace}",
        _style(),
        "</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        *(f"<p>{html.escape(note)}</p>" for note in notes),
        '<p class="key">Each char is coloured by the cell\'s activation, tanh(c), after reading it: '
        f'<span style="background:{negative}">-1</span><span class="v{LEVELS // 2}">0</span>'
        f'<span style="background:{positive}">+1</span> (hover a char for its value)</p>',
    ]
    for section in sections:
        parts.append(f"<section><h2>{html.escape(section.title)}</h2>")
        parts.append(f'<div class="text">{_colour_text(text, section.values)}</div></section>')
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
