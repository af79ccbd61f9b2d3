"""The API's request and response models: flask-openapi3 validates requests with them and
builds the OpenAPI 3.1 document (``/openapi.json``) from them, so the two never disagree."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from facefleet.config.options import JobOptions
from facefleet.records.states import TaskState


class ProblemBody(BaseModel):
    """An RFC 9457 problem; some problems add fields (``limit``, ``field``, ``id``)."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(examples=["https://facefleet.dev/problems/task-not-found"])
    title: str = Field(examples=["Not Found"])
    status: int = Field(examples=[404])
    detail: str = Field(examples=["no task '0af3…'"])


def problem_response(description: str) -> dict[str, Any]:
    """A documented error response: a ProblemBody as application/problem+json."""
    return {
        "description": description,
        "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/ProblemBody"}}},
    }


PROBLEM_STATUSES = {
    400: "the request is malformed",
    401: "no key, or a wrong or revoked one",
    403: "the tenant's quota is used up",
    404: "no such task for this caller",
    408: "the body did not arrive in time (too slow, or stalled)",
    409: "the task's state does not allow this",
    413: "an upload is larger than allowed",
    415: "the body is neither multipart/form-data nor JSON",
    422: "an input, option or URL that cannot be used",
    429: "too many submissions or queued tasks: see Retry-After",
    503: "a backing service is unavailable: see Retry-After",
}


def problems(*statuses: int) -> dict[Any, Any]:
    return {status: problem_response(PROBLEM_STATUSES[status]) for status in statuses}


TENANT_NAME = r"^[a-z0-9][a-z0-9_-]{0,62}$"
# a URL as the server takes it: no control character, at most 8192 characters
# a URL field: bounded, and no control characters (the server refuses them too)
Url = Annotated[str, StringConstraints(max_length=8192, pattern=r"^[^\x00-\x1f\x7f]*$")]


class TaskPath(BaseModel):
    task_id: str = Field(max_length=64, description="the id the submission answered")


class ListQuery(BaseModel):
    state: str | None = Field(
        default=None, max_length=100, description="comma-separated states, e.g. running,queued"
    )
    cursor: str | None = Field(
        default=None,
        max_length=200,
        pattern=r"^[A-Za-z0-9_=-]*$",
        description="next_cursor of the previous page",
    )
    limit: int = Field(default=50, ge=1, le=200)
    tenant: str | None = Field(
        default=None, max_length=64, pattern=TENANT_NAME, description="admin keys only: one tenant's tasks"
    )


class SubmitJson(BaseModel):
    """A submission whose inputs are fetched by URL (https://, s3:// of allowed buckets,
    http:// only inside FACEFLEET_EGRESS_ALLOW)."""

    model_config = ConfigDict(extra="forbid")

    target_url: Url = Field(examples=["https://media.example.com/talk.mp4"])
    source_url: list[Url] | Url = Field(
        default_factory=list, examples=[["https://media.example.com/face.jpg"]]
    )
    options: JobOptions = Field(default_factory=JobOptions)


class SubmitForm(BaseModel):
    """multipart/form-data: the target (a file or target_url), sources, options as JSON. The
    body is streamed to the bucket as it arrives, never held whole."""

    model_config = ConfigDict(extra="forbid")

    target: bytes | None = Field(default=None, json_schema_extra={"format": "binary"})
    target_url: Url | None = None
    source: list[bytes] = Field(default_factory=list, json_schema_extra={"items": {"format": "binary"}})
    source_url: list[Url] = Field(default_factory=list)
    reference: bytes | None = Field(default=None, json_schema_extra={"format": "binary"})
    options: str | None = Field(default=None, description="JSON object with the fields of JobOptions")


class Created(BaseModel):
    id: str
    state: TaskState


class TaskSummary(BaseModel):
    id: str
    tenant: str
    state: TaskState
    target_name: str | None
    options: dict[str, Any]
    frames_total: int | None
    chunks_total: int | None
    error: str | None
    reason: str | None = Field(
        default=None, description="a failure's class: deadline, expired, or error (any other)"
    )
    retries: int = Field(default=0, description="times its user retried it (each retry is a new budget)")
    created_at: str | None
    updated_at: str | None
    started_at: str | None
    finished_at: str | None
    output_expired_at: str | None
    provenance: dict[str, Any] = Field(
        default_factory=dict,
        description="watermark: whether its processed frames carry the watermark; once succeeded, "
        "signed: whether the output carries a signed C2PA manifest (manifest: its label; c2pa: why not)",
    )
    output: OutputSize | None = Field(default=None, description="the output's size; null until probed")


