"""One submission, whichever way it arrives (the API's upload, ``facefleet run``, next a batch):
the inputs stored (or fetched through the egress guard), the options checked, the target
probed in a sandbox, the media limits and the plan's size checked, then the task row written.

Each mode only says how its inputs reach the bucket (a ``Receive`` callback); the checks,
their messages and the clean-up are here, so both modes refuse the same inputs alike. A
refused submission leaves nothing behind: a pending upload is recorded before the first byte
is stored (so a killed process's files are swept), the stored objects are deleted before the
error goes up, and the row is written last.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from facefleet.config.context import JobContext
from facefleet.config.errors import InvalidSubmission, MediaRefused
from facefleet.config.inputs import check_text, load_json
from facefleet.config.options import JobOptions, OptionsError, check_plan_size, parse_options
from facefleet.config.settings import Settings
from facefleet.egress import EgressRefused, check_url, fetch
from facefleet.fleet.models import check_fleet_models
from facefleet.records import keys
from facefleet.records.db import Task, Tenant, new_id
from facefleet.storage.base import ObjectMissing, StorageError, UploadTooLarge
from facefleet.storage.scratch import scratch_dir
from facefleet.task.failures import scrub
from facefleet.task.jobs import create_task
from facefleet.task.orphans import clear_pending, record_pending
from facefleet.task.s3_inputs import check_s3_input
from pipeline.errors import ModelError, PipelineError
from pipeline.images import check_image
from pipeline.models.registry import ModelRegistry, check_model_options, models_needed
from pipeline.plan import frame_range
from pipeline.probe import VideoProbe
from pipeline.sandbox import probe_untrusted

MAX_SOURCES = 8
MAX_NAME = 500  # tasks.target_name
MAX_URL = 8192
# processors that cannot run without a source face
NEEDS_SOURCE = frozenset({"face_swapper"})


@dataclass
class Draft:
    """What a submission has received so far; a mode's ``Receive`` fills it."""

    task_id: str
    tenant: str = keys.DEFAULT_TENANT
    target_key: str | None = None
    target_name: str | None = None
    target_bytes: int = 0
    target_copy: Path | None = None  # a local copy of the target, for the probe
    source_keys: list[str] = field(default_factory=list)
    reference_key: str | None = None
    options: JobOptions | None = None  # already parsed (the CLI); else options_text is
    options_text: str | None = None
    target_url: str | None = None
    source_urls: list[str] = field(default_factory=list)
    video: VideoProbe | None = None  # the target as the sandbox probed it, once accepted
    s3_allow: tuple[str, ...] = ()  # the tenant's s3:// prefixes
    batch_id: str | None = None  # the batch it is an item of

    @property
    def keys(self) -> keys.TaskKeys:
        return keys.TaskKeys(self.task_id, self.tenant)

    def add_target(self, name: str | None) -> str:
        """The key the one target goes to (a target_url as well is refused once fetched)."""
        if self.target_key:
            raise InvalidSubmission("only one target may be sent")
        if name is not None:
            check_text(name, "the target's file name", MAX_NAME)
        self.target_key, self.target_name = self.keys.target, name
        return self.target_key

    def add_source(self) -> str:
        """The key the next source image goes to."""
        if len(self.source_keys) >= MAX_SOURCES:
            raise InvalidSubmission(f"at most {MAX_SOURCES} source images may be sent")
        key = self.keys.source(len(self.source_keys))
        self.source_keys.append(key)
        return key

    def add_url(self, settings: Settings, field_name: str, url: str) -> None:
        """An input named by URL, refused at once when the guard would refuse to fetch it."""
        url = check_text(url.strip(), field_name, MAX_URL)
        target = field_name == "target_url"
        limit = settings.max_upload_bytes if target else settings.max_source_bytes
        if url[:5].lower() == "s3://":
            _s3_input(settings, self, url, field_name)
        else:
            check_url(url, settings.egress_policy(limit), what=field_name)
        if target:
            if self.target_url or self.target_key:
                raise InvalidSubmission("only one target may be sent (target or target_url)")
            self.target_url = url
        else:
            if len(self.source_keys) + len(self.source_urls) >= MAX_SOURCES:
                raise InvalidSubmission(f"at most {MAX_SOURCES} source images may be sent")
            self.source_urls.append(url)


# stores the inputs under draft.keys and fills the draft (given a scratch folder of its own)
Receive = Callable[[Draft, Path], None]
# refuses (raises) a task of these options when the fleet has no room for it
Admit = Callable[[JobOptions], None]
# the models of each worker that takes chunks now (node -> its models; None: it did not say)
FleetModels = Callable[[], Mapping[str, frozenset[str] | None]]


def find_by_idempotency_key(ctx: JobContext, key: str) -> Task | None:
    with ctx.sessions() as session:
        task: Task | None = session.scalar(select(Task).where(Task.idempotency_key == key))
        return task


