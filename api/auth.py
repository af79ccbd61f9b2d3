"""Who is calling, and what they may see: every /v1/ request carries ``Authorization: Bearer
KEY``; the task named in a URL must belong to the caller's tenant (an admin key sees all).

Scoping happens here, once, for every route with a ``task_id``: another tenant's task
answers exactly as an unknown id does (404), so ids cannot be probed.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, g, request
from sqlalchemy import select

from api.problems import Problem
from api.state import state
from facefleet.config.errors import TaskNotFound
from facefleet.records.db import Task
from facefleet.records.keys import DEFAULT_TENANT
from facefleet.tenants.tenancy import Principal, authenticate

CHALLENGE = 'Bearer realm="facefleet"'


def protect(blueprint: Blueprint) -> None:
    """Require a key on every route of ``blueprint`` and scope its ``task_id`` parameter."""
    blueprint.before_request(_authenticate)
    blueprint.url_value_preprocessor(_scope_task)


def principal() -> Principal:
    found: Principal = g.principal
    return found


def _authenticate() -> None:
    if getattr(g, "principal", None) is not None:
        return
    api = state()
    if api.settings.auth == "off":
        g.principal = Principal(DEFAULT_TENANT, admin=True)
        return
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if not header:
        raise _unauthorized("send an API key: Authorization: Bearer KEY", "invalid_request")
    if scheme.lower() != "bearer" or not token.strip():
        raise _unauthorized("the Authorization header must be: Bearer KEY", "invalid_request")
    found = authenticate(api.services.ctx.read_sessions, token.strip(), writes=api.services.sessions)
    if found is None:
        raise _unauthorized("the API key is not valid (unknown, malformed or revoked)", "invalid_token")
    g.principal = found


def _unauthorized(detail: str, error: str) -> Problem:
    return Problem(401, detail, "unauthorized", headers={"WWW-Authenticate": f'{CHALLENGE}, error="{error}"'})


def _scope_task(_endpoint: str | None, values: dict[str, Any] | None) -> None:
    task_id = (values or {}).get("task_id")
    if task_id is None:
        return
    _authenticate()  # url value preprocessors run before before_request functions
    with state().services.ctx.read_sessions() as session:
        task = session.scalar(select(Task).where(Task.id == task_id, Task.deleted_at.is_(None)))
    if task is None or not principal().sees(task.tenant):
        raise TaskNotFound(task_id)
    g.task = task  # the view reads it instead of loading it again


def scoped_task() -> Task:
    """The task named in the URL, as loaded (and checked) for this request."""
    found: Task = g.task
    return found
