"""``facefleet verify FILE``: the provenance a file carries (C2PA manifest, watermark); exit
status 0 when it carries FaceFleet's, 1 when none, 2 when the file cannot be read."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy.orm import sessionmaker

    from facefleet.config.settings import Settings


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("verify", help="say whether a video carries FaceFleet provenance")
    parser.add_argument("file", type=Path, help="the video to look at")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace, settings: Settings) -> int:
    from facefleet.config.errors import MediaRefused
    from facefleet.provenance.verify import verify_file

    try:
        report = verify_file(settings, args.file, _sessions(settings))
    except MediaRefused as exc:
        print(f"facefleet: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(report, indent=2) if args.json else _text(report))
    return 0 if report["provenance"] else 1


def _sessions(settings: Settings) -> sessionmaker | None:
    """The database the watermark's short id is looked up in: the deployment's, else the
    embedded one where it exists; None: the short id is printed as found."""
    from facefleet.records.engine import make_engine, make_sessionmaker

    if settings.database_url:
        url = settings.database_url
    elif (settings.home / "facefleet.db").exists():
        url = f"sqlite:///{settings.home / 'facefleet.db'}"
    else:
        return None
    try:
        return make_sessionmaker(make_engine(url, settings.database_timeouts()))
    except Exception:  # an unreachable database: the short id still says enough
        return None


def _text(report: dict[str, Any]) -> str:
    lines = []
    manifest = report["manifest"]
    if manifest is None:
        lines.append("C2PA manifest: none")
    else:
        state = (
            "valid"
            if manifest.get("valid")
            else f"NOT valid ({manifest.get('error') or manifest.get('failures')})"
        )
        signer = manifest.get("signer") or {}
        trusted = ", trusted" if manifest.get("trusted") else ", signer not among the trust anchors"
        lines.append(f"C2PA manifest: {state}{trusted if manifest.get('valid') else ''}")
        lines.append(f"  signed by: {signer.get('common_name')} (issuer {signer.get('issuer')})")
        lines.append(
            f"  FaceFleet's: {'yes' if manifest.get('facefleet') else 'no'}; task {manifest.get('task_id')}"
        )
    watermark = report["watermark"]
    if watermark is None:
        lines.append("watermark: none found")
    else:
        task = watermark.get("task_id") or "not in this database"
        lines.append(
            f"watermark: found, id {watermark['short_id']} (task {task}), "
            f"{watermark['frames']} frames read, correlation {watermark['correlation']:.2f}"
        )
    lines.append("FaceFleet provenance: " + ("found" if report["provenance"] else "none"))
    return "\n".join(lines)