def submit(
    ctx: JobContext,
    settings: Settings,
    receive: Receive,
    *,
    tenant: str = keys.DEFAULT_TENANT,
    task_id: str | None = None,
    idempotency_key: str | None = None,
    admit: Admit = lambda _options: None,
    batch_id: str | None = None,
    fleet_models: FleetModels | None = None,
) -> tuple[Task, bool]:
    """Returns (task, created). ``created`` is False when the idempotency key named a task
    of this tenant that already exists (keys are the tenant's own: stored as ``tenant:key``).
    ``fleet_models`` (the distributed mode): a task whose models no ready worker has is
    refused (embedded, the run loads its models itself and says what is missing)."""
    if idempotency_key:
        idempotency_key = f"{tenant}:{idempotency_key}"
        if existing := find_by_idempotency_key(ctx, idempotency_key):
            return existing, False
    draft = Draft(
        task_id=task_id or new_id(), tenant=tenant, s3_allow=_tenant_s3_allow(ctx, tenant), batch_id=batch_id
    )
    record_pending(ctx, draft.keys)  # before any byte is stored: a killed process's are swept
    try:
        with scratch_dir(ctx.scratch, "upload") as scratch:
            receive(draft, scratch)
            options, frames = _check(ctx, settings, draft, scratch, admit)
            if fleet_models is not None:  # last: a wrong input is the user's to fix first
                check_fleet_models(_models(settings, options), fleet_models())
            task = _create(ctx, draft, options, idempotency_key, frames)
    except BaseException:
        ctx.storage.delete_prefix(draft.keys.prefix)
        clear_pending(ctx, draft.task_id)
        raise
    if task is None:  # lost a race on the same idempotency key
        ctx.storage.delete_prefix(draft.keys.prefix)
    clear_pending(ctx, draft.task_id)  # the row, or no files: nothing for the sweep
    if task is None:
        assert idempotency_key is not None
        winner = find_by_idempotency_key(ctx, idempotency_key)
        assert winner is not None
        return winner, False
    return task, True


def _check(
    ctx: JobContext, settings: Settings, draft: Draft, scratch: Path, admit: Admit
) -> tuple[JobOptions, int]:
    """The options and the number of frames the task will process, or the refusal."""
    _fetch_urls(ctx, settings, draft, scratch)
    options = _options(draft, settings)
    check_webhook_url(settings, options)
    admit(options)  # before the probe: a refusal costs no sandbox
    assert draft.target_copy is not None
    draft.video, frames = _probe_target(settings, draft.target_copy, draft.target_name or "target", options)
    _check_images(ctx, settings, draft, scratch)
    check_plan_size(
        options, frames, max_chunks=settings.max_chunks_per_task, max_segments=settings.max_segments_per_task
    )
    return options, frames


def check_webhook_url(settings: Settings, options: JobOptions) -> None:
    """A webhook_url the egress guard would refuse now is refused at submission (422); it is
    checked again at each delivery, where DNS may answer otherwise."""
    url = options.webhook_url
    if url is not None:
        if not url.lower().startswith(("https://", "http://")):
            raise EgressRefused("webhook_url: only https:// (or http:// to allowed addresses) URLs")
        check_url(url, settings.egress_policy(0), what="webhook_url")


def _fetch_urls(ctx: JobContext, settings: Settings, draft: Draft, scratch: Path) -> None:
    """Fetch the inputs given by URL (through the egress guard) into the bucket."""
    if draft.target_url:
        if draft.target_key:
            raise InvalidSubmission("only one target may be sent (target or target_url)")
        draft.target_key = draft.keys.target
        draft.target_name = _url_name(draft.target_url) or "target"
        draft.target_copy = scratch / "target"
        draft.target_bytes = _fetch(
            ctx, settings, draft, draft.target_url, "target_url", draft.target_copy, settings.max_upload_bytes
        )
        ctx.storage.put_file(draft.target_key, draft.target_copy)
    for url in draft.source_urls:
        key = draft.keys.source(len(draft.source_keys))
        path = scratch / f"source-{len(draft.source_keys)}"
        _fetch(ctx, settings, draft, url, "source_url", path, settings.max_source_bytes)
        ctx.storage.put_file(key, path)
        draft.source_keys.append(key)


def _fetch(
    ctx: JobContext, settings: Settings, draft: Draft, url: str, what: str, dest: Path, max_bytes: int
) -> int:
    if url[:5].lower() == "s3://":
        bucket, key = _s3_input(settings, draft, url, what)
        try:
            return ctx.storage.get_external(bucket, key, dest, max_bytes)
        except ObjectMissing:
            raise EgressRefused(f"{what}: there is no object s3://{bucket}/{key[:200]}") from None
        except UploadTooLarge:
            raise
        except StorageError as exc:
            if exc.transient:  # an outage: 503, try again
                raise
            raise EgressRefused(f"{what}: s3://{bucket}/{key[:200]} cannot be read by this service") from None
    with open(dest, "wb") as out:
        return fetch(url, out, settings.egress_policy(max_bytes), what=what).size


