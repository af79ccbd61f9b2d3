"""Tenants, their API keys and limits, and usage per month.

A key is ``ffk_<id>_<secret>``: the id (public, 12 characters) finds the row, only a
SHA-256 of the whole key is stored, and the recognisable ``ffk_`` prefix lets secret
scanners find leaked keys. Secrets are 32 random bytes, so a plain hash is enough (no
password stretching is needed for keys nobody chose).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from facefleet.records.db import ApiKey, Task, Tenant, Usage, utcnow
from facefleet.records.keys import DEFAULT_TENANT
from facefleet.records.states import TaskState

KEY_PREFIX = "ffk_"
_KEY = re.compile(r"^ffk_([a-z0-9]{12})_([A-Za-z0-9_-]{40,})$")
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
LAST_USED_EVERY = timedelta(minutes=1)  # how stale ``last_used_at`` may be (a write per minute, not per call)
LIMIT_FIELDS = ("submit_rate", "max_queued", "max_running", "monthly_frames", "s3_allow")
ROTATION_GRACE = timedelta(hours=24)  # how long the secret before a rotation still signs
ACTIVE_STATES = (TaskState.PLANNING, TaskState.RUNNING, TaskState.STITCHING)
WAITING_STATES = (TaskState.QUEUED,)


class TenancyError(ValueError):
    """A tenant or key operation that cannot be done; the message is for the operator."""


@dataclass(frozen=True)
class Principal:
    """Who is calling: a tenant, and whether the key sees every tenant."""

    tenant: str
    admin: bool = False
    key_id: str | None = None

    def sees(self, tenant: str) -> bool:
        return self.admin or tenant == self.tenant


def check_limits(values: dict[str, Any]) -> dict[str, Any]:
    """Validate tenant limits given by an operator (None leaves a limit off)."""
    unknown = set(values) - set(LIMIT_FIELDS)
    if unknown:
        raise TenancyError(f"unknown limits: {', '.join(sorted(unknown))}")
    rate = values.get("submit_rate")
    if rate is not None:
        from limits import parse as parse_rate  # here: a job run never needs the rate parser

        try:
            parse_rate(rate)
        except ValueError:
            raise TenancyError(f"submit rate {rate!r} is not N/PERIOD (for example 10/minute)") from None
    allow = values.get("s3_allow")
    if allow is not None and not (isinstance(allow, list) and all(isinstance(e, str) for e in allow)):
        raise TenancyError("s3-allow must be a list of bucket/prefix")
    for name in ("max_queued", "max_running", "monthly_frames"):
        value = values.get(name)
        if value is not None and value < 1:
            raise TenancyError(f"{name.replace('_', '-')} must be at least 1")
    return values


def ensure_default_tenant(sessions: sessionmaker) -> None:
    """The tenant that owns work when there is only one (embedded mode, FACEFLEET_AUTH=off)."""
    with sessions.begin() as session:
        if session.get(Tenant, DEFAULT_TENANT) is None:
            session.add(Tenant(name=DEFAULT_TENANT, webhook_secret=_webhook_secret()))


def create_tenant(sessions: sessionmaker, name: str, **limits: Any) -> Tenant:
    if not _NAME.match(name):
        raise TenancyError(
            f"tenant name {name!r}: use 1-63 of a-z, 0-9, '-' and '_', starting with a letter or digit"
        )
    with sessions.begin() as session:
        if session.get(Tenant, name) is not None:
            raise TenancyError(f"tenant {name!r} exists already")
        tenant = Tenant(name=name, webhook_secret=_webhook_secret(), **check_limits(limits))
        session.add(tenant)
    return tenant


def update_tenant(sessions: sessionmaker, name: str, **limits: Any) -> Tenant:
    with sessions.begin() as session:
        tenant = _tenant(session, name)
        for field, value in check_limits(limits).items():
            setattr(tenant, field, value)
    return tenant


def rotate_secret(sessions: sessionmaker, name: str) -> Tenant:
    """A new webhook secret; the current one stays valid (webhooks carry both signatures)
    for ROTATION_GRACE."""
    with sessions.begin() as session:
        tenant = _tenant(session, name)
        tenant.webhook_secret_previous = tenant.webhook_secret
        tenant.webhook_secret_previous_until = utcnow() + ROTATION_GRACE
        tenant.webhook_secret = _webhook_secret()
    return tenant


def get_tenant(sessions: sessionmaker, name: str) -> Tenant:
    with sessions() as session:
        return _tenant(session, name)


def list_tenants(sessions: sessionmaker) -> list[Tenant]:
    with sessions() as session:
        return list(session.scalars(select(Tenant).order_by(Tenant.name)))


def usage_this_month(session: Session, tenant: str) -> Usage:
    month = utcnow().strftime("%Y-%m")
    found = session.get(Usage, (tenant, month))
    return found or Usage(
        tenant=tenant, month=month, tasks=0, frames=0, worker_seconds=0.0, bytes_in=0, bytes_out=0
    )


def count_tasks(session: Session, tenant: str, states: tuple[TaskState, ...]) -> int:
    return int(
        session.scalar(
            select(func.count())
            .select_from(Task)
            .where(Task.tenant == tenant, Task.state.in_(states), Task.deleted_at.is_(None))
        )
        or 0
    )


def _tenant(session: Session, name: str) -> Tenant:
    tenant = session.get(Tenant, name)
    if tenant is None:
        raise TenancyError(f"no tenant {name!r}")
    return tenant


def _webhook_secret() -> str:
    """``whsec_`` and the key's 32 bytes in standard base64, as the Standard Webhooks spec writes
    secrets (a URL-safe alphabet's ``-`` and ``_`` are dropped by standard decoders)."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


# ---------------------------------------------------------------------------- keys


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_key(
    sessions: sessionmaker, tenant: str, *, admin: bool = False, label: str | None = None
) -> tuple[ApiKey, str]:
    """A new key for ``tenant``; returns the row and the secret (shown once, never stored)."""
    key_id = "".join(secrets.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(12))
    secret = f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
    with sessions.begin() as session:
        _tenant(session, tenant)
        key = ApiKey(id=key_id, tenant=tenant, secret_hash=_hash(secret), label=label, admin=admin)
        session.add(key)
    return key, secret


def list_keys(sessions: sessionmaker, tenant: str | None = None) -> list[ApiKey]:
    query = select(ApiKey).order_by(ApiKey.tenant, ApiKey.created_at)
    if tenant is not None:
        query = query.where(ApiKey.tenant == tenant)
    with sessions() as session:
        return list(session.scalars(query))


def revoke_key(sessions: sessionmaker, id_or_prefix: str) -> ApiKey:
    """Revoke the key named by its id or by the start of the secret (``ffk_<id>...``)."""
    match = re.match(r"^(?:ffk_)?([a-z0-9]{12})", id_or_prefix)
    if match is None:
        raise TenancyError(f"{id_or_prefix!r} names no key (give its id or the start of the key)")
    with sessions.begin() as session:
        key = session.get(ApiKey, match[1])
        if key is None:
            raise TenancyError(f"no key {match[1]!r}")
        if key.revoked_at is None:
            key.revoked_at = utcnow()
    return key


def authenticate(sessions: sessionmaker, secret: str, writes: sessionmaker | None = None) -> Principal | None:
    """The caller a key stands for, or None for a malformed, unknown or revoked key
    (``writes``: the sessions that record when the key was last used, if not ``sessions``)."""
    match = _KEY.match(secret)
    if match is None:
        return None
    with sessions() as session:
        key = session.get(ApiKey, match[1])
        if (
            key is None
            or key.revoked_at is not None
            or not hmac.compare_digest(key.secret_hash, _hash(secret))
        ):
            return None
        principal = Principal(tenant=key.tenant, admin=key.admin, key_id=key.id)
        stale = key.last_used_at is None or key.last_used_at < utcnow() - LAST_USED_EVERY
    if stale:
        with (writes or sessions).begin() as session:
            session.execute(
                update(ApiKey)
                .where(ApiKey.id == principal.key_id)
                .where(or_(ApiKey.last_used_at.is_(None), ApiKey.last_used_at < utcnow() - LAST_USED_EVERY))
                .values(last_used_at=utcnow())
            )
    return principal
