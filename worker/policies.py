"""What a task body does when a service fails under it, in one place at the worker's edge
(the task bodies in ``worker.tasks`` only take the lease, call the core and enqueue).

* Hold on: while the database does not answer, keep the message and the lease and wait.
* Ride out Redis: while Redis does not answer, keep the message and wait.
* Put off: a step the core says to try later is sent again after a backoff.
* Exhausted: a plan or stitch started too often (each start died) fails its task.

Both waits back off with ``facefleet.config.policy.retry_delay`` and give up after
FACEFLEET_INFRA_RETRY_S in all; an outage spends time, never a message or an attempt.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

import redis
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from facefleet.config.errors import TaskNotFound, TryLater
from facefleet.config.policy import infra_retry_delay, retry_delay
from facefleet.fleet.leases import Lease
from facefleet.modes.distributed import Services
from facefleet.records.states import TaskState
from facefleet.task.failures import infrastructure
from facefleet.task.jobs import fail_task, get_task

log = logging.getLogger(__name__)

T = TypeVar("T")

WAIT_CAP_S = 5.0  # between checks of a service that does not answer


class Patience:
    """The time a step has spent waiting for a service, over all its tries."""

    def __init__(self, budget_s: float) -> None:
        self.budget_s, self.waited_s, self._waits = budget_s, 0.0, 0

    @property
    def spent(self) -> bool:
        return self.waited_s > self.budget_s

    def wait_for(
        self,
        answers: Callable[[], bool],
        keep_waiting: Callable[[], bool] = lambda: True,
        on_wait: Callable[[], None] = lambda: None,
    ) -> None:
        """Sleep with backoff until ``answers()``, the budget is spent or ``keep_waiting()``
        says no more."""
        while not self.spent and keep_waiting():
            self._waits += 1
            delay_s = retry_delay(self._waits, cap_s=WAIT_CAP_S)
            time.sleep(delay_s)
            self.waited_s += delay_s
            on_wait()
            if answers():
                return


def holding_on(svc: Services, lease: Lease, step: Callable[[], T]) -> T:
    """Run ``step``; while the database does not answer, keep the message and the lease and
    wait for it (a breaker: this process takes no other work meanwhile), then run the step
    again. A lease lost meanwhile ends the wait: the work is someone else's."""
    patience = Patience(svc.settings.infra_retry_s)
    while True:
        try:
            return step()
        except Exception as exc:
            if infrastructure(exc) != "the database" or lease.lost or patience.spent:
                raise
            log.warning(
                "the database does not answer (%s): holding %s and waiting", type(exc).__name__, lease.key
            )
        # waiting is not stalling: the lease is renewed at each check
        patience.wait_for(lambda: _database_answers(svc), lambda: not lease.lost, lease.touch)


def riding_out_redis(svc: Services, body: Callable[[], T]) -> T:
    """Run a task's ``body``; when Redis stops answering where the body cannot do without it
    (taking a lease, counting a start), keep the message, wait for Redis and run the body
    again. A lease left behind expires on its own and the reaper moves that work on."""
    patience = Patience(svc.settings.infra_retry_s)
    while True:
        try:
            return body()
        except redis.RedisError as exc:
            if infrastructure(exc) != "Redis" or patience.spent:
                raise
            log.warning("Redis does not answer (%s): holding this message and waiting", type(exc).__name__)
        patience.wait_for(lambda: _redis_answers(svc))


def put_off(svc: Services, task_id: str, part: str, later: TryLater, send: Callable[[float], None]) -> None:
    """A step that met an unavailable service: its start is given back and it is sent again
    (``send(countdown_s)``) after a while, with jitter, so an outage costs time, never the
    step's attempts."""
    generation = get_task(svc.ctx, task_id).attempts
    svc.state.uncount_start(task_id, part, generation)
    delay = infra_retry_delay(min(6, svc.state.count_start(task_id, f"{part}-later", generation)))
    log.warning("%s of task %s put off %.0f s: %s", part, task_id, delay, later)
    send(delay)


def exhausted(svc: Services, task_id: str, step: TaskState) -> bool:
    """Counts this start of the task's planning or stitching (``step``); past the attempt
    limit (each earlier start died: a worker killed by it, say), the task fails instead of
    looping."""
    try:
        task = get_task(svc.ctx, task_id)
    except TaskNotFound:
        return False  # deleted: plan_task and stitch_task find nothing to do
    if task.state != step and not (step == TaskState.PLANNING and task.state == TaskState.QUEUED):
        return False  # a duplicate message for work already done: not an attempt
    part = "plan" if step == TaskState.PLANNING else "stitch"
    starts = svc.state.count_start(task_id, part, task.attempts)
    if starts <= svc.settings.chunk_max_attempts:
        return False
    fail_task(
        svc.ctx,
        task_id,
        f"{step.value} did not finish in {starts - 1} attempts (its worker died or failed each time)",
    )
    return True


def _redis_answers(svc: Services) -> bool:
    try:
        return svc.state.ping()
    except redis.RedisError:
        return False


def _database_answers(svc: Services) -> bool:
    try:
        with svc.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return True
    except SQLAlchemyError:
        return False
