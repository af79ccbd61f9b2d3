"""Engines and sessions for SQLite (the embedded home) and PostgreSQL (the service): the
driver chosen from the URL, and every PostgreSQL connection bounded in time."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import sessionmaker


def normalize_url(url: str) -> str:
    """``postgres://`` and ``postgresql://`` mean the installed driver (psycopg2), not
    SQLAlchemy's default guess (psycopg 3, which is not installed)."""
    for scheme in ("postgres://", "postgresql://"):
        if url.startswith(scheme):
            return "postgresql+psycopg2://" + url[len(scheme) :]
    return url


@dataclass(frozen=True)
class DatabaseTimeouts:
    """Bounds on every PostgreSQL connection, so a dead peer or a stuck transaction costs
    seconds, not a worker (0 turns one off)."""

    connect_s: float = 10.0
    statement_s: float = 120.0
    idle_in_transaction_s: float = 300.0
    lock_s: float = 60.0
    # a peer that vanished (a failover, a cut cable) is noticed by TCP in about
    # keepalive_idle_s + 3 probes, or once unacknowledged data waits tcp_user_timeout_s,
    # instead of the kernel's ~15 minutes of retransmissions
    keepalive_idle_s: float = 30.0
    tcp_user_timeout_s: float = 60.0


def make_engine(
    url: str, timeouts: DatabaseTimeouts | None = None, *, pre_ping: bool = True, autocommit: bool = False
) -> Engine:
    """``pre_ping`` costs a round trip per checkout: right for workers (a few long steps),
    wrong for the API's many short reads (there a connection lost to a database restart
    fails one request and the pool is renewed). ``autocommit``: a pool for reads that need
    no transaction (no BEGIN, no ROLLBACK round trips)."""
    url = normalize_url(url)
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):  # type: ignore[no-untyped-def]
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            # no fsync per commit (WAL stays consistent; a power cut may lose the last
            # commits, and a lost checkpoint is recovered from the bucket's segments)
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        return engine
    limits = timeouts or DatabaseTimeouts()
    options = " ".join(
        f"-c {name}={int(seconds * 1000)}"
        for name, seconds in (
            ("statement_timeout", limits.statement_s),
            ("idle_in_transaction_session_timeout", limits.idle_in_transaction_s),
            ("lock_timeout", limits.lock_s),
        )
    )
    connect_args: dict[str, Any] = {"options": options, **_keepalives(limits)}
    if limits.connect_s:
        connect_args["connect_timeout"] = max(1, round(limits.connect_s))
    extra: dict[str, Any] = {"isolation_level": "AUTOCOMMIT"} if autocommit else {}
    return create_engine(
        url,
        pool_pre_ping=pre_ping,
        pool_size=5,
        max_overflow=5,
        pool_recycle=600,
        connect_args=connect_args,
        **extra,
    )


def _keepalives(limits: DatabaseTimeouts) -> dict[str, int]:
    """libpq's TCP keepalive and user timeout: a call on a dead connection fails in about a
    minute and the pool replaces it (0 turns them off)."""
    if not limits.keepalive_idle_s:
        return {"keepalives": 0}
    idle = max(1, round(limits.keepalive_idle_s))
    found = {
        "keepalives": 1,
        "keepalives_idle": idle,
        "keepalives_interval": max(1, idle // 3),
        "keepalives_count": 3,
    }
    if limits.tcp_user_timeout_s:
        found["tcp_user_timeout"] = int(limits.tcp_user_timeout_s * 1000)
    return found


def make_sessionmaker(engine: Engine) -> sessionmaker:
    return sessionmaker(engine, expire_on_commit=False)
