"""`facefleet --help` and every sub-command's help are written for users: every option and
argument of every parser has help text, choices are shown, yes/no options are plain pairs,
and the option names agree across the CLI, the API's options and the OpenAPI document."""

from __future__ import annotations

import argparse
import subprocess
import sys
import typing
from collections.abc import Iterator

from cli.main import build_parser
from cli.option_flags import JOB_FLAGS, SCHEDULING_FLAGS, flag_name
from facefleet.config.options import JobOptions


def _parsers(
    parser: argparse.ArgumentParser, path: str = "facefleet"
) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _parsers(sub, f"{path} {name}")


def _sub_actions(parser: argparse.ArgumentParser) -> Iterator[argparse.Action]:
    for action in parser._actions:
        if not isinstance(action, argparse._HelpAction):
            yield action


def test_every_option_of_every_command_has_help() -> None:
    missing = []
    for path, parser in _parsers(build_parser()):
        for action in _sub_actions(parser):
            if isinstance(action, argparse._SubParsersAction):
                missing += [f"{path} {c.dest}" for c in action._choices_actions if not (c.help or "").strip()]
            elif action.help == argparse.SUPPRESS:
                continue  # hidden on purpose (a test hook), not shown to users
            elif not (action.help or "").strip():
                missing.append(f"{path} {'/'.join(action.option_strings) or action.dest}")
    assert missing == []


def test_every_command_has_a_description_or_help() -> None:
    parser = build_parser()
    for path, sub in _parsers(parser):
        assert (sub.description or "").strip(), f"{path} has no description"


def test_no_option_takes_an_optional_value() -> None:
    """``--faststart [FASTSTART]`` told nobody what to type: a yes/no is a ``--x/--no-x`` pair."""
    for path, parser in _parsers(build_parser()):
        for action in _sub_actions(parser):
            assert action.nargs != "?" or not action.option_strings, f"{path} {action.option_strings}"


def test_the_top_help_says_what_facefleet_is_and_where_its_home_is() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "cli", "--help"], capture_output=True, text=True, check=True
    )
    text = result.stdout
    assert "composition root" not in text and "Settings are built here" not in text
    assert "face" in text.split("\n\n")[1].lower()  # the first paragraph says what it does
    for command in (
        "facefleet demo",
        "facefleet run",
        "facefleet jobs list",
        "facefleet doctor",
        "facefleet models list",
    ):
        assert command in text, command
    assert "FACEFLEET_HOME" in text


def test_run_help_lists_the_processors_the_choices_and_the_trim_semantics() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "cli", "run", "--help"], capture_output=True, text=True, check=True
    )
    text = " ".join(result.stdout.split())
    for name in ("face_swapper", "face_enhancer", "face_anonymizer", "face_debugger"):
        assert name in text
    assert (
        "{h264,hevc,av1}" in text and "{blur,pixelate}" in text and "{all,largest,leftmost,reference}" in text
    )
    assert "--faststart, --no-faststart" in text and "[FASTSTART]" not in text
    assert "exclusive" in text and "0-based frame index" in text
    assert "(default: 18)" in text and "(default: veryfast)" in text


def _literal_choices(annotation: object) -> tuple[str, ...] | None:
    for arg in (annotation, *typing.get_args(annotation)):
        if typing.get_origin(arg) is typing.Literal:
            return typing.get_args(arg)
    return None


def test_cli_flags_are_the_api_options_with_their_defaults_and_choices() -> None:
    fields = JobOptions.model_fields
    flags = {**JOB_FLAGS, **SCHEDULING_FLAGS}
    assert set(flags) | {"processors"} == set(fields)
    for name, flag in flags.items():
        field = fields[name]
        if flag.default is not None:
            assert flag.default == field.default, name
        assert flag.choices == _literal_choices(field.annotation), name


def test_every_option_is_a_flag_of_run_and_submit() -> None:
    parser = build_parser()
    commands = {path: sub for path, sub in _parsers(parser)}
    run_flags = {s for a in commands["facefleet run"]._actions for s in a.option_strings}
    submit_flags = {s for a in commands["facefleet submit"]._actions for s in a.option_strings}
    for name in JobOptions.model_fields:
        assert flag_name(name) in submit_flags, name
        if name not in SCHEDULING_FLAGS:  # a queue's options: no queue on one machine
            assert flag_name(name) in run_flags, name


def test_openapi_options_are_the_same_names(tmp_path) -> None:
    """The document the API serves (no service is reached to serve it)."""
    from api.app import create_app
    from facefleet.config.settings import Settings

    settings = Settings(
        database_url="postgresql+psycopg2://nobody@127.0.0.1:1/none", s3_bucket="b", home=tmp_path
    )
    document = create_app(settings).test_client().get("/openapi.json").get_json()
    options = document["components"]["schemas"]["JobOptions"]["properties"]
    assert set(options) == set(JobOptions.model_fields) == {*JOB_FLAGS, *SCHEDULING_FLAGS, "processors"}


def test_an_unknown_option_or_processor_gets_a_suggestion(tmp_path) -> None:
    env = {"FACEFLEET_HOME": str(tmp_path)}
    import os

    result = subprocess.run(
        [sys.executable, "-m", "cli", "run", "--target", "x.mp4", "--output", "y.mp4", "--trim-stat", "5"],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
    )
    assert (
        result.returncode == 2
        and "--trim-stat" in result.stderr
        and "did you mean --trim-start" in result.stderr
    )
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "cli",
            "run",
            "--target",
            "x.mp4",
            "--output",
            "y.mp4",
            "--processors",
            "face_swaper",
        ],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
    )
    assert result.returncode == 1 and "did you mean face_swapper" in result.stderr, result.stderr
    assert "--processors" in result.stderr


def test_a_worker_refuses_an_unknown_queue_at_once() -> None:
    """`--queues gpu` used to log "ready." and never get work."""
    result = subprocess.run(
        [sys.executable, "-m", "cli", "worker", "--queues", "chunk"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "unknown queue 'chunk' (did you mean chunks?)" in result.stderr
    assert "planning, chunks, stitching" in result.stderr
