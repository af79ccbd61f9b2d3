"""The webhook deliverer: a thread of every worker's main process, beside the fleet loop and
never in a chunk's way (its own connections, its own small pool of sender threads).

Each pass claims the due outbox rows it has room for (``facefleet.events.webhooks.claim``, under
``FOR UPDATE SKIP LOCKED``, so any number of workers share the outbox) and sends each in a
thread of its pool. A slow or dead receiver costs at most ``webhook_per_receiver`` of those
threads, for ``webhook_timeout_s`` per attempt: other receivers, other tenants and the GPU
work go on.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import redis
from sqlalchemy.exc import SQLAlchemyError

from facefleet.config.settings import Settings
from facefleet.events.webhooks import MAX_ANSWER_BYTES, Claimed, RetryPolicy, claim, deliver
from facefleet.records.engine import make_engine, make_sessionmaker

log = logging.getLogger(__name__)


class Deliverer:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.policy = RetryPolicy(
            base_s=settings.webhook_retry_base_s,
            max_s=settings.webhook_retry_max_s,
            timeout_s=settings.webhook_timeout_s,
        )
        self.egress = replace(settings.egress_policy(MAX_ANSWER_BYTES), timeout_s=settings.webhook_timeout_s)
        self._stop = threading.Event()
        self._wake = threading.Event()  # an attempt ended: room for the next
        self._lock = threading.Lock()
        self._in_flight: Counter[str] = Counter()
        self._thread: threading.Thread | None = None
        self._pool: ThreadPoolExecutor | None = None

    def start(self) -> None:
        assert self.settings.database_url
        self._engine = make_engine(self.settings.database_url, self.settings.database_timeouts())
        self._sessions = make_sessionmaker(self._engine)
        # a pool child leaves the parent's connections alone
        os.register_at_fork(after_in_child=lambda: self._engine.dispose(close=False))
        self._pool = ThreadPoolExecutor(self.settings.webhook_concurrency, thread_name_prefix="webhook")
        self._thread = threading.Thread(target=self._run, name="facefleet-deliverer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stops claiming; attempts under way finish (each within its timeout) or, cut off by
        the process's end, are claimed again by another deliverer once their claim runs out."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                sent = self._pass()
            except (SQLAlchemyError, redis.RedisError, OSError) as exc:  # the database is away: next pass
                log.warning("webhook pass skipped: %s", type(exc).__name__)
                sent = 0
            except Exception:
                log.exception("webhook pass failed")
                sent = 0
            if not sent:
                self._wake.wait(self.settings.webhook_poll_s)
                self._wake.clear()

    def _pass(self) -> int:
        assert self._pool is not None
        with self._lock:
            room = self.settings.webhook_concurrency - sum(self._in_flight.values())
            in_flight = dict(self._in_flight)
        events = claim(self._sessions, room, self.policy, in_flight, self.settings.webhook_per_receiver)
        for event in events:
            with self._lock:
                self._in_flight[event.url] += 1
            self._pool.submit(self._send, event)
        return len(events)

    def _send(self, event: Claimed) -> None:
        try:
            deliver(self._sessions, event, self.egress, self.policy)
        except Exception:  # recorded nothing: its claim runs out and it is tried again
            log.exception("webhook %s: the attempt could not be recorded", event.id)
        finally:
            with self._lock:
                self._in_flight[event.url] -= 1
                if self._in_flight[event.url] <= 0:
                    del self._in_flight[event.url]
            self._wake.set()
