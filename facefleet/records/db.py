"""Tables for tasks and chunks (SQLAlchemy 2). The same models serve SQLite and PostgreSQL."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    event,
    text,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship

from facefleet.records.states import ChunkState, TaskState


def utcnow() -> datetime:
    return datetime.now(UTC)


_AFTER_COMMIT = "facefleet.after_commit"


def after_commit(session: Session, action: Callable[[], None]) -> None:
    """Run ``action`` once the session's transaction has committed; never if it rolls back
    (a metric or a log line of a change that did not happen would be wrong)."""
    session.info.setdefault(_AFTER_COMMIT, []).append(action)


@event.listens_for(Session, "after_commit")
def _run_after_commit(session: Session) -> None:
    for action in session.info.pop(_AFTER_COMMIT, []):
        try:
            action()
        except Exception:  # the change is committed: a failing report must not undo the caller
            logging.getLogger(__name__).exception("after-commit action failed")


@event.listens_for(Session, "after_rollback")
def _drop_after_commit(session: Session) -> None:
    session.info.pop(_AFTER_COMMIT, None)


def new_id() -> str:
    return uuid.uuid4().hex


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC timestamps on every backend (SQLite hands back naive ones)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


_task_state = Enum(TaskState, name="task_state", values_callable=lambda e: [m.value for m in e])
_chunk_state = Enum(ChunkState, name="chunk_state", values_callable=lambda e: [m.value for m in e])


class Tenant(Base):
    """A customer: owns tasks, keys and usage; its limits are enforced by the API and the planner."""

    __tablename__ = "tenants"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    submit_rate: Mapped[str | None] = mapped_column(String(32))  # "10/minute"
    max_queued: Mapped[int | None] = mapped_column(Integer)
    max_running: Mapped[int | None] = mapped_column(Integer)
    monthly_frames: Mapped[int | None] = mapped_column(BigInteger)
    # "bucket/prefix" entries its s3:// inputs must fall under (None or empty: no s3:// inputs)
    s3_allow: Mapped[list[Any] | None] = mapped_column(JSON)
    webhook_secret: Mapped[str] = mapped_column(String(100))
    # the secret before the last rotation, still signed with until webhook_secret_previous_until
    webhook_secret_previous: Mapped[str | None] = mapped_column(String(100))
    webhook_secret_previous_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # when the dispatcher last released one of its chunks (fair share: who waited longest)
    served_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class ApiKey(Base):
    """An API key; only a hash of its secret is stored."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(16), primary_key=True)  # the key's public part
    tenant: Mapped[str] = mapped_column(ForeignKey("tenants.name"), index=True)
    secret_hash: Mapped[str] = mapped_column(String(64))
    label: Mapped[str | None] = mapped_column(String(200))
    admin: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Task(Base):
    __tablename__ = "tasks"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant: Mapped[str] = mapped_column(
        ForeignKey("tenants.name"), default="default", server_default="default"
    )
    state: Mapped[TaskState] = mapped_column(_task_state, default=TaskState.QUEUED, index=True)
    options: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    idempotency_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    priority: Mapped[int] = mapped_column(Integer, default=5)
    # inputs and outputs, as keys in the bucket
    target_key: Mapped[str] = mapped_column(String(500))
    target_name: Mapped[str | None] = mapped_column(String(500))
    source_keys: Mapped[list[Any]] = mapped_column(JSON, default=list)
    reference_key: Mapped[str | None] = mapped_column(String(500))
    output_key: Mapped[str | None] = mapped_column(String(500))
    # what the output says it is: {"watermark": bool}, then at the stitch
    # {"signed": bool, "c2pa": why not signed, "manifest": its label}
    provenance: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # plan
    probe: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    frame_start: Mapped[int | None] = mapped_column(Integer)
    frame_end: Mapped[int | None] = mapped_column(Integer)
    frames_total: Mapped[int | None] = mapped_column(Integer)
    chunks_total: Mapped[int | None] = mapped_column(Integer)
    # outcome
    error: Mapped[str | None] = mapped_column(Text)
    reason: Mapped[str | None] = mapped_column(String(32))  # a failure's class: deadline, expired, ...
    attempts: Mapped[int] = mapped_column(Integer, default=0)  # retries by its user
    # since when its planning or stitching attempt fails for infrastructure reasons (None: it
    # does not); cleared when that step ends and on a retry
    infra_failing_since: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # deadline_s and queue_ttl_s, as times: failed with reason deadline / expired once past
    deadline_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    queue_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # usage, for accounting
    frames_processed: Mapped[int] = mapped_column(BigInteger, default=0)
    worker_seconds: Mapped[float] = mapped_column(Float, default=0.0)
    bytes_in: Mapped[int] = mapped_column(BigInteger, default=0)
    bytes_out: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # files still to remove (a Cleanup value), recorded with the state change that calls for
    # it and cleared by whoever removed them; the reaper retries until the bucket agrees
    cleanup: Mapped[str | None] = mapped_column(String(16))
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())  # DELETE: gone for users
    output_expired_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # the quality gate's figures of the whole task (pipeline.quality.Figures), written at the stitch
    quality: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
    # the content policy's verdict on the sampled input frames, written at the stitch:
    # {"flagged", "score" (the highest), "samples"} (None: the policy was off)
    content_policy: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
    inputs_expired_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    batch_id: Mapped[str | None] = mapped_column(String(32), index=True)  # the batch it is an item of
    # when its last ``progress`` webhook event was written (at most one per PROGRESS_EVERY_S)
    progress_event_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    chunks: Mapped[list[Chunk]] = relationship(
        back_populates="task", cascade="all, delete-orphan", order_by="Chunk.index"
    )

    __table_args__ = (
        Index("ix_tasks_created", "created_at", "id"),
        Index("ix_tasks_tenant_created", "tenant", "created_at", "id"),
        Index("ix_tasks_tenant_state", "tenant", "state", "created_at", "id"),
        Index(
            "ix_tasks_finished", "finished_at"
        ),  # what ended in a window (facefleet/observability/stats.py)
        Index("ix_tasks_cleanup", "cleanup", postgresql_where=text("cleanup IS NOT NULL")),
        Index(
            "ix_tasks_deadlines",
            "state",
            postgresql_where=text("deadline_at IS NOT NULL OR queue_expires_at IS NOT NULL"),
        ),
    )


