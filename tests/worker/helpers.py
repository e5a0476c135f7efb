"""Builders for dialer tests: batches made through the service, claims with a frozen clock."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from batch_dashboard.db import session_scope
from batch_dashboard.models import Batch, Recipient
from batch_dashboard.services import batches, dialing, recipients
from tests.conftest import Tenant

START = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def numbers(count: int, start: int = 2000) -> list[str]:
    return [f"+1415555{i:04d}" for i in range(start, start + count)]


def make_batch(
    tenant: Tenant, count: int = 5, *, now: datetime = START, **fields: Any
) -> dict[str, Any]:
    rows = recipients.from_json(
        [{"phone": phone, "first_name": f"P{i}"} for i, phone in enumerate(numbers(count))],
        max_recipients=100_000,
    )
    batch, _ = batches.create_batch(
        workspace_id=tenant.workspace_id,
        fields={"name": "Test", "agent_id": tenant.agent_id, **fields},
        rows=rows,
        now=now,
    )
    return batch


def claim(
    *,
    now: datetime = START,
    limit: int = 100,
    cap: int = 10,
    cps: float = 0,
    lease: float = 30,
) -> list[dialing.Claim]:
    with session_scope(write=True) as session:
        return dialing.claim_calls(
            session,
            limit=limit,
            now=now,
            lease=timedelta(seconds=lease),
            max_concurrent_calls=cap,
            calls_per_second=cps,
            default_provider="simulator",
        )


def batch_row(batch_id: str) -> Batch:
    with session_scope() as session:
        batch = session.get(Batch, batch_id)
        assert batch is not None
        return batch


def recipient_statuses(batch_id: str) -> Counter[str]:
    with session_scope() as session:
        return Counter(
            session.execute(
                select(Recipient.status).where(Recipient.batch_id == batch_id)
            ).scalars()
        )


def assert_counts_consistent(batch_id: str) -> None:
    """The counters on the batch row equal the recipients' statuses, and add up."""
    batch = batch_row(batch_id)
    actual = recipient_statuses(batch_id)
    counters = {
        "pending": batch.pending_count,
        "dialing": batch.dialing_count,
        "completed": batch.completed_count,
        "failed": batch.failed_count,
        "cancelled": batch.cancelled_count,
    }
    assert counters == {status: actual.get(status, 0) for status in counters}
    assert sum(counters.values()) == batch.total_recipients
