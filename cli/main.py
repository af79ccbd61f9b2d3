"""The ``facefleet`` command: the composition root. Settings are built here, once, and handed
to the sub-command; logging is configured here, once, for the role the sub-command plays."""

from __future__ import annotations

import argparse
import gc
import importlib
import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from facefleet.config.settings import Settings

COMMANDS = (
    "demo",
    "run",
    "jobs",
    "models",
    "doctor",
    "api",
    "worker",
    "flower",
    "migrate",
    "client",
    "tenants",
    "sla",
    "verify",
)

DESCRIPTION = """\
FaceFleet swaps, enhances or anonymises the faces in every frame of long videos, and gives
back the same video frame for frame and sound for sound, except for the faces. A job is cut
into chunks that are stored as they finish, so a killed job resumes where it stopped. It
runs on one machine (embedded) or as a service (an API and workers).

first commands:
  facefleet demo                       make a sample clip and blur its faces -> .demo/output.mp4
  facefleet run --target IN.mp4 --output OUT.mp4 --processors face_anonymizer
                                       your own video, on this machine
  facefleet jobs list                  the jobs kept on this machine, with their sizes
  facefleet models list                which face models are present, and how to get the others
  facefleet doctor                     check this machine and the configured services

Jobs on this machine keep their state in FACEFLEET_HOME (default:
~/.local/share/facefleet). Run `facefleet COMMAND --help` for a command's options.
"""
# sub-commands that are services: JSON logs at INFO unless told otherwise
SERVICES = {"api": "api", "worker": "worker"}
LOG_FORMATS = ("json", "text")
# the roles that merge their processes' metrics (each sets its own directory)
MULTIPROCESS_METRICS = ("api", "worker")


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The whole command line; with ``command``, only that sub-command's part (the one about
    to run: the other commands' modules and flags are then never loaded)."""
    from cli.option_flags import HelpFormatter

    parser = argparse.ArgumentParser(prog="facefleet", description=DESCRIPTION, formatter_class=HelpFormatter)
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="log progress and debug detail to stderr"
    )
    log_help = "json (one object per line; services' default) or text (commands' default)"
    parser.add_argument("--log-format", choices=LOG_FORMATS, default=None, help=log_help)
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in (command,) if command in COMMANDS else COMMANDS:
        importlib.import_module(f"cli.commands.{name}").register(subparsers)
    for sub in subparsers.choices.values():  # also accepted after the sub-command
        sub.add_argument("--log-format", choices=LOG_FORMATS, default=argparse.SUPPRESS, help=log_help)
    _describe(parser)
    return parser


def _describe(parser: argparse.ArgumentParser) -> None:
    """A sub-command's help opens with the line the list of commands shows for it."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help for choice in action._choices_actions}
            for name, sub in action.choices.items():
                if not sub.description and helps.get(name):
                    text = str(helps[name])
                    sub.description = text[0].upper() + text[1:] + "."
                _describe(sub)


def _parse(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """Parsed arguments; an unknown option is refused with the nearest known one."""
    from cli.option_flags import suggest

    args, unknown = parser.parse_known_args(argv)
    if unknown:
        sub = _subparser(parser, args)
        known = [s for a in sub._actions for s in a.option_strings]
        flag = next((u.split("=", 1)[0] for u in unknown if u.startswith("-")), unknown[0])
        sub.error(f"unrecognized arguments: {' '.join(unknown)}{suggest(flag, known)}")
    return args


def _subparser(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.ArgumentParser:
    """The innermost sub-command's parser the arguments chose."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            chosen = getattr(args, action.dest, None)
            if chosen in action.choices:
                return _subparser(action.choices[chosen], args)
    return parser


def main(argv: list[str] | None = None) -> int:
    collecting = gc.isenabled()
    # Start-up only allocates (modules, classes, settings): next to nothing worth collecting,
    # yet the collector would walk the growing heap again and again (~8 % of the imports' time)
    gc.disable()
    try:
        started = _start(argv)
    finally:
        if collecting:
            gc.enable()
    if isinstance(started, int):
        return started
    args, settings = started
    gc.freeze()  # what start-up made lives (almost all) as long as the process: no later collection walks it
    result: int = args.handler(args, settings)
    # The command is done and the process ends: the collector need not walk every object of
    # SQLAlchemy, pydantic and the rest once more on the way out (~0.1 s of each run)
    gc.freeze()
    return result


def _command(argv: list[str]) -> str | None:
    """The sub-command named on the command line, or None where the whole parser is wanted
    (none named, or help asked for before it)."""
    for word in argv:
        if word in ("-h", "--help"):
            return None
        if word in COMMANDS:
            return word
    return None


def _start(argv: list[str] | None) -> tuple[argparse.Namespace, Settings] | int:
    """The parsed command, logging configured and the settings; or the exit status of a
    command line or environment that is wrong."""
    args = _parse(build_parser(_command(sys.argv[1:] if argv is None else argv)), argv)
    if args.command not in SERVICES:
        # A command uses no pydantic plugins; looking for them reads every installed package's
        # entry points (~18 ms under the profiler). Services look, as pydantic does by default.
        os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    if args.command not in MULTIPROCESS_METRICS:
        os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)  # a command's metrics stay in-process
    # SVT-AV1 prints its banner to stderr unless told; set here, once, before any encoder thread
    # exists (setenv racing a codec's getenv can crash the process); children inherit it
    os.environ.setdefault("SVT_LOG", "1")
    from pydantic import ValidationError

    from facefleet.config.settings import Settings  # after parsing: `--help` needs none of it
    from facefleet.observability import logs

    try:
        settings = Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        print(f"facefleet: setting FACEFLEET_{str(first['loc'][0]).upper()}: {first['msg']}", file=sys.stderr)
        return 2
    service = SERVICES.get(args.command, "cli")
    level = "DEBUG" if args.verbose else getattr(args, "loglevel", None) or settings.log_level
    try:
        logs.configure(service, args.log_format or settings.log_format, level, logs.secret_values(os.environ))  # type: ignore[arg-type]
    except ValueError as exc:
        print(f"facefleet: {exc}", file=sys.stderr)
        return 2
    return args, settings


if __name__ == "__main__":
    sys.exit(main())
