"""/v1/batches: submit many targets at once, follow, cancel, retry, delete. Thin routes over
``facefleet.task.batches``; each item goes through the one submission pipeline.

(No ``from __future__ import annotations``: flask-openapi3 reads the views' types.)"""

import logging
from typing import Any

from flask import Response, jsonify, request, url_for
from flask_openapi3 import APIBlueprint, Tag
from pydantic import BaseModel, Field
from sqlalchemy import and_, or_, select

from api.auth import principal, protect
from api.batch_submit import check_options, receive_batch
from api.conditional import conditional_json
from api.quotas import admit_submission
from api.schemas import problems
from api.state import state
from api.submit import check_idempotency_key
from api.tasks import _decode_cursor, _encode_cursor, _stop_holders
from facefleet.records.db import Task
from facefleet.records.states import TaskState
from facefleet.records.task_view import SUMMARY_COLUMNS, task_summary
from facefleet.storage.scratch import scratch_dir
from facefleet.task import batches as core
from facefleet.task.cleanup import clean_up
from facefleet.task.jobs import fail_task
from facefleet.task.submission import submit

log = logging.getLogger(__name__)

TAG = Tag(name="batches", description="many targets with one options object; items are ordinary tasks")
batches = APIBlueprint(
    "batches",
    __name__,
    url_prefix="/v1",
    abp_tags=[TAG],
    abp_security=[{"bearer": []}],
    abp_responses=problems(400, 401, 503),
)
protect(batches)


class BatchPath(BaseModel):
    batch_id: str = Field(max_length=64, description="the id the batch's submission answered")


class BatchQuery(BaseModel):
    cursor: str | None = Field(default=None, max_length=200, description="next_cursor of the previous page")
    limit: int = Field(default=50, ge=1, le=200)
    tenant: str | None = Field(default=None, max_length=64, description="admin keys: one tenant's")


def _batch(batch_id: str) -> core.Batch:
    caller = principal()
    return core.get_batch(state().services.ctx, batch_id, None if caller.admin else caller.tenant)


@batches.post(
    "/batches",
    summary="submit a batch",
    description="Many targets (repeated `target` parts after `options`, `source` and `reference`; or JSON "
    "with `target_url` as a list) with one options object. Each item is a task; an item that cannot be used "
    "fails with its reason and the rest go on. `201` with the batch's id and its task ids; `Idempotency-Key` "
    "returns the first batch (200).",
    responses={201: None, 200: None, **problems(403, 413, 415, 422, 429)},
)
def create() -> tuple[Response, int, dict[str, str]]:
    api = state()
    svc = api.services
    tenant = principal().tenant
    idempotency_key = request.headers.get("Idempotency-Key")
    check_idempotency_key(idempotency_key)
    admit_submission(svc, api.limiter, tenant)
    opened: list[core.Outcome] = []

    def open_batch(options_text: str | None) -> None:
        options = check_options(svc, options_text)
        outcome = core.open_batch(svc.ctx, tenant, options, idempotency_key)
        if not outcome.created:
            raise _Replayed(outcome)
        opened.append(outcome)

    def add_item(name: str | None, submit_item: Any) -> None:
        item = core.add_item(svc.ctx, opened[0], name, submit_item)
        if item.error is None:
            _enqueue(api, item.task_id)

    def submit_item(receive: Any) -> Task:
        task, _ = submit(
            svc.ctx,
            svc.settings,
            receive,
            tenant=tenant,
            batch_id=opened[0].batch.id,
            admit=lambda options: api.admission.check(svc, options.priority),
            fleet_models=svc.state.worker_models,
        )
        return task

    try:
        with scratch_dir(svc.ctx.scratch, "batch") as scratch:
            receive_batch(svc, scratch, open_batch, add_item, submit_item)
    except _Replayed as replayed:
        request.stream.read()  # the body is the first submission's: not read into anything
        batch = replayed.outcome.batch
        headers = {"Location": url_for("batches.show", batch_id=batch.id), "Idempotent-Replayed": "true"}
        return jsonify(id=batch.id, tasks=core.item_ids(svc.ctx, batch.id)), 200, headers
    finally:
        if opened:
            core.seal(svc.ctx, opened[0].batch.id)
    outcome = opened[0]
    body = {
        "id": outcome.batch.id,
        "tasks": [item.task_id for item in outcome.items],
        "items": [{"task_id": i.task_id, "name": i.name, "error": i.error} for i in outcome.items],
    }
    return jsonify(body), 201, {"Location": url_for("batches.show", batch_id=outcome.batch.id)}


