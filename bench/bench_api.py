"""Read speed of the API, measured on this machine: users poll status far more often than
they submit.

  * ``GET /v1/tasks/<id>`` with a key, from N concurrent clients (keep-alive connections),
    against ``facefleet api`` (gunicorn);
  * ``GET /v1/tasks?limit=50`` the same way, with 10,000 tasks in the table;

each printed as requests per second and p50 / p99 latency. It starts its own services with
the test stack (``tests/harness``: a PostgreSQL database, a private redis-server, a moto S3
server, RabbitMQ queues of its own) and removes them afterwards. The clients run in their
own processes, on the same cores as the API. ``--smoke``: 2 clients for 1 s over 100 tasks
(a check that it still runs, not a measure).

Usage: python bench/bench_api.py [--clients 50] [--seconds 10] [--workers 2] [--threads 8] [--smoke]
"""

from __future__ import annotations

import argparse
import http.client
import multiprocessing
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.harness.fleet import Fleet  # noqa: E402
from tests.harness.stack import stack  # noqa: E402

TASKS = 10_000


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes")
    parser.add_argument("--threads", type=int, default=8, help="threads per gunicorn worker")
    parser.add_argument("--client-processes", type=int, default=2)
    parser.add_argument("--tasks", type=int, default=TASKS, help="finished tasks in the table")
    parser.add_argument(
        "--smoke", action="store_true", help="2 clients, 1 s, 100 tasks (a check, not a measure)"
    )
    args = parser.parse_args()
    if args.smoke:
        args.clients, args.seconds, args.workers, args.threads = 2, 1.0, 1, 2
        args.client_processes, args.tasks = 1, 100

    with tempfile.TemporaryDirectory(prefix="bench-api-") as tmp_dir, stack(Path(tmp_dir)) as services:
        key, task_id = _populate(services.pg_url, args.tasks)
        (Path(tmp_dir) / "fleet").mkdir()
        with Fleet({**services.env, "FACEFLEET_AUTH": "on"}, Path(tmp_dir) / "fleet") as fleet:
            _, url = fleet.start_api("api", workers=args.workers, threads=args.threads)
            port = int(url.rsplit(":", 1)[1])
            print(
                f"{args.clients} clients in {args.client_processes} processes, {args.seconds:.0f} s each; "
                f"API: {args.workers} gunicorn workers x {args.threads} threads; {args.tasks} tasks in the table"
            )
            for label, path in (
                ("GET /v1/tasks/<id>", f"/v1/tasks/{task_id}"),
                ("GET /v1/tasks?limit=50", "/v1/tasks?limit=50"),
            ):
                rate, p50, p99, errors = _load(port, path, key, args)
                print(
                    f"{label:<26} {rate:8.0f} req/s   p50 {p50 * 1000:6.1f} ms   p99 {p99 * 1000:6.1f} ms"
                    f"   non-200: {errors}"
                )


def _populate(pg_url: str, tasks: int) -> tuple[str, str]:
    """A tenant with a key and ``tasks`` finished tasks (each with two chunks); returns the key
    and one task's id."""
    from datetime import timedelta

    from sqlalchemy import insert

    from facefleet.records.db import Chunk, Task, utcnow
    from facefleet.records.engine import make_engine, make_sessionmaker
    from facefleet.records.states import ChunkState, TaskState
    from facefleet.tenants.tenancy import create_key, create_tenant

    sessions = make_sessionmaker(make_engine(pg_url))
    create_tenant(sessions, "bench")
    _, key = create_key(sessions, "bench", label="bench")
    now = utcnow()
    ids = [uuid.uuid4().hex for _ in range(tasks)]
    with sessions.begin() as session:
        session.execute(
            insert(Task),
            [
                {
                    "id": task_id,
                    "tenant": "bench",
                    "state": TaskState.SUCCEEDED,
                    "options": {"processors": []},
                    "priority": 5,
                    "target_key": f"tenants/bench/tasks/{task_id}/input/target",
                    "target_name": "talk.mp4",
                    "source_keys": [],
                    "output_key": f"tenants/bench/tasks/{task_id}/output.mp4",
                    "frames_total": 1200,
                    "chunks_total": 2,
                    "attempts": 0,
                    "frames_processed": 1200,
                    "worker_seconds": 12.0,
                    "bytes_in": 1,
                    "bytes_out": 1,
                    "created_at": now - timedelta(seconds=n),
                    "updated_at": now,
                    "started_at": now - timedelta(seconds=n),
                    "finished_at": now,
                }
                for n, task_id in enumerate(ids)
            ],
        )
        session.execute(
            insert(Chunk),
            [
                {
                    "task_id": task_id,
                    "index": i,
                    "frame_start": 600 * i,
                    "frame_end": 600 * (i + 1),
                    "segments_total": 10,
                    "state": ChunkState.SUCCEEDED,
                    "attempts": 1,
                    "frames_done": 600,
                    "segments_done": 10,
                    "created_at": now,
                    "updated_at": now,
                }
                for task_id in ids[:100]
                for i in range(2)
            ],
        )
    return key, ids[0]


def _load(port: int, path: str, key: str, args: argparse.Namespace) -> tuple[float, float, float, int]:
    per_process = [args.clients // args.client_processes] * args.client_processes
    per_process[0] += args.clients - sum(per_process)
    with multiprocessing.get_context("spawn").Pool(args.client_processes) as pool:
        results = pool.starmap(_clients, [(port, path, key, n, args.seconds) for n in per_process])
    latencies = sorted(t for lat, _ in results for t in lat)
    errors = sum(e for _, e in results)
    rate = len(latencies) / args.seconds
    p99 = latencies[int(len(latencies) * 0.99)] if latencies else float("nan")
    return rate, statistics.median(latencies), p99, errors


def _clients(port: int, path: str, key: str, count: int, seconds: float) -> tuple[list[float], int]:
    """``count`` threads, one keep-alive connection each, asking for ``path`` for ``seconds``."""
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    stop_at = time.perf_counter() + seconds
    headers = {"Authorization": f"Bearer {key}"}

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        mine: list[float] = []
        bad = 0
        while (started := time.perf_counter()) < stop_at:
            conn.request("GET", path, headers=headers)
            response = conn.getresponse()
            response.read()
            mine.append(time.perf_counter() - started)
            bad += response.status != 200
        conn.close()
        with lock:
            latencies.extend(mine)
            errors[0] += bad

    threads = [threading.Thread(target=client) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies, errors[0]


if __name__ == "__main__":
    main()
