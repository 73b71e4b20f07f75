"""How chars that draw nothing are drawn: one table for the streams, the inspector and the cell view."""

from __future__ import annotations

# A newline as a mark of its own (the streams add the line break after it).
NEWLINE = "⏎"
# Control chars as Unicode's Control Pictures (␉ for a tab, ␡ for DEL), a newline as NEWLINE:
# use with str.translate, which keeps one char per char.
PICTURES = {code: chr(0x2400 + code) for code in range(0x20)} | {0x7F: "␡", ord("\n"): NEWLINE}
