"""Deterministic bucket keys: redoing a piece of work overwrites the same object.

A task's objects live under its tenant's prefix (``tenants/<tenant>/tasks/<id>/``); the
default tenant keeps the layout of single-tenant deployments (``tasks/<id>/``), so buckets
written before tenants existed stay valid.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

DEFAULT_TENANT = "default"


class _OwnedTask(Protocol):
    id: str
    tenant: str


@dataclass(frozen=True)
class TaskKeys:
    task_id: str
    tenant: str = DEFAULT_TENANT

    @property
    def prefix(self) -> str:
        if self.tenant == DEFAULT_TENANT:
            return f"tasks/{self.task_id}/"
        return f"tenants/{self.tenant}/tasks/{self.task_id}/"

    @property
    def input_prefix(self) -> str:
        return f"{self.prefix}input/"

    @property
    def target(self) -> str:
        return f"{self.input_prefix}target"

    def source(self, number: int) -> str:
        return f"{self.input_prefix}source-{number}"

    @property
    def reference(self) -> str:
        return f"{self.input_prefix}reference"

    @property
    def work_prefix(self) -> str:
        return f"{self.prefix}work/"

    @property
    def probe(self) -> str:
        return f"{self.work_prefix}probe.json"

    @property
    def assets(self) -> str:
        return f"{self.work_prefix}assets.npz"

    def segment_prefix(self, chunk_index: int) -> str:
        return f"{self.work_prefix}segments/{chunk_index:05d}/"

    def segment(self, chunk_index: int, segment_index: int) -> str:
        return f"{self.segment_prefix(chunk_index)}{segment_index:05d}.mp4"

    @property
    def output(self) -> str:
        return f"{self.prefix}output.mp4"


def of(task: _OwnedTask) -> TaskKeys:
    """The keys of a task row."""
    return TaskKeys(task.id, task.tenant)