def _s3_input(settings: Settings, draft: Draft, url: str, what: str) -> tuple[str, str]:
    return check_s3_input(
        url,
        what=what,
        deployment_buckets=settings.egress_policy(0).allowed_s3_buckets,
        own_bucket=settings.s3_bucket,
        tenant_allow=draft.s3_allow,
    )


def _tenant_s3_allow(ctx: JobContext, tenant: str) -> tuple[str, ...]:
    with ctx.sessions() as session:
        row = session.get(Tenant, tenant)
        return tuple(row.s3_allow or ()) if row is not None else ()


def _url_name(url: str) -> str | None:
    name = PurePosixPath(urlsplit(url).path).name
    return name[:200] or None


def _options(draft: Draft, settings: Settings) -> JobOptions:
    if draft.target_key is None:
        raise InvalidSubmission("missing field: target (the video to process)", field="target")
    options = draft.options or parse_options(_raw_options(draft.options_text), settings.job_defaults())
    if NEEDS_SOURCE & set(options.processors) and not draft.source_keys:
        raise InvalidSubmission(
            "missing field: source (the face_swapper needs a source face image)", field="source"
        )
    if options.selector_mode == "reference" and draft.reference_key is None:
        field = "face_selector_mode" if options.face_selector_mode else "face_selector"
        raise OptionsError(f"{field}: 'reference' needs a reference image (field reference)")
    try:  # at submission, not when a worker first loads them
        check_model_options(options.model_dump(), ModelRegistry.load(settings.runtime().model_manifest))
    except ModelError as exc:
        raise OptionsError(str(exc)) from None
    return options


def _models(settings: Settings, options: JobOptions) -> list[str]:
    """The models a worker loads for a task of ``options`` (its quality gate's as well)."""
    registry = ModelRegistry.load(settings.runtime().model_manifest)
    gate = registry if settings.quality_sample_every > 0 else None
    return models_needed(options.processors, options.model_dump(), gate)


def _raw_options(text: str | None) -> dict[str, Any]:
    if not text or not text.strip():
        return {}
    raw = load_json(text, "options")
    if not isinstance(raw, dict):
        raise InvalidSubmission("options must be a JSON object")
    return raw


def _probe_target(settings: Settings, path: Path, name: str, options: JobOptions) -> tuple[VideoProbe, int]:
    """Refuse a target that is not a usable video, is past a media limit, or whose range is
    impossible; returns the probe and the number of frames the task will process. The probe runs in a child
    process with memory and CPU limits: a file that crashes or hangs FFmpeg costs that child,
    never the caller."""
    try:
        video = probe_untrusted(
            path,
            settings.media_limits(),
            timeout_s=settings.probe_timeout_s,
            memory_bytes=settings.probe_memory_bytes,
            crash=settings.test_hooks.prober_crash,
        )
        start, end = frame_range(video.frame_count, options.trim_start, options.trim_end)
    except PipelineError as exc:  # name the user's file, not the scratch copy
        raise MediaRefused(scrub(str(exc), {path.name: name})) from None
    return video, end - start


def _check_images(ctx: JobContext, settings: Settings, draft: Draft, scratch: Path) -> None:
    """Source and reference images: real images within the pixel limit, read from their
    headers (a decompression bomb is never decoded)."""
    named = [(key, f"source image #{n + 1}") for n, key in enumerate(draft.source_keys)]
    if draft.reference_key:
        named.append((draft.reference_key, "the reference image"))
    for key, name in named:
        with ctx.storage.fetch_once(key, scratch) as path:
            try:
                check_image(path, settings.media_limits())
            except PipelineError as exc:
                raise MediaRefused(scrub(str(exc), {path.name: name})) from None


def _create(
    ctx: JobContext, draft: Draft, options: JobOptions, idempotency_key: str | None, frames: int
) -> Task | None:
    """The row, or None when another submission took the idempotency key first."""
    assert draft.target_key is not None
    try:
        return create_task(
            ctx,
            task_id=draft.task_id,
            target_key=draft.target_key,
            target_name=draft.target_name,
            source_keys=draft.source_keys,
            reference_key=draft.reference_key,
            options=options,
            idempotency_key=idempotency_key,
            bytes_in=draft.target_bytes,
            tenant=draft.tenant,
            frames_total=frames,
            batch_id=draft.batch_id,
        )
    except IntegrityError:
        if idempotency_key is None:
            raise
        return None
