"""Real services for the distributed tests: a PostgreSQL database, a private Redis server,
RabbitMQ as the broker (own queue names), an S3 server (moto, over HTTP), and real
``facefleet worker``/``beat``/``api``/``flower`` processes. Every fixture creates and removes
its own database, key space, queues and bucket. A missing service skips the tests, unless
CI=true, where it fails them."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import requests

REPO = Path(__file__).resolve().parents[2]
CI = os.environ.get("CI", "").lower() == "true"
PG_ADMIN_URL = os.environ.get(
    "FACEFLEET_TEST_PG_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
)
BROKER_URL = os.environ.get("FACEFLEET_TEST_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//")
LEASE_TTL_S = 3
REAPER_INTERVAL_S = 1
SEGMENT_PAUSE_S = 0.3  # each worker sleeps this long per segment, so tests can act mid-chunk
MAX_UPLOAD_BYTES = 3_000_000
WORKERS = 2
MAX_CHUNKS_PER_TASK = 50
LOST_WORKER_BUDGET = 6
POISON_NAME = "poison.mp4"  # a target of this name kills its worker (worker/faults.py, test-only)


# secret-bearing settings every fleet process gets (PostgreSQL here trusts local connections,
# moto any key): no log line may show them
SECRETS = {"db_password": f"pg-{uuid.uuid4().hex}", "aws_secret": f"aws-{uuid.uuid4().hex}"}


# what no task error or problem body may show: the deployment's addresses, users and paths
# (each service fixture adds its own address; a user's own URL may of course be quoted back)
FORBIDDEN_IN_ERRORS = ["postgres", ":5432", "/tmp/", "pytest-of", "amqp://", "redis://", ":5672"]


def leaks(text: str | None) -> list[str]:
    return [needle for needle in FORBIDDEN_IN_ERRORS if text and needle in text]


def unavailable(what: str) -> None:
    if CI:
        pytest.fail(f"{what} is required under CI=true")
    pytest.skip(f"{what} is not reachable")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(predicate, timeout: float, what: str, interval: float = 0.05):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value is not None and value is not False:  # 0 (a chunk index) counts as found
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


# ---------------------------------------------------------------------------- services


@pytest.fixture(scope="session")
def pg_url():
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from cli.commands.migrate import upgrade

    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception:
        admin.dispose()
        unavailable("PostgreSQL")
    name = f"ff_test_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    try:
        upgrade(url)
        yield url
        _check_recorded_errors(url)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _check_recorded_errors(url: str) -> None:
    """Every error the suite's tasks and chunks recorded is fit for a user to read."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            errors = [
                row[0]
                for table in ("tasks", "chunks")
                for row in conn.execute(text(f"SELECT error FROM {table} WHERE error IS NOT NULL"))
            ]
    finally:
        engine.dispose()
    leaking = [(error, leaks(error)) for error in errors if leaks(error)]
    assert not leaking, f"errors that show internal details: {leaking[:5]}"


@pytest.fixture(scope="session", autouse=True)
def problem_bodies_show_no_internals():
    """Every problem body an API answered during the session is fit for a user to read."""

    seen: list[str] = []
    original = requests.Session.send

    def send(self, request, **kwargs):  # type: ignore[no-untyped-def]
        response = original(self, request, **kwargs)
        if response.headers.get("Content-Type", "").startswith("application/problem+json"):
            seen.append(response.text)
        return response

    requests.Session.send = send  # type: ignore[method-assign]
    try:
        yield seen
    finally:
        requests.Session.send = original  # type: ignore[method-assign]
    leaking = [(body, leaks(body)) for body in seen if leaks(body)]
    assert not leaking, f"problem bodies that show internal details: {leaking[:5]}"


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory):
    """A private redis-server (so that FLUSHALL harms nobody else)."""
    import redis

    binary = shutil.which("redis-server")
    if binary is None:
        unavailable("redis-server")
    port = free_port()
    home = tmp_path_factory.mktemp("redis")
    proc = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(home),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    FORBIDDEN_IN_ERRORS.append(f"127.0.0.1:{port}")
    try:
        client = redis.Redis.from_url(url)
        wait_for(lambda: _pings(client), 10, "redis-server")
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def _pings(client) -> bool:  # type: ignore[no-untyped-def]
    try:
        return bool(client.ping())
    except Exception:
        return False


@pytest.fixture(scope="session")
def broker_url():
    import kombu

    try:
        with kombu.Connection(BROKER_URL, connect_timeout=3) as conn:
            conn.ensure_connection(max_retries=1)
    except Exception:
        unavailable("RabbitMQ")
    return BROKER_URL


