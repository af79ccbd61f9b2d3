"""Quotas that hold under concurrency: the check that admits a task is made in the
transaction that writes its row, under the tenant's lock, so uploads in flight together
cannot all pass it; and a task's frames count against the month from its acceptance."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.harness.tasks import FRAMES, JOB, clip


@pytest.fixture
def no_workers(fleet):  # type: ignore[no-untyped-def]
    """Accepted tasks stay queued (nothing plans them) while the test counts them."""
    fleet.stop_workers()  # the usual ones are back after the test


def _submit(api: str, key: str, path) -> requests.Response:  # type: ignore[no-untyped-def]
    return requests.post(
        f"{api}/v1/tasks",
        files={"target": ("in.mp4", path.read_bytes())},
        data={"options": json.dumps(JOB)},
        headers={"Authorization": f"Bearer {key}"},
        timeout=120,
    )


def test_twenty_concurrent_submissions_against_max_queued_two(keyed_api, operator, no_workers, tmp_path):
    key = operator.key(operator.tenant("--max-queued", "2"))
    target = clip(tmp_path / "in.mp4")
    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(lambda _: _submit(keyed_api, key, target), range(20)))
    codes = sorted(a.status_code for a in answers)
    assert codes == [201] * 2 + [429] * 18, codes
    # refused by the quota, or earlier, before their bodies, by the tenant's upload slots or
    # an API process's own (busy: it is receiving its most, which 20 at once on 2 cores reach)
    kinds = {a.json()["type"].rsplit("/", 1)[-1] for a in answers if a.status_code == 429}
    assert "too-many-queued" in kinds and kinds <= {"too-many-queued", "too-many-uploads", "busy"}, kinds
    refused = next(
        a for a in answers if a.status_code == 429 and a.json()["type"].endswith("too-many-queued")
    )
    assert refused.headers["Content-Type"] == "application/problem+json"
    assert int(refused.headers["Retry-After"]) > 0
    assert refused.json()["limit"] == 2
    listed = requests.get(
        f"{keyed_api}/v1/tasks", headers={"Authorization": f"Bearer {key}"}, timeout=10
    ).json()["items"]
    assert len(listed) == 2  # the refused left no row
    _delete(keyed_api, key, [task["id"] for task in listed])


def test_a_submission_over_the_months_remaining_frames_is_refused_up_front(
    keyed_api, operator, no_workers, tmp_path
):
    """Frames are counted when a task is accepted, not when its chunks finish: the second
    clip does not fit in what the first left of the quota, though no chunk has run yet."""
    key = operator.key(operator.tenant("--monthly-frames", str(FRAMES + FRAMES // 2)))
    target = clip(tmp_path / "in.mp4")
    first = _submit(keyed_api, key, target)
    assert first.status_code == 201, first.text
    second = _submit(keyed_api, key, target)
    assert second.status_code == 403, second.text
    body = second.json()
    assert body["type"].endswith("quota-exceeded")
    assert body["left"] == FRAMES // 2 and body["needed"] == FRAMES, body
    assert f"{FRAMES // 2} of the monthly quota" in body["detail"]
    _delete(keyed_api, key, [first.json()["id"]])


def _delete(api: str, key: str, task_ids: list[str]) -> None:
    """The accepted tasks go before the workers come back: later tests find them idle."""
    for task_id in task_ids:
        response = requests.delete(
            f"{api}/v1/tasks/{task_id}", headers={"Authorization": f"Bearer {key}"}, timeout=30
        )
        assert response.status_code == 204, response.text
