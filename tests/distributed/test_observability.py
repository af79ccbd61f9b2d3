"""What operators see of a job: JSON log lines that carry its task id and the request id it
was submitted under from the API to its last segment and stitch, with no secret anywhere;
and the fleet's metrics, on the API (two gunicorn processes, one consistent set) and on
each worker's own /metrics."""

from __future__ import annotations

import json
import time
import uuid
from collections import defaultdict

import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.harness.net import free_port, wait_for
from tests.harness.tasks import FRAMES, JOB, SEGMENTS_PER_CHUNK, clip, wait_state

DONE = {"succeeded", "failed", "cancelled"}
CHUNKS = FRAMES // JOB["chunk_frames"]
WORKER_METRICS = (
    "facefleet_frame_latency_seconds",
    "facefleet_queue_wait_seconds",
    "facefleet_task_turnaround_seconds",
    "facefleet_chunk_attempts",
    "facefleet_lease_expired",
    "facefleet_worker_busy_ratio",
)
API_METRICS = ("facefleet_http_request_duration_seconds", "facefleet_queue_depth", "facefleet_tasks")


def _submit(api: str, target, request_id: str) -> str:  # type: ignore[no-untyped-def]
    response = requests.post(
        f"{api}/v1/tasks",
        files={"target": ("in.mp4", target.read_bytes())},
        data={"options": json.dumps(JOB)},
        headers={"X-Request-ID": request_id},
        timeout=30,
    )
    assert response.status_code == 201, response.text
    assert response.headers["X-Request-ID"] == request_id
    return str(response.json()["id"])


def _lines(proc, since: int = 0) -> list[dict]:  # type: ignore[no-untyped-def]
    """Every line a process logged from byte ``since`` on, each of which must be one JSON object."""
    with open(proc.log, "rb") as handle:
        handle.seek(since)
        text = handle.read().decode(errors="replace")
    parsed = []
    for line in text.splitlines():
        try:
            parsed.append(json.loads(line))
        except json.JSONDecodeError:
            raise AssertionError(f"{proc.name} wrote a line that is not JSON: {line[:300]!r}") from None
    return parsed