class Chunk(Base):
    __tablename__ = "chunks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    task_id: Mapped[str] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"), index=True)
    index: Mapped[int] = mapped_column(Integer)
    frame_start: Mapped[int] = mapped_column(Integer)
    frame_end: Mapped[int] = mapped_column(Integer)  # exclusive
    segments_total: Mapped[int] = mapped_column(Integer)
    state: Mapped[ChunkState] = mapped_column(_chunk_state, default=ChunkState.QUEUED, index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    worker: Mapped[str | None] = mapped_column(String(200))
    frames_done: Mapped[int] = mapped_column(Integer, default=0)
    segments_done: Mapped[int] = mapped_column(Integer, default=0)
    # times its worker was lost (killed, out of memory, preempted): a budget of its own
    lost: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # frames of its stored segments counted in usage so far (the chunk's finish counts the rest)
    frames_accounted: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # since when its attempts fail for infrastructure reasons (None: they do not)
    infra_failing_since: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # fencing: the token of the lease its running attempt started under; ending the attempt
    # requires it, and the reaper's take-over clears it (a lost holder can then end nothing)
    lease_token: Mapped[str | None] = mapped_column(String(64))
    # dispatch: PostgreSQL is the queue of record; a queued chunk waits here until the
    # dispatcher releases it to the broker (released_at), not before not_before (a retry's
    # backoff); priority, tenant and submitted_at are the task's, copied for one index
    released_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    not_before: Mapped[datetime | None] = mapped_column(UTCDateTime())
    priority: Mapped[int] = mapped_column(Integer, default=5, server_default="5")
    tenant: Mapped[str] = mapped_column(String(64), default="default", server_default="default")
    submitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    error: Mapped[str | None] = mapped_column(Text)
    # the quality gate's figures of its stored segments: {"segments": {index: Figures JSON}}
    quality: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
    # the content policy's scores of its stored segments: {"segments": {index: Screening JSON}}
    content_policy: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    task: Mapped[Task] = relationship(back_populates="chunks")

    __table_args__ = (
        UniqueConstraint("task_id", "index", name="uq_chunks_task_index"),
        Index(
            "ix_chunks_finished", "finished_at"
        ),  # what ended in a window (facefleet/observability/stats.py)
        # the waiting chunks of a tenant, in the order they are released
        Index(
            "ix_chunks_waiting",
            "tenant",
            text("priority DESC"),
            "submitted_at",
            "task_id",
            "index",
            postgresql_where=text("state = 'queued' AND released_at IS NULL"),
        ),
        # what each tenant has running or released (fair share, the window)
        Index(
            "ix_chunks_active",
            "tenant",
            postgresql_where=text("state = 'running' OR (state = 'queued' AND released_at IS NOT NULL)"),
        ),
    )

    @property
    def frame_count(self) -> int:
        return self.frame_end - self.frame_start


class PendingUpload(Base):
    """A submission storing its inputs under ``prefix`` before its task row exists: recorded
    before the first byte is stored, removed once the row commits (or the refusal's files are
    gone). The reaper removes prefixes with neither a row nor a pending upload younger than
    the grace period (an API killed mid-upload)."""

    __tablename__ = "pending_uploads"

    task_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    prefix: Mapped[str] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)


class Usage(Base):
    """Work done, summed per tenant and calendar month (UTC). Kept when tasks are deleted."""

    __tablename__ = "usage"

    tenant: Mapped[str] = mapped_column(ForeignKey("tenants.name"), primary_key=True, default="default")
    month: Mapped[str] = mapped_column(String(7), primary_key=True)  # "2026-12"
    tasks: Mapped[int] = mapped_column(BigInteger, default=0)
    frames: Mapped[int] = mapped_column(BigInteger, default=0)
    worker_seconds: Mapped[float] = mapped_column(Float, default=0.0)
    bytes_in: Mapped[int] = mapped_column(BigInteger, default=0)
    bytes_out: Mapped[int] = mapped_column(BigInteger, default=0)


USAGE_FIELDS = ("tasks", "frames", "worker_seconds", "bytes_in", "bytes_out")


def add_usage(session: Session, tenant: str = "default", **amounts: float) -> None:
    """Add to this month's usage row (an upsert, so concurrent writers never lose a count)."""
    unknown = set(amounts) - set(USAGE_FIELDS)
    if unknown:
        raise ValueError(f"unknown usage fields: {sorted(unknown)}")
    month = utcnow().strftime("%Y-%m")
    values = {"tenant": tenant, "month": month, **{f: 0 for f in USAGE_FIELDS}, **amounts}
    insert = sqlite_insert if session.get_bind().dialect.name == "sqlite" else pg_insert
    statement = insert(Usage).values(**values)
    session.execute(
        statement.on_conflict_do_update(
            index_elements=["tenant", "month"],
            set_={f: getattr(Usage, f) + statement.excluded[f] for f in amounts},
        )
    )
