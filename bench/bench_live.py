"""Live events and webhook delivery, measured on this machine (issue 23's two figures):

  * **followers vs polls**: N clients following one running task over server-sent events
    (``GET /v1/tasks/<id>/events``) while it publishes one progress event a second, against
    the same API answering N status polls a second (``GET /v1/tasks/<id>``, keep-alive); for
    each, the CPU the API's processes spent per second of wall time, and for the followers
    the p99 from an event's publication to its arrival at every follower;
  * **webhook delivery**: 1,000 events queued in the outbox, then one deliverer (the thread
    every worker runs) sending them to a receiver on loopback: events/s, and the p50 / p99
    from the event's row (its state change) to the receiver's receipt.

It starts its own services like the tests do (a PostgreSQL database, a private redis-server,
a moto S3 server, ``facefleet api``) and removes them afterwards.

Usage: python bench/bench_live.py [--followers 200] [--seconds 10] [--events 1000] [--smoke]
(``--smoke``: 20 followers, 3 s, 100 events: a check that it runs, not a figure)
"""

from __future__ import annotations

import argparse
import http.client
import http.server
import json
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


TICK = os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--followers", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--api-workers", type=int, default=2)
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    if args.smoke:
        args.followers, args.seconds, args.events = 20, 3.0, 100

    from tests.harness.fleet import Fleet
    from tests.harness.stack import settings_from, stack

    with tempfile.TemporaryDirectory(prefix="bench-live-") as tmp_dir, stack(Path(tmp_dir)) as services:
        env = {**services.env, "FACEFLEET_AUTH": "on", "FACEFLEET_EGRESS_ALLOW": "127.0.0.1/32"}
        settings = settings_from(env)
        key, task_id = _populate(settings)
        (Path(tmp_dir) / "fleet").mkdir()
        with Fleet(env, Path(tmp_dir) / "fleet") as fleet:
            api, url = fleet.start_api("api", workers=args.api_workers)
            port = int(url.rsplit(":", 1)[1])
            print(
                f"API: {args.api_workers} gunicorn workers; {args.followers} clients, {args.seconds:g} s each"
                + ("  [smoke: not a figure]" if args.smoke else "")
            )
            _followers_vs_polls(settings, api.popen.pid, port, key, task_id, args)
            _delivery(settings, args.events)


def _populate(settings) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    """A tenant with a key and one running task; returns the key and the task's id."""
    from facefleet.records.db import Task, utcnow
    from facefleet.records.engine import make_engine, make_sessionmaker
    from facefleet.records.states import TaskState
    from facefleet.tenants.tenancy import create_key, create_tenant

    sessions = make_sessionmaker(make_engine(settings.database_url))
    create_tenant(sessions, "bench")
    _, key = create_key(sessions, "bench", label="bench")
    task_id, now = uuid.uuid4().hex, utcnow()
    with sessions.begin() as session:
        session.add(
            Task(
                id=task_id,
                tenant="bench",
                state=TaskState.RUNNING,
                options={"processors": []},
                priority=5,
                target_key=f"tenants/bench/tasks/{task_id}/input/target",
                target_name="talk.mp4",
                source_keys=[],
                frames_total=100_000,
                chunks_total=0,
                attempts=0,
                frames_processed=0,
                created_at=now,
                updated_at=now,
                started_at=now,
            )
        )
    return key, task_id


# ------------------------------------------------------------------ followers vs polls


def _api_cpu_s(master: int) -> float:
    """User + system CPU seconds of the API's master and its gunicorn workers."""
    pids = [master]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == master:
                pids.append(int(entry.name))
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / TICK
    return total


