"""Live events (server-sent events) from Redis, never from a database poll per client.

A state change or a stored segment publishes, after its commit (``facefleet.events.outbox``), one
event on its task's (or batch's) channel, and keeps it in a short history list (one Lua
call: numbered, appended, published), so a follower that subscribes after the task began
still sees every state in order: it subscribes, reads the history, then relays what comes,
skipping the numbers it has seen. Each API process holds one Redis subscription for all its
followers (``Hub``): followers cost threads of that process, not Redis connections.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
from typing import Any

import redis

from facefleet.fleet.redis_state import KeySpace

log = logging.getLogger(__name__)

HISTORY = 500  # events kept per task or batch
HISTORY_TTL_S = 24 * 3600
WAIT_S = 1.0  # the subscription's wait for a message, under any socket_timeout of the client

_PUBLISH = """
local n = redis.call('INCR', KEYS[1])
local event = n .. '|' .. ARGV[1]
redis.call('RPUSH', KEYS[2], event)
redis.call('LTRIM', KEYS[2], -tonumber(ARGV[2]), -1)
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('EXPIRE', KEYS[2], ARGV[3])
redis.call('PUBLISH', KEYS[3], event)
return n
"""


def channel(keys: KeySpace, kind: str, subject: str) -> str:
    return f"{keys.namespace}:live:{kind}:{subject}"


class Publisher:
    def __init__(self, client: redis.Redis, keys: KeySpace) -> None:
        self._keys = keys
        self._script = client.register_script(_PUBLISH)

    def __call__(self, kind: str, subject: str, event: dict[str, Any]) -> None:
        name = channel(self._keys, kind, subject)
        try:
            self._script(
                keys=[f"{name}:seq", f"{name}:history", name],
                args=[json.dumps(event), HISTORY, HISTORY_TTL_S],
            )
        except redis.RedisError as exc:  # live events are best effort: the state change holds
            log.warning("live event of %s %s not published: %s", kind, subject, type(exc).__name__)


def _parse(raw: str) -> tuple[int, dict[str, Any]]:
    number, _, body = raw.partition("|")
    return int(number), json.loads(body)


class Hub:
    """One pattern subscription per process, fanned out to each follower's queue."""

    def __init__(self, client: redis.Redis, keys: KeySpace) -> None:
        self._client, self._keys = client, keys
        self._lock = threading.Lock()
        self._followers: dict[str, set[queue.Queue[str]]] = {}
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()

    def _start(self) -> None:
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._ready.clear()
            self._thread = threading.Thread(target=self._run, name="facefleet-live", daemon=True)
            self._thread.start()
        self._ready.wait(5)

    def _run(self) -> None:
        pubsub = self._client.pubsub(ignore_subscribe_messages=True)
        try:
            pubsub.psubscribe(f"{self._keys.namespace}:live:*")
            self._ready.set()
            while True:
                # polled, never a blocking read: the client's socket_timeout would end a plain
                # listen() after that long without an event, and followers would hear nothing more
                message = pubsub.get_message(timeout=WAIT_S)
                if message is None or message["type"] != "pmessage":
                    continue
                with self._lock:
                    targets = list(self._followers.get(message["channel"], ()))
                for target in targets:
                    target.put(message["data"])
        except redis.RedisError as exc:
            log.warning("live events: the subscription broke off (%s)", type(exc).__name__)
        finally:
            self._ready.set()
            pubsub.close()

    def follow(self, kind: str, subject: str) -> Follower:
        """A follower of the subject, subscribed from now on (read ``history`` next)."""
        self._start()
        name = channel(self._keys, kind, subject)
        follower = Follower(self, name)
        with self._lock:
            self._followers.setdefault(name, set()).add(follower.inbox)
        return follower

    def _drop(self, name: str, inbox: queue.Queue[str]) -> None:
        with self._lock:
            followers = self._followers.get(name, set())
            followers.discard(inbox)
            if not followers:
                self._followers.pop(name, None)


class Follower:
    """What one client follows: the history Redis kept, then what comes, each event once."""

    def __init__(self, hub: Hub, name: str) -> None:
        self._hub, self._name = hub, name
        self.inbox: queue.Queue[str] = queue.Queue()
        self.seen = 0

    def history(self) -> list[dict[str, Any]]:
        found = []
        kept: list[str] = self._hub._client.lrange(f"{self._name}:history", 0, -1)  # type: ignore[assignment]
        for raw in kept:
            number, event = _parse(raw)
            if number > self.seen:
                self.seen = number
                found.append(event)
        return found

    def next(self, timeout_s: float) -> dict[str, Any] | None:
        """The next event not seen yet; None after ``timeout_s`` without one."""
        while True:
            try:
                number, event = _parse(self.inbox.get(timeout=timeout_s))
            except queue.Empty:
                return None
            if number > self.seen:
                self.seen = number
                return event

    def close(self) -> None:
        self._hub._drop(self._name, self.inbox)
