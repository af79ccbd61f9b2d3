"""What `facefleet worker --check` concludes from the reports in a work dir, and when
`facefleet flower` refuses to start (no services needed)."""

from __future__ import annotations

import os
import time

import pytest

from cli.commands.flower import auth_problem, loopback
from facefleet.fleet.readiness import check_host, remove_report, write_report


def test_check_follows_the_worker_report(tmp_path):
    assert not check_host(tmp_path)[0]
    assert "no worker has reported" in check_host(tmp_path)[1]

    write_report(tmp_path, "w1@host", ["chunks"], False, "loading and warming up models (det_10g)")
    ready, message = check_host(tmp_path)
    assert not ready and "w1@host is not ready: loading" in message
    assert check_host(tmp_path, alive_only=True)[0]

    write_report(tmp_path, "w1@host", ["chunks"], True, "")
    assert check_host(tmp_path) == (True, "w1@host is ready (chunks)")
    assert not check_host(tmp_path, "other@host")[0]

    stale = time.time() - 120  # a worker killed with no time to tidy up
    path = next((tmp_path / "ready").glob("*.json"))
    os.utime(path, (stale, stale))
    ready, message = check_host(tmp_path, alive_only=True)
    assert not ready and "has not reported for 120 s" in message

    remove_report(tmp_path, "w1@host")
    assert "no worker has reported" in check_host(tmp_path)[1]


@pytest.mark.parametrize("address", ["127.0.0.1", "::1", "localhost", "127.0.0.5"])
def test_flower_on_loopback_needs_no_password(address, monkeypatch):
    monkeypatch.delenv("FLOWER_AUTH", raising=False)
    assert loopback(address) and auth_problem(address, None) is None


@pytest.mark.parametrize("address", ["0.0.0.0", "", "::", "10.1.2.3", "flower.internal"])
def test_flower_beyond_loopback_needs_authentication(address, monkeypatch):
    for name in ("FLOWER_AUTH", "FLOWER_AUTH_PROVIDER", "FLOWER_OAUTH2_KEY", "FLOWER_OAUTH2_SECRET"):
        monkeypatch.delenv(name, raising=False)
    problem = auth_problem(address, None)
    assert problem is not None and "FACEFLEET_FLOWER_BASIC_AUTH=user:password" in problem
    assert auth_problem(address, "ops:pw") is None
    assert "must be user:password" in str(auth_problem(address, "ops"))
    assert "must be user:password" in str(auth_problem(address, "ops:pw,:x"))
    monkeypatch.setenv("FLOWER_AUTH", r".*@example\.com")
    monkeypatch.setenv("FLOWER_AUTH_PROVIDER", "flower.views.auth.GoogleAuth2LoginHandler")
    assert auth_problem(address, None) is not None  # OAuth without its client: still refused
    monkeypatch.setenv("FLOWER_OAUTH2_KEY", "client-id")
    monkeypatch.setenv("FLOWER_OAUTH2_SECRET", "client-secret")
    assert auth_problem(address, None) is None
