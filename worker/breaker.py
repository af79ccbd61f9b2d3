"""A worker's breaker: a broken host must not collect everyone's retries.

The broken worker is always the free one, so without a breaker it takes chunk after chunk
and fails each within seconds. The breaker opens on one local fault (a full scratch disk, a
device that cannot load its models, credentials the bucket refuses: the chunk was already
given back with no attempt spent) or on ``failures`` work failures in a row of *different*
tasks (one bad input failing twice says nothing of the host; the attempt of the failure that
opens it is given back). While open, the fleet loop withdraws the worker's chunk slots,
cancels its chunk consumer and reports it not ready with the reason; a chunk message that
still reaches it is sent back to the queue untouched.

Recovery: every ``recheck_s`` the fleet loop checks the host (its scratch disk takes a
small file, the bucket accepts its credentials); once both pass, the breaker closes half
open (one more failure opens it again at once) and the worker takes chunks again. A fault
the check cannot see (a device) costs one given-back chunk per ``recheck_s``, never an
attempt; the operator sees the reason in ``facefleet worker --check`` and ``/readyz``.

State lives in shared memory made before the pool forks (like ``worker.lifecycle``), so
every prefork child records into it and the main process's fleet loop reads it.
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import os
import time
from collections.abc import Callable
from pathlib import Path

from facefleet.config.context import JobContext
from facefleet.storage.base import StorageError
from facefleet.storage.scratch import scratch_file
from facefleet.task.chunk_outcomes import ChunkOutcome
from facefleet.task.local_faults import attempt_returned, chunk_error

log = logging.getLogger(__name__)

REASON_BYTES = 400
TASK_ID_BYTES = 33  # a hex id and a separator
PROBE_BYTES = 1024 * 1024
WORK_FAILURES = frozenset({ChunkOutcome.RETRY, ChunkOutcome.FAILED})
SUCCESSES = frozenset({ChunkOutcome.SUCCEEDED, ChunkOutcome.STITCH})


class Breaker:
    """Open (with a reason) or closed; counts work failures of different tasks in a row."""

    def __init__(self, failures: int, recheck_s: float) -> None:
        self.failures, self.recheck_s = max(1, failures), recheck_s
        self._lock = multiprocessing.Lock()
        self._reason = multiprocessing.RawArray(ctypes.c_char, REASON_BYTES)
        self._streak = multiprocessing.RawArray(ctypes.c_char, TASK_ID_BYTES * self.failures + 1)
        self._checked_at = multiprocessing.RawValue(ctypes.c_double, 0.0)

    @property
    def reason(self) -> str:
        """Why it is open ("" while closed)."""
        return self._reason.value.decode(errors="replace")

    def record(self, outcome: ChunkOutcome, task_id: str, fault: str = "") -> bool:
        """How an attempt of ``task_id`` ended; True when a work failure opened it (the
        caller gives that attempt back)."""
        with self._lock:
            if outcome == ChunkOutcome.LOCAL_FAULT:
                self._open(fault or "a fault of this worker")
            elif outcome in SUCCESSES:
                self._streak.value = b""
            elif outcome in WORK_FAILURES:
                tasks = self._tasks()
                if task_id not in tasks:
                    tasks = [*tasks, task_id][-self.failures :]
                    self._streak.value = ",".join(tasks).encode()
                if len(tasks) >= self.failures and not self._reason.value:
                    self._open(f"chunks of {len(tasks)} different tasks failed in a row on this worker")
                    return True
        return False

    def due_for_check(self) -> bool:
        """Open, and its last check is ``recheck_s`` old."""
        return bool(self._reason.value) and time.monotonic() - self._checked_at.value >= self.recheck_s

    def close_half_open(self) -> None:
        """The host checked out well: take work again; one more work failure reopens."""
        with self._lock:
            self._reason.value = b""
            self._streak.value = ",".join(["half-open"] * (self.failures - 1)).encode()
        log.warning("breaker closed: this worker takes chunks again")

    def checked(self) -> None:
        self._checked_at.value = time.monotonic()

    def _tasks(self) -> list[str]:
        return [t for t in self._streak.value.decode().split(",") if t]

    def _open(self, reason: str) -> None:
        if not self._reason.value:
            log.error("breaker open: %s", reason)
        self._reason.value = reason.encode()[: REASON_BYTES - 1]
        self._checked_at.value = time.monotonic()


def host_problem(
    scratch: Path, bucket_answers: Callable[[], None], fault: Callable[[], None] | None = None
) -> str | None:
    """What is still wrong with this host (None: nothing the check can see): its scratch
    disk must take a small file, written through, and the bucket its credentials.
    (``fault``: a test's full disk, raised before the write.)"""
    try:
        if fault:
            fault()
        with scratch_file(scratch, "breaker-check") as path, open(path, "wb") as out:
            out.write(os.urandom(PROBE_BYTES))
            out.flush()
            os.fsync(out.fileno())
    except OSError as exc:
        return f"the scratch disk still fails ({exc.strerror or type(exc).__name__})"
    try:
        bucket_answers()
    except StorageError as exc:
        return f"object storage still fails: {exc}"
    return None


def note_outcome(
    breaker: Breaker, ctx: JobContext, outcome: ChunkOutcome, task_id: str, chunk_index: int
) -> None:
    """Tell the breaker how an attempt ended; a work failure that opened it gets its attempt
    back (the worker was at fault, as it turned out)."""
    fault = chunk_error(ctx, task_id, chunk_index) if outcome == ChunkOutcome.LOCAL_FAULT else ""
    if breaker.record(outcome, task_id, fault):
        attempt_returned(ctx, task_id, chunk_index)
