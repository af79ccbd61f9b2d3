"""``facefleet submit | status | download``: a small client of the HTTP API.

The API's address comes from ``--api`` or FACEFLEET_API_URL. Uploads are streamed (the
multipart body is generated piece by piece with a known length), never read whole.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cli.commands.api_calls import (
    ClientError,
    api_key_of,
    auth_headers,
    base_url,
    check_answer,
    common_flags,
    download_output,
    get_status,
    run_action,
    submit_task,
)
from cli.option_flags import JOB_FLAGS, PROCESSORS_HELP, SCHEDULING_FLAGS, HelpFormatter, add_option_flags

if TYPE_CHECKING:
    from facefleet.config.settings import Settings

TERMINAL = {"succeeded", "failed", "cancelled"}
_BLOCK = 1 << 20


def register(subparsers: Any) -> None:
    submit = subparsers.add_parser(
        "submit",
        help="send a job to the API (prints the task id; several videos: a batch)",
        description="Send a job to a FaceFleet API (FACEFLEET_API_URL, with the key in FACEFLEET_API_KEY).",
        formatter_class=HelpFormatter,
    )
    submit.add_argument(
        "target",
        type=Path,
        nargs="+",
        metavar="VIDEO",
        help="the video to process; several, or a folder: one batch of them",
    )
    submit.add_argument(
        "--source",
        type=Path,
        action="append",
        default=[],
        metavar="IMAGE",
        help="a face to swap in (repeatable)",
    )
    submit.add_argument(
        "--reference", type=Path, metavar="IMAGE", help="the face to process, with --face-selector reference"
    )
    submit.add_argument(
        "--options", metavar="JSON", help="options as a JSON object (the flags below override its fields)"
    )
    submit.add_argument(
        "--processors", default=None, metavar="LIST", help=PROCESSORS_HELP + " (default: none)"
    )
    submit.add_argument("--idempotency-key", metavar="KEY", help="send twice with the same key, get one task")
    submit.add_argument("--follow", action="store_true", help="then show progress until the task ends")
    add_option_flags(submit, {**JOB_FLAGS, **SCHEDULING_FLAGS})
    common_flags(submit)
    submit.set_defaults(handler=handle_submit)

    status = subparsers.add_parser("status", help="show a task's or a batch's state and progress")
    status.add_argument("id", help="the task or batch id submit printed")
    status.add_argument("--follow", action="store_true", help="a progress bar until the task ends")
    status.add_argument("--json", action="store_true", help="print the API's answer as JSON")
    common_flags(status)
    status.set_defaults(handler=handle_status)

    download = subparsers.add_parser("download", help="download a succeeded task's output")
    download.add_argument("id", help="the task or batch id")
    download.add_argument(
        "-o",
        "--output",
        type=Path,
        metavar="PATH",
        help="file to write (default: ID.mp4, or .mov/.mkv); a batch: a folder, one file per item",
    )
    common_flags(download)
    download.set_defaults(handler=handle_download)

    for name, help_text in (
        ("cancel", "stop a task that has not finished (its files are removed)"),
        ("retry", "run a failed task again from where it failed"),
        ("delete", "delete a task in any state: every file and row of it (usage stays counted)"),
    ):
        action = subparsers.add_parser(
            name, help=help_text, description=help_text[0].upper() + help_text[1:] + "."
        )
        action.add_argument("id", help="the task id")
        common_flags(action)
        action.set_defaults(handler=handle_action, action=name)


def follow(
    base: str, task_id: str, interval_s: float = 1.0, show: bool = True, api_key: str | None = None
) -> dict[str, Any]:
    """Until the task ends, with a progress bar over frames: its live events, else polling
    (``cli.commands.live``)."""
    from cli.commands.live import follow_task

    return follow_task(base, task_id, api_key=api_key, show=show, interval_s=interval_s)


# ---------------------------------------------------------------------------- handlers


def _options(args: argparse.Namespace) -> dict[str, Any]:
    try:
        raw: dict[str, Any] = json.loads(args.options) if args.options else {}
    except json.JSONDecodeError as exc:
        raise ClientError(f"--options is not valid JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise ClientError("--options must be a JSON object")
    if args.processors is not None:
        raw["processors"] = args.processors
    flags = [*JOB_FLAGS, *SCHEDULING_FLAGS]
    raw.update({name: getattr(args, name) for name in flags if getattr(args, name) is not None})
    return raw


def handle_submit(args: argparse.Namespace, settings: Settings) -> int:
    def action() -> int:
        base = base_url(args, settings)
        if len(args.target) > 1 or args.target[0].is_dir():
            return _submit_batch(args, settings, base)
        task = submit_task(
            base,
            args.target[0],
            args.source,
            _options(args),
            args.reference,
            args.idempotency_key,
            api_key_of(settings),
        )
        print(task["id"])
        if args.follow:
            final = follow(base, task["id"], api_key=api_key_of(settings))
            print(final["state"] + (f": {final['error']}" if final.get("error") else ""), file=sys.stderr)
            return 0 if final["state"] == "succeeded" else 1
        return 0

    return run_action(action)


def _submit_batch(args: argparse.Namespace, settings: Settings, base: str) -> int:
    from cli.commands import batch_client

    key = api_key_of(settings)
    targets = batch_client.targets_of(args.target)
    batch = batch_client.submit_batch(
        base, targets, args.source, _options(args), args.reference, args.idempotency_key, key
    )
    print(batch["id"])
    if args.follow:
        final = batch_client.follow_batch(base, batch["id"], key)
        batch_client.print_batch(final)
        return 0 if final["counts"]["succeeded"] == len(final["tasks"]) else 1
    return 0


def handle_status(args: argparse.Namespace, settings: Settings) -> int:
    def action() -> int:
        base = base_url(args, settings)
        key = api_key_of(settings)
        from cli.commands import batch_client

        if (batch := batch_client.get_batch(base, args.id, key)) is not None:
            if args.follow:
                batch = batch_client.follow_batch(base, args.id, key)
            if args.json:
                print(json.dumps(batch, indent=2))
            else:
                batch_client.print_batch(batch)
            return 0 if batch["counts"]["failed"] == 0 else 1
        status = follow(base, args.id, api_key=key) if args.follow else get_status(base, args.id, key)
        if args.json:
            print(json.dumps(status, indent=2))
            return 0
        progress = status.get("progress") or {}
        print(
            f"{status['id']}  {status['state']}  {progress.get('percent', 0)}%  "
            f"{progress.get('frames_done', 0)}/{progress.get('frames_total', 0)} frames"
        )
        if status.get("error"):
            print(f"error: {status['error']}")
        if status.get("quality"):
            from cli.progress import quality_line

            print(quality_line(status["quality"]))
        if (status.get("content_policy") or {}).get("flagged"):
            print(f"flagged by the content policy: {json.dumps(status['content_policy'])}")
        return 0 if status["state"] != "failed" else 1

    return run_action(action)


def task_action(base: str, task_id: str, action: str, api_key: str | None = None) -> dict[str, Any] | None:
    """POST /cancel or /retry, or DELETE; the task's summary (None once deleted)."""
    import requests

    url = f"{base}/v1/tasks/{task_id}"
    try:
        if action == "delete":
            response = requests.delete(url, headers=auth_headers(api_key), timeout=30)
        else:
            response = requests.post(f"{url}/{action}", headers=auth_headers(api_key), timeout=30)
    except requests.RequestException as exc:
        raise ClientError(f"cannot reach the API at {base}: {type(exc).__name__}") from None
    if response.status_code == 204:
        return None
    return check_answer(response)


def handle_action(args: argparse.Namespace, settings: Settings) -> int:
    def action() -> int:
        body = task_action(base_url(args, settings), args.id, args.action, api_key_of(settings))
        print(f"{args.id}  deleted" if body is None else f"{body['id']}  {body['state']}")
        return 0

    return run_action(action)


def handle_download(args: argparse.Namespace, settings: Settings) -> int:
    def action() -> int:
        from cli.commands import batch_client

        base, key = base_url(args, settings), api_key_of(settings)
        if (batch := batch_client.get_batch(base, args.id, key)) is not None:
            written = batch_client.download_batch(base, batch, args.output or Path(args.id), key)
            for path in written:
                print(path)
            return 0 if len(written) == len(batch["tasks"]) else 1
        output = download_output(base, args.id, args.output, key)
        print(output)
        return 0

    return run_action(action)
