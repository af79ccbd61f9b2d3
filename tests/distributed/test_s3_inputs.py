"""``s3://`` inputs, tried as a hostile tenant would: the service reads them with its own
credentials, so each tenant names only the bucket prefixes an operator allowed it, and the
service's own bucket (every tenant's files) is refused even where the deployment lists it."""

from __future__ import annotations

import uuid

import pytest
import requests

from tests.harness.tasks import JOB, clip


@pytest.fixture(scope="module")
def media(s3, tmp_path_factory):  # type: ignore[no-untyped-def]
    """Another bucket of the same S3 server, with a clip under alpha/ and under beta/."""
    bucket = f"ff-media-{uuid.uuid4().hex[:10]}"
    s3.client.create_bucket(Bucket=bucket)
    data = clip(tmp_path_factory.mktemp("media") / "in.mp4").read_bytes()
    for key in ("alpha/in.mp4", "beta/in.mp4"):
        s3.client.put_object(Bucket=bucket, Key=key, Body=data)
    return bucket


@pytest.fixture(scope="module")
def s3_api(fleet, s3, media):  # type: ignore[no-untyped-def]
    """Keys required; the deployment reads the media bucket and, by mistake, its own."""
    env = {"FACEFLEET_AUTH": "on", "FACEFLEET_EGRESS_S3_BUCKETS": f"{media},{s3.bucket}"}
    proc, url = fleet.start_api("api-s3", env)
    yield url
    proc.stop()


def _submit(api: str, key: str, url: str) -> requests.Response:
    return requests.post(
        f"{api}/v1/tasks",
        json={"target_url": url, "options": JOB},
        headers={"Authorization": f"Bearer {key}"},
        timeout=60,
    )


def test_a_tenant_reads_only_its_allowed_prefixes(s3_api, operator, s3, media):  # type: ignore[no-untyped-def]
    alpha = operator.tenant()
    allowed = operator.run("tenants", "update", alpha, "--s3-allow", f"s3://{media}/alpha/")
    assert allowed.returncode == 0, allowed.stderr
    shown = operator.run("tenants", "show", alpha)
    assert f"{media}/alpha/" in shown.stdout
    key, other_key = operator.key(alpha), operator.key(operator.tenant())

    own = s3.bucket
    for url, reason in (
        (f"s3://{own}/tenants/{alpha}/tasks/x/output.mp4", "the service's own bucket"),
        (f"s3://{media}/beta/in.mp4", "outside this tenant's allowed prefixes"),
        (f"s3://{media}/alpha/../beta/in.mp4", "'..' segments"),
        (f"s3://{media}/alpha/missing.mp4", "there is no object"),
        ("s3://someone-elses/alpha/in.mp4", "not one this service reads from"),
    ):
        answer = _submit(s3_api, key, url)
        assert answer.status_code == 422, (url, answer.text)
        assert answer.headers["Content-Type"] == "application/problem+json"
        assert reason in answer.json()["detail"], (url, answer.json())
    # another tenant, with no allow-list, reads nothing
    refused = _submit(s3_api, other_key, f"s3://{media}/alpha/in.mp4")
    assert refused.status_code == 422 and "outside this tenant's allowed prefixes" in refused.json()["detail"]

    accepted = _submit(s3_api, key, f"s3://{media}/alpha/in.mp4")
    assert accepted.status_code == 201, accepted.text
    deleted = requests.delete(
        f"{s3_api}/v1/tasks/{accepted.json()['id']}", headers={"Authorization": f"Bearer {key}"}, timeout=30
    )
    assert deleted.status_code == 204


def test_the_services_own_bucket_cannot_be_allowed(operator, s3):  # type: ignore[no-untyped-def]
    tenant = operator.tenant()
    done = operator.run("tenants", "update", tenant, "--s3-allow", f"{s3.bucket}/tenants/{tenant}/")
    assert done.returncode == 1
    assert "the service's own bucket" in done.stderr
    for bad in ("", "bucket/a/../b"):
        done = operator.run("tenants", "update", tenant, "--s3-allow", bad)
        assert done.returncode == 1 and "is not bucket/prefix" in done.stderr, done.stderr
    cleared = operator.run("tenants", "update", tenant, "--no-s3-allow")
    assert cleared.returncode == 0, cleared.stderr
