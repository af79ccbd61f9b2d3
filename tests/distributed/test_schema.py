"""The Alembic migrations build exactly the schema the models declare."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

from facefleet.db import Base


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
