"""The client side of batches: ``facefleet submit a.mp4 b.mp4 ...`` or ``facefleet submit
FOLDER`` sends one batch (the body streamed from the files), ``facefleet status <batch-id>
[--follow]`` shows one overall bar and a line per item, ``facefleet download <batch-id> -o
DIR`` writes one output per item, named after its input."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from cli.commands.api_calls import ClientError, auth_headers, check_answer, download_output, post_multipart

VIDEO_SUFFIXES = {".mp4", ".mov", ".mkv", ".m4v", ".webm", ".avi"}
TERMINAL = {"succeeded", "failed", "cancelled"}


def targets_of(paths: list[Path]) -> list[Path]:
    """The files named, a folder's videos (sorted) in place of the folder."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found += sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)
        elif path.is_file():
            found.append(path)
        else:
            raise ClientError(f"no such file: {path}")
    if not found:
        raise ClientError("no videos to submit")
    return found


def submit_batch(
    base: str,
    targets: list[Path],
    sources: list[Path],
    options: dict[str, Any],
    reference: Path | None = None,
    idempotency_key: str | None = None,
    api_key: str | None = None,
) -> dict[str, Any]:
    # the shared images first: each target is submitted as it streams
    files = [*[("source", s) for s in sources], *([("reference", reference)] if reference else [])]
    files += [("target", t) for t in targets]
    return post_multipart(base, "/v1/batches", options, files, idempotency_key, api_key)


def get_batch(base: str, batch_id: str, api_key: str | None = None) -> dict[str, Any] | None:
    """The batch, or None when the id names none (it may be a task's)."""
    import requests

    try:
        response = requests.get(
            f"{base}/v1/batches/{batch_id}", params={"limit": 200}, headers=auth_headers(api_key), timeout=30
        )
    except requests.RequestException as exc:
        raise ClientError(f"cannot reach the API at {base}: {exc}") from None
    if response.status_code == 404:
        return None
    return check_answer(response)


def follow_batch(
    base: str, batch_id: str, api_key: str | None = None, interval_s: float = 1.0
) -> dict[str, Any]:
    """One overall bar (frames of every item) and a bar per item, until the batch completes."""
    from tqdm import tqdm

    bars: dict[str, tqdm] = {}
    overall: tqdm | None = None
    try:
        while True:
            batch = get_batch(base, batch_id, api_key)
            if batch is None:
                raise ClientError(f"no batch {batch_id!r}")
            progress = batch["progress"]
            if overall is None:
                overall = tqdm(
                    total=progress["frames_total"] or None,
                    unit="frame",
                    desc="batch",
                    position=0,
                    file=sys.stderr,
                )
            overall.total = progress["frames_total"] or overall.total
            overall.update(progress["frames_done"] - overall.n)
            overall.set_postfix_str(" ".join(f"{k} {v}" for k, v in batch["counts"].items() if v))
            for n, task in enumerate(batch["tasks"]):
                bar = bars.get(task["id"])
                if bar is None:
                    bar = bars[task["id"]] = tqdm(
                        total=task["frames_total"] or None,
                        unit="frame",
                        desc=(task["target_name"] or task["id"])[:24],
                        position=n + 1,
                        file=sys.stderr,
                    )
                done = (task["frames_total"] or 0) if task["state"] == "succeeded" else 0
                bar.update(max(0, done - bar.n))
                bar.set_postfix_str(task["state"])
            if batch["state"] == "completed":
                return batch
            time.sleep(interval_s)
    finally:
        for bar in [*bars.values(), *([overall] if overall else [])]:
            bar.close()


def print_batch(batch: dict[str, Any]) -> None:
    progress = batch["progress"]
    counts = ", ".join(f"{v} {k}" for k, v in batch["counts"].items() if v)
    print(
        f"{batch['id']}  batch {batch['state']}  {progress['percent']}%  {progress['frames_done']}/{progress['frames_total']} frames  ({counts})"
    )
    for task in batch["tasks"]:
        line = f"  {task['id']}  {task['state']:10} {task['target_name'] or ''}"
        print(line + (f"  error: {task['error']}" if task.get("error") else ""))


def download_batch(base: str, batch: dict[str, Any], folder: Path, api_key: str | None = None) -> list[Path]:
    """Each succeeded item's output in ``folder``, named after its input (``a.mp4`` ->
    ``a.mp4`` in the folder, the container's suffix where it differs)."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for task in batch["tasks"]:
        if task["state"] != "succeeded":
            print(
                f"facefleet: {task['target_name'] or task['id']}: {task['state']}, no output", file=sys.stderr
            )
            continue
        name = Path(task["target_name"] or task["id"]).name
        suffix = "." + (task.get("options") or {}).get("container", "mp4")
        written.append(download_output(base, task["id"], folder / Path(name).with_suffix(suffix), api_key))
    return written
