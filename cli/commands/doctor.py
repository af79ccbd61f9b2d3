"""``facefleet doctor``: check this machine and the services the settings name, one line
each, with the fix for each failure; exit status 1 when any check fails."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from cli.option_flags import PROCESSORS_HELP, HelpFormatter

if TYPE_CHECKING:
    from cli.doctor_checks import Check
    from facefleet.config.settings import Settings

DESCRIPTION = """\
Check what FaceFleet needs, and say how to fix what is wrong.

embedded (the default without FACEFLEET_DATABASE_URL): Python, the FFmpeg build's codecs,
the models the processors need (present in the model directory or a mirror folder, sha256
verified), the execution providers, the home's database and the free disk.
service (the default with FACEFLEET_DATABASE_URL): the same, and the database (reachable,
migrated to head), Redis, the broker and the bucket (--fix creates a missing bucket).

exit status: 0 when every check passes (warnings allowed), 1 when one fails.
"""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "doctor",
        help="check this machine and the configured services; say how to fix what fails",
        description=DESCRIPTION,
        formatter_class=HelpFormatter,
    )
    parser.add_argument(
        "--mode",
        choices=("embedded", "service"),
        default=None,
        help="what to check (default: service when FACEFLEET_DATABASE_URL is set, else embedded)",
    )
    parser.add_argument(
        "--processors",
        default=None,
        metavar="LIST",
        help=PROCESSORS_HELP + " whose models to check (default: face_anonymizer with det_500m, the demo's, "
        "unless FACEFLEET_WARM_MODELS names the models)",
    )
    parser.add_argument(
        "--face-detector",
        default=None,
        metavar="MODEL",
        help="the detector those processors use (default: det_500m)",
    )
    parser.add_argument(
        "--fix", action="store_true", help="fix what can be fixed here: create a missing bucket"
    )
    parser.add_argument("--json", action="store_true", help="print the checks as JSON (for scripts)")
    parser.set_defaults(handler=handle)


def _model_names(args: argparse.Namespace, settings: Settings) -> tuple[list[str], str]:
    from cli.doctor_checks import models_for
    from facefleet.config.options import parse_options

    warm = list(settings.warm_models)
    if args.processors is None and warm:
        return warm, "FACEFLEET_WARM_MODELS"
    processors = args.processors or "face_anonymizer"
    options = parse_options({"processors": processors, "face_detector": args.face_detector or "det_500m"})
    return [*warm, *models_for(options.processors, options.model_dump())], f"needed by {processors}"


def run_checks(args: argparse.Namespace, settings: Settings, mode: str) -> list[Check]:
    from cli import doctor_checks as c

    checks: list[Check] = [c.check_python(), c.check_settings(settings, mode)]
    checks += c.check_ffmpeg()
    names, why = _model_names(args, settings)
    checks += c.check_models(settings, names, why)
    checks.append(c.check_providers(settings))
    if mode == "embedded":
        checks.append(c.check_embedded_database(settings))
        checks.append(c.check_disk("home disk", settings.home))
    elif checks[1].status == c.OK:
        checks.append(c.check_database(settings))
        checks.append(c.check_redis(settings))
        checks.append(c.check_broker(settings))
        bucket = c.check_bucket(settings)
        if bucket.status == c.FAIL and args.fix and "does not exist" in bucket.detail:
            done = c.fix_bucket(settings)
            bucket = c.check_bucket(settings)
            bucket = c.Check(bucket.name, bucket.status, f"{bucket.detail} ({done})", bucket.fix)
        checks.append(bucket)
    checks.append(c.check_disk("scratch disk", settings.scratch_dir))
    return checks


def handle(args: argparse.Namespace, settings: Settings) -> int:
    from cli.doctor_checks import FAIL
    from facefleet.config.options import OptionsError

    mode = args.mode or ("service" if settings.database_url else "embedded")
    try:
        checks = run_checks(args, settings, mode)
    except OptionsError as exc:
        print(f"facefleet: {exc}", file=sys.stderr)
        return 1
    failed = [check for check in checks if check.status == FAIL]
    if args.json:
        print(json.dumps({"mode": mode, "ok": not failed, "checks": [c.as_json() for c in checks]}, indent=2))
    else:
        _print(checks, mode)
    return 1 if failed else 0


def _print(checks: list[Check], mode: str) -> None:
    width = max(len(check.name) for check in checks)
    print(f"facefleet doctor ({mode} mode)")
    for check in checks:
        print(f"  {check.status:4}  {check.name:{width}}  {check.detail}")
        if check.fix:
            print(f"  {'':4}  {'':{width}}  fix: {check.fix}")
    failed = sum(check.status == "FAIL" for check in checks)
    print(f"{failed} check(s) failed" if failed else "every check passed")
