"""The wall screen: read-only tokens, and one snapshot of a workspace's calling.

A snapshot costs the same whatever the number of batches and recipients: live batches come from
an index on (workspace, status), totals and the chart from per-minute counters (`call_minute`),
and an ETA from the rate at which a batch's calls ended lately (an index range): over the last
five minutes, or over the time since it started when that is shorter (a batch two minutes old
would otherwise look two and a half times slower than it is).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import case, func, select
from sqlmodel import Session

from batch_dashboard.clock import system_clock, to_rfc3339, to_utc
from batch_dashboard.ids import new_id
from batch_dashboard.models import (
    Agent,
    Batch,
    BatchStatus,
    CallMinute,
    WallToken,
    Workspace,
)
from batch_dashboard.services import auth, batches, breaker
from batch_dashboard.services.auth import hash_key
from batch_dashboard.services.errors import NotFound, checked_label

TOKEN_PREFIX = "wall_"
SHOWN_BATCHES = 6
LIVE = (BatchStatus.running.value, BatchStatus.pending.value, BatchStatus.scheduled.value)


@dataclass(frozen=True)
class IssuedWallToken:
    id: str
    token: str  # shown once
    prefix: str


def create_wall_token(
    session: Session, *, workspace_id: str, label: str = "", now: datetime | None = None
) -> IssuedWallToken:
    label = checked_label(label)
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    record = WallToken(
        id=new_id("wt"),
        workspace_id=workspace_id,
        label=label,
        prefix=token[:10],
        token_hash=hash_key(token),
        created_at=now or system_clock.now(),
    )
    session.add(record)
    session.flush()
    return IssuedWallToken(record.id, token, record.prefix)


def list_wall_tokens(session: Session, *, workspace_id: str) -> list[WallToken]:
    return list(
        session.execute(
            select(WallToken)
            .where(WallToken.workspace_id == workspace_id)
            .order_by(WallToken.id.desc())
        ).scalars()
    )


def revoke_wall_token(
    session: Session, *, workspace_id: str, token_id: str, now: datetime | None = None
) -> WallToken:
    record = session.get(WallToken, token_id) if len(token_id) <= 64 else None
    if record is None or record.workspace_id != workspace_id:
        raise NotFound(f"no wall token {token_id}")
    if record.revoked_at is None:
        record.revoked_at = now or system_clock.now()
        session.add(record)
        session.flush()
    return record


def workspace_for_token(session: Session, *, token: str | None) -> tuple[str, str] | None:
    """`(workspace_id, workspace_name)` for a live wall token, else None."""
    if not token or not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None
    row = session.execute(
        select(WallToken.workspace_id, WallToken.revoked_at, Workspace.name)
        .join(Workspace, Workspace.id == WallToken.workspace_id)
        .where(WallToken.token_hash == hash_key(token))
    ).first()
    if row is None or row.revoked_at is not None:
        return None
    return row.workspace_id, row.name


def snapshot(session: Session, *, workspace_id: str, now: datetime) -> dict[str, Any]:
    activity = case(
        (Batch.status == BatchStatus.running.value, 0),
        (Batch.status == BatchStatus.pending.value, 1),
        else_=2,
    )
    live = session.execute(
        select(
            Batch.id,
            Batch.name,
            Batch.status,
            Batch.total_recipients,
            Batch.pending_count,
            Batch.dialing_count,
            Batch.completed_count,
            Batch.failed_count,
            Batch.scheduled_at,
            Batch.paused_reason,
            Batch.paused_at,
            Batch.breaker_trip,
            Batch.started_at,
            Batch.stopped_at,
            Agent.name.label("agent_name"),
        )
        .join(Agent, Agent.id == Batch.agent_id)
        .where(Batch.workspace_id == workspace_id, Batch.status.in_(LIVE))
        .order_by(activity, Batch.dialing_count.desc(), Batch.scheduled_at, Batch.id)
        .limit(SHOWN_BATCHES + 1)
    ).all()
    more = session.execute(
        select(func.count())
        .select_from(Batch)
        .where(Batch.workspace_id == workspace_id, Batch.status.in_(LIVE))
    ).scalar_one() - min(len(live), SHOWN_BATCHES)
    shown = []
    for row in live[:SHOWN_BATCHES]:
        done = row.completed_count + row.failed_count
        eta = batches.seconds_left(session, batch=row, now=now)
        shown.append(
            {
                "id": row.id,
                "name": row.name,
                "agent_name": row.agent_name,
                "status": row.status,
                "total": row.total_recipients,
                "done": done,
                "percent": round(100 * done / row.total_recipients) if row.total_recipients else 0,
                "dialing": row.dialing_count,
                "eta_seconds": round(eta) if eta is not None else None,
                "scheduled_at": to_rfc3339(row.scheduled_at),
                "breaker": breaker.describe(
                    row.paused_reason if row.paused_at else None, row.breaker_trip
                )["title"],
            }
        )
    # "Today" and the chart's minutes are the workspace's, as the console shows them.
    day_start, zone = auth.workspace_today(session, workspace_id=workspace_id, now=now)
    local = auth.zone_info(zone)
    # A call counts in the minute it ended; the calls on the phone now were placed too.
    ended, connected, failed = session.execute(
        select(
            func.coalesce(func.sum(CallMinute.placed), 0),
            func.coalesce(func.sum(CallMinute.connected), 0),
            func.coalesce(func.sum(CallMinute.failed), 0),
        ).where(CallMinute.workspace_id == workspace_id, CallMinute.minute >= day_start)
    ).one()
    hour_ago = now.replace(second=0, microsecond=0) - timedelta(minutes=59)
    per_minute = dict(
        session.execute(
            select(CallMinute.minute, CallMinute.placed).where(
                CallMinute.workspace_id == workspace_id, CallMinute.minute >= hour_ago
            )
        ).all()
    )
    chart = []
    for step in range(60):
        minute = hour_ago + timedelta(minutes=step)
        chart.append(
            {
                "minute": to_utc(minute).astimezone(local).strftime("%H:%M"),
                "calls": per_minute.get(minute, 0),
            }
        )
    # Calls on the phone now, in every live batch (not only the shown ones).
    live_calls = session.execute(
        select(func.coalesce(func.sum(Batch.dialing_count), 0)).where(
            Batch.workspace_id == workspace_id, Batch.status.in_(LIVE)
        )
    ).scalar_one()
    return {
        "batches": shown,
        "live_calls": live_calls,
        "more_batches": max(0, more),
        "placed": ended + live_calls,
        "connected": connected,
        "failed": failed,
        # Of the calls that ended: one still ringing has not failed to connect yet.
        "connect_rate": round(100 * connected / ended) if ended else 0,
        "chart": chart,
        "updated_at": to_rfc3339(now),
        "time_zone": zone,
    }
