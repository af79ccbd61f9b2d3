"""The jobs kept in an embedded home (FACEFLEET_HOME): list them with their sizes, show one,
remove them. A job stays there when it was run with ``--keep-work`` or when its run was
interrupted (it resumes from there); a job whose run is live is never removed."""

from __future__ import annotations

import contextlib
import fcntl
import shutil
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import select

from facefleet.config.context import JobContext
from facefleet.config.errors import TaskNotFound
from facefleet.config.settings import Settings
from facefleet.modes.embedded import open_context
from facefleet.records.db import Task, utcnow
from facefleet.task.cleanup import clean_up
from facefleet.task.jobs import delete_task
from facefleet.task.progress import task_progress


class LocalJobError(Exception):
    """A job that cannot be found or removed; the message is for the user."""


@dataclass(frozen=True)
class LocalJob:
    id: str
    state: str
    target: str
    frames_done: int
    frames_total: int
    created_at: datetime
    bytes: int  # of its files under the home (inputs are often hard links to the user's files)
    running: bool  # a live `facefleet run` holds it
    error: str | None
    folder: Path


def has_jobs(settings: Settings) -> bool:
    return (settings.home / "facefleet.db").is_file()


def list_jobs(settings: Settings) -> list[LocalJob]:
    """Every job of the home, newest first (none when the home was never used)."""
    if not has_jobs(settings):
        return []
    ctx = open_context(settings)
    with ctx.sessions() as session:
        tasks = session.scalars(
            select(Task).where(Task.deleted_at.is_(None)).order_by(Task.created_at.desc())
        ).all()
    return [_job(ctx, settings, task) for task in tasks]


def find_job(settings: Settings, prefix: str) -> LocalJob:
    """The one job whose id starts with ``prefix``."""
    matches = [job for job in list_jobs(settings) if job.id.startswith(prefix)]
    if not matches:
        raise LocalJobError(f"no job {prefix!r} in {settings.home} (facefleet jobs list shows them)")
    if len(matches) > 1:
        raise LocalJobError(f"{prefix!r} names {len(matches)} jobs; give more of the id")
    return matches[0]


def remove_jobs(settings: Settings, jobs: list[LocalJob]) -> list[LocalJob]:
    """Remove the jobs (rows and files) whose run is not live; returns those removed."""
    if not jobs:
        return []
    ctx = open_context(settings)
    removed = []
    for job in jobs:
        if _is_running(settings, job.id):
            continue
        with contextlib.suppress(TaskNotFound):  # removed meanwhile by another command
            delete_task(ctx, job.id)
        clean_up(ctx, job.id)
        shutil.rmtree(job.folder, ignore_errors=True)
        shutil.rmtree(settings.home / "locks" / f"{job.id}.children", ignore_errors=True)
        (settings.home / "locks" / f"{job.id}.lock").unlink(missing_ok=True)
        removed.append(job)
    return removed


def older_than(jobs: list[LocalJob], age: timedelta) -> list[LocalJob]:
    cutoff = utcnow() - age
    return [job for job in jobs if job.created_at < cutoff]


def _job(ctx: JobContext, settings: Settings, task: Task) -> LocalJob:
    progress = task_progress(ctx, task.id, task)
    folder = settings.home / "bucket" / "tasks" / task.id
    return LocalJob(
        id=task.id,
        state=task.state.value,
        target=task.target_name or "",
        frames_done=progress["frames_done"],
        frames_total=progress["frames_total"],
        created_at=task.created_at,
        bytes=_size(folder),
        running=_is_running(settings, task.id),
        error=task.error,
        folder=folder,
    )


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else 0


def _is_running(settings: Settings, task_id: str) -> bool:
    """Whether a live run holds the job's lock (``embedded._job_lock``)."""
    path = settings.home / "locks" / f"{task_id}.lock"
    if not path.exists():
        return False
    with open(path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
    return False


def parse_age(text: str) -> timedelta:
    """``7d``, ``12h``, ``30m``, ``90s``, ``2w`` -> a duration."""
    units = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
    number, unit = text[:-1], text[-1:].lower()
    if unit not in units or not number.isdigit():
        raise LocalJobError(
            f"--older-than {text!r}: expected a number and a unit (s, m, h, d, w), as 7d or 12h"
        )
    return timedelta(**{units[unit]: int(number)})
