"""/v1/tasks: submit, look up, list, cancel, retry, delete. Thin routes over the job core.

(No ``from __future__ import annotations`` here: flask-openapi3 reads the views' parameter
types at import time to validate requests and document them.)"""

import base64
import binascii
import logging
import re
from datetime import datetime
from typing import Any

import redis
from flask import Response, current_app, jsonify, request, url_for
from flask_openapi3 import APIBlueprint, Tag
from sqlalchemy import and_, or_, select

from api.admission import fleet
from api.auth import principal, protect, scoped_task
from api.conditional import conditional_json
from api.problems import Problem
from api.quotas import admit_submission
from api.schemas import (
    Created,
    ListQuery,
    TaskPage,
    TaskPath,
    TaskStatus,
    TaskSummary,
    problems,
    submission_body,
)
from api.slots import SubmitSlots
from api.state import state
from api.submit import check_idempotency_key, receiver
from facefleet.fleet.standing import phase_of, queue_standing
from facefleet.modes.distributed import Services
from facefleet.observability import logs
from facefleet.records.db import Task
from facefleet.records.states import TaskState
from facefleet.records.task_view import SUMMARY_COLUMNS, task_summary
from facefleet.task.cleanup import clean_up
from facefleet.task.jobs import cancel_task, delete_task, fail_task, get_task, retry_task
from facefleet.task.progress import task_progress
from facefleet.task.quality import report
from facefleet.task.submission import MAX_SOURCES, submit

log = logging.getLogger(__name__)

_TASK_ID = re.compile(r"[0-9a-f]{32}")
TAG = Tag(name="tasks", description="face-swap jobs on videos: submit, follow, download")
SECURITY: list[dict[str, list[Any]]] = [{"bearer": []}]
PROBLEMS = problems(400, 401, 503)

tasks = APIBlueprint(
    "tasks", __name__, url_prefix="/v1", abp_tags=[TAG], abp_security=SECURITY, abp_responses=PROBLEMS
)
protect(tasks)


@tasks.post(
    "/tasks",
    summary="submit a task",
    description="Upload the target video and source faces (multipart), or name them by URL (multipart or "
    "JSON); answers at once with the task's id. `Idempotency-Key` makes a repeated submission return the "
    "first task (200).",
    responses={
        200: Created,
        201: Created,
        **problems(403, 408, 409, 413, 415, 422, 429),
    },
    openapi_extensions={
        "requestBody": submission_body(),
        "parameters": [
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": False,
                "schema": {"type": "string", "maxLength": 150},
            }
        ],
    },
)
def create() -> tuple[Response, int, dict[str, str]]:
    api = state()
    svc = api.services
    tenant = principal().tenant
    idempotency_key = request.headers.get("Idempotency-Key")
    check_idempotency_key(idempotency_key)
    slots: SubmitSlots = current_app.extensions["facefleet.slots"]
    with slots.process(), slots.tenant(svc.state.redis, svc.settings.redis_namespace, tenant, _hold_s(svc)):
        admit_submission(svc, api.limiter, tenant)
        task, created = submit(
            svc.ctx,
            svc.settings,
            receiver(svc),
            tenant=tenant,
            idempotency_key=idempotency_key,
            admit=lambda options: api.admission.check(svc, options.priority),
            fleet_models=svc.state.worker_models,
        )
    logs.bind(task_id=task.id, tenant=tenant)
    if created:
        request_id = logs.bound("request_id")
        if request_id:
            svc.state.remember_request(task.id, request_id)  # for its workers' log lines
        log.info("task %s submitted", task.id, extra={"state": task.state.value})
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


def _hold_s(svc: Services) -> float:
    """The longest a submission may take: its body, its URL fetches, its probe (and a margin)."""
    settings = svc.settings
    body = current_app.extensions["facefleet.body"].budget_s(request.content_length)
    return body + (MAX_SOURCES + 1) * settings.egress_timeout_s + settings.probe_timeout_s + 60


