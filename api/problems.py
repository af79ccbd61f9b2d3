"""Errors as RFC 9457 problem details (``application/problem+json``)."""

from __future__ import annotations

import logging
from typing import Any

import kombu.exceptions
import redis
import sqlalchemy.exc
from flask import Flask, Response, json
from werkzeug.exceptions import HTTPException

from api.body import BodyTimeout
from facefleet.config.errors import (
    BatchNotFound,
    InvalidSubmission,
    InvalidTransition,
    MediaRefused,
    ModelsMissing,
    QuotaRefused,
    TaskNotFound,
)
from facefleet.config.options import OptionsError
from facefleet.egress import EgressRefused
from facefleet.storage.base import Misconfigured, StorageError, UploadTooLarge
from facefleet.tenants.quotas import QUEUE_FULL_RETRY_S

log = logging.getLogger(__name__)

PROBLEM_TYPE = "https://facefleet.dev/problems/"
RETRY_AFTER_S = 5
_TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    409: "Conflict",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Content",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


class Problem(Exception):
    """Raise from a view to answer with a problem body."""

    def __init__(
        self,
        status: int,
        detail: str,
        slug: str | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.status, self.detail, self.slug, self.extra = status, detail, slug, extra
        self.headers = headers or {}


def problem_response(status: int, detail: str, slug: str | None = None, **extra: Any) -> Response:
    body = {
        "type": PROBLEM_TYPE + (slug or str(status)),
        "title": _TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
        **extra,
    }
    return Response(json.dumps(body), status=status, mimetype="application/problem+json")


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(Problem)
    def _problem(exc: Problem) -> Response:
        response = problem_response(exc.status, exc.detail, exc.slug, **exc.extra)
        response.headers.update(exc.headers)
        return response

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> Response:
        status = exc.code or 500
        response = problem_response(status, exc.description or _TITLES.get(status, "Error"))
        for name, value in exc.get_headers():  # Allow (405), Retry-After, ...
            if name.lower() != "content-type":
                response.headers[name] = value
        return response

    @app.errorhandler(BodyTimeout)
    def _body_timeout(exc: BodyTimeout) -> Response:
        log.info("a request body timed out: %s", exc)
        return problem_response(408, str(exc), "body-timeout")

    @app.errorhandler(TaskNotFound)
    def _not_found(exc: TaskNotFound) -> Response:
        return problem_response(404, str(exc), "task-not-found")

    @app.errorhandler(BatchNotFound)
    def _no_batch(exc: BatchNotFound) -> Response:
        return problem_response(404, str(exc), "batch-not-found")

    @app.errorhandler(InvalidTransition)
    def _conflict(exc: InvalidTransition) -> Response:
        return problem_response(409, str(exc), "invalid-transition")

    @app.errorhandler(InvalidSubmission)
    def _invalid(exc: InvalidSubmission) -> Response:
        if exc.field:
            return problem_response(400, str(exc), "missing-field", field=exc.field)
        return problem_response(400, str(exc))

    @app.errorhandler(OptionsError)
    def _options(exc: OptionsError) -> Response:
        return problem_response(422, str(exc), "invalid-options")

    @app.errorhandler(UploadTooLarge)
    def _too_large(exc: UploadTooLarge) -> Response:
        return problem_response(413, str(exc), "upload-too-large", limit=exc.limit)

    @app.errorhandler(EgressRefused)
    def _refused_url(exc: EgressRefused) -> Response:
        return problem_response(422, str(exc), "refused-url")

    @app.errorhandler(MediaRefused)
    def _media(exc: MediaRefused) -> Response:
        return problem_response(422, str(exc), "invalid-media")

    @app.errorhandler(ModelsMissing)
    def _models_missing(exc: ModelsMissing) -> Response:
        return problem_response(422, str(exc), "models-missing", missing_models=exc.models)

    @app.errorhandler(QuotaRefused)
    def _quota(exc: QuotaRefused) -> Response:
        if exc.kind == "too-many-queued":  # waiting tasks leave: try again later
            response = problem_response(429, str(exc), exc.kind, **exc.extra)
            response.headers["Retry-After"] = str(QUEUE_FULL_RETRY_S)
            return response
        return problem_response(403, str(exc), exc.kind, **exc.extra)

    @app.errorhandler(StorageError)
    @app.errorhandler(redis.RedisError)
    @app.errorhandler(sqlalchemy.exc.OperationalError)
    @app.errorhandler(kombu.exceptions.OperationalError)
    def _unavailable(exc: Exception) -> Response:
        if isinstance(exc, Misconfigured):  # no retry mends it: no Retry-After
            log.error("the deployment is misconfigured: %s", exc)
            return problem_response(503, str(exc), "misconfigured")
        log.warning("a backing service failed: %s", exc)
        response = problem_response(
            503, f"a backing service is unavailable ({_service_of(exc)}); try again shortly", "unavailable"
        )
        response.headers["Retry-After"] = str(RETRY_AFTER_S)
        return response

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        log.exception("unhandled error")
        return problem_response(500, "an unexpected error occurred; it has been logged")


def _service_of(exc: Exception) -> str:
    """Which service failed, for the problem body (never the URL or the error text, which may
    carry credentials or internal addresses)."""
    if isinstance(exc, StorageError):
        return "object storage"
    if isinstance(exc, redis.RedisError):
        return "redis"
    if isinstance(exc, sqlalchemy.exc.OperationalError):
        return "database"
    return "message broker"
