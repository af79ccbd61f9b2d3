"""GET /v1/stats and `facefleet sla`: the service's figures over a window, on the real fleet;
and the same figures from PostgreSQL and from SQLite (embedded mode) for the same rows."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import requests

from cli.commands.api_calls import get_status, submit_task
from tests.harness.cli import REPO
from tests.harness.services import postgres_database
from tests.harness.skips import required
from tests.harness.tasks import FRAMES, JOB, clip


def _stats(api: str, key: str | None = None, **params: str) -> requests.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return requests.get(f"{api}/v1/stats", params=params, headers=headers, timeout=30)


def _sla(api: str, key: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, FACEFLEET_API_URL=api, FACEFLEET_API_KEY=key)
    return subprocess.run(
        [sys.executable, "-m", "cli", "sla", *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture(scope="module")
def finished_job(keyed_api, operator, tmp_path_factory):
    """A tenant of its own runs one job to the end: (tenant, admin key, seconds it took)."""
    tenant = operator.tenant()
    key, admin = operator.key(tenant), operator.key(operator.tenant(), "--admin")
    began = time.monotonic()
    task = submit_task(keyed_api, clip(tmp_path_factory.mktemp("stats") / "in.mp4"), [], JOB, api_key=key)
    deadline = time.monotonic() + 120
    while (state := get_status(keyed_api, task["id"], key)["state"]) not in {
        "succeeded",
        "failed",
        "cancelled",
    }:
        assert time.monotonic() < deadline, "the job did not end"
        time.sleep(0.2)
    assert state == "succeeded"
    return tenant, admin, key, time.monotonic() - began


def test_stats_report_the_job(keyed_api, finished_job):
    tenant, admin, _, took_s = finished_job
    for window in ("15m", "1h", "7d"):
        response = _stats(keyed_api, admin, window=window, tenant=tenant)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["window"] == window and body["tenant"] == tenant
        assert body["tasks"] == {"succeeded": 1, "failed": 0, "cancelled": 0, "total": 1}
        assert body["success_ratio"] == 1.0
        assert body["frames_processed"] == FRAMES
        turnaround, latency = body["turnaround_seconds"], body["frame_latency_seconds"]
        assert 0 < turnaround["p50"] <= turnaround["p95"] <= turnaround["p99"] <= took_s
        assert 0 < latency["p50"] <= latency["p95"] <= latency["p99"] < turnaround["p50"]
        assert body["worker_slots"] >= 1
        assert 0 < body["busy_chunk_seconds"] <= 2 * took_s  # two chunks, at most both all along
        assert 0 < body["worker_utilisation"] <= 1


def test_stats_of_everyone_include_the_job(keyed_api, finished_job):
    _, admin, _, _ = finished_job
    body = _stats(keyed_api, admin).json()  # the default window: 1h
    assert body["window"] == "1h" and body["window_s"] == 3600 and body["tenant"] is None
    assert body["tasks"]["succeeded"] >= 1 and body["frames_processed"] >= FRAMES


def test_stats_need_an_admin_key(keyed_api, finished_job):
    _, _, tenant_key, _ = finished_job
    refused = _stats(keyed_api, tenant_key)
    assert refused.status_code == 403
    assert refused.headers["Content-Type"] == "application/problem+json"
    assert "admin" in refused.json()["detail"]
    assert _stats(keyed_api).status_code == 401


@pytest.mark.parametrize(
    "window", ["0m", "31d", "90s", "1.5h", "-1h", "1 h", "h", "", "1y", "100000d", "9" * 40 + "d"]
)
def test_a_bad_window_is_a_422_problem(api, window):
    response = _stats(api, window=window)
    assert response.status_code == 422, response.text
    assert response.headers["Content-Type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == 422 and "window" in problem["detail"]


def test_sla_prints_a_table_and_json(keyed_api, finished_job):
    tenant, admin, _, _ = finished_job
    as_json = _sla(keyed_api, admin, "--window", "24h", "--tenant", tenant, "--json")
    assert as_json.returncode == 0, as_json.stderr
    body = json.loads(as_json.stdout)
    assert body["window"] == "24h" and body["tasks"]["succeeded"] == 1 and body["frames_processed"] == FRAMES

    shown = _sla(keyed_api, admin, "--window", "24h", "--tenant", tenant)
    assert shown.returncode == 0, shown.stderr
    rows = {line[:20].strip(): line[20:].split() for line in shown.stdout.splitlines()}
    assert rows["success ratio"] == ["100.000", "%"]
    assert rows["frames processed"] == [str(FRAMES)]
    assert rows["tasks ended"][:3] == ["1:", "1", "succeeded,"]
    assert rows[""] == ["p50", "p95", "p99"] and len(rows["frame latency"]) == 6

    refused = _sla(keyed_api, admin, "--window", "2w")
    assert refused.returncode == 1 and "422" in refused.stderr and "window" in refused.stderr


# ---------------------------------------------------------------------------- PostgreSQL and SQLite

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


def _rows():  # type: ignore[no-untyped-def]
    """Tasks and chunks around a 1-hour window that ends at NOW."""
    from facefleet.records.db import Chunk, Task
    from facefleet.records.states import ChunkState, TaskState

    def ago(minutes: float) -> datetime:
        return NOW - timedelta(minutes=minutes)

    rows: list[object] = []

    def task(state: TaskState, created: float, finished: float | None, tenant: str = "default") -> Task:
        found = Task(
            id=uuid.uuid4().hex, tenant=tenant, state=state, target_key="t", created_at=ago(created),
            finished_at=None if finished is None else ago(finished),
        )  # fmt: skip
        rows.append(found)
        return found

    def chunk(owner: Task, state: ChunkState, frames: int, started: float, finished: float | None) -> None:
        index = len([r for r in rows if isinstance(r, Chunk) and r.task_id == owner.id])
        rows.append(
            Chunk(
                task_id=owner.id, index=index, frame_start=0, frame_end=frames, segments_total=1, state=state,
                tenant=owner.tenant, started_at=ago(started), finished_at=None if finished is None else ago(finished),
            )
        )  # fmt: skip

    # succeeded in the window, turnarounds 10, 20 and 40 minutes
    first = task(TaskState.SUCCEEDED, 15, 5)
    chunk(first, ChunkState.SUCCEEDED, 100, 14, 9)  # 300 s for 100 frames: 3 s a frame
    chunk(first, ChunkState.SUCCEEDED, 50, 9, 6)  # 180 s / 50: 3.6 s
    second = task(TaskState.SUCCEEDED, 50, 30)
    chunk(second, ChunkState.SUCCEEDED, 60, 80, 31)  # started before the window: 2940 s / 60 = 49 s
    task(TaskState.SUCCEEDED, 45, 5, tenant="other")
    task(TaskState.FAILED, 20, 10)
    task(TaskState.CANCELLED, 30, 25)
    # outside the window, or not ended
    old = task(TaskState.SUCCEEDED, 200, 61)
    chunk(old, ChunkState.SUCCEEDED, 10, 100, 70)
    running = task(TaskState.RUNNING, 10, None)
    chunk(running, ChunkState.RUNNING, 40, 2, None)  # busy for the last 2 minutes
    return rows


def _figures(url: str) -> tuple[dict, dict]:  # type: ignore[type-arg]
    """(the default tenant's figures, everyone's)."""
    from facefleet.observability.stats import compute
    from facefleet.records.db import Base, Tenant
    from facefleet.records.engine import make_engine, make_sessionmaker

    engine = make_engine(url)
    try:
        if url.startswith("sqlite"):
            Base.metadata.create_all(engine)
        with make_sessionmaker(engine).begin() as session:
            for name in ("default", "other"):  # the migrations make the default tenant
                session.merge(Tenant(name=name, webhook_secret="x"))
        with make_sessionmaker(engine).begin() as session:
            session.add_all(_rows())
        with make_sessionmaker(engine)() as session:
            return tuple(  # type: ignore[return-value]
                compute(session, timedelta(hours=1), worker_slots=4, tenant=tenant, now=NOW).as_json()
                for tenant in ("default", None)
            )
    finally:
        engine.dispose()


@pytest.fixture
def own_pg_url():
    """A database of its own, upgraded to head (the rows here must not meet the fleet)."""
    with required(), postgres_database() as url:
        yield url


def test_postgresql_and_sqlite_give_the_same_figures(own_pg_url, tmp_path):
    (on_pg, everyone_pg), (on_sqlite, everyone_sqlite) = (
        _figures(own_pg_url),
        _figures(f"sqlite:///{tmp_path / 'embedded.db'}"),
    )
    assert on_pg["tasks"] == {"succeeded": 2, "failed": 1, "cancelled": 1, "total": 4}
    assert on_pg["success_ratio"] == pytest.approx(2 / 3)
    # percentile_cont over 10 and 20 minutes, and over 3, 3.6 and 49 s a frame
    assert on_pg["turnaround_seconds"] == pytest.approx({"p50": 900, "p95": 1170, "p99": 1194})
    assert on_pg["frame_latency_seconds"] == pytest.approx({"p50": 3.6, "p95": 44.46, "p99": 48.092})
    assert on_pg["frames_processed"] == 210
    # clipped to the window: 300 + 180 + 1740 (of 2940) + 120 (still running)
    assert on_pg["busy_chunk_seconds"] == pytest.approx(2340)
    assert on_pg["worker_utilisation"] == pytest.approx(2340 / (4 * 3600))
    assert everyone_pg["tasks"] == {"succeeded": 3, "failed": 1, "cancelled": 1, "total": 5}
    assert everyone_pg["turnaround_seconds"]["p50"] == pytest.approx(1200)
    for pg, sqlite in ((on_pg, on_sqlite), (everyone_pg, everyone_sqlite)):
        for field in ("tasks", "frames_processed", "worker_slots", "since", "until", "tenant"):
            assert sqlite[field] == pg[field], field
        for field in ("success_ratio", "turnaround_seconds", "frame_latency_seconds", "busy_chunk_seconds"):
            assert sqlite[field] == pytest.approx(pg[field], rel=1e-6), field


def test_the_window_is_read_through_the_indexes(own_pg_url):
    """With a month of work in the tables, every query of a 1-hour window reads its rows
    through an index (ix_tasks_finished, ix_chunks_finished), never a whole table."""
    from sqlalchemy import event, insert

    from facefleet.observability.stats import compute
    from facefleet.records.db import Chunk, Task
    from facefleet.records.engine import make_engine, make_sessionmaker
    from facefleet.records.states import ChunkState, TaskState

    engine = make_engine(own_pg_url)
    try:
        minutes = 30 * 24 * 60
        ends = [NOW - timedelta(minutes=m * 2 + 1) for m in range(minutes // 2)]  # one every 2 minutes
        tasks = [
            {
                "id": f"{i:032x}",
                "state": TaskState.SUCCEEDED,
                "target_key": "t",
                "created_at": end,
                "finished_at": end,
            }
            for i, end in enumerate(ends)
        ]
        chunks = [
            {
                "task_id": task["id"], "index": index, "frame_start": 0, "frame_end": 10, "segments_total": 1,
                "state": ChunkState.SUCCEEDED, "started_at": task["finished_at"] - timedelta(seconds=30),
                "finished_at": task["finished_at"],
            }
            for task in tasks
            for index in range(2)
        ]  # fmt: skip
        with make_sessionmaker(engine).begin() as session:
            session.execute(insert(Task), tasks)
            session.execute(insert(Chunk), chunks)
        with engine.connect() as conn:
            conn.exec_driver_sql("ANALYZE tasks")
            conn.exec_driver_sql("ANALYZE chunks")

        statements: list[tuple[str, object]] = []

        def record(_conn, _cursor, statement, parameters, _context, _many):  # type: ignore[no-untyped-def]
            statements.append((statement, parameters))

        event.listen(engine, "before_cursor_execute", record)
        with make_sessionmaker(engine)() as session:
            figures = compute(session, timedelta(hours=1), worker_slots=1, now=NOW)
        event.remove(engine, "before_cursor_execute", record)
        assert figures.tasks["succeeded"] == 30 and figures.frames_processed == 600

        with engine.connect() as conn:
            window_reads = [s for s in statements if "FROM tasks" in s[0] or "FROM chunks" in s[0]]
            assert len(window_reads) == 5
            for statement, parameters in window_reads:
                plan = "\n".join(row[0] for row in conn.exec_driver_sql(f"EXPLAIN {statement}", parameters))
                assert "Seq Scan" not in plan and "_finished" in plan, f"{statement}\n{plan}"
    finally:
        engine.dispose()
