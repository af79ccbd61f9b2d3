"""Service-level figures over a recent window, read from the tasks and chunks tables (what
``GET /v1/stats`` and ``facefleet sla`` report):

- tasks that ended in the window, by outcome; the success ratio is succeeded over succeeded
  and failed (a cancellation is the user's choice, not a failure of the service);
- turnaround: submission to success, of the tasks that succeeded in the window;
- per-frame latency: for each chunk that succeeded in the window, its wall time (first start
  to finish, so retries count) over its frames; frames processed are those chunks' frames;
- worker utilisation: the chunk-seconds run inside the window over (chunk slots x window),
  with the slots the workers announce now.

Every query is bounded by an indexed ``finished_at`` range (running chunks by their state).
PostgreSQL computes the percentiles (``percentile_cont``); on SQLite (embedded mode) the same
interpolation is done here over the window's values.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Float, and_, case, func, literal, or_, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from facefleet.records.db import Chunk, Task, UTCDateTime, utcnow
from facefleet.records.states import ChunkState, TaskState

_WINDOW = re.compile(r"^([1-9][0-9]{0,4})([mhd])$")
_UNIT_S = {"m": 60, "h": 3600, "d": 86400}
MIN_WINDOW = timedelta(minutes=1)
MAX_WINDOW = timedelta(days=30)
QUANTILES = (0.5, 0.95, 0.99)
OUTCOMES = (TaskState.SUCCEEDED, TaskState.FAILED, TaskState.CANCELLED)


class WindowError(ValueError):
    """A window that is not a count of minutes, hours or days within the bounds."""


def parse_window(text: str) -> timedelta:
    """``15m``, ``1h``, ``24h``, ``7d``: from one minute to 30 days."""
    match = _WINDOW.match(text.strip())
    if match is None:
        raise WindowError(f"window {text!r} is not a whole number of minutes, hours or days (15m, 1h, 7d)")
    length = timedelta(seconds=int(match[1]) * _UNIT_S[match[2]])
    if not MIN_WINDOW <= length <= MAX_WINDOW:
        raise WindowError(f"window {text!r} is out of bounds: from 1m to 30d")
    return length


class _Seconds(FunctionElement[float]):
    """Seconds from the second timestamp to the first, on PostgreSQL and SQLite."""

    type = Float()
    name = "seconds_between"
    inherit_cache = True


@compiles(_Seconds)
def _seconds_postgresql(element: _Seconds, compiler: SQLCompiler, **kw: Any) -> str:
    end, start = (compiler.process(arg, **kw) for arg in element.clauses)
    return f"CAST(EXTRACT(EPOCH FROM ({end} - {start})) AS DOUBLE PRECISION)"


@compiles(_Seconds, "sqlite")
def _seconds_sqlite(element: _Seconds, compiler: SQLCompiler, **kw: Any) -> str:
    end, start = (compiler.process(arg, **kw) for arg in element.clauses)
    return f"((julianday({end}) - julianday({start})) * 86400.0)"


@dataclass(frozen=True)
class Percentiles:
    p50: float | None
    p95: float | None
    p99: float | None


@dataclass(frozen=True)
class Stats:
    window: timedelta
    until: datetime
    tenant: str | None
    tasks: dict[str, int]  # by outcome
    turnaround_seconds: Percentiles
    frame_latency_seconds: Percentiles
    frames_processed: int
    busy_chunk_seconds: float
    worker_slots: int | None  # None: unknown (Redis unreachable)

    @property
    def success_ratio(self) -> float | None:
        judged = self.tasks[TaskState.SUCCEEDED] + self.tasks[TaskState.FAILED]
        return self.tasks[TaskState.SUCCEEDED] / judged if judged else None

    @property
    def worker_utilisation(self) -> float | None:
        if not self.worker_slots:
            return None
        return self.busy_chunk_seconds / (self.worker_slots * self.window.total_seconds())

    def as_json(self) -> dict[str, Any]:
        return {
            "window_s": int(self.window.total_seconds()),
            "since": (self.until - self.window).isoformat(),
            "until": self.until.isoformat(),
            "tenant": self.tenant,
            "tasks": {**self.tasks, "total": sum(self.tasks.values())},
            "success_ratio": self.success_ratio,
            "turnaround_seconds": vars(self.turnaround_seconds),
            "frame_latency_seconds": vars(self.frame_latency_seconds),
            "frames_processed": self.frames_processed,
            "busy_chunk_seconds": self.busy_chunk_seconds,
            "worker_slots": self.worker_slots,
            "worker_utilisation": self.worker_utilisation,
        }


def compute(
    session: Session,
    window: timedelta,
    worker_slots: int | None,
    tenant: str | None = None,
    now: datetime | None = None,
) -> Stats:
    """The figures of the ``window`` ending ``now``, of one tenant's work or of all."""
    until = now or utcnow()
    since = until - window
    in_window = [Task.finished_at > since, Task.finished_at <= until]
    done = [Chunk.state == ChunkState.SUCCEEDED, Chunk.finished_at > since, Chunk.finished_at <= until]
    if tenant is not None:
        in_window.append(Task.tenant == tenant)
        done.append(Chunk.tenant == tenant)
    ended = select(Task.state, func.count()).where(*in_window, Task.state.in_(OUTCOMES)).group_by(Task.state)
    counts = dict(session.execute(ended).all())
    frames = Chunk.frame_end - Chunk.frame_start
    succeeded = [*in_window, Task.state == TaskState.SUCCEEDED]
    done_started = [*done, Chunk.started_at.is_not(None)]
    return Stats(
        window=window,
        until=until,
        tenant=tenant,
        tasks={state.value: counts.get(state, 0) for state in OUTCOMES},
        turnaround_seconds=_percentiles(session, _Seconds(Task.finished_at, Task.created_at), succeeded),
        frame_latency_seconds=_percentiles(
            session, _Seconds(Chunk.finished_at, Chunk.started_at) / frames, done_started
        ),
        frames_processed=int(session.scalar(select(func.coalesce(func.sum(frames), 0)).where(*done)) or 0),
        busy_chunk_seconds=_busy_seconds(session, since, until, tenant),
        worker_slots=worker_slots,
    )


