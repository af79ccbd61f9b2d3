"""Deployment-level settings the pipeline needs (not per-job options)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Runtime:
    """Where models live and how to run them. Built from settings at each entry point."""

    model_dir: Path = field(default_factory=lambda: Path.home() / ".cache" / "facefleet" / "models")
    model_mirrors: tuple[str, ...] = ()
    model_manifest: Path | None = None
    providers: tuple[str, ...] = ("CPUExecutionProvider",)
    allow_cpu_fallback: bool = False
    intra_op_threads: int = 0
    # frames per inference call (detection over them at once, their faces swapped together);
    # 0: each job's face_batch
    inference_batch: int = 0
    gpu: str | None = None  # the GPU index this process is pinned to (CUDA_VISIBLE_DEVICES), if one
