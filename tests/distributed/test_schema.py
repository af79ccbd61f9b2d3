"""The Alembic migrations build exactly the schema the models declare."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

from facefleet.records import event_tables  # noqa: F401  (the batch and outbox tables join Base.metadata)
from facefleet.records.db import Base


def test_models_and_migrations_agree(pg_url):
    engine = create_engine(pg_url)  # a fresh database, upgraded to head by the fixture
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            assert compare_metadata(context, Base.metadata) == []
    finally:
        engine.dispose()


def test_downgrade_and_upgrade_again(pg_url):
    from alembic import command

    from cli.commands.migrate import alembic_config

    config = alembic_config(pg_url)
    command.downgrade(config, "base")
    command.upgrade(config, "head")


def test_migrate_keeps_the_tasks_of_an_earlier_revision(pg_url):
    """`facefleet migrate` (with a plain postgresql:// URL) upgrades a database that holds
    tasks from before tenants: they are kept, and belong to the default tenant."""
    import os
    import subprocess
    import sys

    from alembic import command
    from sqlalchemy import text
    from sqlalchemy.engine import make_url

    from cli.commands.migrate import alembic_config
    from tests.harness.cli import REPO
    from tests.harness.services import postgres_database

    with postgres_database(migrate=False) as database:
        url = make_url(database)
        command.upgrade(alembic_config(url.render_as_string(hide_password=False)), "0002")
        engine = create_engine(url)
        with engine.begin() as conn:
            for n in range(3):
                conn.execute(
                    text(
                        "INSERT INTO tasks (id, state, options, priority, target_key, source_keys, attempts,"
                        " frames_processed, worker_seconds, bytes_in, bytes_out, created_at, updated_at)"
                        " VALUES (:id, 'succeeded', '{}', 5, 'tasks/x/input/target', '[]', 0, 10, 1.5, 7, 9,"
                        " now(), now())"
                    ),
                    {"id": f"{n:032d}"},
                )
        plain = url.set(drivername="postgresql").render_as_string(hide_password=False)
        done = subprocess.run(
            [sys.executable, "-m", "cli", "migrate"],
            env={**os.environ, "FACEFLEET_DATABASE_URL": plain},
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT tenant, frames_processed FROM tasks ORDER BY id")).all()
            tenants = conn.execute(text("SELECT name FROM tenants")).scalars().all()
        assert rows == [("default", 10)] * 3
        assert tenants == ["default"]
        engine.dispose()
