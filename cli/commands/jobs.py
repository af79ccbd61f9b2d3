"""``facefleet jobs list|show|clean``: the jobs kept on this machine (FACEFLEET_HOME)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from cli.option_flags import HelpFormatter

if TYPE_CHECKING:
    from facefleet.config.settings import Settings
    from facefleet.modes.local_jobs import LocalJob

DESCRIPTION = """\
The jobs `facefleet run` keeps in FACEFLEET_HOME: those run with --keep-work, and those
whose run was interrupted (run the same command again to resume one). A finished run
without --keep-work leaves nothing here.
"""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "jobs",
        help="list, show or remove the jobs kept on this machine",
        description=DESCRIPTION,
        formatter_class=HelpFormatter,
    )
    actions = parser.add_subparsers(dest="jobs_action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="every kept job: id, state, frames, size, input")
    listing.set_defaults(handler=handle_list)
    show = actions.add_parser("show", help="one job in detail")
    show.add_argument("id", help="the job's id, or enough of its start to name one job")
    show.set_defaults(handler=handle_show)
    clean = actions.add_parser(
        "clean", help="remove kept jobs and their files (a job whose run is live is left alone)"
    )
    clean.add_argument("ids", nargs="*", metavar="ID", help="the jobs to remove (default: every job)")
    clean.add_argument(
        "--older-than", metavar="AGE", help="only jobs created longer ago than AGE: 90s, 30m, 12h, 7d, 2w"
    )
    clean.set_defaults(handler=handle_clean)


def human_bytes(count: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if count < 1024 or unit == "GiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    raise AssertionError("unreachable")


def _state(job: LocalJob) -> str:
    return "running" if job.running else job.state


def handle_list(args: argparse.Namespace, settings: Settings) -> int:
    from facefleet.modes.local_jobs import list_jobs

    jobs = list_jobs(settings)
    if not jobs:
        print(f"no jobs kept in {settings.home} (facefleet run --keep-work keeps one)")
        return 0
    rows = [
        (
            job.id[:12],
            _state(job),
            f"{job.frames_done}/{job.frames_total}",
            human_bytes(job.bytes),
            f"{job.created_at:%Y-%m-%d %H:%M}",
            job.target,
        )
        for job in jobs
    ]
    print_table(("ID", "STATE", "FRAMES", "SIZE", "CREATED (UTC)", "INPUT"), rows)
    total = sum(job.bytes for job in jobs)
    print(
        f"\n{len(jobs)} job(s), {human_bytes(total)} in {settings.home}; `facefleet jobs clean` removes them"
    )
    return 0


def print_table(header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> None:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=True)]
    for row in (header, *rows):
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


def handle_show(args: argparse.Namespace, settings: Settings) -> int:
    from facefleet.modes.local_jobs import LocalJobError, find_job

    try:
        job = find_job(settings, args.id)
    except LocalJobError as exc:
        print(f"facefleet: {exc}", file=sys.stderr)
        return 1
    for label, value in (
        ("id", job.id),
        ("state", _state(job)),
        ("input", job.target),
        ("frames", f"{job.frames_done} of {job.frames_total} done"),
        ("created", f"{job.created_at:%Y-%m-%d %H:%M:%S} UTC"),
        ("size", human_bytes(job.bytes)),
        ("files", str(job.folder)),
        ("error", job.error or "-"),
    ):
        print(f"{label + ':':9} {value}")
    return 0


def handle_clean(args: argparse.Namespace, settings: Settings) -> int:
    from facefleet.modes.local_jobs import (
        LocalJobError,
        find_job,
        list_jobs,
        older_than,
        parse_age,
        remove_jobs,
    )

    try:
        jobs = [find_job(settings, job_id) for job_id in args.ids] if args.ids else list_jobs(settings)
        if args.older_than:
            jobs = older_than(jobs, parse_age(args.older_than))
        removed = remove_jobs(settings, jobs)
    except LocalJobError as exc:
        print(f"facefleet: {exc}", file=sys.stderr)
        return 1
    for job in removed:
        print(f"removed {job.id[:12]}  {human_bytes(job.bytes)}  {job.target}")
    kept = [job for job in jobs if job not in removed]
    for job in kept:
        print(f"kept {job.id[:12]}: its run is live", file=sys.stderr)
    print(f"{len(removed)} job(s) removed, {human_bytes(sum(j.bytes for j in removed))} freed")
    return 0
