"""Retry policy: pure functions, so they can be read and tested on their own."""

from __future__ import annotations

import random

RETRY_BASE_S = 1.0
RETRY_CAP_S = 300.0


def retry_delay(attempt: int, base_s: float = RETRY_BASE_S, cap_s: float = RETRY_CAP_S) -> float:
    """Seconds to wait before attempt ``attempt + 1`` after attempt ``attempt`` failed:
    exponential (base, 2 x base, 4 x base, ...), capped."""
    if attempt < 1:
        raise ValueError("attempts are counted from 1")
    return min(cap_s, base_s * 2 ** (attempt - 1))


INFRA_RETRY_CAP_S = 30.0


def infra_retry_delay(attempt: int, rng: random.Random | None = None) -> float:
    """Seconds before trying again after a service was unavailable: exponential from 1 s,
    capped at 30 s so work resumes soon after an outage ends, with +-20 % jitter so that the
    chunks of a fleet do not all return at the same moment."""
    delay = retry_delay(attempt, cap_s=INFRA_RETRY_CAP_S)
    return delay * (rng or random).uniform(0.8, 1.2)


def infra_backoff(failing_for_s: float, rng: random.Random | None = None) -> float:
    """The same backoff, from how long a service has been failing: about as long again (so
    the waits double), from 1 s up to 30 s, with the same jitter."""
    delay = min(INFRA_RETRY_CAP_S, max(RETRY_BASE_S, failing_for_s))
    return delay * (rng or random).uniform(0.8, 1.2)


def webhook_delay(attempt: int, base_s: float, cap_s: float, rng: random.Random | None = None) -> float:
    """Seconds before a webhook's next attempt after ``attempt`` failed: exponential from
    ``base_s``, capped, with full jitter in its upper half (receivers that failed together
    are not all called again at one moment)."""
    return retry_delay(attempt, base_s, cap_s) * (rng or random).uniform(0.5, 1.0)
