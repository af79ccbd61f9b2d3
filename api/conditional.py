"""Conditional GETs for status polling: ``ETag`` (a hash of the body) on the views of a task
and a batch, and ``304 Not Modified`` (no body) when the client's ``If-None-Match`` names the
view as it stands. The view is still built (ownership is checked first, so another tenant's
id stays a 404); what is saved is the body on the wire and the client's work."""

from __future__ import annotations

from typing import Any

from flask import Response, jsonify, request


def conditional_json(body: dict[str, Any]) -> Response:
    response = jsonify(body)
    response.add_etag()
    response.headers["Cache-Control"] = "no-cache"  # kept, but asked again each time
    response.make_conditional(request)  # a 304 without its body where If-None-Match names it
    return response
