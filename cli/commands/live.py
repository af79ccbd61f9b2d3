"""``facefleet status --follow`` of a task: its live events (``GET /v1/tasks/<id>/events``,
server-sent events) drive the bar, and the last one ends it; where the stream cannot be had
or breaks off before the end (an older API, a proxy that buffers), the rest is polled, each
poll conditional (``If-None-Match``: an unchanged task costs a ``304``)."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

from cli.commands.api_calls import ClientError, auth_headers, check_answer

TERMINAL = {"succeeded", "failed", "cancelled"}
READ_TIMEOUT_S = 60.0  # the API sends a keep-alive comment every 15 s


def sse_events(base: str, task_id: str, api_key: str | None) -> Iterator[dict[str, Any]]:
    """The task's events as they come; ends when the stream does. Raises ClientError where
    there is no stream to read (the caller polls instead)."""
    import requests

    try:
        response = requests.get(
            f"{base}/v1/tasks/{task_id}/events",
            headers={**auth_headers(api_key), "Accept": "text/event-stream"},
            stream=True,
            timeout=(10, READ_TIMEOUT_S),
        )
    except requests.RequestException as exc:
        raise ClientError(f"no live events: {exc}") from None
    with response:
        if response.status_code == 404:
            check_answer(response)  # an unknown task: the API's own message
        if response.status_code != 200 or not response.headers.get("Content-Type", "").startswith(
            "text/event-stream"
        ):
            raise ClientError(f"no live events ({response.status_code})")
        data: list[str] = []
        try:
            for line in response.iter_lines(decode_unicode=True):
                if line is None:
                    continue
                if line == "":
                    if data:
                        yield json.loads("\n".join(data))
                    data = []
                elif line.startswith("data:"):
                    data.append(line[5:].lstrip(" "))
        except (requests.RequestException, ValueError):
            return  # broken off: the caller polls for the rest


class Poller:
    """GET /v1/tasks/<id>, conditional: a 304 answers with the body seen last."""

    def __init__(self, base: str, task_id: str, api_key: str | None) -> None:
        self.url, self.headers = f"{base}/v1/tasks/{task_id}", auth_headers(api_key)
        self.base = base
        self._etag: str | None = None
        self._last: dict[str, Any] | None = None

    def __call__(self) -> dict[str, Any]:
        import requests

        headers = {**self.headers, **({"If-None-Match": self._etag} if self._etag else {})}
        try:
            response = requests.get(self.url, headers=headers, timeout=30)
        except requests.RequestException as exc:
            raise ClientError(f"cannot reach the API at {self.base}: {exc}") from None
        if response.status_code == 304 and self._last is not None:
            return self._last
        self._last = check_answer(response)
        self._etag = response.headers.get("ETag")
        return self._last


def follow_task(
    base: str, task_id: str, api_key: str | None = None, show: bool = True, interval_s: float = 1.0
) -> dict[str, Any]:
    """Until the task ends, a progress bar over frames; returns the task as it ended."""
    from tqdm import tqdm

    poll = Poller(base, task_id, api_key)
    bar: tqdm | None = None

    def draw(state: str, progress: dict[str, Any]) -> None:
        nonlocal bar
        total, done = progress.get("frames_total") or 0, progress.get("frames_done")
        if not show or not total:
            return
        if bar is None:
            bar = tqdm(total=total, unit="frame", dynamic_ncols=True, file=sys.stderr)
        bar.set_postfix_str(state)
        if done is not None:  # a state event says no count: the bar stays where it is
            bar.update(done - bar.n)

    try:
        status = poll()  # the task as it stands (and a clear 404 for an unknown id)
        draw(status["state"], status.get("progress") or {})
        if status["state"] in TERMINAL:
            return status
        try:
            for event in sse_events(base, task_id, api_key):
                _draw_event(event, draw)
                if event.get("event") == "state" and event.get("state") in TERMINAL:
                    return poll()  # the whole view (its output URL, its error)
        except ClientError:
            pass  # no stream: polled below
        return _poll_until_done(poll, draw, interval_s)
    finally:
        if bar is not None:
            bar.close()


def _draw_event(event: dict[str, Any], draw: Callable[[str, dict[str, Any]], None]) -> None:
    if event.get("event") == "progress":
        draw(str(event.get("state")), event.get("progress") or {})
    elif event.get("event") == "state":
        task = event.get("task") or {}
        draw(str(event.get("state")), {"frames_total": task.get("frames_total")})


def _poll_until_done(
    poll: Callable[[], dict[str, Any]], draw: Callable[[str, dict[str, Any]], None], interval_s: float
) -> dict[str, Any]:
    while True:
        status = poll()
        draw(status["state"], status.get("progress") or {})
        if status["state"] in TERMINAL:
            return status
        time.sleep(interval_s)
