"""What the job functions need from the outside world; built once per process by each mode."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import sessionmaker

from facefleet.records.checkpoints import Checkpoints
from facefleet.storage.base import Storage
from pipeline.content import Policy
from pipeline.hwaccel import Codecs
from pipeline.limits import MediaLimits
from pipeline.quality import Thresholds
from pipeline.runtime import Runtime

if TYPE_CHECKING:
    from facefleet.config.settings import Settings


@dataclass
class JobContext:
    sessions: sessionmaker
    storage: Storage
    checkpoints: Checkpoints
    runtime: Runtime
    scratch: Path
    worker_name: str
    encoder_threads: int = 4
    max_attempts: int = 3
    infra_retry_s: float = 900.0
    max_chunk_s: float = 600.0
    lost_worker_budget: int = 10
    keep_work_files: bool = False
    max_chunks_per_task: int = 5000
    max_segments_per_task: int = 50000
    limits: MediaLimits = field(default_factory=MediaLimits)
    # the quality gate: every N-th frame measured (0: off), and what a task's figures must meet
    quality_sample_every: int = 50
    quality_thresholds: Thresholds = field(default_factory=Thresholds)
    anonymizer_leaves_faces: bool = False  # a test switch (TestHooks): the anonymiser hides nothing
    # the content policy: what happens to a task whose sampled input frames score as unsafe
    content_policy: Policy = field(default_factory=Policy)
    # provenance: new tasks with processors get the watermark; the stitch signs a C2PA
    # manifest with this certificate chain and key (None: outputs go unsigned)
    watermark: bool = True
    c2pa_files: tuple[Path, Path] | None = None
    # sessions for reads outside any transaction (the API's status and listing); default: sessions
    reads: sessionmaker | None = None
    # whether any process holds a lease on part of the task (its files may still change)
    task_busy: Callable[[str], bool] = lambda _task_id: False
    # the distributed mode's meters: frames done in seconds of worker time (throughput), and
    # what a task's planner or stitcher is doing (its phase, with a percent where known)
    record_work: Callable[[int, float], None] = lambda _frames, _seconds: None
    set_phase: Callable[[str, str, float | None], None] = lambda _task_id, _phase, _percent: None
    # NVDEC/NVENC where the mode chose them (pipeline.hwaccel); default: the CPU codecs
    codecs: Codecs = field(default_factory=Codecs)
    # a task's error keeps file paths and the model sources' addresses: the embedded mode's user
    # owns the machine (a service's tenants never see the workers' paths)
    errors_keep_paths: bool = False
    # per-process caches (probe, chain) keyed by task id; models themselves are cached by pipeline.faces
    cache: dict[tuple[str, str], Any] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings: Settings, *, worker_name: str | None = None, **ports: Any) -> JobContext:
        """A mode's context: its ports (sessions, storage, checkpoints, meters) and what every
        job reads from the settings; the worker is named after its host and process."""
        return cls(
            runtime=settings.runtime(),
            scratch=settings.scratch_dir,
            worker_name=worker_name or f"{socket.gethostname()}:{os.getpid()}",
            encoder_threads=settings.encoder_threads,
            max_attempts=settings.chunk_max_attempts,
            infra_retry_s=settings.infra_retry_s,
            max_chunk_s=settings.max_chunk_s,
            lost_worker_budget=settings.lost_worker_budget,
            keep_work_files=settings.keep_work_files,
            max_chunks_per_task=settings.max_chunks_per_task,
            max_segments_per_task=settings.max_segments_per_task,
            limits=settings.media_limits(),
            watermark=settings.watermark == "on",
            c2pa_files=(settings.c2pa_cert, settings.c2pa_key)
            if settings.c2pa_cert is not None and settings.c2pa_key is not None
            else None,
            quality_sample_every=settings.quality_sample_every,
            quality_thresholds=settings.quality_thresholds(),
            anonymizer_leaves_faces=settings.test_hooks.anonymizer_leaves_faces,
            content_policy=settings.content_policy_rule(),
            **ports,
        )

    def __post_init__(self) -> None:
        self.scratch.mkdir(parents=True, exist_ok=True)

    @property
    def read_sessions(self) -> sessionmaker:
        return self.reads or self.sessions
