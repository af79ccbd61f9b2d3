"""Webhook delivery logs and replay, and live events (server-sent events) of a task or batch.

(No ``from __future__ import annotations``: flask-openapi3 reads the views' types.)"""

import json
from collections.abc import Iterator
from typing import Any

from flask import Response, jsonify, stream_with_context
from flask_openapi3 import APIBlueprint, Tag
from pydantic import BaseModel, Field

from api.auth import principal, protect, scoped_task
from api.batches import BatchPath, _batch
from api.schemas import TaskPath, problems
from api.state import state
from facefleet.config.errors import TaskNotFound
from facefleet.events.outbox import batch_view
from facefleet.events.webhooks import deliveries, replay
from facefleet.records.task_view import task_summary
from facefleet.task import batches as core

TAG = Tag(name="events", description="webhook deliveries and live events")
events = APIBlueprint(
    "events",
    __name__,
    url_prefix="/v1",
    abp_tags=[TAG],
    abp_security=[{"bearer": []}],
    abp_responses=problems(400, 401, 404),
)
protect(events)

KEEP_ALIVE_S = 15.0  # a comment line this often; after each such silence, one read of the row
TERMINAL = {"succeeded", "failed", "cancelled"}


class DeliveryPath(BaseModel):
    delivery_id: str = Field(max_length=64, description="a delivery's id (its webhook-id)")


@events.get(
    "/tasks/<task_id>/webhooks",
    summary="a task's webhook deliveries, each with its attempts",
    responses={200: None},
)
def task_webhooks(path: TaskPath) -> Response:
    with state().services.ctx.read_sessions() as session:
        return jsonify(items=deliveries(session, task_id=scoped_task().id))


@events.get(
    "/batches/<batch_id>/webhooks",
    summary="a batch's webhook deliveries (its own and its items')",
    responses={200: None},
)
def batch_webhooks(path: BatchPath) -> Response:
    batch = _batch(path.batch_id)
    with state().services.ctx.read_sessions() as session:
        return jsonify(items=deliveries(session, batch_id=batch.id))


@events.post(
    "/webhooks/<delivery_id>/replay",
    summary="send a delivery again (the same webhook-id)",
    responses={202: None},
)
def replay_delivery(path: DeliveryPath) -> tuple[Response, int]:
    svc = state().services
    caller = principal()
    if not replay(
        svc.sessions, path.delivery_id, svc.settings.webhook_retry_s, None if caller.admin else caller.tenant
    ):
        raise TaskNotFound(path.delivery_id)  # another tenant's: the same 404 as an unknown one
    return jsonify(id=path.delivery_id, state="pending"), 202


@events.get(
    "/tasks/<task_id>/events",
    summary="live events of a task (text/event-stream), until it ends",
    responses={200: None},
)
def task_events(path: TaskPath) -> Response:
    svc = state().services
    task_id = scoped_task().id

    def current() -> dict[str, Any]:
        with svc.ctx.read_sessions() as session:
            from facefleet.records.db import Task

            row = session.get(Task, task_id)
        return {"event": "state", "state": row.state.value, "task": task_summary(row)} if row else {}

    return _stream(
        "task", task_id, current, lambda event: event.get("state") in TERMINAL and event["event"] == "state"
    )


@events.get(
    "/batches/<batch_id>/events",
    summary="live events of a batch (text/event-stream), until it completes",
    responses={200: None},
)
def batch_events(path: BatchPath) -> Response:
    svc = state().services
    batch_id = _batch(path.batch_id).id

    def current() -> dict[str, Any]:
        batch = core.get_batch(svc.ctx, batch_id, None)
        with svc.ctx.read_sessions() as session:
            view = batch_view(session, batch)
        return (
            {"event": "batch_completed", "batch": view}
            if batch.completed_at
            else {"event": "batch", "batch": view}
        )

    return _stream("batch", batch_id, current, lambda event: event["event"] == "batch_completed")


def _stream(kind: str, subject: str, current: Any, final: Any) -> Response:
    """The subject's events as SSE, in order: those Redis kept (or, where it kept none, the
    row as it stands), then what comes, ending after the final one. After each quiet
    KEEP_ALIVE_S, a comment and one read of the row (an event lost with Redis still ends the
    stream)."""
    follower = state().hub.follow(kind, subject)  # subscribed before anything is read

    def body() -> Iterator[str]:
        try:
            kept = follower.history() or [current()]
            for event in kept:
                yield _sse(event)
                if final(event):
                    return
            while True:
                found = follower.next(KEEP_ALIVE_S)
                if found is None:
                    yield ": keep-alive\n\n"
                    found = current()
                    if not final(found):
                        continue
                event = found
                yield _sse(event)
                if final(event):
                    return
        finally:
            follower.close()

    return Response(
        stream_with_context(body()),
        mimetype="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def _sse(event: dict[str, Any]) -> str:
    return f"event: {event['event']}\ndata: {json.dumps(event, separators=(',', ':'))}\n\n"