class OutputSize(BaseModel):
    width: int = Field(description="the visible width: the input's")
    height: int = Field(description="the visible height: the input's")
    coded_width: int = Field(description="the coded width: one more for an odd width in 4:2:0 H.264/HEVC")
    coded_height: int = Field(description="the coded height: one more for an odd height in 4:2:0 H.264/HEVC")
    padded: str | None = Field(
        description="why the coded size is larger (its last column or row repeated), and how to keep "
        "the exact size; null when it is not"
    )


class Progress(BaseModel):
    frames_done: int
    frames_total: int
    percent: float
    fps: float
    eta_s: float | None


class QueueStanding(BaseModel):
    position: int = Field(description="waiting tasks that go first (0: next)")
    eta_s: float | None = Field(description="seconds until done, from the fleet's measured throughput")


class IdSimilarity(BaseModel):
    mean: float | None
    p05: float | None = Field(description="the 5th percentile")
    min: float | None
    samples: int = Field(description="swapped faces measured")


class Quality(BaseModel):
    """The quality gate's figures on the task's sampled frames, as decoded back from its output."""

    id_similarity: IdSimilarity = Field(
        description="the recogniser's similarity of each swapped face to the source identity"
    )
    psnr_outside_db: float | None = Field(
        description="PSNR of everything outside the faces against the input"
    )
    face_coverage: float | None = Field(
        description="share of sampled frames with a detected face (the anonymiser passes only at 0)"
    )
    passed: bool = Field(description="false when a threshold was missed: the task still succeeded")
    reasons: list[str] = Field(description="each threshold missed, in words")


class TaskStatus(TaskSummary):
    chunks: dict[str, int] = Field(description="chunks per state")
    progress: Progress
    phase: str | None = Field(
        description="queued, probing, planning, processing, stitching or uploading (null once ended)"
    )
    phases: dict[str, float] = Field(description="percent done of each phase")
    queue: QueueStanding | None = Field(description="while no frame of the task is being processed yet")
    output_url: str | None = Field(default=None, description="a presigned download link, once succeeded")
    quality: Quality | None = Field(
        default=None, description="the quality gate's figures, once succeeded (null: nothing measured)"
    )


class TaskPage(BaseModel):
    items: list[TaskSummary]
    next_cursor: str | None


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str
    checks: dict[str, str]
    fleet: str = Field(description="ok, or the queues with work and no ready worker")
    workers: dict[str, int] = Field(description="ready workers per queue")
    work: dict[str, bool] = Field(description="whether each queue has work waiting or running")
    providers: dict[str, dict[str, str]] = Field(
        default_factory=dict,
        description="per ready chunk worker: the execution provider that took each model it warmed up, "
        "and its video codecs (video_decoders, video_encoders: NVDEC/NVENC or cpu)",
    )


class ReadinessQuery(BaseModel):
    fleet: bool = Field(True, description="also require a ready worker for every queue with work")


class StatsQuery(BaseModel):
    window: str = Field(default="1h", description="from 1m to 30d: 15m, 1h, 24h, 7d")
    tenant: str | None = Field(
        default=None, max_length=64, pattern=TENANT_NAME, description="one tenant's work (default: all)"
    )


class Quantiles(BaseModel):
    p50: float | None
    p95: float | None
    p99: float | None


class TaskOutcomes(BaseModel):
    succeeded: int
    failed: int
    cancelled: int
    total: int


class Stats(BaseModel):
    """The service's figures over a window ending now (facefleet/observability/stats.py says how each is made)."""

    window: str = Field(examples=["1h"])
    window_s: int
    since: str
    until: str
    tenant: str | None
    tasks: TaskOutcomes = Field(description="tasks that ended in the window, by outcome")
    success_ratio: float | None = Field(description="succeeded / (succeeded + failed); null if none ended")
    turnaround_seconds: Quantiles = Field(description="submission to success, of the tasks that succeeded")
    frame_latency_seconds: Quantiles = Field(description="per frame: chunk wall time over its frames")
    frames_processed: int = Field(description="frames of the chunks that succeeded in the window")
    busy_chunk_seconds: float
    worker_slots: int | None = Field(description="chunk slots the workers announce now (null: unknown)")
    worker_utilisation: float | None = Field(description="busy chunk-seconds / (slots x window)")


def submission_body() -> dict[str, Any]:
    """The requestBody of POST /v1/tasks (documented here: the view streams it itself)."""
    return {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": SubmitForm.model_json_schema(ref_template="#/components/schemas/{model}")
            },
            "application/json": {
                "schema": SubmitJson.model_json_schema(ref_template="#/components/schemas/{model}")
            },
        },
    }
