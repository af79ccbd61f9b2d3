"""Liveness, readiness and metrics (open: no key needed)."""

from flask import Response, current_app, jsonify
from flask_openapi3 import APIBlueprint, Tag
from sqlalchemy import text

from api.schemas import Health, Readiness, ReadinessQuery, problems
from api.state import state
from facefleet.fleet.readiness import ReadyBoard, queues_with_work
from facefleet.storage.base import Misconfigured

health = APIBlueprint("health", __name__, abp_tags=[Tag(name="operations")])


@health.get("/healthz", summary="the process answers", responses={200: Health})
def healthz() -> Response:
    return jsonify(status="ok")


@health.get(
    "/readyz",
    summary="the database, broker and bucket answer, and every queue with work has a ready worker",
    description=(
        "`checks`: the API's dependencies; `fleet`: `ok`, or which queues with work have no "
        "ready worker; `workers`: ready workers per queue (models loaded and warmed up, for chunks); `work`: "
        "whether each queue has work waiting or running. 503 when a dependency does not answer "
        "or a queue with work has no ready worker. `?fleet=false` checks the API's own "
        "dependencies only (a load balancer's probe: missing workers are no reason to stop "
        "answering status requests)."
    ),
    responses={200: Readiness, 503: Readiness, **problems(400)},
)
def readyz(query: ReadinessQuery) -> tuple[Response, int]:
    api = state()
    checks: dict[str, str] = {}
    workers: dict[str, int] = {}
    work: dict[str, bool] = {}
    providers: dict[str, dict[str, str]] = {}
    try:
        with api.services.ctx.read_sessions() as session:
            session.execute(text("SELECT 1"))
            if query.fleet:
                work = queues_with_work(session)
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"unreachable: {type(exc).__name__}"
    try:
        api.producer.ping()
        checks["broker"] = "ok"
    except Exception as exc:
        checks["broker"] = f"unreachable: {type(exc).__name__}"
    try:
        api.services.storage.ping()
        checks["bucket"] = "ok"
    except Misconfigured as exc:  # the same words as the 503 of a request that met it
        checks["bucket"] = str(exc)
    except Exception as exc:
        checks["bucket"] = f"unreachable: {type(exc).__name__}"
    fleet = "not checked"
    if query.fleet:
        try:
            board = ReadyBoard(api.services.state.redis, api.services.state.keys)
            workers, providers = board.ready_workers(), board.providers()
            unserved = [q for q, waiting in work.items() if waiting and not workers[q]]
            fleet = f"no ready worker for {', '.join(unserved)}" if unserved else "ok"
        except Exception as exc:
            fleet = f"unknown: Redis unreachable ({type(exc).__name__})"
    ready = all(v == "ok" for v in checks.values()) and fleet in ("ok", "not checked")
    body = jsonify(
        status="ready" if ready else "not ready",
        checks=checks,
        fleet=fleet,
        workers=workers,
        work=work,
        providers=providers,
    )
    return body, 200 if ready else 503


@health.get(
    "/metrics",
    summary="Prometheus metrics",
    responses={
        200: {
            "description": "text exposition format",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        }
    },
)
def metrics() -> Response:
    body = current_app.extensions["facefleet.observability.metrics"].render()
    return Response(body, mimetype="text/plain; version=0.0.4; charset=utf-8")
