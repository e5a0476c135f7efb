"""Signed webhooks: events written in the transaction that ends a call (an outbox), delivered at
least once by the worker's sender, each attempt kept for the console and the API.

Signatures follow Standard Webhooks through the `standardwebhooks` package; during a secret
rotation both signatures are sent for 24 hours. Targets are checked against SSRF at
registration and again, address by address, at send time.
"""

from __future__ import annotations

import ipaddress
import random
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import orjson
from sqlalchemy import delete, insert, select, update
from sqlmodel import Session
from standardwebhooks import Webhook

from batch_dashboard import sealing
from batch_dashboard.clock import to_rfc3339
from batch_dashboard.ids import new_id
from batch_dashboard.models import Agent, WebhookDelivery
from batch_dashboard.services import cursors
from batch_dashboard.services.errors import Problems, is_clean_id

CONVERSATION_COMPLETED = "conversation.completed"
CALL_FAILED = "call.failed"
BATCH_PAUSED = "batch.paused"
DELIVERY_STATUSES = ("pending", "delivered", "failed")
LIST_LIMIT_MAX = 200
ROTATION_OVERLAP = timedelta(hours=24)
SEND_TIMEOUT_SECONDS = 15.0
# A claimed delivery is retried with the same webhook-id if its sender dies mid-send.
SEND_LEASE = timedelta(seconds=60)
MAX_RETRY_AFTER = timedelta(hours=24)

deliveries_t = WebhookDelivery.__table__


# --- events ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class EndedCall:
    """A recipient's call that ended for good, as its webhook event tells it."""

    recipient_id: str
    workspace_id: str
    agent_id: str
    batch_id: str
    phone: str
    dynamic_vars: str  # JSON text, passed through untouched
    started_at: datetime | None
    ended_at: datetime
    duration_seconds: float | None
    failure_reason: str | None


def event_payload(
    *, now: datetime, call: EndedCall, conversation: dict[str, Any] | None
) -> dict[str, Any]:
    """`conversation.completed` for a call that connected, else `call.failed`."""
    data: dict[str, Any] = {
        "conversation_id": conversation["id"] if conversation else None,
        "agent_id": call.agent_id,
        "batch_id": call.batch_id,
        "recipient_id": call.recipient_id,
        "phone": call.phone,
        "dynamic_vars": orjson.Fragment(call.dynamic_vars),
        "started_at": to_rfc3339(call.started_at),
        "ended_at": to_rfc3339(call.ended_at),
        "duration_seconds": call.duration_seconds,
    }
    if conversation is not None:
        data["started_at"] = to_rfc3339(conversation["started_at"])
        data["transcript"] = conversation["transcript"]
        data["evaluations"] = conversation["evaluations"]
        data["data_collection"] = conversation["data_collection"]
        event_type = CONVERSATION_COMPLETED
    else:
        data["failure_reason"] = call.failure_reason
        event_type = CALL_FAILED
    return {"type": event_type, "timestamp": to_rfc3339(now), "data": data}


def enqueue(
    session: Session,
    *,
    events: Sequence[tuple[EndedCall, str, dict[str, Any]]],
    now: datetime,
    delay: timedelta | None = None,
) -> int:
    """Write `(call, url, payload)` events in the caller's transaction: the call's end and its
    event commit together or not at all. `delay` holds a connected call's event back while its
    bot may still post the transcript (`rewrite_waiting`)."""
    rows = [
        {
            "id": new_id("msg"),
            "workspace_id": call.workspace_id,
            "agent_id": call.agent_id,
            "batch_id": call.batch_id,
            "recipient_id": call.recipient_id,
            "event_type": payload["type"],
            "url": url,
            "payload": orjson.dumps(payload).decode(),
            "status": "pending",
            "attempt_count": 0,
            "attempts": [],
            "next_attempt_at": now + delay
            if delay and payload["type"] == CONVERSATION_COMPLETED
            else now,
            "created_at": now,
        }
        for call, url, payload in events
    ]
    if rows:
        session.execute(insert(deliveries_t), rows)
    return len(rows)


