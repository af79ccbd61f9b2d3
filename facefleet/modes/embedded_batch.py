"""Embedded batches: ``facefleet run`` with several targets (or a folder) runs each video as
its own embedded job (``run_job``, with its resume guarantees) and writes one output per item
into the output folder, named after its input.

A batch's record is a small file under ``FACEFLEET_HOME/batches/``, named by the batch's
items (their job ids) and its output folder: the same command again finds it, and an item it
records as succeeded, whose output is still the file it wrote (same size and time), is not
redone. A failed item is tried again; an item interrupted mid-way resumes from its
checkpoints, as a single ``facefleet run`` does. Items are independent: one that fails is
recorded with its reason and the rest go on.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from facefleet.config.errors import InvalidSubmission, MediaRefused
from facefleet.config.settings import Settings
from facefleet.modes.embedded import EmbeddedJobError, JobRequest, job_codecs, job_id, run_job
from facefleet.storage.base import StorageError
from pipeline.errors import PipelineError
from pipeline.hwaccel import Codecs

# what fails one item, not the batch
ITEM_ERRORS = (EmbeddedJobError, InvalidSubmission, MediaRefused, PipelineError, StorageError, OSError)


@dataclass(frozen=True)
class ItemResult:
    target: Path
    output: Path
    state: str  # succeeded, failed, or done (succeeded in an earlier run, not redone)
    error: str | None = None


def output_names(targets: list[Path], folder: Path, container: str) -> list[Path]:
    """One output per target, ``<stem>.<container>`` in ``folder``; two inputs that would
    write the same output are refused before any work."""
    outputs = [folder / f"{t.stem}.{container}" for t in targets]
    seen: dict[Path, Path] = {}
    for target, output in zip(targets, outputs, strict=True):
        if output in seen:
            raise EmbeddedJobError(f"{seen[output]} and {target} would both be written to {output}")
        seen[output] = target
    return outputs


def run_batch(
    settings: Settings,
    requests: list[JobRequest],
    workers: int = 1,
    on_item: Callable[[ItemResult], None] | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    codecs: Codecs | None = None,
) -> list[ItemResult]:
    """Run (or resume) every item in order; returns each item's result. ``codecs``: the
    video codecs of every item (None: as ``settings.hwaccel`` chooses them)."""
    codecs = codecs or job_codecs(settings)  # the encoder is part of each item's id
    ids = [job_id(r, codecs) for r in requests]  # hashes every input once, before any work
    record = _Record(settings.home, ids, requests)
    results = []
    for request, item_id in zip(requests, ids, strict=True):
        if record.done(item_id, request.output):
            result = ItemResult(request.target, request.output, "done")
        else:
            try:
                run_job(settings, request, workers=workers, on_progress=on_progress, codecs=codecs)
                result = ItemResult(request.target, request.output, "succeeded")
            except ITEM_ERRORS as exc:
                result = ItemResult(request.target, request.output, "failed", _reason(exc))
            record.write(item_id, result)
        results.append(result)
        if on_item:
            on_item(result)
    return results


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror
    return str(exc)


class _Record:
    """The batch's items as last run: ``{item id: {target, output, state, error, size, mtime_ns}}``,
    rewritten (atomically) after each item."""

    def __init__(self, home: Path, ids: list[str], requests: list[JobRequest]) -> None:
        digest = hashlib.sha256()
        for item_id, request in zip(ids, requests, strict=True):
            digest.update(f"{item_id}:{request.output.resolve()}\n".encode())
        folder = home / "batches"
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / f"{digest.hexdigest()[:32]}.json"
        self.items: dict[str, dict[str, Any]] = {}
        if self.path.exists():
            try:
                self.items = json.loads(self.path.read_text())
            except (OSError, ValueError):
                self.items = {}  # unreadable: every item is run (and resumes from its checkpoints)

    @staticmethod
    def _key(item_id: str, output: Path) -> str:
        return f"{item_id}:{output.name}"  # one input twice in a batch: two items

    def done(self, item_id: str, output: Path) -> bool:
        entry = self.items.get(self._key(item_id, output))
        if not entry or entry.get("state") != "succeeded":
            return False
        try:
            stat = output.stat()
        except OSError:
            return False  # the output was since removed: the item is run again
        return bool(stat.st_size == entry["size"] and stat.st_mtime_ns == entry["mtime_ns"])

    def write(self, item_id: str, result: ItemResult) -> None:
        entry: dict[str, Any] = {
            "target": str(result.target),
            "output": str(result.output),
            "state": result.state,
            "error": result.error,
        }
        if result.state == "succeeded":
            stat = result.output.stat()
            entry.update(size=stat.st_size, mtime_ns=stat.st_mtime_ns)
        self.items[self._key(item_id, result.output)] = entry
        aside = self.path.with_suffix(f".{os.getpid()}.part")
        aside.write_text(json.dumps(self.items, indent=1, sort_keys=True))
        os.replace(aside, self.path)