def _followers_vs_polls(settings, master: int, port: int, key: str, task_id: str, args) -> None:  # type: ignore[no-untyped-def]
    from facefleet.events.live import Publisher
    from facefleet.fleet.redis_state import RedisState

    state = RedisState.from_url(settings.redis_url, settings.redis_namespace, settings.lease_ttl_s)
    publish = Publisher(state.redis, state.keys)
    headers = {"Authorization": f"Bearer {key}"}
    arrivals: list[float] = []
    lock = threading.Lock()
    connected = threading.Semaphore(0)
    errors = [0]

    def follower() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        try:
            conn.request("GET", f"/v1/tasks/{task_id}/events", headers=headers)
            response = conn.getresponse()
            connected.release()
            if response.status != 200:
                errors[0] += 1
                return
            while line := response.readline():
                if line.startswith(b"data: "):
                    event = json.loads(line[6:])
                    if "sent_at" in event:
                        with lock:
                            arrivals.append(time.time() - event["sent_at"])
                    if event.get("event") == "state" and event.get("state") == "succeeded":
                        return
        except OSError:
            errors[0] += 1
            connected.release()
        finally:
            conn.close()

    threads = [threading.Thread(target=follower, daemon=True) for _ in range(args.followers)]
    for thread in threads:
        thread.start()
    for _ in threads:
        connected.acquire(timeout=60)
    time.sleep(1.0)  # each follower has read the history and waits
    cpu, began = _api_cpu_s(master), time.monotonic()
    published = 0
    while time.monotonic() - began < args.seconds:
        published += 1
        publish(
            "task",
            task_id,
            {
                "event": "progress",
                "state": "running",
                "progress": {"frames_done": published * 100, "frames_total": 100_000},
                "sent_at": time.time(),
            },
        )
        time.sleep(1.0)
    follow_cpu = (_api_cpu_s(master) - cpu) / (time.monotonic() - began)
    publish("task", task_id, {"event": "state", "state": "succeeded", "task": {"id": task_id}})
    for thread in threads:
        thread.join(30)
    arrivals.sort()
    expected = published * args.followers
    p99 = arrivals[min(len(arrivals) - 1, int(len(arrivals) * 0.99))] if arrivals else float("nan")
    print(
        f"{args.followers} SSE followers, 1 event/s:  API CPU {follow_cpu * 100:5.1f} %   "
        f"events received {len(arrivals)}/{expected}   publish->follower p99 {p99 * 1000:.1f} ms   "
        f"errors {errors[0]}"
    )

    rate = args.followers  # N polls a second: each follower polling once a second instead
    latencies: list[float] = []
    bad = [0]
    per_thread = 10
    count = max(1, rate // per_thread)
    stop_at = time.monotonic() + args.seconds

    def poller(share: float) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        mine: list[float] = []
        next_at = time.monotonic()
        while next_at < stop_at:
            time.sleep(max(0.0, next_at - time.monotonic()))
            started = time.perf_counter()
            conn.request("GET", f"/v1/tasks/{task_id}", headers=headers)
            response = conn.getresponse()
            response.read()
            mine.append(time.perf_counter() - started)
            bad[0] += response.status != 200
            next_at += 1.0 / share
        conn.close()
        with lock:
            latencies.extend(mine)

    cpu, began = _api_cpu_s(master), time.monotonic()
    pollers = [threading.Thread(target=poller, args=(rate / count,)) for _ in range(count)]
    for thread in pollers:
        thread.start()
    for thread in pollers:
        thread.join()
    elapsed = time.monotonic() - began
    poll_cpu = (_api_cpu_s(master) - cpu) / elapsed
    latencies.sort()
    print(
        f"{rate} status polls/s (asked):        API CPU {poll_cpu * 100:5.1f} %   "
        f"answered {len(latencies) / elapsed:.0f}/s   p99 {latencies[int(len(latencies) * 0.99)] * 1000:.1f} ms   "
        f"non-200 {bad[0]}"
    )
    print(f"followers cost {follow_cpu / poll_cpu if poll_cpu else float('nan'):.2f}x the polls' CPU")


# ------------------------------------------------------------------ webhook delivery


def _delivery(settings, events: int) -> None:  # type: ignore[no-untyped-def]
    from datetime import timedelta

    from sqlalchemy import insert

    from facefleet.records.db import utcnow
    from facefleet.records.engine import make_engine, make_sessionmaker
    from facefleet.records.event_tables import WebhookEvent
    from worker.deliverer import Deliverer

    received: dict[str, float] = {}
    lock = threading.Lock()
    done = threading.Event()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            with lock:
                received.setdefault(self.headers["webhook-id"], time.time())
                if len(received) >= events:
                    done.set()
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    sessions = make_sessionmaker(make_engine(settings.database_url))
    now = utcnow()
    with sessions.begin() as session:
        rows = [
            {
                "id": f"msg_{uuid.uuid4().hex}",
                "tenant": "bench",
                "event": "succeeded",
                "url": url,
                "payload": {"type": "task.succeeded", "event": "succeeded", "data": {"n": n}},
                "created_at": now,
                "next_attempt_at": now,
                "retry_until": now + timedelta(hours=24),
                "attempts": 0,
            }
            for n in range(events)
        ]
        session.execute(insert(WebhookEvent), rows)
    written = now.timestamp()
    deliverer = Deliverer(settings)
    began = time.time()
    deliverer.start()
    try:
        finished = done.wait(300)
    finally:
        deliverer.stop()
        server.shutdown()
    times = sorted(t - written for t in received.values())
    took = (max(received.values()) - began) if received else float("nan")
    print(
        f"{events} queued webhook events, 1 deliverer ({settings.webhook_concurrency} threads, "
        f"{settings.webhook_per_receiver} per receiver): {len(received)} received"
        f"{'' if finished else ' (timed out)'} in {took:.2f} s = {len(received) / took:.0f} events/s; "
        f"state change->receipt p50 {statistics.median(times) * 1000:.0f} ms, "
        f"p99 {times[int(len(times) * 0.99)] * 1000:.0f} ms"
    )


if __name__ == "__main__":
    main()