class _Replayed(Exception):
    def __init__(self, outcome: core.Outcome) -> None:
        self.outcome = outcome


def _enqueue(api: Any, task_id: str) -> None:
    try:
        api.producer.plan(task_id)
    except Exception as exc:  # the broker is down: this item fails, retryable, the rest go on
        log.error("cannot enqueue task %s: %s", task_id, exc)
        fail_task(api.services.ctx, task_id, "the task could not be queued (broker unreachable); retry it")


@batches.get(
    "/batches/<batch_id>",
    summary="a batch: counts per state, progress, its tasks (paginated)",
    description="`ETag` on the view; `If-None-Match` with it: `304` while the view is unchanged.",
    responses={200: None, 304: None, **problems(404)},
)
def show(path: BatchPath, query: BatchQuery) -> Response:
    svc = state().services
    batch = _batch(path.batch_id)
    body = core.show_batch(svc.ctx, batch)
    rows_query = select(*SUMMARY_COLUMNS).where(Task.batch_id == batch.id, Task.deleted_at.is_(None))
    if query.cursor:
        created, last_id = _decode_cursor(query.cursor)
        rows_query = rows_query.where(
            or_(Task.created_at > created, and_(Task.created_at == created, Task.id > last_id))
        )
    rows_query = rows_query.order_by(Task.created_at, Task.id).limit(query.limit + 1)
    with svc.ctx.read_sessions() as session:
        rows = list(session.execute(rows_query))
    page = rows[: query.limit]
    body["tasks"] = [task_summary(row) for row in page]
    body["next_cursor"] = _encode_cursor(page[-1]) if len(rows) > query.limit else None
    return conditional_json(body)


@batches.get("/batches", summary="the caller's batches, newest first", responses={200: None})
def index(query: BatchQuery) -> Response:
    svc = state().services
    caller = principal()
    tenant = caller.tenant if not caller.admin else query.tenant
    cursor = _decode_cursor(query.cursor) if query.cursor else None
    found = core.tenant_batches(svc.ctx, tenant, cursor, query.limit)
    page = found[: query.limit]
    items = [core.show_batch(svc.ctx, b) for b in page]
    return jsonify(items=items, next_cursor=_encode_cursor(page[-1]) if len(found) > query.limit else None)


@batches.post(
    "/batches/<batch_id>/cancel",
    summary="cancel the batch's unfinished items",
    responses={200: None, **problems(404)},
)
def cancel(path: BatchPath) -> Response:
    svc = state().services
    batch = _batch(path.batch_id)
    for task_id in core.cancel_items(svc.ctx, batch.id):
        _stop_holders(svc, task_id)
        clean_up(svc.ctx, task_id)
    return jsonify(core.show_batch(svc.ctx, core.get_batch(svc.ctx, batch.id, None)))


@batches.post(
    "/batches/<batch_id>/retry",
    summary="retry the batch's failed items",
    responses={202: None, **problems(404)},
)
def retry(path: BatchPath) -> tuple[Response, int]:
    api = state()
    svc = api.services
    batch = _batch(path.batch_id)
    for task_id, plan in core.retry_items(svc.ctx, batch.id):
        if plan.step == TaskState.QUEUED:
            api.producer.plan(task_id)
        elif plan.step == TaskState.STITCHING:
            api.producer.stitch(task_id)
    return jsonify(core.show_batch(svc.ctx, core.get_batch(svc.ctx, batch.id, None))), 202


@batches.delete(
    "/batches/<batch_id>", summary="delete a batch and every item", responses={204: None, **problems(404)}
)
def remove(path: BatchPath) -> tuple[str, int]:
    svc = state().services
    batch = _batch(path.batch_id)
    for task_id, was_running in core.delete_batch(svc.ctx, batch.id):
        if was_running:
            _stop_holders(svc, task_id)
        clean_up(svc.ctx, task_id)
    return "", 204
