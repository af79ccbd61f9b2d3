"""A tenant's limits on submissions, checked before an upload is read: the rate (a moving
window in Redis, shared by every API process), how many tasks may wait, and the frames of
the month. A cheap early refusal only: uploads in flight pass it together, so the exact
check is ``facefleet.tenants.quotas.reserve``, made when the task's row is written."""

from __future__ import annotations

import logging
import math
import time

import redis
from limits import RateLimitItem, parse
from limits.storage import RedisStorage
from limits.strategies import MovingWindowRateLimiter

from api.problems import Problem
from facefleet.modes.distributed import Services
from facefleet.records.db import Tenant
from facefleet.tenants.quotas import QUEUE_FULL_RETRY_S
from facefleet.tenants.tenancy import WAITING_STATES, count_tasks, usage_this_month

log = logging.getLogger(__name__)


class SubmitLimiter:
    def __init__(self, redis_url: str, namespace: str) -> None:
        self._limiter = MovingWindowRateLimiter(RedisStorage(redis_url, socket_timeout=2))
        self._namespace = namespace
        self._items: dict[str, RateLimitItem] = {}

    def retry_after(self, tenant: str, rate: str) -> int | None:
        """Count one submission; None when it is within ``rate``, else the seconds until one is."""
        item = self._items.get(rate) or self._items.setdefault(rate, parse(rate))
        try:
            if self._limiter.hit(item, self._namespace, "submit", tenant):
                return None
            reset = self._limiter.get_window_stats(item, self._namespace, "submit", tenant).reset_time
        except (redis.RedisError, ConnectionError) as exc:  # rate limiting is not worth an outage
            log.warning("submit rate of %s not checked (%s)", tenant, exc)
            return None
        return max(1, math.ceil(reset - time.time()))


def admit_submission(svc: Services, limiter: SubmitLimiter, tenant_name: str) -> None:
    """Raise a problem (429 or 403) if the tenant may not submit now."""
    with svc.sessions() as session:
        tenant = session.get(Tenant, tenant_name)
        if tenant is None:
            raise Problem(403, f"tenant {tenant_name!r} does not exist", "forbidden")
        if tenant.monthly_frames is not None:
            used = usage_this_month(session, tenant_name).frames
            if used >= tenant.monthly_frames:
                raise Problem(
                    403,
                    f"the monthly quota of {tenant.monthly_frames} frames is used up ({used} this month)",
                    "quota-exceeded",
                    limit=tenant.monthly_frames,
                    used=used,
                )
        if tenant.max_queued is not None:
            waiting = count_tasks(session, tenant_name, WAITING_STATES)
            if waiting >= tenant.max_queued:
                raise Problem(
                    429,
                    f"{waiting} tasks are waiting, the most this tenant may have queued; submit again later",
                    "too-many-queued",
                    headers={"Retry-After": str(QUEUE_FULL_RETRY_S)},
                    limit=tenant.max_queued,
                )
        rate = tenant.submit_rate
    if rate and (wait := limiter.retry_after(tenant_name, rate)) is not None:
        raise Problem(
            429,
            f"more than {rate} submissions; submit again in {wait} s",
            "rate-limited",
            headers={"Retry-After": str(wait)},
            limit=rate,
        )
