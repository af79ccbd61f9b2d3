"""A longer mixed fault scenario on a real fleet, printing per fault how long the work took
to move again and what was redone.

One job (``--seconds`` of 720p, 100 segments in 25 chunks by default) runs on two workers that reach
PostgreSQL, Redis and the S3 server through TCP proxies. While it runs, one fault at a time:
object storage cut off, PostgreSQL cut off, Redis cut off, every connection dropped
five times, a worker SIGKILLed, Redis FLUSHALL. For each:
the seconds from the end of the fault until frames move again, and at the end the
segments written more than once and the attempts the chunks spent (none should be).
Services are started like the tests do (a database, a private redis-server, moto, RabbitMQ
queues of its own) and removed afterwards.

Usage: python bench/chaos.py [--seconds 20] [--outage 15] [--size 1280x720] [--smoke]

``--smoke``: 4 seconds of 160x96 in 10 chunks, half-second outages and gaps (a check that
every fault still runs, not a measure).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from facefleet.modes.demo import make_sample_video  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=30, help="length of the generated input")
    parser.add_argument("--outage", type=float, default=10, help="seconds each service is cut off")
    parser.add_argument("--pause", type=float, default=0.2, help="seconds each worker waits per segment")
    parser.add_argument("--size", default="1280x720", help="frame size of the generated input")
    parser.add_argument("--gap", type=float, default=2.0, help="seconds between two faults")
    parser.add_argument("--smoke", action="store_true", help="tiny input, short faults (a check)")
    args = parser.parse_args()
    options = {"processors": "none", "chunk_frames": 60, "segment_frames": 15}
    if args.smoke:
        args.seconds, args.outage, args.size, args.gap = 4.0, 0.5, "160x96", 0.5
        options = {"processors": "none", "chunk_frames": 10, "segment_frames": 5}
    width, height = (int(v) for v in args.size.split("x"))

    import redis
    import requests
    from sqlalchemy import select
    from sqlalchemy.engine import make_url

    from facefleet.records.db import Chunk
    from facefleet.records.engine import make_engine, make_sessionmaker
    from facefleet.records.states import ChunkState
    from tests.harness.fleet import Fleet
    from tests.harness.proxy import TcpProxy
    from tests.harness.stack import stack
    from tests.harness.tasks import segment_writes, submit, wait_state

    with tempfile.TemporaryDirectory(prefix="bench-chaos-") as tmp_dir, contextlib.ExitStack() as cleanup:
        tmp = Path(tmp_dir)
        src = make_sample_video(tmp / "input.mp4", seconds=args.seconds, width=width, height=height)
        services = cleanup.enter_context(stack(tmp))
        env = {
            **services.env,
            "FACEFLEET_MAX_UPLOAD_BYTES": str(1024**3),
            "FACEFLEET_LEASE_TTL_S": "5",
            "FACEFLEET_ENCODER_THREADS": "2",
        }
        pg_url, redis_url, s3 = services.pg_url, services.redis_url, services.s3
        url = make_url(env["FACEFLEET_DATABASE_URL"])
        pg_proxy = TcpProxy(url.port or 5432, url.host or "127.0.0.1")
        s3_proxy = TcpProxy(s3.port)
        rd = make_url(redis_url)
        redis_proxy = TcpProxy(rd.port or 6379, rd.host or "127.0.0.1")
        for proxy in (pg_proxy, s3_proxy, redis_proxy):
            cleanup.callback(proxy.down)
        through = {
            "FACEFLEET_DATABASE_URL": url.set(host="127.0.0.1", port=pg_proxy.port).render_as_string(
                hide_password=False
            ),
            "FACEFLEET_S3_ENDPOINT_URL": f"http://127.0.0.1:{s3_proxy.port}",
            "FACEFLEET_REDIS_URL": rd.set(host="127.0.0.1", port=redis_proxy.port).render_as_string(
                hide_password=False
            ),
        }
        (tmp / "fleet").mkdir()
        fleet = cleanup.enter_context(Fleet(env, tmp / "fleet"))
        fleet.start_api("api", workers=1)
        for _ in range(2):
            fleet.start_worker(pause=args.pause, extra_env=through)

        sessions = make_sessionmaker(make_engine(pg_url))
        task_id = submit(fleet.api_url, src, options)

        def progress() -> tuple[int, str]:
            body = requests.get(f"{fleet.api_url}/v1/tasks/{task_id}", timeout=10).json()
            return int(body["progress"]["frames_done"]), str(body["state"])

        def moving_again(after: float) -> float:
            start, _ = progress()
            deadline = time.monotonic() + 600
            while (now := progress())[0] == start and now[1] not in ("succeeded", "failed", "cancelled"):
                if time.monotonic() > deadline:
                    return float("inf")
                time.sleep(0.2)
            return time.monotonic() - after

        def kill_a_worker() -> None:
            with sessions() as session:
                busy = session.scalars(
                    select(Chunk.worker).where(Chunk.task_id == task_id, Chunk.state == ChunkState.RUNNING)
                ).all()
            for worker in busy:
                pid = int(str(worker).rsplit(":", 1)[1])
                if any(w.pid == pid for w in fleet.live_workers()):
                    fleet.worker_by_pid(pid).kill()
                    fleet.start_worker(pause=args.pause, extra_env=through, wait=False)
                    return

        faults: list[tuple[str, Callable[[], None]]] = [
            ("object storage cut off", lambda: _cut(s3_proxy, args.outage)),
            ("PostgreSQL cut off", lambda: _cut(pg_proxy, args.outage)),
            ("Redis cut off", lambda: _cut(redis_proxy, args.outage)),
            ("every connection dropped", lambda: _drop_connections(pg_proxy, s3_proxy, redis_proxy)),
            ("a worker SIGKILLed", kill_a_worker),
            ("Redis FLUSHALL", lambda: redis.Redis.from_url(redis_url).flushall()),
        ]
        time.sleep(1.5 * args.gap)
        print(f"{'fault':<26} {'frames moving again after':>26}")
        for name, fault in faults:
            if progress()[1] in ("succeeded", "failed", "cancelled"):
                print(f"{name:<26} {'(the job had ended)':>26}")
                continue
            fault()
            print(f"{name:<26} {moving_again(time.monotonic()):>24.1f} s", flush=True)
            time.sleep(args.gap)
        body = wait_state(fleet.api_url, task_id, {"succeeded", "failed", "cancelled"}, timeout=1800)
        writes = segment_writes(s3, task_id)
        redone = sum(count - 1 for count in writes.values())
        with sessions() as session:
            chunks = session.scalars(select(Chunk).where(Chunk.task_id == task_id)).all()
            attempts = sum(max(0, c.attempts - 1) for c in chunks)
            lost = sum(c.lost for c in chunks)
        print(
            f"task {body['state']}; segments {len(writes)}, redone {redone}; "
            f"attempts spent beyond the first {attempts}; workers lost {lost}"
        )


def _cut(proxy, seconds: float) -> None:  # type: ignore[no-untyped-def]
    with proxy.outage():
        time.sleep(seconds)


def _drop_connections(*proxies) -> None:  # type: ignore[no-untyped-def]
    """Five times, a second apart, every open connection of the workers is dropped."""
    for _ in range(5):
        for proxy in proxies:
            proxy.cut()
        time.sleep(1)


if __name__ == "__main__":
    main()
