"""``verify``: what a file says about its provenance, for ``facefleet verify`` and
``POST /v1/verify``. The file is read in a sandboxed child (``pipeline.verify_media``): its
C2PA manifest (valid? signed by whom? FaceFleet's?) and the watermark in its frames, whose
short id is resolved to a task of the caller's (every task for an admin or the CLI)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from facefleet.config.errors import MediaRefused
from facefleet.config.settings import Settings
from facefleet.provenance.signing import TASK_ASSERTION, TOOL
from facefleet.records.db import Task
from pipeline.errors import PipelineError


def verify_file(
    settings: Settings, path: Path, sessions: sessionmaker | None = None, tenant: str | None = None
) -> dict[str, Any]:
    """The report: ``provenance`` (True when FaceFleet's manifest is valid or its watermark is
    found), ``manifest`` and ``watermark`` (None when absent). ``tenant`` None: any task may
    be named. Raises MediaRefused for a file that is no usable video (or past a limit)."""
    from pipeline.verify_media import verify_untrusted  # here: the API starts without PyAV

    try:
        report = verify_untrusted(
            path,
            settings.media_limits(),
            max_frames=settings.verify_max_frames,
            trust_anchors=settings.c2pa_trust_anchors,
            timeout_s=settings.verify_timeout_s,
            memory_bytes=settings.probe_memory_bytes,
        )
    except PipelineError as exc:
        raise MediaRefused(str(exc)) from None
    manifest, watermark = report.get("manifest"), report.get("watermark")
    if manifest is not None:
        claim = (manifest.get("assertions") or {}).get(TASK_ASSERTION) or {}
        manifest["facefleet"] = TOOL in (manifest.get("claim_generator") or []) and bool(claim)
        manifest["task_id"] = claim.get("task_id")
    if watermark is not None:
        watermark["task_id"] = resolve(sessions, watermark["short_id"], tenant) if sessions else None
    signed = manifest is not None and manifest.get("facefleet") and manifest.get("valid")
    return {
        "provenance": bool(signed or watermark),
        "manifest": manifest,
        "watermark": watermark,
        "frames_total": report.get("frames_total"),
    }


def resolve(sessions: sessionmaker, short_id: str, tenant: str | None) -> str | None:
    """The task whose id starts with ``short_id`` (16 hex digits), among ``tenant``'s."""
    low, high = short_id, short_id + "g"  # every id with that prefix sorts in [low, high)
    query = select(Task.id).where(Task.id >= low, Task.id < high).limit(2)
    if tenant is not None:
        query = query.where(Task.tenant == tenant)
    with sessions() as session:
        found = list(session.scalars(query))
    return found[0] if len(found) == 1 else None
