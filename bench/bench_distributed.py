"""The distributed path, measured side by side in one run on the same generated input:

  * fps of a bare PyAV decode -> libx264 encode loop (the floor);
  * fps of ``facefleet run --processors none`` (embedded: SQLite, a folder, one process);
  * fps of the distributed path, submit to succeeded (HTTP upload, PostgreSQL, RabbitMQ,
    Redis, an S3 server, one Celery worker, stitch), and its ratio to the two above;
  * the time from a worker's SIGKILL to its chunk resuming on another worker.

It starts its own services with the test stack (``tests/harness``: a PostgreSQL database, a
private redis-server, a moto S3 server, RabbitMQ queues of its own) and removes them
afterwards.

Usage: python bench/bench_distributed.py [--seconds 10] [--width 1280 --height 720] [--smoke]

``--smoke``: a 1-second 160x96 input, workers that pause per segment so that the kill lands
mid-chunk, a 3-second lease (a check that every step still runs, not a measure).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_video import frames_and_rate  # noqa: E402
from bench.contenders import bare_loop, facefleet_run  # noqa: E402
from facefleet.modes.demo import make_sample_video  # noqa: E402
from tests.harness.fleet import Fleet  # noqa: E402
from tests.harness.stack import REAPER_INTERVAL_S, stack  # noqa: E402
from tests.harness.tasks import submit, wait_state  # noqa: E402

DONE = {"succeeded", "failed", "cancelled"}


def timed(label: str, frames: int, run: Callable[[], object]) -> float:
    """Run once; print and return its fps."""
    started = time.perf_counter()
    run()
    elapsed = time.perf_counter() - started
    fps = frames / elapsed
    print(f"{label:<48} {elapsed:7.2f} s  {fps:8.1f} fps", flush=True)
    return fps


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=720)
    parser.add_argument("--smoke", action="store_true", help="tiny input (a check, not a measure)")
    args = parser.parse_args()
    lease_ttl_s, pause = 5, 0.0  # the measured worker runs flat out
    if args.smoke:
        args.seconds, args.width, args.height = 1.0, 160, 96
        lease_ttl_s, pause = 3, 0.2

    with tempfile.TemporaryDirectory(prefix="bench-distributed-") as tmp_dir:
        tmp = Path(tmp_dir)
        src = make_sample_video(tmp / "input.mp4", seconds=args.seconds, width=args.width, height=args.height)
        frames, _ = frames_and_rate(src)
        print(f"input: {frames} frames, {args.width}x{args.height}")
        bare = timed("bare PyAV decode -> encode", frames, lambda: bare_loop(src, tmp / "bare.mp4"))
        embedded = timed(
            "facefleet run (embedded, 1 worker)",
            frames,
            lambda: facefleet_run(src, tmp / "embedded.mp4", tmp / "home-embedded"),
        )
        with stack(tmp) as services:
            env = {
                **services.env,
                "FACEFLEET_LEASE_TTL_S": str(lease_ttl_s),
                "FACEFLEET_MAX_UPLOAD_BYTES": str(4 * 1024**3),
                "FACEFLEET_ENCODER_THREADS": "4",
            }
            (tmp / "fleet").mkdir()
            with Fleet(env, tmp / "fleet") as fleet:
                fleet.start_api("api", workers=1)
                fleet.start_worker(pause=pause)
                distributed = _distributed_fps(fleet.api_url, src, frames)
                print(
                    f"  ratios: distributed / embedded = {distributed / embedded:.2f}, "
                    f"distributed / bare = {distributed / bare:.2f}"
                )
                resume = _kill_to_resume(fleet, services.pg_url, src, pause, smoke=args.smoke)
                print(
                    f"SIGKILL -> chunk resumed on another worker: {resume:.1f} s "
                    f"(lease TTL {lease_ttl_s} s, reaper every {REAPER_INTERVAL_S} s)"
                )


def _distributed_fps(api: str, src: Path, frames: int) -> float:
    options = {"processors": "none", "chunk_frames": 600, "segment_frames": 60}
    started = time.perf_counter()
    task_id = submit(api, src, options)
    body = wait_state(api, task_id, DONE, timeout=1800)
    elapsed = time.perf_counter() - started
    if body["state"] != "succeeded":
        raise SystemExit(f"distributed run ended {body['state']}: {body.get('error')}")
    fps = frames / elapsed
    print(f"{'distributed, submit -> succeeded (1 worker)':<48} {elapsed:7.2f} s  {fps:8.1f} fps")
    return fps


def _kill_to_resume(fleet: Fleet, pg_url: str, src: Path, pause: float, smoke: bool) -> float:
    """Seconds from the SIGKILL of the worker running the only chunk of a task to that chunk
    running on the other worker."""
    from sqlalchemy import create_engine, select
    from sqlalchemy.orm import Session

    from facefleet.records.db import Chunk

    fleet.start_worker(pause=max(pause, 0.2))  # a second worker, idle, to take over
    engine = create_engine(pg_url)
    segment_frames = 5 if smoke else 30
    options = {"processors": "none", "chunk_frames": 100000, "segment_frames": segment_frames}  # one chunk
    task_id = submit(fleet.api_url, src, options)

    def chunk() -> Chunk | None:
        with Session(engine) as session:
            return session.scalar(select(Chunk).where(Chunk.task_id == task_id, Chunk.index == 0))

    deadline = time.monotonic() + 300
    while not ((c := chunk()) and c.state.value == "running" and c.worker):
        if time.monotonic() > deadline:
            raise SystemExit("the chunk never started")
        time.sleep(0.05)
    time.sleep(0.3 if smoke else 1.0)  # well inside the chunk
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
