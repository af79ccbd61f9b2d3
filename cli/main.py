"""The ``facefleet`` command. Settings are built here, once, and handed to the sub-command."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

COMMANDS = ("run", "demo", "models", "api", "worker", "flower", "migrate", "client", "tenants", "sla")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="facefleet", description=__doc__)
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="log progress and debug detail to stderr"
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"cli.commands.{name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.ERROR,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    from pydantic import ValidationError

    from facefleet.settings import Settings  # after parsing: `--help` needs none of it

    try:
        settings = Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        print(f"facefleet: setting FACEFLEET_{str(first['loc'][0]).upper()}: {first['msg']}", file=sys.stderr)
        return 2
    result: int = args.handler(args, settings)
    return result


if __name__ == "__main__":
    sys.exit(main())
