"""Batches: many submissions through the one submission pipeline, grouped by a row.

A batch's items are ordinary tasks (``tasks.batch_id``): the dispatcher, the quotas and the
workers know nothing of batches. Items are independent: an item the submission refuses (a
file that is no video, a media limit, a quota) becomes a failed task with the reason, and the
next item goes on. Cancel, retry and delete act on the items they apply to; the batch's own
``batch_completed`` event is written by ``facefleet.events.outbox`` with its last item's end.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from facefleet.config.context import JobContext
from facefleet.config.errors import (
    BatchNotFound,
    InvalidSubmission,
    InvalidTransition,
    MediaRefused,
    ModelsMissing,
    QuotaRefused,
    TaskNotFound,
)
from facefleet.config.options import JobOptions, OptionsError
from facefleet.egress import EgressRefused
from facefleet.events.outbox import batch_view, complete_if_done
from facefleet.records.db import Task, new_id, utcnow
from facefleet.records.event_tables import Batch
from facefleet.records.states import TaskState
from facefleet.task.jobs import cancel_task, delete_task, move_task, retry_task
from facefleet.task.quality import batch_quality

MAX_ITEMS = 1000
# what refuses one item (and fails it with the reason), not the whole batch
ITEM_REFUSALS = (MediaRefused, InvalidSubmission, OptionsError, EgressRefused, QuotaRefused, ModelsMissing)


@dataclass
class Item:
    task_id: str
    name: str | None
    created: bool = True
    error: str | None = None


@dataclass
class Outcome:
    batch: Batch
    created: bool
    items: list[Item] = field(default_factory=list)


def open_batch(ctx: JobContext, tenant: str, options: JobOptions, idempotency_key: str | None) -> Outcome:
    """The batch's row (before its items: they name it), or the batch an Idempotency-Key
    already names (``created`` False)."""
    key = f"{tenant}:{idempotency_key}" if idempotency_key else None
    if key and (found := _by_key(ctx, key)):
        return Outcome(found, False)
    batch = Batch(
        id=new_id(),
        tenant=tenant,
        idempotency_key=key,
        options=options.model_dump(mode="json", exclude_none=True),
        items=0,
    )
    try:
        with ctx.sessions.begin() as session:
            session.add(batch)
    except IntegrityError:
        if key is None:
            raise
        winner = _by_key(ctx, key)
        assert winner is not None
        return Outcome(winner, False)
    return Outcome(batch, True)


def _by_key(ctx: JobContext, key: str) -> Batch | None:
    with ctx.sessions() as session:
        found: Batch | None = session.scalar(select(Batch).where(Batch.idempotency_key == key))
        return found


def add_item(ctx: JobContext, outcome: Outcome, name: str | None, submit_item: Callable[[], Task]) -> Item:
    """One item through ``submit_item`` (the submission pipeline); a refusal of this item
    becomes a failed task with the reason."""
    if len(outcome.items) >= MAX_ITEMS:
        raise InvalidSubmission(f"a batch may hold at most {MAX_ITEMS} items")
    try:
        task = submit_item()
        item = Item(task.id, name)
    except ITEM_REFUSALS as exc:
        item = Item(_refused_item(ctx, outcome.batch, name, str(exc)), name, error=str(exc))
    outcome.items.append(item)
    with ctx.sessions.begin() as session:
        session.execute(update(Batch).where(Batch.id == outcome.batch.id).values(items=Batch.items + 1))
    return item


def seal(ctx: JobContext, batch_id: str) -> None:
    """Every item is in: from now on the last item's end completes the batch (now, if every
    item has ended already)."""
    with ctx.sessions.begin() as session:
        session.execute(update(Batch).where(Batch.id == batch_id).values(sealed_at=utcnow()))
        complete_if_done(session, batch_id)


def _refused_item(ctx: JobContext, batch: Batch, name: str | None, reason: str) -> str:
    """A failed task for an item the submission refused: the batch's counts and events see it."""
    task_id = new_id()
    now = utcnow()
    with ctx.sessions.begin() as session:
        session.add(
            Task(
                id=task_id,
                tenant=batch.tenant,
                state=TaskState.QUEUED,
                options=batch.options,
                target_key="",
                target_name=name,
                batch_id=batch.id,
                created_at=now,
                inputs_expired_at=now,  # nothing was kept: it cannot be retried
            )
        )
        session.flush()
        move_task(session, task_id, TaskState.FAILED, error=reason, reason="refused", finished_at=now)
    return task_id


