"""Liveness, readiness and metrics (open: no key needed)."""

from flask import Response, current_app, jsonify
from flask_openapi3 import APIBlueprint, Tag
from sqlalchemy import text

from api.schemas import Health, Readiness
from api.state import state

health = APIBlueprint("health", __name__, abp_tags=[Tag(name="operations")])


@health.get("/healthz", summary="the process answers", responses={200: Health})
def healthz() -> Response:
    return jsonify(status="ok")


@health.get(
    "/readyz", summary="the database, broker and bucket answer", responses={200: Readiness, 503: Readiness}
)
def readyz() -> tuple[Response, int]:
    api = state()
    checks: dict[str, str] = {}
    try:
        with api.services.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
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
    except Exception as exc:
        checks["bucket"] = f"unreachable: {type(exc).__name__}"
    ready = all(v == "ok" for v in checks.values())
    return jsonify(status="ready" if ready else "not ready", checks=checks), 200 if ready else 503


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
    body = current_app.extensions["facefleet.metrics"].render()
    return Response(body, mimetype="text/plain; version=0.0.4; charset=utf-8")
