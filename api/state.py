"""What the API's views use, kept on the app (``app.extensions["facefleet"]``): settings,
connections opened on first use in each (gunicorn) worker process, and the producer."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from flask import current_app

from api.admission import Admission
from api.queue import Producer
from api.quotas import SubmitLimiter
from facefleet.config.settings import Settings
from facefleet.events.live import Hub
from facefleet.modes.distributed import Services, open_services


@dataclass
class ApiState:
    settings: Settings
    _services: Services | None = None
    _producer: Producer | None = None
    _limiter: SubmitLimiter | None = None
    _hub: Hub | None = None
    admission: Admission = field(default_factory=Admission)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def services(self) -> Services:
        with self._lock:
            if self._services is None:
                self._services = open_services(self.settings, worker_name="api", pre_ping=False)
            return self._services

    @property
    def limiter(self) -> SubmitLimiter:
        with self._lock:
            if self._limiter is None:
                self._limiter = SubmitLimiter(self.settings.redis_url, self.settings.redis_namespace)
            return self._limiter

    @property
    def hub(self) -> Hub:
        """This process's one subscription to live events, for all its SSE followers."""
        services = self.services
        with self._lock:
            if self._hub is None:
                self._hub = Hub(services.state.redis, services.state.keys)
            return self._hub

    @property
    def producer(self) -> Producer:
        with self._lock:
            if self._producer is None:
                self._producer = Producer(self.settings)
            return self._producer


def state() -> ApiState:
    """The running app's ApiState (views call this; nothing is kept at module level)."""
    found: ApiState = current_app.extensions["facefleet"]
    return found