@pytest.fixture(scope="session")
def s3(tmp_path_factory):
    """A moto S3 server on a free port and a versioned bucket (versions count rewrites)."""
    import boto3
    from moto.server import ThreadedMotoServer

    creds = {
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": SECRETS["aws_secret"],
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    os.environ.update(creds)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's access log
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    FORBIDDEN_IN_ERRORS.append(f"127.0.0.1:{port}")
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    bucket = f"ff-test-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=bucket)
    client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    servers = [server]

    @contextlib.contextmanager
    def outage():  # type: ignore[no-untyped-def]
        """The S3 endpoint refuses connections until the block ends (its objects stay)."""
        servers[-1].stop()
        try:
            yield
        finally:
            servers.append(ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False))
            servers[-1].start()

    try:
        yield {"endpoint": endpoint, "bucket": bucket, "client": client, "env": creds, "outage": outage}
    finally:
        servers[-1].stop()


@pytest.fixture(scope="session")
def env(pg_url, redis_url, broker_url, s3, tmp_path_factory):
    """FACEFLEET_* for every process of the fleet."""
    run_id = uuid.uuid4().hex[:8]
    home = tmp_path_factory.mktemp("home")
    values = {
        **s3["env"],
        "FACEFLEET_HOME": str(home),
        "FACEFLEET_DATABASE_URL": _with_password(pg_url),
        "FACEFLEET_REDIS_URL": redis_url,
        "FACEFLEET_BROKER_URL": broker_url,
        "FACEFLEET_S3_ENDPOINT_URL": s3["endpoint"],
        "FACEFLEET_S3_BUCKET": s3["bucket"],
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
    yield values
    _delete_queues(broker_url, values["FACEFLEET_QUEUE_PREFIX"])


def _with_password(url: str) -> str:
    """``url`` with a password (the suite's secret, where it has none of its own)."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.password:
        SECRETS["db_password"] = str(parsed.password)
        return url
    return parsed.set(password=SECRETS["db_password"]).render_as_string(hide_password=False)


def _delete_queues(broker_url: str, prefix: str) -> None:
    import kombu

    from facefleet.modes.distributed import QUEUES

    try:
        with kombu.Connection(broker_url, connect_timeout=3) as conn:
            channel = conn.channel()
            for queue in QUEUES:
                channel.queue_delete(f"{prefix}{queue}")
    except Exception:
        pass


@pytest.fixture(scope="session")
def settings(env):
    from facefleet.config.settings import Settings

    saved = dict(os.environ)
    os.environ.update(env)
    try:
        built = Settings()
    finally:  # restored at once: other test folders run subprocesses with os.environ
        os.environ.clear()
        os.environ.update(saved)
    return built


@pytest.fixture(scope="session")
def services(settings):
    from facefleet.modes.distributed import open_services

    svc = open_services(settings, worker_name="pytest")
    yield svc
    svc.close()


# ---------------------------------------------------------------------------- processes


class Proc:
    def __init__(self, name: str, args: list[str], env: dict[str, str], log: Path) -> None:
        self.name, self.log = name, log
        self.metrics_url = ""  # a worker's /metrics
        with open(log, "wb") as handle:  # the child keeps its own copy of the descriptor
            self.popen = subprocess.Popen(
                [sys.executable, "-m", "cli", *args],
                env={**os.environ, **env},
                cwd=REPO,
                stdout=handle,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def alive(self) -> bool:
        return self.popen.poll() is None

    def wait_for_log(self, needle: str, timeout: float = 60) -> None:
        def seen() -> bool:
            if not self.alive():
                raise AssertionError(f"{self.name} exited:\n{self.text()[-3000:]}")
            return needle in self.text()

        wait_for(seen, timeout, f"{needle!r} in {self.name}'s log", interval=0.1)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.alive():
            os.killpg(self.popen.pid, sig)
        self.popen.wait(30)

    def stop(self) -> None:
        if self.alive():
            os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(10)


class Fleet:
    """The fleet's processes for this test session."""

    def __init__(self, env: dict[str, str], root: Path) -> None:
        self.env, self.root = env, root
        self.workers: list[Proc] = []
        self.others: list[Proc] = []
        self.api_url = ""
        self._count = 0
        self.run_id = env["FACEFLEET_QUEUE_PREFIX"].strip("-")  # unique node names per session

    def _work_env(self, name: str) -> dict[str, str]:
        return {**self.env, "FACEFLEET_WORK_DIR": str(self.root / "work" / name)}

    def work_dir(self, proc: Proc) -> Path:
        return self.root / "work" / proc.name

    def start_worker(
        self,
        pause: float = SEGMENT_PAUSE_S,
        wait: bool = True,
        extra_env: dict[str, str] | None = None,
        pool: str = "solo",
    ) -> Proc:
        self._count += 1
        name = f"w{self._count}"
        port = free_port()
        args = [
            "worker",
            "--pool",
            pool,
            "--name",
            f"{name}-{self.run_id}@fftest",
            "--segment-pause",
            str(pause),
            "--metrics-port",
            str(port),
        ]
        proc = Proc(name, args, {**self._work_env(name), **(extra_env or {})}, self.root / f"{name}.log")
        proc.metrics_url = f"http://127.0.0.1:{port}/metrics"
        self.workers.append(proc)
        if wait:
            proc.wait_for_log("ready.")
        return proc

    def only_worker(self, extra_env: dict[str, str], work_dir: Path | None = None) -> Proc:
        """Stop every worker and start one with ``extra_env``, so that it takes all the work
        (the next test's ``api`` fixture starts the usual workers again)."""
        for proc in self.live_workers():
            proc.stop()
        env = dict(extra_env)
        if work_dir is not None:
            env["FACEFLEET_WORK_DIR"] = str(work_dir)
        return self.start_worker(extra_env=env)

    def live_workers(self) -> list[Proc]:
        return [w for w in self.workers if w.alive()]

    def ensure_workers(self, count: int = WORKERS, deaths_expected: bool = False) -> None:
        """Start workers until ``count`` live; with ``deaths_expected`` (a poison input in the
        queue) one that dies before it is ready is left for the next call, as an orchestrator
        restarts a crashed pod."""
        started = [self.start_worker(wait=False) for _ in range(count - len(self.live_workers()))]
        for proc in started:
            try:
                proc.wait_for_log("ready.")
            except AssertionError:
                if not deaths_expected or proc.alive():
                    raise

    def worker_by_pid(self, pid: int) -> Proc:
        return next(w for w in self.workers if w.pid == pid)

    def start(self, name: str, args: list[str], ready: str, env: dict[str, str] | None = None) -> Proc:
        proc = Proc(name, args, {**self._work_env(name), **(env or {})}, self.root / f"{name}.log")
        self.others.append(proc)
        proc.wait_for_log(ready)
        return proc

    def start_api(self, name: str, env: dict[str, str], workers: int = 1) -> tuple[Proc, str]:
        """Another API deployment over the same services (its own settings); (process, URL)."""
        port = free_port()
        proc = self.start(
            name, ["api", "--port", str(port), "--workers", str(workers)], "Booting worker", env=env
        )
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: http_ok(f"{url}/healthz"), 30, f"the API {name}")
        return proc, url

    def stop_all(self) -> None:
        for proc in [*self.workers, *self.others]:
            proc.stop()


