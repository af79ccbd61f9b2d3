"""/v1/tasks: submit, look up, list, cancel, retry. Thin routes over the job core."""

from __future__ import annotations

import base64
import binascii
import logging
from datetime import datetime
from typing import Any

import redis
from flask import Blueprint, Response, jsonify, request, url_for
from sqlalchemy import and_, or_, select

from api.auth import principal, protect
from api.problems import Problem
from api.quotas import admit_submission
from api.state import state
from api.submit import submit
from facefleet.cleanup import clean_up
from facefleet.db import Task
from facefleet.distributed import Services
from facefleet.jobs import cancel_task, delete_task, fail_task, get_task, retry_task, task_progress
from facefleet.states import TaskState

log = logging.getLogger(__name__)

tasks = Blueprint("tasks", __name__)
protect(tasks)

DEFAULT_PAGE = 50
MAX_PAGE = 200


@tasks.post("/tasks")
def create() -> tuple[Response, int, dict[str, str]]:
    api = state()
    svc = api.services
    tenant = principal().tenant
    admit_submission(svc, api.limiter, tenant)
    task, created = submit(svc, request.headers.get("Idempotency-Key"), tenant)
    if created:
        try:
            api.producer.plan(task.id)
        except Exception as exc:  # the broker is down: say so, and leave a retryable failed task
            log.error("cannot enqueue task %s: %s", task.id, exc)
            fail_task(svc.ctx, task.id, "the task could not be queued (broker unreachable); retry it")
            raise Problem(
                503, "the work queue is unreachable; the task was recorded as failed, retry it", id=task.id
            ) from None
    location = url_for("tasks.show", task_id=task.id)
    headers = {"Location": location}
    if not created:
        headers["Idempotent-Replayed"] = "true"
    return jsonify(id=task.id, state=task.state.value), 201 if created else 200, headers


@tasks.get("/tasks/<task_id>")
def show(task_id: str) -> Response:
    svc = state().services
    task = get_task(svc.ctx, task_id)
    body = _summary(task)
    progress = task_progress(svc.ctx, task_id)
    body["chunks"] = progress.pop("chunks")
    body["progress"] = progress
    if task.state == TaskState.SUCCEEDED and task.output_key:
        body["output_url"] = svc.storage.presign(task.output_key, svc.settings.presign_ttl_s)
    return jsonify(body)


@tasks.get("/tasks")
def index() -> Response:
    svc = state().services
    query = select(Task).where(Task.deleted_at.is_(None))
    caller = principal()
    if not caller.admin:
        query = query.where(Task.tenant == caller.tenant)
    elif wanted_tenant := request.args.get("tenant"):
        query = query.where(Task.tenant == wanted_tenant)
    if wanted := request.args.get("state"):
        try:
            query = query.where(Task.state.in_([TaskState(s) for s in wanted.split(",")]))
        except ValueError:
            raise Problem(400, f"state must be among {', '.join(s.value for s in TaskState)}") from None
    limit = _int_arg("limit", DEFAULT_PAGE, 1, MAX_PAGE)
    if cursor := request.args.get("cursor"):
        created, last_id = _decode_cursor(cursor)
        query = query.where(
            or_(Task.created_at < created, and_(Task.created_at == created, Task.id < last_id))
        )
    query = query.order_by(Task.created_at.desc(), Task.id.desc()).limit(limit + 1)
    with svc.sessions() as session:
        rows = list(session.scalars(query))
    page, more = rows[:limit], len(rows) > limit
    return jsonify(
        items=[_summary(t) for t in page],
        next_cursor=_encode_cursor(page[-1]) if more else None,
    )


@tasks.post("/tasks/<task_id>/cancel")
def cancel(task_id: str) -> Response:
    svc = state().services
    task = cancel_task(svc.ctx, task_id)
    _stop_holders(svc, task_id)
    clean_up(svc.ctx, task_id)  # at once if nothing runs; else the reaper, once the holders stopped
    return jsonify(_summary(task))


@tasks.delete("/tasks/<task_id>")
def remove(task_id: str) -> tuple[str, int]:
    """Delete a task in any state (a running one is cancelled first): every object and row
    of it goes (its usage stays counted); from now on it answers 404."""
    svc = state().services
    if delete_task(svc.ctx, task_id):
        _stop_holders(svc, task_id)
    clean_up(svc.ctx, task_id)
    return "", 204


def _stop_holders(svc: Services, task_id: str) -> None:
    try:
        svc.state.cancel_flags.set(task_id)  # running chunks stop at their next segment
    except redis.RedisError as exc:  # they also read the task's state between segments
        log.warning("cancel flag of task %s not set (%s)", task_id, exc)


@tasks.post("/tasks/<task_id>/retry")
def retry(task_id: str) -> tuple[Response, int]:
    api = state()
    svc = api.services
    plan = retry_task(svc.ctx, task_id)
    if plan.step == TaskState.QUEUED:
        api.producer.plan(task_id)
    elif plan.step == TaskState.STITCHING:
        api.producer.stitch(task_id)
    for index in plan.chunks:
        api.producer.chunk(task_id, index)
    return jsonify(_summary(get_task(svc.ctx, task_id))), 202


def _summary(task: Task) -> dict[str, Any]:
    return {
        "id": task.id,
        "tenant": task.tenant,
        "state": task.state.value,
        "target_name": task.target_name,
        "options": task.options,
        "frames_total": task.frames_total,
        "chunks_total": task.chunks_total,
        "error": task.error,
        "created_at": _iso(task.created_at),
        "updated_at": _iso(task.updated_at),
        "started_at": _iso(task.started_at),
        "finished_at": _iso(task.finished_at),
        "output_expired_at": _iso(task.output_expired_at),
    }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _int_arg(name: str, default: int, low: int, high: int) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise Problem(400, f"{name} must be an integer") from None
    if not low <= value <= high:
        raise Problem(400, f"{name} must be between {low} and {high}")
    return value


def _encode_cursor(task: Task) -> str:
    return base64.urlsafe_b64encode(f"{task.created_at.isoformat()}|{task.id}".encode()).decode()


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        created, task_id = base64.urlsafe_b64decode(cursor.encode()).decode().split("|", 1)
        return datetime.fromisoformat(created), task_id
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise Problem(400, "cursor is not one this API returned") from None
