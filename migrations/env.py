"""Alembic environment: the same settings and metadata as the application.

The URL comes from ``config.attributes["database_url"]`` when a caller (``facefleet
migrate``, the tests) passes one, else from the FACEFLEET_* settings.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import engine_from_config, pool

from facefleet.records import event_tables  # noqa: F401  (the batch and outbox tables join Base.metadata)
from facefleet.records.db import Base

config = context.config
target_metadata = Base.metadata


def _database_url() -> str:
    url = config.attributes.get("database_url")
    if url:
        return str(url)
    from facefleet.config.settings import Settings

    configured = Settings().database_url
    if not configured:
        raise SystemExit("FACEFLEET_DATABASE_URL is not set")
    return configured


def run_migrations_offline() -> None:
    context.configure(
        url=_database_url(), target_metadata=target_metadata, literal_binds=True, compare_type=True
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = engine_from_config(
        {"sqlalchemy.url": _database_url()}, prefix="sqlalchemy.", poolclass=pool.NullPool
    )
    with engine.connect() as connection:
        _run(connection)


def _run(connection) -> None:  # type: ignore[no-untyped-def]
    context.configure(connection=connection, target_metadata=target_metadata, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
