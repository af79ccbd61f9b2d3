"""What the job functions need from the outside world; built once per process by each mode."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.orm import sessionmaker

from facefleet.records.checkpoints import Checkpoints
from facefleet.storage.base import Storage
from pipeline.limits import MediaLimits
from pipeline.quality import Thresholds
from pipeline.runtime import Runtime


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
    # sessions for reads outside any transaction (the API's status and listing); default: sessions
    reads: sessionmaker | None = None
    # whether any process holds a lease on part of the task (its files may still change)
    task_busy: Callable[[str], bool] = lambda _task_id: False
    # the distributed mode's meters: frames done in seconds of worker time (throughput), and
    # what a task's planner or stitcher is doing (its phase, with a percent where known)
    record_work: Callable[[int, float], None] = lambda _frames, _seconds: None
    set_phase: Callable[[str, str, float | None], None] = lambda _task_id, _phase, _percent: None
    # per-process caches (probe, chain) keyed by task id; models themselves are cached by pipeline.faces
    cache: dict[tuple[str, str], Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.scratch.mkdir(parents=True, exist_ok=True)

    @property
    def read_sessions(self) -> sessionmaker:
        return self.reads or self.sessions
