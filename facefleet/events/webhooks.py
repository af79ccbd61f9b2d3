"""Webhook delivery from the outbox (``facefleet.events.outbox`` writes the rows).

Signed as the Standard Webhooks spec says (the ``standardwebhooks`` library signs):
``webhook-id`` (the event's id, the same on every attempt and replay, so a receiver can drop
what it has seen), ``webhook-timestamp`` (Unix seconds of this attempt) and
``webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">`` with the tenant's
``whsec_`` secret; within a day of a rotation the old secret signs too (both signatures,
space-separated, as the spec allows).

At least once: ``claim`` takes due rows under ``FOR UPDATE SKIP LOCKED`` and moves their
``next_attempt_at`` past the attempt's timeout before anything is sent, so a deliverer killed
mid-delivery leaves the row due again shortly, for any deliverer. Each attempt is recorded
(time, status, latency, error); a failed one is tried again with exponential backoff and
jitter until ``retry_until`` (FACEFLEET_WEBHOOK_RETRY_S after the event), then given up. The
URL passes the egress guard again at each attempt.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session, sessionmaker
from standardwebhooks.webhooks import Webhook

from facefleet.config.policy import webhook_delay
from facefleet.egress import EgressPolicy, EgressRefused, post
from facefleet.observability import metrics
from facefleet.records.db import Tenant, utcnow
from facefleet.records.event_tables import WebhookAttempt, WebhookEvent
from facefleet.records.task_view import iso

CLAIM_MARGIN_S = 5.0  # a claimed row is due again this long after its attempt's timeout
MAX_ANSWER_BYTES = 64 * 1024


@dataclass(frozen=True)
class RetryPolicy:
    base_s: float = 5.0
    max_s: float = 3600.0
    timeout_s: float = 10.0


@dataclass(frozen=True)
class Claimed:
    id: str
    url: str
    body: bytes
    secrets: tuple[str, ...]
    attempts: int
    retry_until: datetime
    created_at: datetime


def signature_headers(event_id: str, body: bytes, secrets: tuple[str, ...], now: datetime) -> dict[str, str]:
    """The Standard Webhooks headers of one attempt (one ``v1,`` signature per secret)."""
    text = body.decode()
    signatures = " ".join(Webhook(secret).sign(event_id, now, text) for secret in secrets)
    return {
        "webhook-id": event_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signatures,
        "Content-Type": "application/json",
        "User-Agent": "FaceFleet-Webhooks/1",
    }


def tenant_secrets(tenant: Tenant, now: datetime) -> tuple[str, ...]:
    """The secrets that sign now: the current one, and the previous within its grace."""
    until = tenant.webhook_secret_previous_until
    if tenant.webhook_secret_previous and until is not None and until > now:
        return (tenant.webhook_secret, tenant.webhook_secret_previous)
    return (tenant.webhook_secret,)


def claim(
    sessions: sessionmaker,
    limit: int,
    policy: RetryPolicy,
    in_flight: Mapping[str, int] | None = None,
    per_receiver: int = 4,
) -> list[Claimed]:
    """Up to ``limit`` due events, claimed for one attempt each, at most ``per_receiver`` in
    flight to one URL (``in_flight``: what the caller sends already, per URL)."""
    if limit <= 0:
        return []
    in_flight = in_flight or {}
    busy = sorted(url for url, count in in_flight.items() if count >= per_receiver)
    now = utcnow()
    with sessions.begin() as session:
        query = (
            select(WebhookEvent)
            .where(WebhookEvent.next_attempt_at.is_not(None), WebhookEvent.next_attempt_at <= now)
            .order_by(WebhookEvent.next_attempt_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        if busy:
            query = query.where(WebhookEvent.url.not_in(busy))
        taken: Counter[str] = Counter(in_flight)
        events = []
        for event in session.scalars(query):  # the rest stay due; their locks go with the commit
            if taken[event.url] < per_receiver:
                taken[event.url] += 1
                events.append(event)
        if not events:
            return []
        names = {e.tenant for e in events}
        tenants = {t.name: t for t in session.scalars(select(Tenant).where(Tenant.name.in_(names)))}
        again = now + timedelta(seconds=policy.timeout_s + CLAIM_MARGIN_S)
        session.execute(
            update(WebhookEvent)
            .where(WebhookEvent.id.in_([e.id for e in events]))
            .values(next_attempt_at=again)
        )
        return [
            Claimed(
                id=e.id,
                url=e.url,
                body=json.dumps(e.payload, separators=(",", ":")).encode(),
                secrets=tenant_secrets(tenants[e.tenant], now) if e.tenant in tenants else (),
                attempts=e.attempts,
                retry_until=e.retry_until,
                created_at=e.created_at,
            )
            for e in events
        ]


def deliver(sessions: sessionmaker, event: Claimed, egress: EgressPolicy, policy: RetryPolicy) -> bool:
    """One attempt at ``event``, recorded; True when the receiver took it (2xx)."""
    began, now = time.monotonic(), utcnow()
    status: int | None = None
    error: str | None = None
    if not event.secrets:
        error = "the tenant no longer exists"
    else:
        try:
            status = post(
                event.url,
                event.body,
                signature_headers(event.id, event.body, event.secrets, now),
                egress,
                what="webhook_url",
            )
            if not 200 <= status < 300:
                error = f"the receiver answered {status}"
        except EgressRefused as exc:
            error = str(exc)
    latency = time.monotonic() - began
    record(sessions, event, status, latency, error, policy)
    return error is None


def record(
    sessions: sessionmaker,
    event: Claimed,
    status: int | None,
    latency_s: float,
    error: str | None,
    policy: RetryPolicy,
) -> None:
    """The attempt in the log, and the event delivered, due again later, or given up."""
    now = utcnow()
    attempt = event.attempts + 1
    with sessions.begin() as session:
        session.add(
            WebhookAttempt(
                event_id=event.id, at=now, status=status, latency_ms=round(latency_s * 1000, 1), error=error
            )
        )
        values: dict[str, Any] = {"attempts": WebhookEvent.attempts + 1, "last_error": error}
        if error is None:
            values.update(delivered_at=now, next_attempt_at=None)
        else:
            due = now + timedelta(seconds=webhook_delay(attempt, policy.base_s, policy.max_s))
            if due > event.retry_until:
                values.update(gave_up_at=now, next_attempt_at=None)
            else:
                values.update(next_attempt_at=due)
        # a slower deliverer's failure never undoes another's success
        session.execute(
            update(WebhookEvent)
            .where(WebhookEvent.id == event.id, WebhookEvent.delivered_at.is_(None))
            .values(**values)
        )
    outcome = "delivered" if error is None else ("gave_up" if "gave_up_at" in values else "failed")
    metrics.WEBHOOK_DELIVERIES.labels(outcome).inc()
    if error is None:
        metrics.WEBHOOK_LATENCY.observe(max(0.0, (now - event.created_at).total_seconds()))


def replay(sessions: sessionmaker, event_id: str, retry_s: float, tenant: str | None) -> bool:
    """Send an event again (the same ``webhook-id``), now, with a fresh retry window; False
    when there is no such event (of ``tenant``; None: of any)."""
    now = utcnow()
    mine = WebhookEvent.tenant == tenant if tenant is not None else WebhookEvent.id.is_not(None)
    with sessions.begin() as session:
        result = session.execute(
            update(WebhookEvent)
            .where(WebhookEvent.id == event_id, mine)
            .values(
                next_attempt_at=now,
                retry_until=now + timedelta(seconds=retry_s),
                delivered_at=None,
                gave_up_at=None,
            )
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]


def deliveries(
    session: Session, *, task_id: str | None = None, batch_id: str | None = None
) -> list[dict[str, Any]]:
    """The events of a task or a batch (a batch's: its own and its items'), oldest first,
    each with its attempts."""
    if batch_id is not None:
        from facefleet.records.db import Task

        items = select(Task.id).where(Task.batch_id == batch_id).scalar_subquery()
        where = or_(WebhookEvent.batch_id == batch_id, WebhookEvent.task_id.in_(items))
    else:
        where = WebhookEvent.task_id == task_id
    events = list(
        session.scalars(select(WebhookEvent).where(where).order_by(WebhookEvent.created_at, WebhookEvent.id))
    )
    attempts: dict[str, list[dict[str, Any]]] = {e.id: [] for e in events}
    if events:
        for a in session.scalars(
            select(WebhookAttempt)
            .where(WebhookAttempt.event_id.in_(list(attempts)))
            .order_by(WebhookAttempt.id)
        ):
            attempts[a.event_id].append(
                {"at": iso(a.at), "status": a.status, "latency_ms": a.latency_ms, "error": a.error}
            )
    return [
        {
            "id": e.id,
            "event": e.event,
            "task_id": e.task_id,
            "batch_id": e.batch_id,
            "url": e.url,
            "state": "delivered" if e.delivered_at else "given_up" if e.gave_up_at else "pending",
            "created_at": iso(e.created_at),
            "delivered_at": iso(e.delivered_at),
            "next_attempt_at": iso(e.next_attempt_at),
            "attempts": attempts[e.id],
        }
        for e in events
    ]


def oldest_undelivered_s(session: Session) -> float:
    """Age in seconds of the oldest event not yet delivered nor given up (0: none)."""
    oldest = session.scalar(
        select(func.min(WebhookEvent.created_at)).where(
            and_(WebhookEvent.next_attempt_at.is_not(None), WebhookEvent.delivered_at.is_(None))
        )
    )
    return max(0.0, (utcnow() - oldest).total_seconds()) if oldest else 0.0