def enqueue_batch_event(
    session: Session,
    *,
    workspace_id: str,
    agent_id: str,
    batch_id: str,
    url: str,
    event_type: str,
    data: dict[str, Any],
    now: datetime,
) -> None:
    """An event about a whole batch (`batch.paused`), in the caller's transaction like a
    call's: signed and delivered by the same sender, with the same retries."""
    payload = {"type": event_type, "timestamp": to_rfc3339(now), "data": data}
    session.execute(
        insert(deliveries_t),
        [
            {
                "id": new_id("msg"),
                "workspace_id": workspace_id,
                "agent_id": agent_id,
                "batch_id": batch_id,
                "recipient_id": None,
                "event_type": event_type,
                "url": url,
                "payload": orjson.dumps(payload).decode(),
                "status": "pending",
                "attempt_count": 0,
                "attempts": [],
                "next_attempt_at": now,
                "created_at": now,
            }
        ],
    )


def withdraw_unsent(session: Session, *, recipient_ids: Sequence[str]) -> int:
    """Drop the `call.failed` events not tried yet of recipients put back in line (a tripped
    breaker): their call did not end them after all. One already tried stays as it was."""
    if not recipient_ids:
        return 0
    result = session.execute(
        delete(deliveries_t).where(
            deliveries_t.c.recipient_id.in_(list(recipient_ids)),
            deliveries_t.c.event_type == CALL_FAILED,
            deliveries_t.c.status == "pending",
            deliveries_t.c.attempt_count == 0,
        )
    )
    return result.rowcount or 0


def rewrite_waiting(session: Session, *, recipient_id: str, conversation: dict[str, Any]) -> int:
    """Put a conversation's late transcript, evaluations and collected data into its
    `conversation.completed` event while that has not been tried yet."""
    rows = session.execute(
        select(deliveries_t.c.id, deliveries_t.c.payload).where(
            deliveries_t.c.recipient_id == recipient_id,
            deliveries_t.c.event_type == CONVERSATION_COMPLETED,
            deliveries_t.c.status == "pending",
            deliveries_t.c.attempt_count == 0,
        )
    ).all()
    for delivery_id, payload in rows:
        event = orjson.loads(payload)
        event["data"].update(conversation)
        session.execute(
            update(deliveries_t)
            .where(deliveries_t.c.id == delivery_id, deliveries_t.c.attempt_count == 0)
            .values(payload=orjson.dumps(event).decode())
        )
    return len(rows)


# --- signing ---------------------------------------------------------------------------------


def signing_secrets(agent: Agent, now: datetime) -> list[str]:
    sealed = [agent.webhook_secret] if agent.webhook_secret else []
    rotated = agent.webhook_secret_rotated_at
    if agent.webhook_secret_previous and rotated is not None and now - rotated < ROTATION_OVERLAP:
        sealed.append(agent.webhook_secret_previous)
    return [sealing.unseal(value) for value in sealed]


def signature_headers(
    *, msg_id: str, timestamp: datetime, body: str, secrets: Sequence[str]
) -> dict[str, str]:
    signatures = " ".join(Webhook(secret).sign(msg_id, timestamp, body) for secret in secrets)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(timestamp.timestamp())),
        "webhook-signature": signatures,
        "content-type": "application/json",
        "user-agent": "batch-dashboard-webhooks/1",
    }


# --- SSRF ------------------------------------------------------------------------------------


class TargetRefused(Exception):
    """A webhook URL this deployment will not send to. `permanent` unless the name merely did
    not resolve this time (DNS may answer later); a refused address or scheme is final."""

    def __init__(self, message: str, *, permanent: bool = True) -> None:
        super().__init__(message)
        self.permanent = permanent


_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")


def _embedded_ipv4(address: ipaddress.IPv6Address) -> tuple[str, ipaddress.IPv4Address] | None:
    """The IPv4 address an IPv6 one carries to (IPv4-mapped, 6to4, Teredo, NAT64, the old
    IPv4-compatible form): each reaches that IPv4 host, so it is judged as that host."""
    if address.ipv4_mapped is not None:
        return "an IPv4-mapped", address.ipv4_mapped
    if address.sixtofour is not None:
        return "a 6to4", address.sixtofour
    if address.teredo is not None:
        return "a Teredo", address.teredo[1]
    if address in _NAT64:
        return "a NAT64", ipaddress.IPv4Address(address.packed[-4:])
    if address.packed[:12] == bytes(12) and int(address) > 1:
        return "an IPv4-compatible", ipaddress.IPv4Address(address.packed[-4:])
    return None