def _scrape(url: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """{family name: {sorted labels (with the sample's suffix as __name__): value}}."""
    text = requests.get(url, timeout=10).text
    found: dict[str, dict[tuple[tuple[str, str], ...], float]] = defaultdict(dict)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = tuple(sorted({**sample.labels, "__name__": sample.name}.items()))
            found[family.name][labels] = sample.value
    return found


def _total(scrapes, family: str, sample: str, **labels: str) -> float:  # type: ignore[no-untyped-def]
    """The sum over scrapes of ``sample`` of ``family`` whose labels include ``labels``."""
    return sum(
        value
        for scrape in scrapes
        for key, value in scrape.get(family, {}).items()
        if dict(key)["__name__"] == sample and labels.items() <= dict(key).items()
    )


def test_a_jobs_log_lines_follow_it_and_hide_secrets(api, fleet, secrets, tmp_path):
    request_id = f"req-{uuid.uuid4().hex[:12]}"
    procs = [*fleet.live_workers(), *(p for p in fleet.others if p.alive())]
    offsets = {proc.name: proc.log.stat().st_size for proc in procs}  # earlier tests' lines aside
    task_id = _submit(api, clip(tmp_path / "in.mp4"), request_id)
    assert wait_state(api, task_id, DONE)["state"] == "succeeded"

    def worker_lines() -> list[dict]:
        return [
            line
            for w in procs
            if w in fleet.workers
            for line in _lines(w, offsets[w.name])
            if line.get("task_id") == task_id
        ]

    def stitched() -> bool:
        return any(line["event"] == f"task {task_id}: succeeded" for line in worker_lines())

    wait_for(stitched, 10, "the stitcher's line")
    ours = sorted(worker_lines(), key=lambda line: line["ts"])
    assert {line["request_id"] for line in ours} == {request_id}, [
        line for line in ours if line.get("request_id") != request_id
    ][:3]
    assert {line["service"] for line in ours} == {"worker"}
    for line in ours:
        assert {"ts", "level", "event"} <= line.keys()
    segments = [line for line in ours if line["event"].startswith("segment ") and "stored" in line["event"]]
    assert len(segments) == CHUNKS * SEGMENTS_PER_CHUNK, segments
    assert sorted((s["frame_start"], s["frame_end"]) for s in segments) == [
        (f, f + JOB["segment_frames"]) for f in range(0, FRAMES, JOB["segment_frames"])
    ]
    for segment in segments:
        assert segment["chunk"] in range(CHUNKS) and segment["attempt"] == 1
        assert segment["fps"] > 0 and segment["latency_ms"] > 0 and segment["tenant"] == "default"
    states = [
        line["state"] for line in ours if "state" in line and line["event"].startswith(f"task {task_id}: ")
    ]
    assert states[-2:] == ["stitching", "succeeded"], states
    final = next(line for line in ours if line["event"] == f"task {task_id}: succeeded")
    assert final["tenant"] == "default" and final["latency_ms"] > 0, final

    api_proc = next(p for p in fleet.others if p.name == "api")
    api_lines = [line for line in _lines(api_proc, offsets["api"]) if line.get("request_id") == request_id]
    for proc in procs:  # every process's lines meanwhile
        _lines(proc, offsets[proc.name])
    assert any(line.get("task_id") == task_id and line["service"] == "api" for line in api_lines)
    assert any(line["event"] == "POST /v1/tasks 201" for line in api_lines)

    everything = "\n".join(proc.text() for proc in [*fleet.workers, *fleet.others])
    for name, secret in secrets.items():
        assert secret not in everything, f"the {name} appears in a log"


def test_metrics_after_a_job(api, fleet, tmp_path):
    workers = fleet.live_workers()
    before = [_scrape(w.metrics_url) for w in workers]
    task_id = _submit(api, clip(tmp_path / "in.mp4"), f"req-{uuid.uuid4().hex[:12]}")
    body = wait_state(api, task_id, DONE)
    assert body["state"] == "succeeded"
    time.sleep(0.5)  # the stitcher observes the turnaround as it commits
    after = [_scrape(w.metrics_url) for w in workers]

    def delta(family: str, sample: str, **labels: str) -> float:
        return _total(after, family, sample, **labels) - _total(before, family, sample, **labels)

    for name in WORKER_METRICS:
        assert any(name in scrape for scrape in after), name
    frames = delta(
        "facefleet_frame_latency_seconds", "facefleet_frame_latency_seconds_count", processor="none"
    )
    assert frames == FRAMES == body["progress"]["frames_done"]
    assert 0 < delta("facefleet_frame_latency_seconds", "facefleet_frame_latency_seconds_sum") < 60
    assert delta("facefleet_queue_wait_seconds", "facefleet_queue_wait_seconds_count") == CHUNKS
    assert delta("facefleet_chunk_attempts", "facefleet_chunk_attempts_total", outcome="succeeded") == CHUNKS
    turnaround = "facefleet_task_turnaround_seconds"
    assert delta(turnaround, f"{turnaround}_count", outcome="succeeded") == 1
    assert 0 < delta(turnaround, f"{turnaround}_sum", outcome="succeeded") < 90
    assert delta("facefleet_lease_expired", "facefleet_lease_expired_total") == 0
    busy = [v for scrape in after for v in scrape["facefleet_worker_busy_ratio"].values()]
    assert busy and all(0 <= v <= 1 for v in busy)

    scraped = _scrape(f"{api}/metrics")
    for name in API_METRICS:
        assert name in scraped, name
    assert (
        _total(
            [scraped],
            "facefleet_http_request_duration_seconds",
            "facefleet_http_request_duration_seconds_count",
            route="/v1/tasks",
            status="201",
        )
        >= 1
    )
    assert (
        _total(
            [scraped],
            "facefleet_http_request_duration_seconds",
            "facefleet_http_request_duration_seconds_count",
            route="/v1/tasks/<task_id>",
            status="200",
        )
        >= 1
    )
    depth = scraped["facefleet_queue_depth"]
    assert {dict(k)["queue"] for k in depth} == {"planning", "chunks", "stitching"}
    assert {dict(k)["priority"] for k in depth} == {str(p) for p in range(10)}
    for scrape in [scraped, *after]:
        for samples in scrape.values():
            assert not any(task_id in value for key in samples for _, value in key)  # no task id label


def test_two_api_processes_report_one_set_whose_counters_never_go_down(api, tmp_path):
    """Scrapes while a job runs (each answered by either gunicorn process): no counter,
    bucket or sum is ever lower than in an earlier scrape."""
    task_id = _submit(api, clip(tmp_path / "in.mp4"), f"req-{uuid.uuid4().hex[:12]}")
    seen: dict[tuple, float] = {}
    scrapes = 0
    while scrapes < 20 or requests.get(f"{api}/v1/tasks/{task_id}", timeout=10).json()["state"] not in DONE:
        requests.get(f"{api}/v1/tasks/{'0' * 32}", timeout=10)  # a 404, counted by whichever process
        scrape, scrapes = _scrape(f"{api}/metrics"), scrapes + 1
        for samples in scrape.values():
            for key, value in samples.items():
                if not dict(key)["__name__"].endswith(("_total", "_count", "_sum", "_bucket")):
                    continue
                assert value >= seen.get(key, 0), f"{key} went down from {seen[key]} to {value}"
                seen[key] = value
        assert scrapes < 600, "the job did not end"
    duration = "facefleet_http_request_duration_seconds"
    unknown = _total([scrape], duration, f"{duration}_count", route="/v1/tasks/<task_id>", status="404")
    assert unknown >= scrapes
    assert _total([scrape], "facefleet_frames_processed", "facefleet_frames_processed_total") >= FRAMES


def test_a_prefork_workers_metrics_cover_its_pool(api, fleet, tmp_path):
    """Chunks run in the pool's child processes; the main process's /metrics adds them up."""
    fleet.stop_workers()  # started again after the test
    port = free_port()
    args = ["worker", "--pool", "prefork", "--concurrency", "2", "--metrics-port", str(port)]
    pool = fleet.start("prefork", [*args, "--name", f"prefork-{fleet.run_id}@fftest"], "ready.")
    try:
        url = f"http://127.0.0.1:{port}/metrics"
        before = [_scrape(url)]
        task_id = _submit(api, clip(tmp_path / "in.mp4"), f"req-{uuid.uuid4().hex[:12]}")
        assert wait_state(api, task_id, DONE)["state"] == "succeeded"
        after = [_scrape(url)]
        count = "facefleet_frame_latency_seconds_count"
        frames = _total(after, "facefleet_frame_latency_seconds", count) - _total(
            before, "facefleet_frame_latency_seconds", count
        )
        assert frames == FRAMES
        busy = list(after[0]["facefleet_worker_busy_ratio"].values())
        assert len(busy) == 1 and 0 <= busy[0] <= 1
    finally:
        pool.stop()
