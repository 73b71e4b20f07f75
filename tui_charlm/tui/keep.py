"""Keeping what the streams wrote: a plain-text file in the run's folder, with everything needed to read it later."""

from __future__ import annotations

import time
from pathlib import Path

from tui_charlm.core.atomic import atomic_write_text


def streams_text(
    *, run: Path | None, step: int | None, seed: str, seed_source: str, mode: str, streams: list[tuple[str, str]]
) -> str:
    """The file's text: a header (when, run, step, seed) and each stream's settings and text."""
    lines = [
        f"# charlm-tui streams, written {time.strftime('%Y-%m-%d %H:%M:%S')}",
        f"# run: {run if run is not None else '(none)'}; weights of step {step if step is not None else '?'}; "
        f"{mode} generation",
        f"# seed ({seed_source}):",
        seed,
        "",
    ]
    for number, (settings, text) in enumerate(streams, start=1):
        lines += [f"--- stream {number}: {settings} ---", text, ""]
    return "\n".join(lines)


def write_streams(folder: Path, step: int | None, text: str) -> Path:
    """Write `text` to streams-step-<step>-<time>.txt in `folder` (atomically); returns the path."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = folder / f"streams-step-{step or 0:08d}-{stamp}.txt"
    number = 1
    while path.exists():
        number += 1
        path = folder / f"streams-step-{step or 0:08d}-{stamp}-{number}.txt"
    atomic_write_text(path, text)
    return path
