"""Talking to the HTTP API, for the commands that do (``submit``, ``status``, ``download``,
``sla``): the address and key, the answer or its problem as a ``ClientError``, and uploads
streamed as multipart bodies generated piece by piece with a known length, never read whole.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import requests

    from facefleet.config.settings import Settings

_BLOCK = 1 << 20


class ClientError(Exception):
    """The API refused or could not be reached; the message is for the user."""


def common_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--api", default=None, metavar="URL", help="API base URL (default: FACEFLEET_API_URL)"
    )


def base_url(args: argparse.Namespace, settings: Settings) -> str:
    return str(args.api or settings.api_url).rstrip("/")


def auth_headers(api_key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


def api_key_of(settings: Settings) -> str | None:
    return settings.api_key.get_secret_value() if settings.api_key else None


def check_answer(response: requests.Response) -> dict[str, Any]:
    if response.ok:
        body: dict[str, Any] = response.json()
        return body
    try:
        problem = response.json()
        detail = problem.get("detail") or problem.get("title")
    except ValueError:
        detail = response.text[:200]
    if response.status_code == 401:
        detail = f"{detail} (the key is FACEFLEET_API_KEY; an operator makes one: facefleet keys create --tenant NAME)"
    raise ClientError(f"{response.status_code}: {detail}")


# ---------------------------------------------------------------------------- streaming upload


class MultipartBody:
    """multipart/form-data generated lazily from fields and files, with its exact length."""

    def __init__(self, fields: list[tuple[str, str]], files: list[tuple[str, Path]]) -> None:
        self.boundary = uuid.uuid4().hex
        self._pieces: list[bytes | Path] = []
        for name, value in fields:
            self._pieces += [self._head(name, None), value.encode(), b"\r\n"]
        for name, path in files:
            self._pieces += [self._head(name, path.name), path, b"\r\n"]
        self._pieces.append(f"--{self.boundary}--\r\n".encode())

    def _head(self, name: str, filename: str | None) -> bytes:
        disposition = f'form-data; name="{name}"'
        if filename is not None:
            safe = filename.replace('"', "_").replace("\r", "_").replace("\n", "_")
            disposition += f'; filename="{safe}"'
            kind = "application/octet-stream"
            return f"--{self.boundary}\r\nContent-Disposition: {disposition}\r\nContent-Type: {kind}\r\n\r\n".encode()
        return f"--{self.boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode()

    @property
    def content_type(self) -> str:
        return f"multipart/form-data; boundary={self.boundary}"

    def __len__(self) -> int:
        return sum(p.stat().st_size if isinstance(p, Path) else len(p) for p in self._pieces)

    def __iter__(self) -> Iterator[bytes]:
        for piece in self._pieces:
            if isinstance(piece, bytes):
                yield piece
                continue
            with open(piece, "rb") as handle:
                while block := handle.read(_BLOCK):
                    yield block


def post_multipart(
    base: str,
    path: str,
    options: dict[str, Any],
    files: list[tuple[str, Path]],
    idempotency_key: str | None = None,
    api_key: str | None = None,
) -> dict[str, Any]:
    """POST ``options`` and ``files`` to ``base + path`` as one streamed multipart body."""
    import requests

    body = MultipartBody([("options", json.dumps(options))], files)
    headers = {"Content-Type": body.content_type, "Content-Length": str(len(body)), **auth_headers(api_key)}
    if idempotency_key:
        headers["Idempotency-Key"] = idempotency_key
    try:
        response = requests.post(f"{base}{path}", data=body, headers=headers, timeout=(10, 3600))
    except requests.RequestException as exc:
        raise ClientError(f"cannot reach the API at {base}: {exc}") from None
    return check_answer(response)


def submit_task(
    base: str,
    target: Path,
    sources: list[Path],
    options: dict[str, Any],
    reference: Path | None = None,
    idempotency_key: str | None = None,
    api_key: str | None = None,
) -> dict[str, Any]:
    files = [("target", target), *[("source", s) for s in sources]]
    if reference:
        files.append(("reference", reference))
    for _, path in files:
        if not path.is_file():
            raise ClientError(f"no such file: {path}")
    return post_multipart(base, "/v1/tasks", options, files, idempotency_key, api_key)


def get_status(base: str, task_id: str, api_key: str | None = None) -> dict[str, Any]:
    import requests

    try:
        return check_answer(
            requests.get(f"{base}/v1/tasks/{task_id}", headers=auth_headers(api_key), timeout=30)
        )
    except requests.RequestException as exc:
        raise ClientError(f"cannot reach the API at {base}: {exc}") from None


def download_output(base: str, task_id: str, output: Path | None, api_key: str | None = None) -> Path:
    """Download to ``output``; None: ``ID.mp4`` (``.mov``, ``.mkv`` for the task's container)."""
    status = get_status(base, task_id, api_key)
    if status["state"] != "succeeded" or not status.get("output_url"):
        raise ClientError(f"task {task_id} is {status['state']}: no output to download")
    import requests

    if output is None:
        output = Path(f"{task_id}.{(status.get('options') or {}).get('container', 'mp4')}")
    aside = output.with_name(f".{output.name}.part")
    try:
        with requests.get(status["output_url"], stream=True, timeout=(10, 600)) as response:
            if not response.ok:
                raise ClientError(f"download failed: {response.status_code}")
            with open(aside, "wb") as handle:
                for block in response.iter_content(_BLOCK):
                    handle.write(block)
        os.replace(aside, output)
    except requests.RequestException as exc:
        raise ClientError(f"download failed: {exc}") from None
    finally:
        aside.unlink(missing_ok=True)
    return output


def run_action(action: Any) -> int:
    try:
        return int(action())
    except ClientError as exc:
        print(f"facefleet: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
