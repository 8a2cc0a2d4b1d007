"""Exponential backoff with full jitter, honouring a vendor's own `Retry-After`."""

from __future__ import annotations

import random


def backoff_delay(
    attempt: int, *, initial: float, cap: float, retry_after: float | None = None
) -> float:
    """Delay before retry number `attempt` (1 = the first retry)."""
    if retry_after is not None and retry_after >= 0:
        return min(max(retry_after, 0.0), cap * 4)
    ceiling = min(cap, initial * (2 ** (attempt - 1)))
    return random.uniform(ceiling / 2, ceiling)  # noqa: S311 - jitter, not cryptography
