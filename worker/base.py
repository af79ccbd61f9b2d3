"""The Celery application class the worker's modules share (built in ``worker.app``)."""

from __future__ import annotations

from celery import Celery

from facefleet.settings import Settings


class FaceFleetCelery(Celery):
    """A Celery app that carries the settings it was built from."""

    settings: Settings
    segment_pause_s: float = 0.0
