"""The settings of a test fleet, and the whole stack in one context manager: the services of
``services.py`` put together, and the ``FACEFLEET_*`` environment every process of the fleet
gets (short leases, small limits, a poison input name). The conftest's fixtures build the
same pieces one by one (a test that needs Redis alone gets Redis alone); ``bench/`` takes
``stack()`` whole."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.harness.services import (
    BROKER_URL,
    Disclosure,
    S3Server,
    broker_queues,
    moto_s3,
    patched_environ,
    postgres_database,
    redis_server,
)

LEASE_TTL_S = 3
REAPER_INTERVAL_S = 1
SEGMENT_PAUSE_S = 0.3  # each worker sleeps this long per segment, so tests can act mid-chunk
MAX_UPLOAD_BYTES = 3_000_000
WORKERS = 2
MAX_CHUNKS_PER_TASK = 50
LOST_WORKER_BUDGET = 6
POISON_NAME = "poison.mp4"  # a target of this name kills its worker (worker/faults.py, test-only)


def fleet_env(pg_url: str, redis_url: str, broker_url: str, s3: S3Server, home: Path) -> dict[str, str]:
    """FACEFLEET_* (and AWS_*) for every process of a fleet over these services; its queues
    and Redis keys carry a prefix of their own, the database URL a password (a secret no log
    may show, where the URL has none of its own)."""
    run_id = uuid.uuid4().hex[:8]
    return {
        **s3.env,
        "FACEFLEET_HOME": str(home),
        "FACEFLEET_DATABASE_URL": with_password(pg_url),
        "FACEFLEET_REDIS_URL": redis_url,
        "FACEFLEET_BROKER_URL": broker_url,
        "FACEFLEET_S3_ENDPOINT_URL": s3.endpoint,
        "FACEFLEET_S3_BUCKET": s3.bucket,
        "FACEFLEET_REDIS_NAMESPACE": f"fftest-{run_id}",
        "FACEFLEET_QUEUE_PREFIX": f"fftest-{run_id}-",
        "FACEFLEET_LEASE_TTL_S": str(LEASE_TTL_S),
        "FACEFLEET_REAPER_INTERVAL_S": str(REAPER_INTERVAL_S),
        "FACEFLEET_MAX_UPLOAD_BYTES": str(MAX_UPLOAD_BYTES),
        "FACEFLEET_MAX_SOURCE_BYTES": "1000000",
        "FACEFLEET_CHUNK_MAX_ATTEMPTS": "3",
        "FACEFLEET_ENCODER_THREADS": "1",
        "FACEFLEET_MAX_CHUNKS_PER_TASK": str(MAX_CHUNKS_PER_TASK),
        "FACEFLEET_LOST_WORKER_BUDGET": str(LOST_WORKER_BUDGET),
        "FACEFLEET_TEST_POISON_NAME": POISON_NAME,
        "FLOWER_UNAUTHENTICATED_API": "true",
        # the fleet's main API serves one user; tests of tenants start an API with keys
        "FACEFLEET_AUTH": "off",
    }


def with_password(url: str) -> str:
    """``url`` with a password: its own, or a made-up one (PostgreSQL here trusts local
    connections)."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.password:
        return url
    return parsed.set(password=f"pg-{uuid.uuid4().hex}").render_as_string(hide_password=False)


def secrets_of(env: dict[str, str]) -> dict[str, str]:
    """The secret-bearing settings of a fleet's environment: no log line may show them."""
    from sqlalchemy.engine import make_url

    return {
        "db_password": str(make_url(env["FACEFLEET_DATABASE_URL"]).password),
        "aws_secret": env["AWS_SECRET_ACCESS_KEY"],
    }


def settings_from(env: dict[str, str]) -> Any:
    """The ``Settings`` a process of the fleet builds from ``env`` (``os.environ`` as it was
    afterwards)."""
    from facefleet.config.settings import Settings

    with patched_environ(env):
        return Settings()


@dataclass
class Stack:
    pg_url: str
    redis_url: str
    broker_url: str
    s3: S3Server
    env: dict[str, str]


@contextlib.contextmanager
def stack(root: Path, disclosure: Disclosure | None = None, broker_url: str = BROKER_URL) -> Iterator[Stack]:
    """Every service of a fleet under ``root`` (a folder of the caller's), and its
    environment; all removed afterwards. ``disclosure`` learns the services' addresses.
    ``os.environ`` holds the S3 credentials in the block, for clients in this process."""
    disclosure = disclosure or Disclosure()
    with contextlib.ExitStack() as stack:
        pg_url = stack.enter_context(postgres_database())
        redis_home = root / "redis"
        redis_home.mkdir()
        redis_url = stack.enter_context(redis_server(redis_home))
        disclosure.add(redis_url.split("//", 1)[1].split("/", 1)[0])
        s3 = stack.enter_context(moto_s3())
        disclosure.add(s3.endpoint.split("//", 1)[1])
        stack.enter_context(patched_environ(s3.env))
        home = root / "home"
        home.mkdir()
        env = fleet_env(pg_url, redis_url, broker_url, s3, home)
        stack.enter_context(broker_queues(broker_url, env["FACEFLEET_QUEUE_PREFIX"]))
        yield Stack(pg_url, redis_url, broker_url, s3, env)
