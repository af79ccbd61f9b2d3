"""Fixtures over the test stack (``tests/harness``): a PostgreSQL database, a private Redis
server, RabbitMQ as the broker (own queue names), an S3 server (moto, over HTTP), and real
``facefleet worker``/``api`` processes, one of each service per session. A missing
service skips the tests, unless CI=true, where it fails them. Each fixture undoes what it
does; a test that changed the fleet's workers finds them restored after it."""

from __future__ import annotations

import pytest
import requests

from tests.harness.fleet import Fleet, Operator
from tests.harness.services import (
    BROKER_URL,
    Disclosure,
    broker_queues,
    broker_reachable,
    moto_s3,
    patched_environ,
    postgres_database,
    recorded_errors,
    redis_server,
)
from tests.harness.skips import required, unavailable
from tests.harness.stack import fleet_env, secrets_of, settings_from
from tests.harness.tasks import clip, download, submit, wait_state
from tests.harness.webhooks import hooked_fleet


@pytest.fixture(scope="session")
def disclosure() -> Disclosure:
    """What no task error or problem body of this session may show (the services add their
    addresses)."""
    return Disclosure()


@pytest.fixture(autouse=True)
def problem_bodies_show_no_internals(disclosure):
    """Every problem body an API answers during a test is fit for a user to read."""
    seen: list[str] = []
    original = requests.Session.send

    def send(self, request, **kwargs):  # type: ignore[no-untyped-def]
        response = original(self, request, **kwargs)
        if response.headers.get("Content-Type", "").startswith("application/problem+json"):
            seen.append(response.text)
        return response

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(requests.Session, "send", send)
        yield seen
    leaking = [(body, disclosure.leaks(body)) for body in seen if disclosure.leaks(body)]
    assert not leaking, f"problem bodies that show internal details: {leaking[:5]}"


@pytest.fixture(scope="session")
def pg_url(disclosure):
    """A migrated database of the session's own; every error its tasks and chunks recorded
    is fit for a user to read."""
    with required(), postgres_database() as url:
        yield url
        leaking = [
            (error, disclosure.leaks(error)) for error in recorded_errors(url) if disclosure.leaks(error)
        ]
        assert not leaking, f"errors that show internal details: {leaking[:5]}"


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory, disclosure):
    """A private redis-server (so that FLUSHALL harms nobody else)."""
    with required(), redis_server(tmp_path_factory.mktemp("redis")) as url:
        disclosure.add(url.split("//", 1)[1].split("/", 1)[0])
        yield url


@pytest.fixture(scope="session")
def broker_url() -> str:
    if not broker_reachable(BROKER_URL):
        unavailable("RabbitMQ")
    return BROKER_URL


@pytest.fixture(scope="session")
def s3(disclosure):
    """A moto S3 server and a versioned bucket; its credentials in ``os.environ`` for the
    session's own clients (restored afterwards)."""
    with moto_s3() as server, patched_environ(server.env):
        disclosure.add(server.endpoint.split("//", 1)[1])
        yield server


@pytest.fixture(scope="session")
def env(pg_url, redis_url, broker_url, s3, tmp_path_factory):
    """FACEFLEET_* for every process of the fleet (its queues deleted afterwards)."""
    values = fleet_env(pg_url, redis_url, broker_url, s3, tmp_path_factory.mktemp("home"))
    with broker_queues(broker_url, values["FACEFLEET_QUEUE_PREFIX"]):
        yield values


@pytest.fixture(scope="session")
def secrets(env) -> dict[str, str]:
    """The secret-bearing settings every fleet process gets: no log line may show them."""
    return secrets_of(env)


@pytest.fixture(scope="session")
def settings(env):
    return settings_from(env)


@pytest.fixture(scope="session")
def services(settings):
    from facefleet.modes.distributed import open_services

    svc = open_services(settings, worker_name="pytest")
    yield svc
    svc.close()


@pytest.fixture(scope="session")
def fleet(env, tmp_path_factory):
    with Fleet(env, tmp_path_factory.mktemp("fleet")) as fleet:
        fleet.start_api("api", workers=2)
        fleet.ensure_workers()
        yield fleet


@pytest.fixture(autouse=True)
def fleet_restored(request):
    """A test that uses the fleet leaves its workers as it found them."""
    if "fleet" not in request.fixturenames:
        yield
        return
    with request.getfixturevalue("fleet").restored():  # set up already: a wider scope
        yield


@pytest.fixture
def api(fleet) -> str:
    fleet.ensure_workers()
    return fleet.api_url


@pytest.fixture(scope="session")
def reference(fleet, tmp_path_factory) -> bytes:
    """The output of one uninterrupted run of the standard clip and job."""
    tmp = tmp_path_factory.mktemp("reference")
    fleet.ensure_workers()  # made by whichever test first asks, whatever the one before left
    task_id = submit(fleet.api_url, clip(tmp / "in.mp4"))
    body = wait_state(fleet.api_url, task_id, {"succeeded", "failed", "cancelled"})
    assert body["state"] == "succeeded", body
    return download(fleet.api_url, task_id, tmp / "out.mp4")


@pytest.fixture(scope="module")
def hooks(fleet, operator, services):
    """A fleet that delivers webhooks to loopback, an API with keys (``hooked_fleet``)."""
    with hooked_fleet(fleet, operator, services) as hooked:
        yield hooked


@pytest.fixture(scope="session")
def operator(env) -> Operator:
    return Operator(env)


@pytest.fixture(scope="session")
def keyed_api(fleet):
    """A second API deployment, keys required (the distributed default), two processes."""
    with fleet.api_deployment("api-keys", {"FACEFLEET_AUTH": "on"}, workers=2) as url:
        yield url
