"""What users are told when work fails names the failure and never the deployment."""

from __future__ import annotations

import errno

import pytest
from sqlalchemy.exc import OperationalError

from facefleet.records.engine import normalize_url
from facefleet.storage.base import StorageError
from facefleet.task.failures import describe, scrub
from pipeline.errors import InvalidMediaError


@pytest.mark.parametrize(
    ("error", "shown", "hidden"),
    [
        (
            OSError(errno.ENOSPC, "No space left on device", "/var/lib/ff/work/ff-plan.1"),
            "scratch disk is full",
            "/var",
        ),
        (
            StorageError(
                "object storage is unreachable (could not read 'tasks/0af3/input/target': EndpointConnectionError)"
            ),
            "could not read the target video",
            "tasks/",
        ),
        (
            OperationalError(
                "SELECT 1", {}, Exception('connection to "db.internal" (10.0.0.5), user "ff" failed')
            ),
            "the database failed",
            "10.0.0.5",
        ),
        (
            InvalidMediaError(
                "0123456789abcdef0123456789abcdef01234567: the video is corrupt at frame 60 "
                "(Invalid data found when processing input: '/srv/cache/0123456789abcdef0123456789abcdef01234567')"
            ),
            "corrupt at frame 60",
            "/srv",
        ),
        (
            RuntimeError("password=hunter2 at postgresql://ff:hunter2@db/ff"),
            "internal error (RuntimeError)",
            "hunter2",
        ),
    ],
)
def test_describe_names_the_failure_and_nothing_of_the_deployment(error, shown, hidden):
    text = describe(error)
    assert shown in text and hidden not in text, text


def test_scrub_names_the_users_files():
    assert scrub("abc123: no video stream", {"abc123": "holiday.mp4"}) == "holiday.mp4: no video stream"
    assert scrub("source-1: not an image") == "source image #2: not an image"
    assert "segment 3 of chunk 2" in scrub("no object 'tasks/ab/work/segments/00002/00003.mp4' in the bucket")
    assert scrub("GET https://s3.internal:9000/bucket/key failed") == "GET a service address failed"


def test_postgres_urls_use_the_installed_driver():
    assert normalize_url("postgresql://u@h/db") == "postgresql+psycopg2://u@h/db"
    assert normalize_url("postgres://u@h/db") == "postgresql+psycopg2://u@h/db"
    assert normalize_url("postgresql+psycopg2://u@h/db") == "postgresql+psycopg2://u@h/db"
    assert normalize_url("sqlite:///x.db") == "sqlite:///x.db"