@tasks.get(
    "/tasks/<task_id>",
    summary="a task's state and progress",
    description="`ETag` on the view; `If-None-Match` with it: `304` while the view is unchanged.",
    responses={200: TaskStatus, 304: None, **problems(404)},
)
def show(path: TaskPath) -> Response:
    task_id = path.task_id
    svc = state().services
    task = scoped_task()
    body = task_summary(task)
    progress = task_progress(svc.ctx, task_id, task)
    body["chunks"] = progress.pop("chunks")
    body["progress"] = progress
    body["phase"], body["phases"] = phase_of(task.state, svc.state.phase(task_id), progress["percent"])
    with svc.ctx.read_sessions() as session:
        body["queue"] = queue_standing(session, task, fleet(svc)) if not task.state.terminal else None
    if task.state == TaskState.SUCCEEDED and task.output_key:
        body["output_url"] = svc.storage.presign(task.output_key, svc.settings.presign_ttl_s)
    body["quality"] = report(task.quality, svc.ctx.quality_thresholds)
    return conditional_json(body)


@tasks.get("/tasks", summary="the caller's tasks, newest first", responses={200: TaskPage})
def index(query: ListQuery) -> Response:
    svc = state().services
    wanted, cursor, limit = query.state, query.cursor, query.limit
    rows_query = select(*SUMMARY_COLUMNS).where(Task.deleted_at.is_(None))
    caller = principal()
    if not caller.admin:
        rows_query = rows_query.where(Task.tenant == caller.tenant)
    elif query.tenant:
        rows_query = rows_query.where(Task.tenant == query.tenant)
    if wanted:
        try:
            rows_query = rows_query.where(Task.state.in_([TaskState(s) for s in wanted.split(",")]))
        except ValueError:
            raise Problem(400, f"state must be among {', '.join(s.value for s in TaskState)}") from None
    if cursor:
        created, last_id = _decode_cursor(cursor)
        rows_query = rows_query.where(
            or_(Task.created_at < created, and_(Task.created_at == created, Task.id < last_id))
        )
    rows_query = rows_query.order_by(Task.created_at.desc(), Task.id.desc()).limit(limit + 1)
    with svc.ctx.read_sessions() as session:
        rows = list(session.execute(rows_query))  # plain rows: no ORM objects to build
    page, more = rows[:limit], len(rows) > limit
    return jsonify(
        items=[task_summary(t) for t in page],
        next_cursor=_encode_cursor(page[-1]) if more else None,
    )


@tasks.post(
    "/tasks/<task_id>/cancel",
    summary="stop a task that has not finished (its files are removed)",
    responses={200: TaskSummary, **problems(404, 409)},
)
def cancel(path: TaskPath) -> Response:
    task_id = path.task_id
    svc = state().services
    task = cancel_task(svc.ctx, task_id)
    _stop_holders(svc, task_id)
    clean_up(svc.ctx, task_id)  # at once if nothing runs; else the reaper, once the holders stopped
    return jsonify(task_summary(task))


@tasks.delete(
    "/tasks/<task_id>",
    summary="delete a task in any state",
    description="An unfinished task is cancelled first. Every object and row of the task goes (its usage "
    "stays counted); from now on it answers 404.",
    responses={204: None, **problems(404)},
)
def remove(path: TaskPath) -> tuple[str, int]:
    task_id = path.task_id
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


@tasks.post(
    "/tasks/<task_id>/retry",
    summary="run a failed task again from where it failed",
    responses={202: TaskSummary, **problems(404, 409, 503)},
)
def retry(path: TaskPath) -> tuple[Response, int]:
    task_id = path.task_id
    api = state()
    svc = api.services
    plan = retry_task(svc.ctx, task_id)
    request_id = logs.bound("request_id")
    if request_id:
        svc.state.remember_request(task_id, request_id)  # the retried work's lines carry this one
    if plan.step == TaskState.QUEUED:
        api.producer.plan(task_id)
    elif plan.step == TaskState.STITCHING:
        api.producer.stitch(task_id)
    # chunks wait in the table: the workers' dispatcher releases them (within a second)
    return jsonify(task_summary(get_task(svc.ctx, task_id))), 202


def _encode_cursor(task: Any) -> str:
    return base64.urlsafe_b64encode(f"{task.created_at.isoformat()}|{task.id}".encode()).decode()


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        created, task_id = base64.urlsafe_b64decode(cursor.encode()).decode().split("|", 1)
        if not _TASK_ID.fullmatch(task_id):
            raise ValueError(task_id)
        return datetime.fromisoformat(created), task_id
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise Problem(400, "cursor is not one this API returned") from None
