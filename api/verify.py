"""POST /v1/verify: the provenance an uploaded video carries (its C2PA manifest, the
watermark in its frames), as ``facefleet verify --json`` prints it. Keyed; the upload takes
a submission's slots (per process, per tenant), is capped at the submission's size limit
and read in the core's sandboxed child.

(No ``from __future__ import annotations``: flask-openapi3 reads the view's types.)"""

from typing import Any

from flask import Response, current_app, jsonify, request
from flask_openapi3 import APIBlueprint, Tag
from werkzeug.http import parse_options_header

from api.auth import principal, protect
from api.problems import Problem
from api.schemas import problems
from api.slots import SubmitSlots
from api.state import state
from api.uploads import MultipartStream
from facefleet.provenance.verify import verify_file
from facefleet.storage.base import UploadTooLarge
from facefleet.storage.scratch import scratch_file

TAG = Tag(name="provenance", description="what a video says about where it comes from")
SECURITY: list[dict[str, list[Any]]] = [{"bearer": []}]
CHUNK = 256 * 1024

provenance = APIBlueprint(
    "provenance",
    __name__,
    url_prefix="/v1",
    abp_tags=[TAG],
    abp_security=SECURITY,
    abp_responses=problems(400, 401, 503),
)
protect(provenance)


@provenance.post(
    "/verify",
    summary="verify a video's provenance",
    description="Upload a video (multipart field `file`): its C2PA manifest (validity, signer) and the "
    "FaceFleet watermark (the task id it carries, among the caller's tasks). `provenance` says whether "
    "FaceFleet provenance was found.",
    responses={**problems(413, 415, 422)},
    openapi_extensions={
        "requestBody": {
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "properties": {"file": {"type": "string", "format": "binary"}},
                        "required": ["file"],
                    }
                }
            }
        }
    },
)
def verify() -> Response:
    svc = state().services
    caller = principal()
    slots: SubmitSlots = current_app.extensions["facefleet.slots"]  # uploads share the submissions' slots
    hold_s = current_app.extensions["facefleet.body"].budget_s(request.content_length)
    hold_s += svc.settings.verify_timeout_s + 60
    with (
        slots.process(),
        slots.tenant(svc.state.redis, svc.settings.redis_namespace, caller.tenant, hold_s),
        scratch_file(svc.ctx.scratch, "verify", ".upload") as path,
    ):
        _receive(path, svc.settings.max_upload_bytes)
        report = verify_file(
            svc.settings, path, svc.ctx.read_sessions, tenant=None if caller.admin else caller.tenant
        )
    return jsonify(report)


def _receive(path: Any, limit: int) -> None:
    mimetype, params = parse_options_header(request.headers.get("Content-Type", ""))
    if mimetype != "multipart/form-data" or not params.get("boundary"):
        raise Problem(415, "send the video as multipart/form-data, in the field file")
    received = False
    for part in MultipartStream(request.stream, params["boundary"].encode(), max_parts=4).parts():
        if part.name != "file" or part.filename is None or received:
            raise Problem(400, f"unexpected form field {part.name!r}: send one file, in the field file")
        written = 0
        with open(path, "wb") as out:
            while chunk := part.body.read(CHUNK):
                written += len(chunk)
                if written > limit:
                    raise UploadTooLarge(limit)
                out.write(chunk)
        received = True
    if not received:
        raise Problem(400, "missing field: file (the video to verify)", "missing-field", field="file")
