"""The Celery tasks. Messages carry ids, never bytes; all state lives in PostgreSQL (states,
attempts), the bucket (bytes) and Redis (checkpoints, leases, cancel flags).

Each task body is: take the lease, call the job core, release, enqueue what comes next.
A delivery that finds the lease taken does nothing: the holder is alive and working (if it
dies, its lease expires and the reaper re-enqueues the chunk).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import redis
from celery import signals

from facefleet.config.errors import TryLater
from facefleet.fleet.leases import Lease
from facefleet.modes.distributed import (
    CHUNK_TASK,
    PLAN_TASK,
    STITCH_TASK,
    Services,
    open_services,
    waiting_messages,
)
from facefleet.observability import logs, memory, metrics
from facefleet.records.states import TaskState
from facefleet.storage.scratch import sweep
from facefleet.task.chunk_outcomes import ChunkOutcome
from facefleet.task.chunks import process_chunk
from facefleet.task.cleanup import clean_up
from facefleet.task.planning import plan_task
from facefleet.task.stitching import stitch_task
from worker import faults, observe
from worker.base import FaceFleetCelery
from worker.breaker import note_outcome
from worker.consumer import start_taking_chunks, stop_taking_chunks
from worker.deliverer import Deliverer
from worker.dispatcher import FleetLoop, dispatch
from worker.policies import exhausted, holding_on, put_off, riding_out_redis
from worker.reaper import reap

log = logging.getLogger(__name__)

T = TypeVar("T")

# per-task caches (probe, chain) kept by each process; older tasks' entries are dropped
MAX_CACHED_ENTRIES = 16

_lock = threading.Lock()
_services: tuple[int, Services] | None = None


def services(app: FaceFleetCelery) -> Services:
    """This process's connections and job context, built once per process (after fork)."""
    global _services
    with _lock:
        if _services is None or _services[0] != os.getpid():
            _services = (os.getpid(), open_services(app.settings, codecs=app.lifecycle.codecs))
            log.info("worker process %d ready (%s)", os.getpid(), _services[1].ctx.worker_name)
        return _services[1]


def register(app: FaceFleetCelery) -> None:
    observe.register(app, request_of=lambda task_id: services(app).state.request_of(task_id))

    @signals.worker_process_init.connect(weak=False)
    def _init_process(**_: Any) -> None:  # prefork children and the solo pool: before taking work
        services(app)
        faults.arm_process(app.settings.test_hooks)
        app.lifecycle.warm_up(app.settings.runtime())

    @signals.worker_shutting_down.connect(weak=False)
    def _stopping(**_: Any) -> None:  # SIGTERM's handler, in the main process: flags only
        app.lifecycle.stop()

    loop: list[FleetLoop] = []
    deliverers: list[Deliverer] = []

    @signals.worker_init.connect(weak=False)
    def _start(**_: Any) -> None:  # the main process, before the pool starts (and warms up)
        sweep(app.settings.scratch_dir, time.time())  # what dead processes left
        _start_fleet_loop()
        deliverer = Deliverer(app.settings)  # webhooks from the outbox, beside the fleet loop
        deliverer.start()
        deliverers.append(deliverer)
        if app.pool_kind == "threads":  # the threads share this process's models
            app.lifecycle.warm_up(app.settings.runtime())

    def _start_fleet_loop() -> None:  # reaper, dispatcher and readiness, from the warm-up on
        fleet_loop = FleetLoop(
            app.node_name,
            app.chunk_slots,
            app.settings,
            app.served,
            app.lifecycle,
            reap=lambda svc: run_reap(app, svc),
            send=lambda task_id, index: enqueue_chunk(app, task_id, index),
            waiting_messages=lambda: waiting_messages(app, app.settings),
            breaker=app.breaker,
            stop_taking_chunks=lambda: stop_taking_chunks(app),
            start_taking_chunks=lambda: start_taking_chunks(app),
        )
        fleet_loop.start()
        loop.append(fleet_loop)

    @signals.worker_shutdown.connect(weak=False)
    def _stop_fleet_loop(**_: Any) -> None:
        for fleet_loop in loop:
            fleet_loop.stop()
        for deliverer in deliverers:
            deliverer.stop()

    @app.task(name=PLAN_TASK)
    def plan(task_id: str) -> int:
        return riding_out_redis(services(app), lambda: run_plan(app, task_id))

    @app.task(name=CHUNK_TASK)
    def chunk(task_id: str, chunk_index: int, attempt: int = 1) -> str:  # attempt: older messages
        return riding_out_redis(services(app), lambda: run_chunk(app, task_id, chunk_index))

    @app.task(name=STITCH_TASK)
    def stitch(task_id: str) -> str:
        return riding_out_redis(services(app), lambda: run_stitch(app, task_id))


def run_reap(app: FaceFleetCelery, svc: Services) -> int:
    return reap(
        svc,
        lambda t: enqueue(app, PLAN_TASK, t),
        lambda t: enqueue(app, STITCH_TASK, t),
        lambda: waiting_messages(app, app.settings),
    )


def dispatch_now(app: FaceFleetCelery, svc: Services) -> int:
    """Release what the fleet has room for now (a chunk ended, a plan was made); waits a
    moment for the dispatch lock. A failure is left to the next pass of the fleet loop."""
    try:
        with logs.detached():  # chunks of any task: not this task's lines
            return dispatch(
                svc,
                lambda task_id, index: enqueue_chunk(app, task_id, index),
                lambda: waiting_messages(app, app.settings),
                wait_s=2.0,
            )
    except Exception as exc:
        log.warning("dispatch after this task skipped (%s): the fleet loop does it", type(exc).__name__)
        return 0


