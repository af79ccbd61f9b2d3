"""Admission control: when the backlog would keep the ready workers busy longer than
FACEFLEET_ADMISSION_HORIZON_S, submissions below FACEFLEET_ADMISSION_MIN_PRIORITY are
refused (429) with a Retry-After from the measured throughput; higher priorities still go
in. The backlog and the fleet's figures are read at most once a second per process."""

from __future__ import annotations

import logging
import math
import threading
import time

import redis
from sqlalchemy.exc import SQLAlchemyError

from api.problems import Problem
from facefleet.fleet.standing import Fleet, backlog_frames
from facefleet.modes.distributed import Services

log = logging.getLogger(__name__)

CACHE_S = 1.0
NO_WORKERS_RETRY_S = 30


class Admission:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._read_at = -math.inf
        self._backlog = 0
        self._fleet = Fleet(0, None)

    def figures(self, svc: Services) -> tuple[int, Fleet]:
        """(frames in the backlog, the fleet), at most CACHE_S old."""
        with self._lock:
            if time.monotonic() - self._read_at > CACHE_S:
                with svc.ctx.read_sessions() as session:
                    self._backlog = backlog_frames(session)
                self._fleet = fleet(svc)
                self._read_at = time.monotonic()
            return self._backlog, self._fleet

    def check(self, svc: Services, priority: int) -> None:
        """Raise 429 when a task of ``priority`` may not be admitted now."""
        settings = svc.settings
        horizon = settings.admission_horizon_s
        if horizon is None or priority >= settings.admission_min_priority:
            return
        try:
            backlog, workers = self.figures(svc)
        except SQLAlchemyError as exc:  # admission is not worth an outage
            log.warning("admission not checked (%s)", type(exc).__name__)
            return
        fps = workers.fps(settings.admission_nominal_fps)
        if fps is None:
            wait = NO_WORKERS_RETRY_S
            detail = "no worker is ready to take this work"
        else:
            busy_s = backlog / fps
            if busy_s <= horizon:
                return
            wait = max(1, math.ceil(busy_s - horizon))
            detail = (
                f"the queue holds about {busy_s:.0f} s of work, more than the {horizon:g} s admitted below "
                f"priority {settings.admission_min_priority}; submit again in {wait} s or with a higher priority"
            )
        raise Problem(429, detail, "over-capacity", headers={"Retry-After": str(wait)}, retry_after_s=wait)


def fleet(svc: Services) -> Fleet:
    """The workers' figures; an unreachable Redis knows of none (no ETA, rather than an error)."""
    try:
        return Fleet(svc.state.worker_slots(), svc.state.fps_per_slot())
    except redis.RedisError:
        return Fleet(0, None)
