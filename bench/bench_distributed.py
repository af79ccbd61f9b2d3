"""The distributed path, measured side by side in one run on the same generated input:

  * fps of a bare PyAV decode -> libx264 encode loop (the floor);
  * fps of ``facefleet run --processors none`` (embedded: SQLite, a folder, one process);
  * fps of the distributed path, submit to succeeded (HTTP upload, PostgreSQL, RabbitMQ,
    Redis, an S3 server, one Celery worker, stitch), and its ratio to the two above;
  * the time from a worker's SIGKILL to its chunk resuming on another worker.

It starts its own services like the tests do (a PostgreSQL database, a private redis-server,
a moto S3 server, RabbitMQ queues of its own) and removes them afterwards.

Usage: python bench/bench_distributed.py [--seconds 10] [--width 1280 --height 720]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import bench.bench_video as video_bench  # noqa: E402
from facefleet.modes.demo import make_sample_video  # noqa: E402

LEASE_TTL_S = 5
REAPER_INTERVAL_S = 1


def _fixture(function, *args):  # type: ignore[no-untyped-def]
    """Drive one of the test session's generator fixtures by hand: (value, finaliser)."""
    generator = function.__wrapped__(*args)
    value = next(generator)
    return value, lambda: next(generator, None)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=720)
    args = parser.parse_args()

    from tests.distributed import conftest as services

    class Factory:
        def __init__(self, root: Path) -> None:
            self.root, self.n = root, 0

        def mktemp(self, name: str) -> Path:
            self.n += 1
            path = self.root / f"{name}{self.n}"
            path.mkdir()
            return path

    finalisers = []
    with tempfile.TemporaryDirectory(prefix="bench-distributed-") as tmp_dir:
        tmp = Path(tmp_dir)
        factory = Factory(tmp)
        try:
            src = make_sample_video(
                tmp / "input.mp4", seconds=args.seconds, width=args.width, height=args.height
            )
            frames = video_bench.frame_count(src)
            print(f"input: {frames} frames, {args.width}x{args.height}")

            bare = video_bench.timed(
                "bare PyAV decode -> encode", frames, lambda: video_bench.bare_loop(src, tmp / "bare.mp4")
            )
            embedded = video_bench.timed(
                "facefleet run (embedded, 1 worker)",
                frames,
                lambda: video_bench.facefleet_run(src, tmp / "embedded.mp4", tmp / "home-embedded"),
            )

            pg_url, fin = _fixture(services.pg_url)
            finalisers.append(fin)
            redis_url, fin = _fixture(services.redis_url, factory)
            finalisers.append(fin)
            broker = services.broker_url.__wrapped__()
            s3, fin = _fixture(services.s3, factory)
            finalisers.append(fin)
            env, fin = _fixture(services.env, pg_url, redis_url, broker, s3, factory)
            finalisers.append(fin)
            env.update(
                FACEFLEET_LEASE_TTL_S=str(LEASE_TTL_S),
                FACEFLEET_MAX_UPLOAD_BYTES=str(4 * 1024**3),
                FACEFLEET_ENCODER_THREADS="4",
            )
            fleet = services.Fleet(env, factory.mktemp("fleet"))
            finalisers.append(fleet.stop_all)
            port = services.free_port()
            fleet.start("api", ["api", "--port", str(port), "--workers", "1"], "Booting worker")
            fleet.api_url = f"http://127.0.0.1:{port}"
            fleet.start("beat", ["beat"], "beat: Starting")
            fleet.start_worker(pause=0.0)

            distributed = _distributed_fps(fleet.api_url, src, frames)
            print(
                f"  ratios: distributed / embedded = {distributed / embedded:.2f}, distributed / bare = {distributed / bare:.2f}"
            )
            resume = _kill_to_resume(fleet, pg_url, src)
            print(
                f"SIGKILL -> chunk resumed on another worker: {resume:.1f} s (lease TTL {LEASE_TTL_S} s, reaper every {REAPER_INTERVAL_S} s)"
            )
        finally:
            for finalise in reversed(finalisers):
                try:
                    finalise()
                except Exception as exc:  # keep cleaning up
                    print(f"cleanup: {exc}", file=sys.stderr)


def _distributed_fps(api: str, src: Path, frames: int) -> float:
    from tests.harness.tasks import submit, wait_state

    options = {"processors": "none", "chunk_frames": 600, "segment_frames": 60}
    started = time.perf_counter()
    task_id = submit(api, src, options)
    body = wait_state(api, task_id, {"succeeded", "failed", "cancelled"}, timeout=1800)
    elapsed = time.perf_counter() - started
    if body["state"] != "succeeded":
        raise SystemExit(f"distributed run ended {body['state']}: {body.get('error')}")
    fps = frames / elapsed
    print(f"{'distributed, submit -> succeeded (1 worker)':<48} {elapsed:7.2f} s  {fps:8.1f} fps")
    return fps


def _kill_to_resume(fleet, pg_url: str, src: Path) -> float:  # type: ignore[no-untyped-def]
    from sqlalchemy import create_engine, select
    from sqlalchemy.orm import Session

    from facefleet.records.db import Chunk
    from tests.harness.tasks import submit, wait_state

    fleet.start_worker(pause=0.2)  # a second worker, idle, to take over
    engine = create_engine(pg_url)
    options = {"processors": "none", "chunk_frames": 100000, "segment_frames": 30}  # one chunk
    task_id = submit(fleet.api_url, src, options)

    def chunk() -> Chunk | None:
        with Session(engine) as session:
            return session.scalar(select(Chunk).where(Chunk.task_id == task_id, Chunk.index == 0))

    deadline = time.monotonic() + 300
    while not ((c := chunk()) and c.state.value == "running" and c.worker):
        if time.monotonic() > deadline:
            raise SystemExit("the chunk never started")
        time.sleep(0.05)
    time.sleep(1.0)  # well inside the chunk
    pid = int(c.worker.rsplit(":", 1)[1])
    victim = fleet.worker_by_pid(pid)
    killed = time.monotonic()
    victim.kill()
    while not ((c := chunk()) and c.lost >= 1 and c.worker and c.worker.rsplit(":", 1)[1] != str(pid)):
        if time.monotonic() > deadline:
            raise SystemExit("the chunk never resumed")
        time.sleep(0.05)
    resumed = time.monotonic() - killed
    wait_state(fleet.api_url, task_id, {"succeeded", "failed"}, timeout=600)
    engine.dispose()
    return resumed


if __name__ == "__main__":
    main()
