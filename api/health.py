"""Liveness, readiness and metrics."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify
from sqlalchemy import text

from api.state import state

health = Blueprint("health", __name__)


@health.get("/healthz")
def healthz() -> Response:
    return jsonify(status="ok")


@health.get("/readyz")
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


@health.get("/metrics")
def metrics() -> Response:
    body = current_app.extensions["facefleet.metrics"].render()
    return Response(body, mimetype="text/plain; version=0.0.4; charset=utf-8")
