"""The submission API: a Flask app factory. ``create_app(settings)`` is the only entry point;
connections are opened on first use in each (gunicorn) worker process."""

from __future__ import annotations

import logging
import re
import time
import uuid
from importlib.metadata import version
from typing import Any

from flask import Flask, g, redirect, request
from flask.typing import ResponseReturnValue
from flask_openapi3 import Info, OpenAPI
from flask_openapi3.models import Schema
from pydantic import BaseModel, ValidationError

from api.batches import batches
from api.body import BodyDeadlines
from api.console import console
from api.events import events
from api.health import health
from api.hygiene import check_request_text
from api.metrics import Metrics
from api.problems import problem_response, register_error_handlers
from api.queue import Producer
from api.schemas import ProblemBody, SubmitForm, SubmitJson
from api.slots import SubmitSlots
from api.state import ApiState
from api.stats import stats
from api.tasks import tasks
from api.usage import usage
from api.verify import provenance
from facefleet.config.settings import Settings
from facefleet.modes.distributed import require
from facefleet.observability import logs
from facefleet.task.submission import MAX_SOURCES

log = logging.getLogger(__name__)

# multipart overhead allowed on top of the files' own limits
_FORM_SLACK = 1024 * 1024
DEFAULT_SUBMIT_THREADS = 7  # `facefleet api` sets it from its threads
REQUEST_ID_HEADER = "X-Request-ID"
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
# probes and scrapes: logged at DEBUG, they would drown the rest
_QUIET_ROUTES = frozenset({"/healthz", "/readyz", "/metrics"})


def create_app(settings: Settings, *, producer: Producer | None = None) -> Flask:
    require(settings)  # fail at start, not at the first request
    app = OpenAPI(
        "facefleet",
        info=Info(title="FaceFleet", version=version("facefleet"), description=DESCRIPTION),
        security_schemes={
            "bearer": {"type": "http", "scheme": "bearer", "description": "an API key: ffk_..."}
        },
        validation_error_status="400",  # a string: the documented responses are keyed so
        validation_error_model=ProblemBody,
        validation_error_callback=_invalid_request,
        doc_prefix="/docs",  # the docs page (Swagger UI, served from the package: no CDN)
        doc_url="/openapi.json",
    )
    _document(app, SubmitJson, SubmitForm)
    app.add_url_rule("/openapi.json", "openapi_document", lambda: app.api_doc)
    app.add_url_rule("/docs", "docs", lambda: redirect("/docs/swagger"))
    limit = settings.max_upload_bytes + MAX_SOURCES * settings.max_source_bytes * 2 + _FORM_SLACK
    app.config.update(MAX_CONTENT_LENGTH=limit, MAX_FORM_MEMORY_SIZE=1024 * 1024, MAX_FORM_PARTS=32)
    app.extensions["facefleet"] = ApiState(settings, _producer=producer)
    app.extensions["facefleet.slots"] = SubmitSlots(
        settings.api_submit_threads or DEFAULT_SUBMIT_THREADS, settings.tenant_max_uploads
    )
    app.wsgi_app = app.extensions["facefleet.body"] = BodyDeadlines(  # type: ignore[method-assign]
        app.wsgi_app,
        read_timeout_s=settings.upload_read_timeout_s,
        min_bytes_per_s=settings.upload_min_bytes_per_s,
        grace_s=settings.upload_grace_s,
        max_body_bytes=limit,
    )
    app.extensions["facefleet.observability.metrics"] = metrics = Metrics(app.extensions["facefleet"])

    app.register_blueprint(console)  # the web console at /
    app.register_api(health)
    app.register_api(tasks)
    app.register_api(batches)
    app.register_api(events)
    app.register_api(stats)
    app.register_api(usage)
    app.register_api(provenance)
    register_error_handlers(app)

    @app.url_value_preprocessor  # the first hook of a request: before the blueprints' checks
    def _start(_endpoint: str | None, _values: dict[str, Any] | None) -> None:
        g.started = time.perf_counter()
        logs.clear()
        logs.bind(request_id=_request_id())
        check_request_text()

    @app.after_request
    def _count(response):  # type: ignore[no-untyped-def]
        route = request.url_rule.rule if request.url_rule else "unmatched"
        seconds = time.perf_counter() - g.get("started", time.perf_counter())
        metrics.observe_request(request.method, route, response.status_code, seconds)
        request_id = logs.bound("request_id") or _request_id()
        response.headers[REQUEST_ID_HEADER] = request_id
        log.log(
            logging.DEBUG if route in _QUIET_ROUTES else logging.INFO,
            "%s %s %d",
            request.method,
            route,
            response.status_code,
            extra={
                "status": response.status_code,
                "latency_ms": round(seconds * 1000, 1),
                "request_id": request_id,
            },
        )
        return response

    @app.teardown_request
    def _forget(_exc: BaseException | None) -> None:
        logs.clear()

    return app


DESCRIPTION = (
    "Face-swap pipelines over long videos as a resumable job service. Every /v1/ request needs "
    "`Authorization: Bearer KEY`; errors are RFC 9457 problem bodies (application/problem+json)."
)


def _request_id() -> str:
    """The caller's X-Request-ID when it is a sane token, else a new one."""
    given = request.headers.get(REQUEST_ID_HEADER, "")
    return given if _SANE_REQUEST_ID.fullmatch(given) else uuid.uuid4().hex


def _document(app: OpenAPI, *models: type[BaseModel]) -> None:
    """Add models the views validate themselves (the streamed submission) to the document."""
    for model in models:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        for name, definition in schema.pop("$defs", {}).items():
            app.components_schemas[name] = Schema(**definition)
        app.components_schemas[model.__name__] = Schema(**schema)


def _invalid_request(error: ValidationError) -> ResponseReturnValue:
    first = error.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "request"
    return problem_response(400, f"{where}: {first['msg']}", "invalid-request")
