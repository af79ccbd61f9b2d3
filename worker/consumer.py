"""This worker's chunk consumer, stopped and started over the broker's control channel
(the fleet loop does it when the models cannot load or the breaker opens, and again once
it closes)."""

from __future__ import annotations

import logging

from facefleet.modes.distributed import CHUNKS, queue_name
from worker.base import FaceFleetCelery

log = logging.getLogger(__name__)


def stop_taking_chunks(app: FaceFleetCelery) -> bool:
    """Asks this worker's consumer to stop taking chunks (its models could not be loaded, or
    its breaker is open); over the broker's control channel, which the consumer reads in its
    own thread. True once it answered (before the consumer is up, nobody does: the fleet loop
    asks again)."""
    return _consumer(app, "cancel_consumer", "this worker takes no chunks (see `facefleet worker --check`)")


def start_taking_chunks(app: FaceFleetCelery) -> bool:
    """Asks this worker's consumer to take chunks again (its breaker closed)."""
    return _consumer(app, "add_consumer", "this worker takes chunks again")


def _consumer(app: FaceFleetCelery, command: str, done: str) -> bool:
    queue = queue_name(app.settings, CHUNKS)
    try:
        replies = getattr(app.control, command)(queue, destination=[app.node_name], reply=True, timeout=1.0)
    except Exception as exc:  # the broker does not answer: the next pass asks again
        log.warning("cannot ask the consumer to %s (%s)", command, type(exc).__name__)
        return False
    if replies:
        log.warning(done)
    return bool(replies)