def _busy_seconds(session: Session, since: datetime, until: datetime, tenant: str | None) -> float:
    """Chunk-seconds run inside [since, until]: each chunk's span clipped to the window."""
    start_at, end_at = literal(since, UTCDateTime()), literal(until, UTCDateTime())
    start = case((Chunk.started_at < start_at, start_at), else_=Chunk.started_at)
    end = case(
        (Chunk.state == ChunkState.RUNNING, end_at),
        (Chunk.finished_at > end_at, end_at),
        else_=Chunk.finished_at,
    )
    where: list[ColumnElement[bool]] = [
        Chunk.started_at.is_not(None),
        Chunk.started_at < end_at,
        or_(Chunk.finished_at > start_at, Chunk.state == ChunkState.RUNNING),
    ]
    if tenant is not None:
        where.append(Chunk.tenant == tenant)
    span = _Seconds(end, start)
    total = session.scalar(select(func.coalesce(func.sum(span), 0.0)).where(and_(*where), span > 0))
    return float(total or 0.0)


def _percentiles(session: Session, value: ColumnElement[float], where: list[Any]) -> Percentiles:
    if session.get_bind().dialect.name == "postgresql":
        row = session.execute(
            select(*(func.percentile_cont(q).within_group(value) for q in QUANTILES)).where(*where)
        ).one()
        return Percentiles(*(None if v is None else float(v) for v in row))
    values = sorted(float(v) for v in session.scalars(select(value).where(*where)))
    return Percentiles(*(_interpolate(values, q) for q in QUANTILES))


def _interpolate(ordered: list[float], q: float) -> float | None:
    """``percentile_cont``: linear interpolation between the two nearest ranks."""
    if not ordered:
        return None
    position = q * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)
