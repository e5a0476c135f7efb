"""What /metrics reports about calls and deliveries: read from the database at scrape time, so
every backend and worker agrees whatever process placed the calls."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlmodel import Session

from batch_dashboard.models import Batch, CallMinute, Recipient, RecipientStatus, WebhookDelivery
from batch_dashboard.services import breaker


def snapshot(session: Session) -> dict[str, Any]:
    counts = session.execute(
        select(
            func.coalesce(func.sum(Batch.pending_count), 0),
            func.coalesce(func.sum(Batch.dialing_count), 0),
            func.coalesce(func.sum(Batch.completed_count), 0),
            func.coalesce(func.sum(Batch.failed_count), 0),
            func.coalesce(func.sum(Batch.cancelled_count), 0),
        )
    ).one()
    placed, connected, failed = session.execute(
        select(
            func.coalesce(func.sum(CallMinute.placed), 0),
            func.coalesce(func.sum(CallMinute.connected), 0),
            func.coalesce(func.sum(CallMinute.failed), 0),
        )
    ).one()
    reasons = dict(
        session.execute(
            select(Recipient.failure_reason, func.count())
            .where(Recipient.status == RecipientStatus.failed.value)
            .group_by(Recipient.failure_reason)
        ).all()
    )
    deliveries = dict(
        session.execute(
            select(WebhookDelivery.status, func.count()).group_by(WebhookDelivery.status)
        ).all()
    )
    return {
        "recipients": dict(
            zip(("pending", "dialing", "completed", "failed", "cancelled"), counts, strict=True)
        ),
        "calls": {"placed": placed, "connected": connected, "failed": failed},
        "failed_by_reason": {str(reason or "unknown"): count for reason, count in reasons.items()},
        "webhook_deliveries": deliveries,
        "breaker_trips": breaker.trips_by_reason(session),
    }
