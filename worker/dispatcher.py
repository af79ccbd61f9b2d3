"""The dispatcher and reaper loop that every worker runs (a thread of its main process), so
that no single process (a beat) is needed: each pass is taken by one worker at a time under
a short Redis lock, and losing any worker loses nothing.

A pass: announce this worker ready (per queue: the chunks queue once its models are warm)
and its chunk slots, with the models present and verified on its host (a submission that
needs a model no such worker has is refused); every ``reaper_interval_s``, reap (expired leases, deadlines, lost
planning and stitching messages, clean-ups); then dispatch: release
waiting chunks while the fleet has free slots, and release again what was released but
never started while the broker holds fewer chunk messages than that (a flush, a restart,
a lost send). Task bodies also dispatch at once when a chunk ends or a plan is made, so a
freed worker finds its next chunk in the broker without waiting for a pass.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from datetime import timedelta

import redis
from sqlalchemy import and_
from sqlalchemy.exc import SQLAlchemyError

from facefleet.config.settings import Settings
from facefleet.fleet.dispatch import ACTIVE, RELEASED, count, release, unstarted
from facefleet.fleet.readiness import ReadyBoard, remove_report, write_report
from facefleet.modes.distributed import CHUNKS, Services, open_services
from facefleet.records.db import Chunk, utcnow
from pipeline.errors import ModelError
from pipeline.models.store import ModelStore
from worker.breaker import Breaker, host_problem
from worker.faults import scratch_full
from worker.lifecycle import Lifecycle

log = logging.getLogger(__name__)

LOCK_TTL_S = 10.0
MODELS_REFRESH_S = 30.0  # how soon a model downloaded on a worker's host is announced


def dispatch(
    svc: Services,
    send: Callable[[str, int], None],
    waiting_messages: Callable[[], Mapping[str, int]],
    *,
    wait_s: float = 0.0,
) -> int:
    """One dispatch, under the fleet's dispatch lock (``wait_s``: how long to wait for it);
    returns the number of chunk messages sent."""
    lock = svc.state.redis.lock(
        svc.state.keys.marker("lock:dispatch"), timeout=LOCK_TTL_S, blocking_timeout=wait_s or None
    )
    if not lock.acquire(blocking=wait_s > 0):
        return 0
    try:
        return _released(svc, send) + _released_again(svc, send, waiting_messages)
    finally:
        with contextlib.suppress(redis.exceptions.LockError):  # held past its TTL: another may have it
            lock.release()


def _released(svc: Services, send: Callable[[str, int], None]) -> int:
    settings = svc.settings
    slots = svc.state.worker_slots() * settings.dispatch_per_slot
    with svc.sessions.begin() as session:
        room = slots - count(session, ACTIVE)
        picked = release(session, room)
        for chunk in picked:  # sent before the commit: a release always has its message
            send(chunk.task_id, chunk.index)
    for chunk in picked:
        log.info("chunk %d of task %s released (priority %d)", chunk.index, chunk.task_id, chunk.priority)
    return len(picked)


def _released_again(
    svc: Services, send: Callable[[str, int], None], waiting_messages: Callable[[], Mapping[str, int]]
) -> int:
    """Released chunks nobody started for ``release_timeout_s``, as many as the broker's chunk
    queue lacks messages for, are released again (their messages were lost)."""
    timeout = timedelta(seconds=svc.settings.release_timeout_s)
    with svc.sessions.begin() as session:
        stale = count(session, and_(RELEASED, Chunk.released_at < utcnow() - timeout))
        if not stale:
            return 0
        missing = count(session, RELEASED) - waiting_messages().get(CHUNKS, 0)
        again = unstarted(session, utcnow() - timeout, min(stale, missing)) if missing > 0 else []
        for task_id, index in again:
            send(task_id, index)
    for task_id, index in again:
        log.warning("chunk %d of task %s was released but never started: released again", index, task_id)
    return len(again)


class FleetLoop:
    """The thread each worker's main process runs: announce, reap, dispatch, every
    ``dispatch_interval_s`` (at once when the lifecycle changes). It has connections of its
    own (after a fork, a child leaves them to the parent)."""

    def __init__(
        self,
        node: str,
        slots: int,
        settings: Settings,
        served: tuple[str, ...],
        lifecycle: Lifecycle,
        reap: Callable[[Services], int],
        send: Callable[[str, int], None],
        waiting_messages: Callable[[], Mapping[str, int]],
        breaker: Breaker | None = None,
        stop_taking_chunks: Callable[[], bool] = lambda: True,
        start_taking_chunks: Callable[[], bool] = lambda: True,
    ) -> None:
        self.node, self.slots, self.settings = node, slots, settings
        self.served, self.lifecycle = served, lifecycle
        self._reap, self._send, self._waiting = reap, send, waiting_messages
        self._stop_taking_chunks, self._start_taking_chunks = stop_taking_chunks, start_taking_chunks
        self.breaker = breaker
        self._took_chunks = bool(slots)
        self._stop = threading.Event()
        self._withdrawn = False
        self._present: tuple[float, list[str] | None] | None = None  # (when, models)
        self._thread: threading.Thread | None = None
        self._svc: Services | None = None
        # held for each pass, and by a fork: a pool child forked mid-pass would inherit locks
        # the pass held (prometheus_client's, a connection pool's) locked, and hang on them
        self._passing = threading.RLock()

    def start(self) -> None:
        self._svc = open_services(self.settings, worker_name=f"{self.node}/dispatcher")
        os.register_at_fork(
            before=self._passing.acquire, after_in_parent=self._passing.release, after_in_child=self._forget
        )
        self._thread = threading.Thread(target=self._run, name="facefleet-dispatcher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.lifecycle.woken.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        remove_report(self.settings.scratch_dir, self.node)
        if self._svc is not None:
            self._withdraw(self._svc)

    def _forget(self) -> None:
        svc = self._svc
        if svc is not None:  # the child's copies of the parent's connections stay unused
            svc.engine.dispose(close=False)
            if svc.read_engine is not None:
                svc.read_engine.dispose(close=False)
        self._svc = None
        self._passing = threading.RLock()  # the parent's, copied held: the child has its own

    def _run(self) -> None:
        interval = self.settings.dispatch_interval_s
        while not self._stop.is_set():
            svc = self._svc
            if svc is None:
                return
            with self._passing:
                self._pass(svc, interval)
            self.lifecycle.woken.wait(interval)
            self.lifecycle.woken.clear()

    def _pass(self, svc: Services, interval: float) -> None:
        try:
            self._announce(svc, ttl_s=max(3 * interval, 5.0))
            if svc.state.mark_once("reap-pass", self.settings.reaper_interval_s * 0.8):
                self._reap(svc)
            dispatch(svc, self._send, self._waiting)
        except (SQLAlchemyError, redis.RedisError, OSError) as exc:  # a service is down: next pass
            log.warning("dispatcher pass skipped: %s", type(exc).__name__)
            self._report(False, f"a service does not answer ({type(exc).__name__})")
        except Exception:
            log.exception("dispatcher pass failed")

    def _announce(self, svc: Services, ttl_s: float) -> None:
        """Ready for the queues whose work it can do now: the chunks queue once its models
        are warm, the others once its services answer (this pass got here); a stopping worker
        withdraws at once, so that nothing counts on its slots any more."""
        if self.lifecycle.stopping:
            self._withdraw(svc)
            self._report(False, "shutting down")
            return
        broken = self._broken(svc)
        self._take_chunks(not (self.lifecycle.failed or broken))  # else it fails every chunk it takes
        warm = self.lifecycle.warm and not broken
        ready = [q for q in self.served if warm or q != CHUNKS]
        if self.slots and warm:
            svc.state.announce_worker(self.node, self.slots, ttl_s=ttl_s, models=self._models())
        elif broken:  # nothing counts on its slots: the dispatcher releases for the others
            svc.state.withdraw_worker(self.node)
        board = ReadyBoard(svc.state.redis, svc.state.keys)
        board.announce(self.node, ready, ttl_s)
        if warm and self.slots:  # the models' providers, and the video codecs next to them
            board.report_providers(self.node, {**self.lifecycle.providers, **self.lifecycle.codecs.report()})
        reason = broken or ("" if warm else self.lifecycle.not_warm_reason())
        self._report(len(ready) == len(self.served), reason)

    def _models(self) -> list[str] | None:
        """The models present and verified on this host, looked at again every
        ``MODELS_REFRESH_S`` (a file hashed once is not hashed again while unchanged); None
        when the manifest cannot be read (the worker then does not say)."""
        now = time.monotonic()
        if self._present is None or now - self._present[0] > MODELS_REFRESH_S:
            try:
                present: list[str] | None = ModelStore.for_runtime(self.settings.runtime()).present()
            except ModelError as exc:
                log.warning("cannot tell which models are present: %s", exc)
                present = None
            self._present = (now, present)
        return self._present[1]

    def _take_chunks(self, take: bool) -> None:
        """Cancel the chunk consumer (or start it again) when the worker's state changed."""
        if not take and self._took_chunks:
            self._took_chunks = not self._stop_taking_chunks()
        elif take and not self._took_chunks and self.slots:
            self._took_chunks = self._start_taking_chunks()

    def _broken(self, svc: Services) -> str:
        """Why its breaker is open ("" when closed); checks the host when a check is due."""
        breaker = self.breaker
        if breaker is None or not breaker.reason:
            return ""
        if breaker.due_for_check():
            problem = host_problem(
                self.settings.scratch_dir, svc.storage.ping, scratch_full(self.settings.test_hooks)
            )
            breaker.checked()
            if problem is None:
                breaker.close_half_open()
                return ""
            log.warning("breaker stays open: %s", problem)
        return f"breaker open, takes no chunks: {breaker.reason} (checked every {breaker.recheck_s:.0f} s)"

    def _withdraw(self, svc: Services) -> None:
        if not self._withdrawn:
            svc.state.withdraw_worker(self.node)
            ReadyBoard(svc.state.redis, svc.state.keys).withdraw(self.node)
            self._withdrawn = True

    def _report(self, ready: bool, reason: str) -> None:
        try:
            write_report(self.settings.scratch_dir, self.node, list(self.served), ready, reason)
        except OSError as exc:
            log.warning("cannot write the readiness report: %s", exc)