def enqueue(app: FaceFleetCelery, name: str, *args: Any, **options: Any) -> None:
    app.send_task(name, args=list(args), **options)


def enqueue_chunk(app: FaceFleetCelery, task_id: str, chunk_index: int) -> None:
    app.send_task(CHUNK_TASK, args=[task_id, chunk_index])


def run_plan(app: FaceFleetCelery, task_id: str) -> int:
    svc = services(app)
    lease = svc.state.lease(task_id, "plan", stall_after_s=svc.settings.chunk_stall_s)
    if not lease.acquire():
        log.info("task %s is being planned elsewhere", task_id)
        return 0
    try:
        if exhausted(svc, task_id, TaskState.PLANNING):
            return 0
        indices = holding_on(
            svc, lease, lambda: plan_task(svc.ctx, task_id, lease.touch, lambda: not lease.lost)
        )
    except TryLater as later:
        put_off(svc, task_id, "plan", later, lambda delay: enqueue(app, PLAN_TASK, task_id, countdown=delay))
        return 0
    finally:
        lease.release()
    if indices:
        dispatch_now(app, svc)
    return len(indices)


def run_chunk(app: FaceFleetCelery, task_id: str, chunk_index: int) -> str:
    svc = services(app)
    if app.breaker.reason:  # this worker is broken: the message goes back for another worker
        enqueue_chunk(app, task_id, chunk_index)
        return "breaker-open"
    lease = svc.state.chunk_lease(task_id, chunk_index, stall_after_s=svc.settings.chunk_stall_s)
    if not lease.acquire():
        log.info("chunk %d of task %s is leased elsewhere: this delivery does nothing", chunk_index, task_id)
        return "leased"
    measured = memory.reset_peak()
    try:
        outcome = holding_on(
            svc,
            lease,
            lambda: process_chunk(
                svc.ctx,
                task_id,
                chunk_index,
                should_stop=_stopper(app, svc, lease, task_id),
                hand_back=lambda: app.lifecycle.stopping and not lease.lost,  # lost: not ours to give
                on_frame=faults.poisoned(svc, task_id)
                or faults.scratch_full(app.settings.test_hooks)
                or lease.touch,
                lease_token=lease.token,
                still_ours=lambda: not lease.lost,
            ),
        )
    finally:
        lease.release()
        _trim_cache(svc, task_id)
    note_outcome(app.breaker, svc.ctx, outcome, task_id, chunk_index)
    if outcome != ChunkOutcome.SKIPPED:
        label = "succeeded" if outcome == ChunkOutcome.STITCH else outcome.value
        metrics.CHUNK_ATTEMPTS.labels(label).inc()
    peak = memory.peak_rss_bytes() if measured else None
    log.info(
        "chunk %d of task %s: %s%s",
        chunk_index,
        task_id,
        outcome.value,
        f" (peak RSS {peak / 2**20:.0f} MiB)" if peak else "",
    )
    if outcome == ChunkOutcome.STITCH:
        enqueue(app, STITCH_TASK, task_id)
    elif outcome in (ChunkOutcome.CANCELLED, ChunkOutcome.BLOCKED, ChunkOutcome.TASK_ENDED):
        clean_up(svc.ctx, task_id)  # done now if this was the last holder, else by the reaper
    dispatch_now(app, svc)  # this worker is free: its next chunk (a retry waits out its backoff)
    return outcome.value


def run_stitch(app: FaceFleetCelery, task_id: str) -> str:
    svc = services(app)
    lease = svc.state.lease(task_id, "stitch", stall_after_s=svc.settings.chunk_stall_s)
    if not lease.acquire():
        log.info("task %s is being stitched elsewhere", task_id)
        return "leased"
    try:
        if exhausted(svc, task_id, TaskState.STITCHING):
            return "failed"
        done = holding_on(
            svc,
            lease,
            lambda: stitch_task(svc.ctx, task_id, still_ours=lambda: not lease.lost, on_progress=lease.touch),
        )
    except TryLater as later:
        put_off(
            svc, task_id, "stitch", later, lambda delay: enqueue(app, STITCH_TASK, task_id, countdown=delay)
        )
        return "later"
    finally:
        lease.release()
    return "done" if done else "skipped"


def _stopper(app: FaceFleetCelery, svc: Services, lease: Lease, task_id: str) -> Callable[[], bool]:
    """Checked between segments: stop when the lease is lost or the task was cancelled."""

    def should_stop() -> bool:
        if app.segment_pause_s:
            time.sleep(
                app.segment_pause_s
            )  # fault-injection and demo knob (facefleet worker --segment-pause)
        if lease.lost:
            log.warning("lost the lease on %s: stopping", lease.key, extra={"error": "lease lost"})
            return True
        try:
            return svc.state.cancel_flags.is_set(task_id)
        except redis.RedisError:
            return False  # process_chunk also checks the task's state in PostgreSQL

    return should_stop


def _trim_cache(svc: Services, current_task: str) -> None:
    cache = svc.ctx.cache
    for key in list(cache)[: max(0, len(cache) - MAX_CACHED_ENTRIES)]:
        if key[1] != current_task:
            del cache[key]
