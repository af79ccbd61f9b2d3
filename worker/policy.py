"""Retry policy: pure functions, so they can be read and tested on their own."""

from __future__ import annotations

RETRY_BASE_S = 1.0
RETRY_CAP_S = 300.0


def retry_delay(attempt: int, base_s: float = RETRY_BASE_S, cap_s: float = RETRY_CAP_S) -> float:
    """Seconds to wait before attempt ``attempt + 1`` after attempt ``attempt`` failed:
    exponential (base, 2 x base, 4 x base, ...), capped."""
    if attempt < 1:
        raise ValueError("attempts are counted from 1")
    return min(cap_s, base_s * 2 ** (attempt - 1))
