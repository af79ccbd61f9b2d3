"""A FACEFLEET_HOME made by an older FaceFleet keeps working after an upgrade: the embedded
database grows the tables and columns later revisions added, and a job interrupted before
the upgrade resumes after it."""

import sqlite3
from pathlib import Path

from alembic.script import ScriptDirectory

from cli.commands.migrate import alembic_config
from facefleet.records.local_schema import SCHEMA_REVISION
from tests.harness.cli import RESUMABLE_JOB as JOB
from tests.harness.cli import run_and_kill, run_cli

# what revisions 0007-0009 added, as a database made before them lacks it
LATER_COLUMNS = {"tasks": ["infra_failing_since"], "chunks": ["frames_accounted", "lease_token"]}
LATER_TABLES = ["pending_uploads"]


def _as_made_before_0007(database: Path) -> None:
    with sqlite3.connect(database) as conn:
        for table, columns in LATER_COLUMNS.items():
            for column in columns:
                conn.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
        for table in LATER_TABLES:
            conn.execute(f"DROP TABLE {table}")
        conn.execute("PRAGMA user_version = 0")


def _columns(database: Path, table: str) -> set[str]:
    with sqlite3.connect(database) as conn:
        return {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}


def test_a_job_interrupted_before_an_upgrade_resumes_after_it(sample, tmp_path):
    home, out = tmp_path / "home", tmp_path / "out.mp4"
    args = ["run", "--target", str(sample), "--output", str(out), *JOB]
    run_and_kill(home, args, after_segments=3)
    _as_made_before_0007(home / "facefleet.db")

    result = run_cli(home, *args)
    assert result.returncode == 0, result.stderr
    assert out.stat().st_size > 0
    for table, columns in LATER_COLUMNS.items():
        assert set(columns) <= _columns(home / "facefleet.db", table)
    with sqlite3.connect(home / "facefleet.db") as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_REVISION


def test_the_embedded_schema_revision_is_the_newest_migration():
    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    assert head is not None and int(head) == SCHEMA_REVISION
