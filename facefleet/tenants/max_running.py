"""A tenant's ``max_running``: whether one of its queued tasks may start now (planning asks),
and which waiting tasks have room (the reaper releases them). Not the API's admission
control (``api.admission``), which refuses submissions while the fleet's backlog is long."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from facefleet.config.context import JobContext
from facefleet.records.db import Task, Tenant
from facefleet.records.states import TaskState
from facefleet.tenants.tenancy import ACTIVE_STATES, count_tasks


def admitted(session: Session, task: Task) -> bool:
    """Whether the task's tenant may start one more task (``max_running``). The tenant's row
    is locked first, so two planners of one tenant decide one after the other. FOR NO KEY
    UPDATE, not FOR UPDATE: a transaction that writes one of the tenant's task rows twice (a
    DELETE: cancelled, then marked deleted) takes FOR KEY SHARE on the tenant for its foreign
    key; under FOR UPDATE it waited for the planner while the planner waited for its task row,
    a deadlock PostgreSQL broke by failing the DELETE with a 503."""
    tenant = session.get(Tenant, task.tenant, with_for_update={"key_share": True})
    if tenant is None or tenant.max_running is None:
        return True
    active = session.scalar(
        select(func.count())
        .select_from(Task)
        .where(Task.tenant == task.tenant, Task.state.in_(ACTIVE_STATES), Task.id != task.id)
    )
    return int(active or 0) < tenant.max_running


def waiting_for_capacity(ctx: JobContext, limit: int = 100) -> list[str]:
    """Queued tasks of tenants with a ``max_running`` that now have room, in the order they
    should start (priority, then age), at most as many per tenant as it has room for."""
    with ctx.sessions() as session:
        tenants = session.execute(
            select(Tenant.name, Tenant.max_running).where(Tenant.max_running.is_not(None))
        ).all()
        ready: list[str] = []
        for name, max_running in tenants:
            active = count_tasks(session, name, ACTIVE_STATES)
            room = max(0, max_running - active)
            if room:
                ready.extend(
                    session.scalars(
                        select(Task.id)
                        .where(Task.tenant == name, Task.state == TaskState.QUEUED, Task.deleted_at.is_(None))
                        .order_by(Task.priority.desc(), Task.created_at)
                        .limit(min(room, limit))
                    )
                )
    return ready
