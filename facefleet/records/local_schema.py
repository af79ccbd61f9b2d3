"""The embedded database's schema, brought up to date in place.

The distributed mode's PostgreSQL schema is Alembic's (``facefleet migrate``). The embedded
mode's SQLite file lives in the user's FACEFLEET_HOME across upgrades of FaceFleet, and a
job interrupted before an upgrade must resume after it, so its schema is grown here: tables
and indexes that are missing are created, and columns that are missing are added (every
column a later revision adds is nullable or has a server default, as SQLite's ADD COLUMN
needs). ``PRAGMA user_version`` records the revision the file was brought to, so a file that
is up to date costs one read.
"""

from __future__ import annotations

import logging

from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.schema import CreateColumn

from facefleet.records import event_tables  # noqa: F401  (the batch and outbox tables join Base.metadata)
from facefleet.records.db import Base

log = logging.getLogger(__name__)

# the newest revision in migrations/versions, as a number (a test keeps the two together)
SCHEMA_REVISION = 14


def ensure_schema(engine: Engine) -> None:
    """Create or grow the SQLite schema to the models' (a no-op for an up-to-date file)."""
    with engine.begin() as conn:
        if conn.execute(text("PRAGMA user_version")).scalar() == SCHEMA_REVISION:
            return
        Base.metadata.create_all(conn)
        added = _add_missing_columns(conn)
        for table in Base.metadata.sorted_tables:
            for index in table.indexes:
                index.create(conn, checkfirst=True)
        conn.execute(text(f"PRAGMA user_version = {SCHEMA_REVISION}"))
    if added:
        log.info("embedded database upgraded: added %s", ", ".join(added))


def _add_missing_columns(conn: Connection) -> list[str]:
    inspector = inspect(conn)
    added = []
    for table in Base.metadata.sorted_tables:
        present = {column["name"] for column in inspector.get_columns(table.name)}
        for column in table.columns:
            if column.name in present:
                continue
            ddl = CreateColumn(column).compile(dialect=conn.dialect)
            conn.execute(text(f'ALTER TABLE "{table.name}" ADD COLUMN {ddl}'))
            added.append(f"{table.name}.{column.name}")
    return added