def _address_problem(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            form, inner = embedded
            problem = _address_problem(inner)
            if problem:
                return f"{problem} ({form} form of {inner})"
            if address.ipv4_mapped is not None:
                return None  # the connection is made to the IPv4 address itself
        if address in _NAT64_LOCAL:
            return "a NAT64 address of a local network (64:ff9b:1::/48)"
    if isinstance(address, ipaddress.IPv4Address) and address in _CGNAT:
        return "a carrier-grade NAT address (100.64.0.0/10)"
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address (such as the cloud metadata service)"
    if address.is_private:
        return "a private network address"
    if address.is_multicast or address.is_reserved or address.is_unspecified:
        return "not a public unicast address"
    if not address.is_global:
        return "not a public address"
    return None


def resolve_target(url: str, *, allow_private: bool) -> tuple[str, int, list[str]]:
    """`(host, port, addresses)` for a URL we may send to; `TargetRefused` says why not.

    Every address the name resolves to is checked (an attacker's DNS may mix a public and a
    private answer), and the sender connects to one of exactly these addresses.
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("https", "http") or not parts.hostname:
        raise TargetRefused("must be an https:// URL")
    if scheme != "https" and not allow_private:
        raise TargetRefused("must use https://")
    if parts.username or parts.password:
        raise TargetRefused("must not contain credentials")
    host = parts.hostname
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError:
        raise TargetRefused("has an invalid port") from None
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as error:
        raise TargetRefused(f"host {host!r} does not resolve ({error})", permanent=False) from None
    addresses = sorted({info[4][0] for info in infos})
    if not allow_private:
        for text in addresses:
            problem = _address_problem(ipaddress.ip_address(text.split("%")[0]))
            if problem:
                raise TargetRefused(f"{host} resolves to {text}, {problem}")
    return host, port, addresses


def check_webhook_url(url: str | None, *, allow_private: bool, problems: Problems) -> None:
    """Registration-time check, with the same rules as send time."""
    if url is None:
        return
    if len(url) > 2000:
        problems.add(["webhook_url"], "must be at most 2,000 characters")
        return
    try:
        resolve_target(url, allow_private=allow_private)
    except TargetRefused as refused:
        problems.add(
            ["webhook_url"],
            f"{refused} (webhooks go only to public HTTPS addresses"
            + (
                ""
                if allow_private
                else "; set BATCH_WEBHOOK_ALLOW_PRIVATE_TARGETS=true for local development"
            )
            + ")",
        )


# --- delivery --------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeliveryJob:
    id: str
    agent_id: str
    url: str
    payload: str
    attempt_count: int
    secrets: list[str]


@dataclass(frozen=True)
class AttemptResult:
    status_code: int | None = None
    error: str | None = None
    retry_after: timedelta | None = None
    # No later attempt could succeed (the SSRF check refused the target): end the delivery now.
    final: bool = False

    @property
    def success(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def claim_due(session: Session, *, now: datetime, limit: int) -> list[DeliveryJob]:
    if limit <= 0:
        return []
    due = (
        select(deliveries_t.c.id)
        .where(deliveries_t.c.status == "pending", deliveries_t.c.next_attempt_at <= now)
        .order_by(deliveries_t.c.next_attempt_at)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        due = due.with_for_update(skip_locked=True)
    rows = session.execute(
        update(deliveries_t)
        .where(deliveries_t.c.id.in_(due.scalar_subquery()))
        .values(next_attempt_at=now + SEND_LEASE)
        .returning(
            deliveries_t.c.id,
            deliveries_t.c.agent_id,
            deliveries_t.c.url,
            deliveries_t.c.payload,
            deliveries_t.c.attempt_count,
        )
    ).all()
    # Secrets opened once per agent, not once per delivery.
    secrets_by_agent = {
        agent.id: signing_secrets(agent, now)
        for agent in session.execute(
            select(Agent).where(Agent.id.in_({row.agent_id for row in rows}))
        ).scalars()
    }
    return [
        DeliveryJob(
            id=row.id,
            agent_id=row.agent_id,
            url=row.url,
            payload=row.payload,
            attempt_count=row.attempt_count,
            secrets=secrets_by_agent[row.agent_id],
        )
        for row in rows
    ]


def next_delay(
    attempt_count: int, schedule: Sequence[int], result: AttemptResult, rng: random.Random
) -> timedelta | None:
    """When to try again after `attempt_count` attempts; None when the schedule is spent."""
    if attempt_count > len(schedule):
        return None
    delay = timedelta(seconds=schedule[attempt_count - 1] * rng.uniform(1.0, 1.1))
    if result.retry_after is not None and result.status_code in (429, 503):
        delay = max(delay, min(result.retry_after, MAX_RETRY_AFTER))
    return delay


def record_attempt(
    session: Session,
    *,
    job: DeliveryJob,
    result: AttemptResult,
    now: datetime,
    schedule: Sequence[int],
    rng: random.Random | None = None,
) -> str:
    """Store one attempt and the delivery's next state; returns that state."""
    delivery = session.get(WebhookDelivery, job.id)
    if (
        delivery is None
        or delivery.status != "pending"
        or delivery.attempt_count != job.attempt_count
    ):
        return delivery.status if delivery else "missing"  # someone else recorded it already
    attempt = {
        "at": to_rfc3339(now),
        "status_code": result.status_code,
        "error": result.error,
    }
    delivery.attempts = [*delivery.attempts, attempt]
    delivery.attempt_count += 1
    if result.success:
        delivery.status, delivery.delivered_at, delivery.next_attempt_at = "delivered", now, None
    elif result.status_code == 410:
        delivery.status, delivery.next_attempt_at = "failed", None
        _disable_webhook(session, job.agent_id, now)
    elif result.final:
        delivery.status, delivery.next_attempt_at = "failed", None
    else:
        delay = next_delay(delivery.attempt_count, schedule, result, rng or random.Random())
        if delay is None:
            delivery.status, delivery.next_attempt_at = "failed", None
        else:
            delivery.next_attempt_at = now + delay
    session.add(delivery)
    session.flush()
    return delivery.status


def _disable_webhook(session: Session, agent_id: str, now: datetime) -> None:
    agent = session.get(Agent, agent_id)
    if agent is not None and agent.webhook_disabled_reason is None:
        agent.webhook_disabled_reason = f"The endpoint answered 410 Gone at {to_rfc3339(now)}; set the webhook URL again to re-enable."
        session.add(agent)
    # Nothing more goes to a URL that said it is gone.
    session.execute(
        update(deliveries_t)
        .where(deliveries_t.c.agent_id == agent_id, deliveries_t.c.status == "pending")
        .values(status="failed", next_attempt_at=None)
    )


# --- reading ---------------------------------------------------------------------------------


def delivery_public(delivery: WebhookDelivery) -> dict[str, Any]:
    return {
        "id": delivery.id,
        "agent_id": delivery.agent_id,
        "batch_id": delivery.batch_id,
        "recipient_id": delivery.recipient_id,
        "event_type": delivery.event_type,
        "url": delivery.url,
        "status": delivery.status,
        "attempt_count": delivery.attempt_count,
        "attempts": delivery.attempts,
        "next_attempt_at": to_rfc3339(delivery.next_attempt_at)
        if delivery.status == "pending"
        else None,
        "created_at": to_rfc3339(delivery.created_at),
        "delivered_at": to_rfc3339(delivery.delivered_at),
    }


def list_deliveries(
    session: Session,
    *,
    workspace_id: str,
    agent_id: str | None = None,
    status: str | None = None,
    batch_id: str | None = None,
    limit: int = 100,
    before: str | None = None,
) -> dict[str, Any]:
    """Newest first; `before` is the previous page's cursor, made of its last id (ids sort by
    creation)."""
    problems = Problems()
    if status is not None and status not in DELIVERY_STATUSES:
        problems.add(["status"], f"must be one of {', '.join(DELIVERY_STATUSES)}")
    if not 1 <= limit <= LIST_LIMIT_MAX:
        problems.add(["limit"], f"must be between 1 and {LIST_LIMIT_MAX}")
    problems.raise_if_any()
    after = cursors.decode(before, parts=1)
    if after is not None and not (after[0].startswith("msg_") and is_clean_id(after[0])):
        raise cursors.refused()
    query = select(WebhookDelivery).where(WebhookDelivery.workspace_id == workspace_id)
    for column, value in (
        (WebhookDelivery.agent_id, agent_id),
        (WebhookDelivery.batch_id, batch_id),
        (WebhookDelivery.status, status),
    ):
        if value is not None:
            query = query.where(column == (value if is_clean_id(value) else ""))
    if after is not None:
        query = query.where(WebhookDelivery.id < after[0])
    page = list(
        session.execute(query.order_by(WebhookDelivery.id.desc()).limit(limit + 1)).scalars()
    )
    more = len(page) > limit
    page = page[:limit]
    return {
        "webhook_deliveries": [delivery_public(d) for d in page],
        "next_cursor": cursors.encode(page[-1].id) if more else None,
    }
