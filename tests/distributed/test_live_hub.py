"""The API's live-event hub on a real Redis whose client has a short socket_timeout (the
service's is 10 s): a follower still hears an event published after a longer quiet spell.
A blocking listen() ended with a TimeoutError after that quiet, and every stream of the
process went silent until its keep-alive read the row (the console's live progress froze)."""

from __future__ import annotations

import time
import uuid

import redis

from facefleet.events.live import Hub, Publisher
from facefleet.fleet.redis_state import KeySpace

QUIET_S = 1.0  # the client's socket_timeout here


def test_a_follower_hears_events_after_a_quiet_spell_longer_than_the_socket_timeout():
    client = redis.Redis.from_url("redis://127.0.0.1:6379/0", decode_responses=True, socket_timeout=QUIET_S)
    keys = KeySpace(namespace=f"test-hub-{uuid.uuid4().hex[:8]}")
    hub, publish = Hub(client, keys), Publisher(client, keys)
    follower = hub.follow("task", "t1")
    try:
        assert follower.history() == []
        publish("task", "t1", {"event": "progress", "n": 1})
        assert follower.next(5) == {"event": "progress", "n": 1}
        time.sleep(3 * QUIET_S)  # nothing published meanwhile
        publish("task", "t1", {"event": "progress", "n": 2})
        assert follower.next(5) == {"event": "progress", "n": 2}
    finally:
        follower.close()  # the hub's thread stays, as in an API process (a daemon thread)
