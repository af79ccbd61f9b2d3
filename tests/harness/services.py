"""The services a fleet stands on, each a context manager that makes its own and removes it
afterwards: a throwaway PostgreSQL database (migrated), a private redis-server, the broker's
queues under a prefix of their own, and a moto S3 server with a versioned bucket. A service
that cannot be reached raises ``ServiceUnavailable`` (the fixtures skip on it, or fail under
CI=true); nothing here changes a module global or ``os.environ``, except ``patched_environ``,
which restores it."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.harness.net import free_port, wait_for

PG_ADMIN_URL = os.environ.get(
    "FACEFLEET_TEST_PG_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
)
BROKER_URL = os.environ.get("FACEFLEET_TEST_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//")
# what no task error or problem body may show: the deployment's addresses, users and paths
# (each service adds its own address; a user's own URL may of course be quoted back)
INTERNALS = ("postgres", ":5432", "/tmp/", "pytest-of", "amqp://", "redis://", ":5672")


class ServiceUnavailable(Exception):
    """A service the stack needs is not reachable (its name is the message)."""


@dataclass
class Disclosure:
    """What no error shown to a user may contain, for one stack: the internals above and the
    address of every service started for it."""

    needles: list[str] = field(default_factory=lambda: list(INTERNALS))

    def add(self, needle: str) -> None:
        self.needles.append(needle)

    def leaks(self, text: str | None) -> list[str]:
        return [needle for needle in self.needles if text and needle in text]


@contextlib.contextmanager
def patched_environ(values: Mapping[str, str]) -> Iterator[None]:
    """``os.environ`` with ``values`` set in the block, exactly as it was after it."""
    saved = dict(os.environ)
    os.environ.update(values)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def missing_services() -> list[str]:
    """The services a whole stack needs that are not reachable here (none: all are)."""
    missing = [] if postgres_reachable() else ["PostgreSQL"]
    missing += [] if shutil.which("redis-server") else ["redis-server"]
    return missing + ([] if broker_reachable() else ["RabbitMQ"])


# ---------------------------------------------------------------------------- PostgreSQL


def postgres_reachable(admin_url: str = PG_ADMIN_URL) -> bool:
    from sqlalchemy import create_engine, text

    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text("SELECT 1"))
        return True
    except Exception:
        return False
    finally:
        admin.dispose()


@contextlib.contextmanager
def postgres_database(admin_url: str = PG_ADMIN_URL, migrate: bool = True) -> Iterator[str]:
    """A database of its own on the server of ``admin_url`` (at Alembic's head unless not
    ``migrate``); its URL. Dropped afterwards, connections or not."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from cli.commands.migrate import upgrade

    if not postgres_reachable(admin_url):
        raise ServiceUnavailable("PostgreSQL")
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    name = f"ff_test_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    try:
        if migrate:
            upgrade(url)
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def recorded_errors(url: str) -> list[str]:
    """Every error the tasks and chunks of the database at ``url`` recorded."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return [
                row[0]
                for table in ("tasks", "chunks")
                for row in conn.execute(text(f"SELECT error FROM {table} WHERE error IS NOT NULL"))
            ]
    finally:
        engine.dispose()


# ---------------------------------------------------------------------------- Redis


@contextlib.contextmanager
def redis_server(home: Path) -> Iterator[str]:
    """A private redis-server (so that FLUSHALL harms nobody else), no persistence; its URL."""
    import redis

    binary = shutil.which("redis-server")
    if binary is None:
        raise ServiceUnavailable("redis-server")
    port = free_port()
    args = ["--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    proc = subprocess.Popen(
        [binary, *args, "--dir", str(home)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"redis://127.0.0.1:{port}/0"
    try:
        client = redis.Redis.from_url(url)
        wait_for(lambda: _pings(client), 10, "redis-server")
        client.close()
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def _pings(client: Any) -> bool:
    try:
        return bool(client.ping())
    except Exception:
        return False


# ---------------------------------------------------------------------------- the broker


def broker_reachable(url: str = BROKER_URL) -> bool:
    import kombu

    try:
        with kombu.Connection(url, connect_timeout=3) as conn:
            conn.ensure_connection(max_retries=1)
        return True
    except Exception:
        return False


@contextlib.contextmanager
def broker_queues(url: str, prefix: str) -> Iterator[str]:
    """The broker at ``url``, whose queues named ``prefix``... are deleted afterwards."""
    import kombu

    from facefleet.modes.distributed import QUEUES

    if not broker_reachable(url):
        raise ServiceUnavailable("RabbitMQ")
    try:
        yield url
    finally:
        with contextlib.suppress(Exception), kombu.Connection(url, connect_timeout=3) as conn:
            channel = conn.channel()
            for queue in QUEUES:
                channel.queue_delete(f"{prefix}{queue}")


# ---------------------------------------------------------------------------- S3


@dataclass
class S3Server:
    """A moto S3 server over HTTP and its versioned bucket (versions count rewrites)."""

    endpoint: str
    bucket: str
    env: dict[str, str]  # the AWS_* a process needs to reach it
    client: Any = None  # a boto3 client with those credentials
    _servers: list[Any] = field(default_factory=list, repr=False)

    @property
    def port(self) -> int:
        return int(self.endpoint.rsplit(":", 1)[1])

    @contextlib.contextmanager
    def outage(self) -> Iterator[None]:
        """The endpoint refuses connections until the block ends (its objects stay)."""
        from moto.server import ThreadedMotoServer

        self._servers[-1].stop()
        try:
            yield
        finally:
            self._servers.append(ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False))
            self._servers[-1].start()


@contextlib.contextmanager
def moto_s3() -> Iterator[S3Server]:
    import boto3
    from moto.server import ThreadedMotoServer

    env = {
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": f"aws-{uuid.uuid4().hex}",  # moto takes any: no log may show it
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    access_log = logging.getLogger("werkzeug")  # moto's, quieter while it runs
    level = access_log.level
    access_log.setLevel(logging.WARNING)
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    s3 = S3Server(f"http://127.0.0.1:{port}", f"ff-test-{uuid.uuid4().hex[:12]}", env, _servers=[server])
    try:
        s3.client = boto3.client(
            "s3",
            endpoint_url=s3.endpoint,
            region_name=env["AWS_DEFAULT_REGION"],
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        )
        s3.client.create_bucket(Bucket=s3.bucket)
        s3.client.put_bucket_versioning(Bucket=s3.bucket, VersioningConfiguration={"Status": "Enabled"})
        yield s3
    finally:
        s3._servers[-1].stop()
        access_log.setLevel(level)
