"""Loss units: the core computes in nats per character; people also read bits (nats / ln 2). And durations."""

from __future__ import annotations

import math

LN2 = math.log(2.0)


def to_bits(nats: float | None) -> float | None:
    """Nats per char to bits per char."""
    return None if nats is None else nats / LN2


def format_duration(seconds: float) -> str:
    """Seconds as people read a clock: 'M:SS', or 'H:MM:SS' from an hour."""
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"
