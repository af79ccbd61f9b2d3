"""Deterministic bucket keys: redoing a piece of work overwrites the same object."""

from __future__ import annotations


def task_prefix(task_id: str) -> str:
    return f"tasks/{task_id}/"


def input_prefix(task_id: str) -> str:
    return f"tasks/{task_id}/input/"


def target_key(task_id: str) -> str:
    return f"tasks/{task_id}/input/target"


def source_key(task_id: str, number: int) -> str:
    return f"tasks/{task_id}/input/source-{number}"


def reference_key(task_id: str) -> str:
    return f"tasks/{task_id}/input/reference"


def work_prefix(task_id: str) -> str:
    return f"tasks/{task_id}/work/"


def probe_key(task_id: str) -> str:
    return f"tasks/{task_id}/work/probe.json"


def assets_key(task_id: str) -> str:
    return f"tasks/{task_id}/work/assets.npz"


def segment_prefix(task_id: str, chunk_index: int) -> str:
    return f"tasks/{task_id}/work/segments/{chunk_index:05d}/"


def segment_key(task_id: str, chunk_index: int, segment_index: int) -> str:
    return f"{segment_prefix(task_id, chunk_index)}{segment_index:05d}.mp4"


def output_key(task_id: str) -> str:
    return f"tasks/{task_id}/output.mp4"
