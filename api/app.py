"""The submission API: a Flask app factory. ``create_app(settings)`` is the only entry point;
connections are opened on first use in each (gunicorn) worker process."""

from __future__ import annotations

import time
from typing import Any

from flask import Flask, g, request

from api.health import health
from api.metrics import Metrics
from api.problems import register_error_handlers
from api.queue import Producer
from api.state import ApiState
from api.submit import MAX_SOURCES
from api.tasks import tasks
from facefleet.distributed import require
from facefleet.settings import Settings

# multipart overhead allowed on top of the files' own limits
_FORM_SLACK = 1024 * 1024


def create_app(settings: Settings, *, producer: Producer | None = None) -> Flask:
    require(settings)  # fail at start, not at the first request
    app = Flask("facefleet")
    limit = settings.max_upload_bytes + MAX_SOURCES * settings.max_source_bytes * 2 + _FORM_SLACK
    app.config.update(MAX_CONTENT_LENGTH=limit, MAX_FORM_MEMORY_SIZE=1024 * 1024, MAX_FORM_PARTS=32)
    app.extensions["facefleet"] = ApiState(settings, _producer=producer)
    app.extensions["facefleet.metrics"] = metrics = Metrics(app.extensions["facefleet"])

    app.register_blueprint(health)
    app.register_blueprint(tasks, url_prefix="/v1")
    register_error_handlers(app)

    @app.url_value_preprocessor  # the first hook of a request: before the blueprints' checks
    def _start_timer(_endpoint: str | None, _values: dict[str, Any] | None) -> None:
        g.started = time.perf_counter()

    @app.after_request
    def _count(response):  # type: ignore[no-untyped-def]
        endpoint = request.url_rule.rule if request.url_rule else "unmatched"
        metrics.observe_request(
            request.method, endpoint, response.status_code, time.perf_counter() - g.started
        )
        return response

    return app
