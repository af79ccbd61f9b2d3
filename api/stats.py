"""/v1/stats: the service's figures over a recent window, for operators (an admin key where
keys are required; with FACEFLEET_AUTH=off, anyone who reaches the API).

A tenant's key is refused (403) rather than shown its own share: the figures describe the
fleet (worker utilisation, other tenants' failures), and a tenant follows its own work with
/v1/tasks. An admin narrows them to one tenant with ``?tenant=``."""

import redis
from flask import Response, jsonify
from flask_openapi3 import APIBlueprint, Tag

from api.auth import principal, protect
from api.problems import Problem
from api.schemas import Stats, StatsQuery, problem_response, problems
from api.state import state
from api.tasks import SECURITY
from facefleet.observability.stats import WindowError, compute, parse_window

stats = APIBlueprint(
    "stats",
    __name__,
    url_prefix="/v1",
    abp_tags=[Tag(name="operations")],
    abp_security=SECURITY,
    abp_responses=problems(400, 401),
)
protect(stats)


@stats.get(
    "/stats",
    summary="success ratio, turnaround and per-frame latency percentiles, frames, utilisation",
    responses={
        200: Stats,
        403: problem_response("an admin key is needed"),
        422: problem_response("the window is not one of 1m to 30d (15m, 1h, 24h, 7d)"),
    },
)
def show(query: StatsQuery) -> Response:
    if not principal().admin:
        raise Problem(403, "the fleet's figures need an admin key", "admin-only")
    try:
        window = parse_window(query.window)
    except WindowError as exc:
        raise Problem(422, str(exc), "invalid-window") from None
    svc = state().services
    try:
        slots: int | None = svc.state.worker_slots()
    except redis.RedisError:
        slots = None
    with svc.ctx.read_sessions() as session:
        figures = compute(session, window, slots, tenant=query.tenant)
    return jsonify(window=query.window.strip(), **figures.as_json())
