"""Loss units: the core computes in nats per character; people also read bits (nats / ln 2)."""

from __future__ import annotations

import math

LN2 = math.log(2.0)


def to_bits(nats: float | None) -> float | None:
    """Nats per char to bits per char."""
    return None if nats is None else nats / LN2
