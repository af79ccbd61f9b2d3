"""Embedded mode: one machine, SQLite, a folder as the bucket, chunks in local processes.

The job's id is derived from its inputs' bytes and options, so running the same command
again finds the same job and resumes it from its checkpoints. With ``--hwaccel auto`` the
segments may be encoded by NVENC (one host encodes them all, see ``pipeline.hwaccel``); the
encoder is then part of the id, so a rerun with other codecs is another job and never
resumes one whose stored segments came from another encoder (the stream-copy join needs one).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import multiprocessing
import os
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from facefleet.config.context import JobContext
from facefleet.config.errors import TryLater
from facefleet.config.options import DELIVERY_OPTIONS, JobOptions
from facefleet.config.settings import Settings
from facefleet.modes import local_children
from facefleet.observability import memory
from facefleet.provenance.signing import check_signing
from facefleet.records import keys
from facefleet.records.checkpoints import SqlCheckpoints
from facefleet.records.db import Task
from facefleet.records.engine import make_engine, make_sessionmaker
from facefleet.records.local_schema import ensure_schema
from facefleet.records.states import TaskState
from facefleet.storage import scratch
from facefleet.storage.local import LocalStorage
from facefleet.task.chunk_outcomes import ChunkOutcome
from facefleet.task.chunks import process_chunk
from facefleet.task.cleanup import clean_up
from facefleet.task.jobs import (
    delete_task,
    get_task,
    pending_chunks,
    resume_interrupted,
    retry_task,
)
from facefleet.task.planning import plan_task, remember_probe
from facefleet.task.progress import task_progress
from facefleet.task.quality import report
from facefleet.task.stitching import stitch_task
from facefleet.task.submission import Draft, Receive, submit
from facefleet.tenants.tenancy import ensure_default_tenant
from pipeline.hwaccel import Codecs, choose
from pipeline.output_size import CODECS, output_view
from pipeline.sandbox import drop_spare

log = logging.getLogger(__name__)

_HASH_BLOCK = 1 << 20


class EmbeddedJobError(Exception):
    """The job could not be run or finished as failed; the message is for the user."""


@dataclass(frozen=True)
class JobRequest:
    target: Path
    sources: tuple[Path, ...]
    reference: Path | None
    output: Path
    options: JobOptions


def open_context(
    settings: Settings, worker_name: str | None = None, codecs: Codecs | None = None
) -> JobContext:
    """The embedded context; ``codecs``: those its chunks use (None: the CPU's)."""
    settings.home.mkdir(parents=True, exist_ok=True)
    engine = make_engine(f"sqlite:///{settings.home / 'facefleet.db'}")
    ensure_schema(engine)
    sessions = make_sessionmaker(engine)
    ensure_default_tenant(sessions)
    return JobContext.from_settings(
        settings,
        sessions=sessions,
        storage=LocalStorage(settings.home / "bucket"),
        checkpoints=SqlCheckpoints(sessions),
        worker_name=worker_name,
        codecs=codecs or Codecs(),
        errors_keep_paths=True,
    )


def job_codecs(settings: Settings) -> Codecs:
    """The codecs of this run (``--hwaccel``), said once in the log."""
    codecs = choose(settings.hwaccel)
    log.info("video codecs (--hwaccel %s): %s", settings.hwaccel, codecs.reason)
    return codecs


def job_id(request: JobRequest, codecs: Codecs | None = None) -> str:
    """Same input bytes, options and encoder -> same id (so a rerun resumes). The encoder
    counts only where it is not the CPU's, so CPU jobs keep their ids."""
    digest = hashlib.sha256()
    for path in (request.target, *request.sources, *([request.reference] if request.reference else [])):
        digest.update(_file_digest(path).encode())
    digest.update(
        json.dumps(
            request.options.model_dump(mode="json", exclude=set(DELIVERY_OPTIONS)), sort_keys=True
        ).encode()
    )
    cpu_encoder = CODECS[request.options.codec]
    encoder = (codecs or Codecs()).encoder_for(cpu_encoder)
    if encoder != cpu_encoder:
        digest.update(f"encoder={encoder}".encode())
    return digest.hexdigest()[:32]


def _file_digest(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def check_inputs(request: JobRequest) -> None:
    """Refuse, before any work, the paths that name no file and an output path that cannot
    be written. What the files hold is checked by the submission, as the API's are."""
    named = [("target", request.target), *[("source", s) for s in request.sources]]
    if request.reference:
        named.append(("reference", request.reference))
    for role, path in named:
        if not path.exists():
            raise EmbeddedJobError(f"{role} not found: {path}")
        if not path.is_file():
            raise EmbeddedJobError(f"{role} is not a regular file: {path}")
    _check_output(request.output)


def _check_output(output: Path) -> None:
    if output.name in ("", ".", ".."):
        raise EmbeddedJobError(f"output must name a file: {str(output)!r}")
    if output.exists() and not output.is_file():
        raise EmbeddedJobError(f"output exists and is not a regular file: {output}")
    if not output.parent.is_dir():
        raise EmbeddedJobError(f"output folder does not exist: {output.parent}")
    probe_file = _aside(output)
    try:
        probe_file.touch()
        probe_file.unlink()
    except OSError as exc:
        raise EmbeddedJobError(f"cannot write to the output folder {output.parent}: {exc.strerror}") from None


def _aside(output: Path) -> Path:
    """Where the output is written before it is renamed into place."""
    return output.with_name(f".{output.name}.{os.getpid()}.part")


def _children_folder(settings: Settings, task_id: str) -> Path:
    return settings.home / "locks" / f"{task_id}.children"


@contextmanager
def _job_lock(settings: Settings, task_id: str) -> Iterator[None]:
    locks = settings.home / "locks"
    locks.mkdir(parents=True, exist_ok=True)
    with open(locks / f"{task_id}.lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise EmbeddedJobError(f"job {task_id} is already running in another process") from None
        yield


@dataclass(frozen=True)
class JobResult:
    task_id: str
    frames: int  # in the output
    quality: dict[str, Any] | None = None  # the quality gate's report (None: nothing measured)
    content_policy: dict[str, Any] | None = None  # the content policy's verdict (None: off)
    output: dict[str, Any] | None = None  # its size, as the task's view says (``output_view``)


def run_job(
    settings: Settings,
    request: JobRequest,
    workers: int = 1,
    on_progress: Callable[[int, int], None] | None = None,
    on_phase: Callable[[str], None] | None = None,
    codecs: Codecs | None = None,
) -> JobResult:
    """Run (or resume) a job to completion and write its output. ``on_phase`` hears each
    phase as it starts (the API's names: probing, processing, stitching, uploading);
    ``codecs``: the video codecs (None: as ``settings.hwaccel`` chooses them)."""
    phase = on_phase or (lambda name: None)
    check_inputs(request)
    check_signing(settings)  # an unusable certificate stops the job before any work
    memory.release_free_memory()  # caps the heap arenas before any decoder starts its threads
    started = time.time()
    codecs = codecs or job_codecs(settings)
    ctx = open_context(settings, codecs=codecs)
    scratch.sweep(settings.scratch_dir, started)  # what killed runs left (live ones hold theirs)
    task_id = job_id(request, codecs)
    with _job_lock(settings, task_id):
        # children of a previous run of this job that outlived it would compete with ours
        local_children.end_survivors(_children_folder(settings, task_id))
        _ensure_task(ctx, settings, request, task_id)
        drop_spare()  # a prober started ahead that the job did not need (it was submitted before)
        task = get_task(ctx, task_id)
        if task.state in (TaskState.QUEUED, TaskState.PLANNING):
            phase("probing")
            _until_done(lambda: plan_task(ctx, task_id))
        task = get_task(ctx, task_id)
        if task.state == TaskState.RUNNING:
            resume_interrupted(ctx, task_id)
            phase("processing")
            _run_chunks(settings, ctx, task_id, workers, on_progress)
        if get_task(ctx, task_id).state == TaskState.STITCHING:
            phase("stitching")
            _until_done(lambda: stitch_task(ctx, task_id))
        task = get_task(ctx, task_id)
        if task.state != TaskState.SUCCEEDED:
            clean_up(ctx, task_id)  # what its failure asked to remove (a content_policy block: all)
            if not settings.keep_work_files:  # a failed job is not resumed: its links and rows go
                _remove(ctx, task_id)
            raise EmbeddedJobError(task.error or f"job ended {task.state.value}")
        phase("uploading")  # here: the output put in its place
        _deliver(ctx, task, request.output, share=not settings.keep_work_files)
        quality = report(task.quality, ctx.quality_thresholds)
        if not settings.keep_work_files:  # the output is where the user wants it: nothing else stays
            _remove(ctx, task_id)
    output = output_view(task.probe, task.options)
    return JobResult(task_id, task.frames_total or 0, quality, task.content_policy, output)


def _remove(ctx: JobContext, task_id: str) -> None:
    """The job's rows and every file it stored (the inputs linked into the bucket too)."""
    delete_task(ctx, task_id)
    clean_up(ctx, task_id)


def _until_done(step: Callable[[], object]) -> None:
    """Run a planning or stitching step, again after a pause while it meets an unavailable
    service (its own deadline, ``infra_retry_s``, ends that)."""
    while True:
        try:
            step()
            return
        except TryLater as later:
            log.warning("%s; trying again in 5 s", later)
            time.sleep(5)


def _ensure_task(ctx: JobContext, settings: Settings, request: JobRequest, task_id: str) -> None:
    with ctx.sessions() as session:
        task = session.get(Task, task_id)
    gone = task is not None and (
        (task.state == TaskState.SUCCEEDED and not ctx.storage.exists(keys.TaskKeys(task_id).output))
        or (task.state == TaskState.FAILED and task.inputs_expired_at is not None)  # e.g. blocked
    )
    if gone:
        _remove(ctx, task_id)  # finished once, its files since removed: run it afresh
        task = None
    if task is None:
        storage = ctx.storage
        assert isinstance(storage, LocalStorage)
        drafts: list[Draft] = []
        submit(ctx, settings, _adopting(storage, request, drafts), task_id=task_id)
        if drafts and drafts[0].video is not None:
            remember_probe(ctx, task_id, drafts[0].video)
    elif task.state == TaskState.FAILED:
        retry_task(ctx, task_id)


def _adopting(storage: LocalStorage, request: JobRequest, drafts: list[Draft]) -> Receive:
    """The user's files into the bucket: linked, not copied, where the disk allows; the
    draft is kept in ``drafts``."""

    def receive(draft: Draft, _scratch: Path) -> None:
        drafts.append(draft)
        target = draft.add_target(request.target.name)
        storage.adopt(target, request.target)
        # probed under its key's name, as the API's copy is: the file's own name (a .m3u8,
        # say) would let FFmpeg pick another reader, and refuse it in other words
        draft.target_copy, draft.target_bytes = storage.local_path(target), request.target.stat().st_size
        for source in request.sources:
            storage.adopt(draft.add_source(), source)
        if request.reference:
            draft.reference_key = draft.keys.reference
            storage.adopt(draft.reference_key, request.reference)
        draft.options = request.options

    return receive


def _run_chunks(
    settings: Settings,
    ctx: JobContext,
    task_id: str,
    workers: int,
    on_progress: Callable[[int, int], None] | None,
) -> None:
    with ctx.sessions() as session:
        todo = pending_chunks(session, task_id)

    def report() -> None:
        if on_progress:
            progress = task_progress(ctx, task_id)
            on_progress(progress["frames_done"], progress["frames_total"])

    report()
    if workers <= 1:
        for index in todo:
            _run_one_chunk(ctx, task_id, index)
            report()
        return
    # A pool that is terminated on the way out: Ctrl-C and a plain kill stop every child at
    # once (they ignore SIGINT themselves), a kill -9 too (each child dies with its parent:
    # local_children), and the rerun resumes from the checkpoints.
    children = _children_folder(settings, task_id)
    init_args = (settings, os.getpid(), children, ctx.codecs)  # the parent's choice, for all
    try:
        with multiprocessing.get_context("spawn").Pool(workers, _init_child, init_args) as pool:
            pending = [pool.apply_async(_child_chunk, (task_id, index)) for index in todo]
            while pending:
                pending[0].wait(0.5)
                for result in [r for r in pending if r.ready()]:
                    result.get()  # re-raises a child's error here
                    pending.remove(result)
                report()
    finally:
        local_children.end_survivors(children)  # the terminated pool's, gone before we go on


def _run_one_chunk(ctx: JobContext, task_id: str, index: int) -> ChunkOutcome:
    """A chunk with its retries (the embedded stand-in for the broker's redelivery)."""
    while True:
        outcome = process_chunk(ctx, task_id, index)
        if outcome not in (ChunkOutcome.RETRY, ChunkOutcome.RETRY_LATER):
            return outcome
        time.sleep(0.1 if outcome == ChunkOutcome.RETRY else 1.0)


_child_ctx: JobContext | None = None


def _init_child(settings: Settings, parent_pid: int, children: Path, codecs: Codecs) -> None:
    global _child_ctx
    local_children.die_with_parent(parent_pid)
    local_children.record_child(children)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _child_ctx = open_context(settings, codecs=codecs)


def _child_chunk(task_id: str, index: int) -> ChunkOutcome:
    assert _child_ctx is not None
    return _run_one_chunk(_child_ctx, task_id, index)


def _deliver(ctx: JobContext, task: Task, output: Path, share: bool) -> None:
    """Put the result at ``output`` atomically: written aside, then renamed. ``share``: the
    job's files are removed next, so the stored output itself becomes the user's file (a hard
    link, where the disk allows) instead of a copy of it: a long film is not written twice."""
    assert task.output_key is not None
    aside = _aside(output)
    try:
        if not (share and _hard_link(ctx.storage.local_path(task.output_key), aside)):
            ctx.storage.get_file(task.output_key, aside)
        os.replace(aside, output)
    finally:
        aside.unlink(missing_ok=True)


def _hard_link(source: Path, link: Path) -> bool:
    """``link`` made a hard link to ``source``, with the permissions a new file gets (the
    stored output is a private scratch file, 0600); False where the disk cannot link
    (another file system, or no links allowed)."""
    try:
        os.link(source, link)
    except OSError:
        return False
    os.chmod(link, 0o666 & ~_umask())
    return True


def _umask() -> int:
    """This process's umask: set and put back, which is safe here, after every chunk's
    threads and processes have ended (nothing else is creating files)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
