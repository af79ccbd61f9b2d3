"""``facefleet migrate``: bring the PostgreSQL schema to the latest revision (Alembic)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from facefleet.config.settings import Settings


REPO = Path(__file__).resolve().parents[2]


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("migrate", help="create or upgrade the database schema")
    parser.add_argument(
        "revision", nargs="?", default="head", help="the Alembic revision to upgrade to (default: head)"
    )
    parser.add_argument(
        "--wait", type=float, default=0, help="seconds to wait for the database to accept connections"
    )
    parser.set_defaults(handler=handle)


def alembic_config(database_url: str) -> Any:
    from alembic.config import Config

    from facefleet.records.engine import normalize_url

    config = Config(str(REPO / "alembic.ini"))
    config.set_main_option("script_location", str(REPO / "migrations"))
    config.attributes["database_url"] = normalize_url(database_url)
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    from alembic import command

    command.upgrade(alembic_config(database_url), revision)


def wait_for_database(database_url: str, seconds: float) -> None:
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import OperationalError

    from facefleet.records.engine import normalize_url

    engine = create_engine(normalize_url(database_url))
    deadline = time.monotonic() + seconds
    try:
        while True:
            try:
                with engine.connect() as conn:
                    conn.execute(text("SELECT 1"))
                return
            except OperationalError:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(1)
    finally:
        engine.dispose()


def handle(args: argparse.Namespace, settings: Settings) -> int:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import NoSuchModuleError, OperationalError

    if not settings.database_url:
        print("facefleet migrate: FACEFLEET_DATABASE_URL is not set", file=sys.stderr)
        return 2
    shown = make_url(settings.database_url).render_as_string(hide_password=True)
    try:
        if args.wait:
            wait_for_database(settings.database_url, args.wait)
        upgrade(settings.database_url, args.revision)
    except OperationalError as exc:
        print(f"facefleet migrate: cannot reach {shown}: {exc.orig}", file=sys.stderr)
        return 1
    except (ImportError, NoSuchModuleError) as exc:  # a driver named in the URL is not installed
        print(
            f"facefleet migrate: {shown} needs a database driver that is not installed ({exc})",
            file=sys.stderr,
        )
        return 2
    print(f"database {shown} is at revision {args.revision}")
    return 0
