"""The distributed mode's adapters, built from Settings: PostgreSQL, the S3 bucket, Redis.

Shared by the API and the workers (api -> facefleet <- worker). The names of the Celery
tasks and queues, the contract between them, are in ``facefleet.fleet.queues``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.orm import sessionmaker

from facefleet.config.context import JobContext
from facefleet.config.settings import Settings
from facefleet.events.live import Publisher
from facefleet.events.outbox import PROGRESS_EVERY, PUBLISH, RETRY_S
from facefleet.fleet.queues import CHUNK_TASK as CHUNK_TASK
from facefleet.fleet.queues import CHUNKS as CHUNKS
from facefleet.fleet.queues import PLAN_TASK as PLAN_TASK
from facefleet.fleet.queues import PLANNING as PLANNING
from facefleet.fleet.queues import QUEUES as QUEUES
from facefleet.fleet.queues import STITCH_TASK as STITCH_TASK
from facefleet.fleet.queues import STITCHING as STITCHING
from facefleet.fleet.redis_state import RedisState
from facefleet.records.engine import make_engine, make_sessionmaker
from facefleet.storage.base import Misconfigured, StorageError
from facefleet.storage.s3 import S3Storage
from pipeline.hwaccel import Codecs


class ConfigurationError(Exception):
    """A setting the distributed mode needs is missing; the message names it."""


def queue_name(settings: Settings, queue: str) -> str:
    return f"{settings.queue_prefix}{queue}"


def waiting_messages(app: Any, settings: Settings) -> dict[str, int]:
    """Messages ready in each of our queues (by short name) on a Celery app's broker; 0 for
    a queue nobody declared yet."""
    depths = {}
    with app.connection_for_write() as conn:
        channel = conn.default_channel
        for queue in QUEUES:
            try:
                declared = channel.queue_declare(queue=queue_name(settings, queue), passive=True)
                depths[queue] = int(declared.message_count)
            except Exception:  # not declared: the failed passive declare also closed the channel
                depths[queue] = 0
                channel = conn.channel()
    return depths


@dataclass
class Services:
    settings: Settings
    engine: Engine
    sessions: sessionmaker
    storage: S3Storage
    state: RedisState
    ctx: JobContext
    read_engine: Engine | None = None

    def close(self) -> None:
        self.engine.dispose()
        if self.read_engine is not None:
            self.read_engine.dispose()
        self.state.redis.close()


def require(settings: Settings) -> tuple[str, str]:
    if not settings.database_url:
        raise ConfigurationError("FACEFLEET_DATABASE_URL is not set (a PostgreSQL URL)")
    if not settings.s3_bucket:
        raise ConfigurationError("FACEFLEET_S3_BUCKET is not set")
    return settings.database_url, settings.s3_bucket


def make_storage(settings: Settings, bucket: str) -> S3Storage:
    return S3Storage(
        bucket,
        cache_dir=settings.scratch_dir / "cache",
        cache_max_bytes=settings.cache_max_bytes,
        endpoint_url=settings.s3_endpoint_url,
        region=settings.s3_region,
        multipart_threshold=settings.s3_multipart_threshold,
        public_endpoint_url=settings.s3_public_endpoint_url,
    )


def check_bucket(settings: Settings) -> None:
    """Raise ConfigurationError, in the words of the API's 503 and ``/readyz``, when the
    bucket does not exist or no credentials reach it: a process that needs the bucket stops
    at start-up rather than fail every piece of work. An outage is no misconfiguration: it
    is waited out, as before."""
    _, bucket = require(settings)
    try:
        make_storage(settings, bucket).ping()
    except Misconfigured as exc:
        raise ConfigurationError(str(exc)) from None
    except StorageError:
        pass


def open_services(
    settings: Settings, worker_name: str | None = None, *, pre_ping: bool = True, codecs: Codecs | None = None
) -> Services:
    """Connections for this process (call after fork, never at import time); ``codecs``:
    those its chunks use (None: the CPU's)."""
    database_url, bucket = require(settings)
    engine = make_engine(database_url, settings.database_timeouts(), pre_ping=pre_ping)
    read_engine = make_engine(database_url, settings.database_timeouts(), pre_ping=pre_ping, autocommit=True)
    sessions = make_sessionmaker(engine)
    storage = make_storage(settings, bucket)
    state = RedisState.from_url(settings.redis_url, settings.redis_namespace, settings.lease_ttl_s)
    # what the outbox needs from the transactions that write events: the live events'
    # publisher (after each commit) and how long a webhook event is retried
    sessions.configure(
        info={
            PUBLISH: Publisher(state.redis, state.keys),
            RETRY_S: settings.webhook_retry_s,
            PROGRESS_EVERY: settings.webhook_progress_every_s,
        }
    )
    ctx = JobContext.from_settings(
        settings,
        sessions=sessions,
        reads=make_sessionmaker(read_engine),
        storage=storage,
        checkpoints=state.checkpoints,
        worker_name=worker_name,
        task_busy=state.task_busy,
        record_work=state.record_work,
        set_phase=state.set_phase,
        codecs=codecs or Codecs(),
    )
    return Services(settings, engine, sessions, storage, state, ctx, read_engine)
