"""How long the dispatcher's release takes with 100,000 queued chunks (PostgreSQL).

    python bench/bench_scheduling.py [--chunks 100000] [--tenants 50] [--tasks 1000] [--smoke]

Makes a scratch database (FACEFLEET_BENCH_PG_URL, default the local server), fills it with
waiting chunks of many tasks and tenants at mixed priorities, and times one release of 8
chunks (each in a transaction that is rolled back, so every run sees the same queue), beside
the same release on a queue of 1,000 chunks: the ratio shows how the cost grows with depth.
``--smoke``: 200 and 100 chunks, one run each (a check, not a measure).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import create_engine, text  # noqa: E402

from facefleet.fleet.dispatch import release  # noqa: E402
from facefleet.records.engine import make_sessionmaker  # noqa: E402
from tests.harness.services import postgres_database  # noqa: E402

ADMIN_URL = os.environ.get("FACEFLEET_BENCH_PG_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")


def fill(engine, chunks: int, tenants: int, tasks: int) -> None:  # type: ignore[no-untyped-def]
    per_task = max(1, chunks // tasks)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO tenants (name, webhook_secret, created_at) "
                "SELECT 'b' || n, 'x', now() FROM generate_series(1, :n) n"
            ),
            {"n": tenants},
        )
        conn.execute(
            text(
                "INSERT INTO tasks (id, tenant, state, options, priority, target_key, source_keys, attempts,"
                " frames_processed, worker_seconds, bytes_in, bytes_out, created_at, updated_at)"
                " SELECT md5(n::text), 'b' || (n % :tenants + 1), 'running', '{}', n % 10, 't', '[]', 0, 0, 0, 0, 0,"
                " now() - n * interval '1 second', now() FROM generate_series(1, :tasks) n"
            ),
            {"tenants": tenants, "tasks": tasks},
        )
        conn.execute(
            text(
                "INSERT INTO chunks (task_id, index, frame_start, frame_end, segments_total, state, attempts,"
                " frames_done, segments_done, lost, priority, tenant, submitted_at, created_at, updated_at)"
                " SELECT t.id, i, i, i + 1, 1, 'queued', 0, 0, 0, 0, t.priority, t.tenant, t.created_at, now(), now()"
                " FROM tasks t CROSS JOIN generate_series(0, :per_task - 1) i"
            ),
            {"per_task": per_task},
        )
        conn.execute(text("ANALYZE"))


def time_release(sessions, runs: int) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(runs):
        with sessions() as session:
            started = time.perf_counter()
            picked = release(session, 8)
            times.append(time.perf_counter() - started)
            assert len(picked) == 8
            session.rollback()
    return statistics.median(times)


def measure(chunks: int, tenants: int, tasks: int, runs: int) -> float:
    with postgres_database(ADMIN_URL) as url:
        engine = create_engine(url)
        fill(engine, chunks, tenants, tasks)
        result = time_release(make_sessionmaker(engine), runs)
        engine.dispose()
        return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--tenants", type=int, default=50)
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--smoke", action="store_true", help="small queues, one run (a check, not a measure)")
    args = parser.parse_args()
    shallow_chunks = 1000
    if args.smoke:
        args.chunks, args.tenants, args.tasks, args.runs, shallow_chunks = 200, 5, 20, 1, 100
    deep = measure(args.chunks, args.tenants, args.tasks, args.runs)
    shallow = measure(shallow_chunks, args.tenants, args.tasks, args.runs)
    print(f"release of 8 chunks, median of {args.runs}, {args.tenants} tenants, {args.tasks} tasks:")
    print(f"  {args.chunks:>7} queued chunks  {deep * 1000:8.2f} ms")
    print(f"  {shallow_chunks:>7} queued chunks  {shallow * 1000:8.2f} ms")
    print(f"  ratio deep / shallow       {deep / shallow:8.2f}x")


if __name__ == "__main__":
    main()