def get_batch(ctx: JobContext, batch_id: str, tenant: str | None) -> Batch:
    """The batch (``tenant`` None: any tenant's, for admin keys)."""
    with ctx.read_sessions() as session:
        batch = session.get(Batch, batch_id)
    if batch is None or batch.deleted_at is not None or (tenant is not None and batch.tenant != tenant):
        raise BatchNotFound(batch_id)
    return batch


def show_batch(ctx: JobContext, batch: Batch) -> dict[str, Any]:
    """The batch as the API shows it, with its items' quality summarised as one."""
    with ctx.read_sessions() as session:
        view = batch_view(session, batch)
    view["quality"] = batch_quality(ctx, item_ids(ctx, batch.id))
    return view


def item_ids(ctx: JobContext, batch_id: str, states: tuple[TaskState, ...] | None = None) -> list[str]:
    query = select(Task.id).where(Task.batch_id == batch_id, Task.deleted_at.is_(None))
    if states is not None:
        query = query.where(Task.state.in_(states))
    with ctx.read_sessions() as session:
        return list(session.scalars(query.order_by(Task.created_at, Task.id)))


def cancel_items(ctx: JobContext, batch_id: str) -> list[str]:
    """Cancel the unfinished items; returns those cancelled."""
    unfinished = (TaskState.QUEUED, TaskState.PLANNING, TaskState.RUNNING, TaskState.STITCHING)
    return list(_each(item_ids(ctx, batch_id, unfinished), lambda task_id: cancel_task(ctx, task_id)))


def retry_items(ctx: JobContext, batch_id: str) -> list[tuple[str, Any]]:
    """Retry the failed items that can be; returns (task id, its retry plan) of each."""
    retried = []
    for task_id in item_ids(ctx, batch_id, (TaskState.FAILED,)):
        try:
            retried.append((task_id, retry_task(ctx, task_id)))
        except InvalidTransition:  # refused at submission, inputs gone, or changed meanwhile
            continue
    if retried:
        with ctx.sessions.begin() as session:  # it has unfinished items again
            session.execute(update(Batch).where(Batch.id == batch_id).values(completed_at=None))
    return retried


def delete_batch(ctx: JobContext, batch_id: str) -> list[tuple[str, bool]]:
    """Delete every item (as DELETE of each task does) and the batch; returns (task id,
    whether it was running)."""
    deleted = list(_each(item_ids(ctx, batch_id), lambda task_id: (task_id, delete_task(ctx, task_id))))
    with ctx.sessions.begin() as session:
        session.execute(
            update(Batch).where(Batch.id == batch_id).values(deleted_at=utcnow(), idempotency_key=None)
        )
    return deleted


def _each(task_ids: list[str], act: Callable[[str], Any]) -> Iterator[Any]:
    for task_id in task_ids:
        try:
            result = act(task_id)
        except (InvalidTransition, TaskNotFound):  # ended or went meanwhile
            continue
        yield task_id if not isinstance(result, tuple) else result


def tenant_batches(
    ctx: JobContext, tenant: str | None, cursor: tuple[Any, str] | None, limit: int
) -> list[Batch]:
    query = select(Batch).where(Batch.deleted_at.is_(None))
    if tenant is not None:
        query = query.where(Batch.tenant == tenant)
    if cursor is not None:
        created, last_id = cursor
        query = query.where(
            (Batch.created_at < created) | ((Batch.created_at == created) & (Batch.id < last_id))
        )
    with ctx.read_sessions() as session:
        return list(
            session.scalars(query.order_by(Batch.created_at.desc(), Batch.id.desc()).limit(limit + 1))
        )
