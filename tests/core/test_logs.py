"""Structured logs: one JSON object per line with the bound fields, and no secret in any of
them, whatever a message or a library puts there."""

from __future__ import annotations

import contextvars
import json
import logging
import os
import threading

import pytest
from pydantic import ValidationError

from facefleet.config.settings import Settings
from facefleet.observability import logs

DB_PASSWORD = "Pg-pa55word-42"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
PRESIGNED = (
    "https://s3.example/bucket/tasks/abc/output.mp4?X-Amz-Algorithm=AWS4-HMAC-SHA256"
    "&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20261205%2Fus-east-1%2Fs3%2Faws4_request"
    "&X-Amz-Signature=0123456789abcdef0123456789abcdef"
)


@pytest.fixture
def configured(monkeypatch, capsys):
    """Reads back, line by line, what the test logs after ``logs.configure`` (as a worker's
    logging; called in the test, where capsys holds stderr); restored after."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", AWS_SECRET)
    monkeypatch.setenv("FACEFLEET_DATABASE_URL", f"postgresql://facefleet:{DB_PASSWORD}@db:5432/facefleet")
    monkeypatch.delenv("FACEFLEET_LOG_FORMAT", raising=False)

    def lines() -> list[dict]:
        return [json.loads(line) for line in capsys.readouterr().err.splitlines()]

    yield lines
    logs.clear()
    root.handlers, root.level = saved


def test_lines_are_json_with_bound_fields(configured):
    logs.configure("worker")
    logs.bind(task_id="t1", chunk=3, request_id="req-1")
    logging.getLogger("facefleet.task.chunks").info("segment %d stored", 2, extra={"fps": 41.5})
    logs.clear()
    logging.getLogger("celery").warning("no task here")
    first, second = configured()
    assert first["event"] == "segment 2 stored" and first["level"] == "info" and first["service"] == "worker"
    assert (first["task_id"], first["chunk"], first["request_id"], first["fps"]) == ("t1", 3, "req-1", 41.5)
    assert first["ts"].endswith("Z")
    assert "task_id" not in second and second["level"] == "warning"


def test_secrets_never_appear(configured):
    logs.configure("worker", secrets=logs.secret_values(os.environ))
    log = logging.getLogger("anything")
    log.error("cannot connect to postgresql://facefleet:%s@db:5432/facefleet", DB_PASSWORD)
    log.info("download at %s", PRESIGNED)
    log.info("credentials", extra={"secret": AWS_SECRET, "nested": {"url": "amqp://u:p4ssw0rd@rabbit//"}})
    log.info("Authorization: Bearer ffk_abc123_s3cretpart and key AKIAIOSFODNN7EXAMPLE")
    try:
        raise RuntimeError(f"boto failed with {AWS_SECRET}")
    except RuntimeError:
        log.exception("upload failed")
    lines = configured()
    text = "\n".join(json.dumps(line) for line in lines)
    for secret in (
        DB_PASSWORD,
        AWS_SECRET,
        "X-Amz-Signature",
        "p4ssw0rd",
        "s3cretpart",
        "AKIAIOSFODNN7EXAMPLE",
    ):
        assert secret not in text, secret
    assert "postgresql://facefleet:***@db:5432/facefleet" in lines[0]["event"]
    assert lines[1]["event"] == "download at https://s3.example/bucket/tasks/abc/output.mp4?***"
    assert lines[-1]["error"].startswith("RuntimeError") and "exception" in lines[-1]


def test_redactor_keeps_ordinary_text():
    redactor = logs.Redactor(logs.secret_values({"AWS_SECRET_ACCESS_KEY": "test", "HOME": "/root"}))
    plain = "chunk 2 of task fftest-1 stored to redis://127.0.0.1:6379/0 in 0.5 s"
    assert redactor.text(plain) == plain  # a 4-character secret is no secret worth masking words for


def test_text_format_and_bad_values():
    assert logs.resolve_format("cli") == "text" and logs.resolve_format("api") == "json"
    assert logs.resolve_format("worker", "text") == "text"
    assert logs.resolve_format("worker", "json") == "json"
    with pytest.raises(ValueError, match="log level"):
        logs.resolve_level("api", "loud")


def test_log_settings_come_from_the_environment_through_the_settings(monkeypatch):
    monkeypatch.setenv("FACEFLEET_LOG_FORMAT", "text")
    monkeypatch.setenv("FACEFLEET_LOG_LEVEL", "WARNING")
    settings = Settings()
    assert (settings.log_format, settings.log_level) == ("text", "WARNING")
    monkeypatch.setenv("FACEFLEET_LOG_FORMAT", "xml")
    with pytest.raises(ValidationError, match="log_format"):
        Settings()


def test_redactor_masks_headers_bytes_and_every_flower_password():
    redactor = logs.Redactor(
        logs.secret_values({"FACEFLEET_FLOWER_BASIC_AUTH": "ops:first-pw1,dev:second-pw2"})
    )
    session_token = "IQoJb3JpZ2luX2VjEXAMPLETOKEN"
    shown = redactor.value(
        {
            "event": f"headers {{'X-Amz-Security-Token': b'{session_token}'}}",
            "body": f"aws_secret_access_key={AWS_SECRET}".encode(),
            "note": "flower users first-pw1 and second-pw2",
        }
    )
    text = json.dumps(shown)
    assert session_token not in text and AWS_SECRET not in text, text
    assert "first-pw1" not in text and "second-pw2" not in text, text
    assert "X-Amz-Security-Token" in text  # the key stays: only the value is masked


def test_bound_fields_follow_a_copied_context_into_a_thread_and_detached_hides_them(configured):
    logs.configure("worker")
    logs.bind(task_id="t7", chunk=2)
    log = logging.getLogger("facefleet.task.chunks")
    copied = threading.Thread(target=contextvars.copy_context().run, args=(log.info, "in a copy"))
    plain = threading.Thread(target=log.info, args=("in a thread of its own",))
    for thread in (copied, plain):
        thread.start()
        thread.join()
    with logs.detached():
        log.info("dispatching for others")
        assert logs.bound("task_id") is None
    log.info("back", extra={"chunk": 5})  # a line's own field wins over the bound one
    in_copy, in_plain, detached, back = configured()
    assert (in_copy["task_id"], in_copy["chunk"]) == ("t7", 2)
    assert "task_id" not in in_plain and "task_id" not in detached
    assert (back["task_id"], back["chunk"]) == ("t7", 5)
