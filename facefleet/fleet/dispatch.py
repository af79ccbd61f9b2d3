"""Dispatch from PostgreSQL: the chunks table is the queue of record, and the broker holds
only a window of released chunks, so what runs next is decided as late as possible.

The next chunk to release is the one of highest priority; among equals, of the tenant with
the least work running (then the one served longest ago, so two tenants with nothing
running alternate); then the oldest task, then the chunk's order. Candidates are read with
``FOR UPDATE SKIP LOCKED``: dispatchers running at the same moment never see, let alone
release, the same chunk. A release is a row update made in the caller's transaction; the
caller sends the messages before it commits, so a chunk is never marked released without a
message having been sent (a message without a committed release is a harmless duplicate).

A released chunk that nobody starts (its message was lost: a broker restart, a flush, a
send that never arrived) is released again; a chunk whose worker was lost, or whose attempt
failed, goes back to waiting and is released again by the same rules.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import and_, exists, func, or_, select, text, update
from sqlalchemy.orm import Session

from facefleet.records.db import Chunk, Task, Tenant, utcnow
from facefleet.records.states import ChunkState, TaskState

# only a running task's chunks are worked on (a row left behind by a task in another state,
# however it got there, must never hold a slot of the window)
_OF_RUNNING_TASK = exists().where(and_(Task.id == Chunk.task_id, Task.state == TaskState.RUNNING))
# running, or released and not yet started: what holds (or is about to hold) a worker
ACTIVE = and_(
    or_(
        Chunk.state == ChunkState.RUNNING,
        and_(Chunk.state == ChunkState.QUEUED, Chunk.released_at.is_not(None)),
    ),
    _OF_RUNNING_TASK,
)
RELEASED = and_(Chunk.state == ChunkState.QUEUED, Chunk.released_at.is_not(None), _OF_RUNNING_TASK)
WAITING = and_(Chunk.state == ChunkState.QUEUED, Chunk.released_at.is_(None))

# each tenant's first chunks in release order, locked; index ix_chunks_waiting serves it
_CANDIDATES = text(
    """
    SELECT c.id, c.task_id, c.index AS chunk_index, c.tenant, c.priority, c.submitted_at, t.served_at
    FROM tenants t CROSS JOIN LATERAL (
        SELECT id, task_id, index, tenant, priority, submitted_at FROM chunks
        WHERE chunks.tenant = t.name AND state = 'queued' AND released_at IS NULL
          AND (not_before IS NULL OR not_before <= :now)
          AND EXISTS (SELECT 1 FROM tasks WHERE tasks.id = chunks.task_id AND tasks.state = 'running')
        ORDER BY priority DESC, submitted_at, task_id, index
        LIMIT :per_tenant
        FOR UPDATE SKIP LOCKED
    ) c
    """
)


@dataclass(frozen=True)
class Released:
    task_id: str
    index: int
    tenant: str
    priority: int


def active_chunks(session: Session) -> dict[str, int]:
    """Chunks running or released, per tenant."""
    rows = session.execute(select(Chunk.tenant, func.count()).where(ACTIVE).group_by(Chunk.tenant)).all()
    return {tenant: int(count) for tenant, count in rows}


@dataclass(frozen=True)
class _Candidate:
    id: int
    task_id: str
    index: int
    tenant: str
    priority: int
    submitted_at: datetime


def release(session: Session, capacity: int, now: datetime | None = None) -> list[Released]:
    """Choose up to ``capacity`` waiting chunks and mark them released, in the caller's
    transaction (which sends their messages, then commits)."""
    if capacity <= 0:
        return []
    now = now or utcnow()
    floor = datetime.min.replace(tzinfo=UTC)
    load: defaultdict[str, int] = defaultdict(int, active_chunks(session))
    queues: dict[str, list[_Candidate]] = defaultdict(list)
    served: dict[str, datetime] = {}
    for row in session.execute(_CANDIDATES, {"now": now, "per_tenant": capacity}).mappings():
        queues[row["tenant"]].append(
            _Candidate(
                row["id"],
                row["task_id"],
                row["chunk_index"],
                row["tenant"],
                row["priority"],
                _aware(row["submitted_at"]) or floor,
            )
        )
        served[row["tenant"]] = _aware(row["served_at"]) or floor
    for queue in queues.values():
        queue.reverse()  # popped from the end, in release order

    def rank(tenant: str) -> tuple[int, int, datetime, datetime, str, int]:
        head = queues[tenant][-1]
        return (-head.priority, load[tenant], served[tenant], head.submitted_at, head.task_id, head.index)

    picked: list[_Candidate] = []
    while len(picked) < capacity and queues:
        tenant = min(queues, key=rank)
        picked.append(queues[tenant].pop())
        if not queues[tenant]:
            del queues[tenant]
        load[tenant] += 1
        served[tenant] = now + timedelta(microseconds=len(picked))  # served now: the others go first
    if picked:
        session.execute(update(Chunk).where(Chunk.id.in_([c.id for c in picked])).values(released_at=now))
        for tenant in {c.tenant for c in picked}:
            session.execute(update(Tenant).where(Tenant.name == tenant).values(served_at=served[tenant]))
    return [Released(c.task_id, c.index, c.tenant, c.priority) for c in picked]


def unstarted(session: Session, released_before: datetime, limit: int) -> list[tuple[str, int]]:
    """Released chunks nobody has started since ``released_before``, oldest first, locked
    (the caller releases them again: updates ``released_at`` and sends their messages)."""
    rows = session.execute(
        select(Chunk.id, Chunk.task_id, Chunk.index)
        .where(RELEASED, Chunk.released_at < released_before)
        .order_by(Chunk.released_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    if rows:
        session.execute(update(Chunk).where(Chunk.id.in_([r.id for r in rows])).values(released_at=utcnow()))
    return [(r.task_id, r[2]) for r in rows]  # r.index is the tuple's method


def count(session: Session, condition: object) -> int:
    return int(session.scalar(select(func.count()).select_from(Chunk).where(condition)) or 0)  # type: ignore[arg-type]


def _aware(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:  # raw SQL rows skip the column's type
        return value.replace(tzinfo=UTC)
    return value
