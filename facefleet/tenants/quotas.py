"""A tenant's quotas, reserved atomically with the submission they admit.

The API checks them early too (before reading an upload, to refuse cheaply), but only this
check is exact: it runs in the transaction that writes the task's row, with the tenant's row
locked, so concurrent submissions of one tenant count each other (PostgreSQL; SQLite
serialises writers anyway). A task's frames count against ``monthly_frames`` from the moment
it is accepted: what the month used so far, plus what the tenant's unfinished tasks have yet
to process, plus this task's probed (and trimmed) frames. A task that ends stops reserving;
its usage is then the frames its chunks really stored.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from facefleet.config.errors import QuotaRefused
from facefleet.records.db import Task, Tenant
from facefleet.records.states import TaskState
from facefleet.tenants.tenancy import WAITING_STATES, count_tasks, usage_this_month

QUEUE_FULL_RETRY_S = 30  # the Retry-After of a full queue: waiting tasks take a while to start
UNFINISHED_STATES = (TaskState.QUEUED, TaskState.PLANNING, TaskState.RUNNING, TaskState.STITCHING)


def reserve(session: Session, tenant_name: str, frames: int) -> None:
    """Admit one more task of ``frames`` for the tenant, or raise QuotaRefused; in the
    caller's transaction, which then writes the row."""
    # FOR NO KEY UPDATE: reservations of one tenant queue behind each other, while the key
    # checks of the tenant's task rows (FOR KEY SHARE, PostgreSQL's foreign keys) never wait on it
    tenant = session.scalar(select(Tenant).where(Tenant.name == tenant_name).with_for_update(key_share=True))
    if tenant is None:
        return  # the API refuses unknown tenants before; the embedded mode has its default
    if tenant.max_queued is not None:
        waiting = count_tasks(session, tenant_name, WAITING_STATES)
        if waiting >= tenant.max_queued:
            raise QuotaRefused(
                f"{waiting} tasks are waiting, the most this tenant may have queued; submit again later",
                "too-many-queued",
                limit=tenant.max_queued,
            )
    if tenant.monthly_frames is not None:
        committed = usage_this_month(session, tenant_name).frames + _frames_to_come(session, tenant_name)
        left = max(0, tenant.monthly_frames - committed)
        if frames > left:
            raise QuotaRefused(
                f"this task needs {frames} frames and {left} of the monthly quota of "
                f"{tenant.monthly_frames} are left ({committed} used or reserved by unfinished tasks)",
                "quota-exceeded",
                limit=tenant.monthly_frames,
                used=committed,
                left=left,
                needed=frames,
            )


def _frames_to_come(session: Session, tenant: str) -> int:
    """Frames the tenant's unfinished tasks have yet to store (their reservation)."""
    remaining = func.greatest(func.coalesce(Task.frames_total, 0) - Task.frames_processed, 0)
    if session.get_bind().dialect.name == "sqlite":
        remaining = func.max(func.coalesce(Task.frames_total, 0) - Task.frames_processed, 0)
    query = select(func.coalesce(func.sum(remaining), 0)).where(
        Task.tenant == tenant, Task.state.in_(UNFINISHED_STATES), Task.deleted_at.is_(None)
    )
    return int(session.scalar(query) or 0)