@pytest.fixture(scope="session")
def fleet(env, tmp_path_factory):
    root = tmp_path_factory.mktemp("fleet")
    fleet = Fleet(env, root)
    try:
        port = free_port()
        fleet.start("api", ["api", "--port", str(port), "--workers", "2"], "Booting worker")
        fleet.api_url = f"http://127.0.0.1:{port}"
        wait_for(lambda: http_ok(f"{fleet.api_url}/healthz"), 30, "the API")
        fleet.start("beat", ["beat"], "beat: Starting")
        fleet.ensure_workers()
        yield fleet
    finally:
        fleet.stop_all()


def http_ok(url: str) -> bool:

    try:
        return requests.get(url, timeout=2).ok
    except requests.RequestException:
        return False


@pytest.fixture
def api(fleet) -> str:
    fleet.ensure_workers()
    return fleet.api_url


@pytest.fixture(scope="session")
def reference(fleet, tmp_path_factory) -> bytes:
    """The output of one uninterrupted run of the standard clip and job."""
    from tests.distributed.helpers import clip, download, submit, wait_state

    tmp = tmp_path_factory.mktemp("reference")
    fleet.ensure_workers()  # made by whichever test first asks, whatever the one before left
    task_id = submit(fleet.api_url, clip(tmp / "in.mp4"))
    body = wait_state(fleet.api_url, task_id, {"succeeded", "failed", "cancelled"})
    assert body["state"] == "succeeded", body
    return download(fleet.api_url, task_id, tmp / "out.mp4")


# ---------------------------------------------------------------------------- tenants


class Operator:
    """`facefleet` commands with the fleet's settings."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "cli", *args],
            env={**os.environ, **self.env},
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
        )

    def tenant(self, *limits: str) -> str:
        name = f"t{uuid.uuid4().hex[:10]}"
        done = self.run("tenants", "create", name, *limits)
        assert done.returncode == 0, done.stderr
        return name

    def key(self, tenant: str, *flags: str) -> str:
        done = self.run("keys", "create", "--tenant", tenant, *flags)
        assert done.returncode == 0, done.stderr
        secret = done.stdout.strip().splitlines()[-1]
        assert secret.startswith("ffk_") and " " not in secret
        return secret


@pytest.fixture(scope="session")
def operator(env) -> Operator:
    return Operator(env)


@pytest.fixture(scope="session")
def keyed_api(fleet) -> str:
    """A second API deployment, keys required (the distributed default), two processes."""
    proc, url = fleet.start_api("api-keys", {"FACEFLEET_AUTH": "on"}, workers=2)
    yield url
    proc.stop()
