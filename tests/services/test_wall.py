"""Wall tokens and the wall snapshot (on SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import text

from batch_dashboard.db import session_scope
from batch_dashboard.providers.base import CallResult, CallStatus
from batch_dashboard.services import dialing, wall
from batch_dashboard.services.errors import NotFound
from tests.worker.helpers import START, claim, make_batch


def test_wall_tokens_are_hashed_scoped_and_revocable(tenant, other_tenant):
    with session_scope(write=True) as session:
        issued = wall.create_wall_token(
            session, workspace_id=tenant.workspace_id, label="Office TV"
        )
    assert issued.token.startswith("wall_") and len(issued.token) > 40
    with session_scope() as session:
        assert wall.workspace_for_token(session, token=issued.token) == (
            tenant.workspace_id,
            "Acme",
        )
        for wrong in (
            None,
            "",
            "wall_nope",
            issued.token + "x",
            "bc_" + issued.token[5:],
            "x" * 500,
        ):
            assert wall.workspace_for_token(session, token=wrong) is None
        [listed] = wall.list_wall_tokens(session, workspace_id=tenant.workspace_id)
        assert listed.prefix == issued.token[:10] and listed.label == "Office TV"
        assert wall.list_wall_tokens(session, workspace_id=other_tenant.workspace_id) == []
        stored = "\n".join(str(row) for row in session.execute(text("SELECT * FROM wall_token")))
        assert issued.token not in stored
    with session_scope(write=True) as session:
        try:
            wall.revoke_wall_token(
                session, workspace_id=other_tenant.workspace_id, token_id=issued.id
            )
            raise AssertionError("another workspace revoked the token")
        except NotFound:
            pass
        wall.revoke_wall_token(session, workspace_id=tenant.workspace_id, token_id=issued.id)
    with session_scope() as session:
        assert wall.workspace_for_token(session, token=issued.token) is None


def test_the_snapshot_shows_live_batches_totals_and_the_last_hour(tenant):
    scheduled = make_batch(tenant, 2, scheduled_at="2026-12-02T09:00:00Z")
    running = make_batch(tenant, 10)
    for _ in range(7):
        make_batch(tenant, 1)
    claims = [c for c in claim(limit=100, cap=100) if c.batch_id == running["id"]][:6]
    connected = CallResult(
        status=CallStatus.completed,
        started_at=START,
        ended_at=START,
        duration_seconds=5.0,
        transcript=[],
        evaluations={},
        data_collection={},
    )
    busy = CallResult(status=CallStatus.busy, failure_reason="busy", ended_at=START)
    with session_scope(write=True) as session:
        dialing.record_outcomes(
            session,
            outcomes=[(c.attempt_id, connected) for c in claims[:4]]
            + [(c.attempt_id, busy) for c in claims[4:]],
            now=START,
        )
    with session_scope() as session:
        shot = wall.snapshot(
            session, workspace_id=tenant.workspace_id, now=START + timedelta(seconds=30)
        )
    assert shot["batches"][0]["id"] == running["id"]  # the most active first
    assert shot["batches"][0]["done"] == 6 and shot["batches"][0]["percent"] == 60
    assert shot["batches"][0]["eta_seconds"] is not None
    assert len(shot["batches"]) == wall.SHOWN_BATCHES
    assert shot["more_batches"] == 9 - wall.SHOWN_BATCHES
    assert scheduled["id"] not in [b["id"] for b in shot["batches"][:1]]
    # Placed today: the 6 that ended and the 11 still on the phone (17 claimed); the connect
    # rate is of the calls that ended.
    assert shot["live_calls"] == 11
    assert (shot["placed"], shot["connected"], shot["failed"], shot["connect_rate"]) == (
        17,
        4,
        2,
        67,
    )
    assert len(shot["chart"]) == 60 and shot["chart"][-1] == {"minute": "12:00", "calls": 6}
    with session_scope() as session:
        tomorrow = wall.snapshot(
            session, workspace_id=tenant.workspace_id, now=START + timedelta(days=1)
        )
    # Tomorrow only the calls still on the phone count (none ended that day).
    assert tomorrow["placed"] == tomorrow["live_calls"] == 11
    assert tomorrow["connected"] == 0 and sum(p["calls"] for p in tomorrow["chart"]) == 0


def test_the_eta_reads_the_rate_since_a_young_batch_started_and_live_calls_are_counted(tenant):
    """A batch one minute old that ended six calls in that minute has four left at six a
    minute: 40 s, not the 200 s that six calls in a five-minute window would say."""
    running = make_batch(tenant, 10)
    claims = [c for c in claim(limit=100, cap=100) if c.batch_id == running["id"]][:6]
    busy = CallResult(
        status=CallStatus.busy, failure_reason="busy", ended_at=START + timedelta(seconds=50)
    )
    with session_scope(write=True) as session:
        dialing.record_outcomes(
            session,
            outcomes=[(c.attempt_id, busy) for c in claims],
            now=START + timedelta(seconds=50),
        )
        shot = wall.snapshot(
            session, workspace_id=tenant.workspace_id, now=START + timedelta(seconds=60)
        )
    [batch] = shot["batches"]
    assert batch["done"] == 6
    assert batch["eta_seconds"] == 40
    # The four claimed beyond the six are on the phone: the wall says it is calling.
    assert shot["live_calls"] == batch["dialing"] == 4
    with session_scope(write=True) as session:
        quiet = wall.snapshot(
            session, workspace_id=tenant.workspace_id, now=START + timedelta(days=2)
        )
    # Nothing ended in the last five minutes: no rate, so no guess.
    assert quiet["batches"][0]["eta_seconds"] is None


def test_today_and_the_chart_are_the_workspace_s_time_zone(tenant):
    """12:00 UTC is 21:00 in Tokyo; at 01:00 Tokyo time the next day (16:00 UTC) those calls
    were yesterday's there, though UTC's day has not changed."""
    from batch_dashboard.services import auth

    running = make_batch(tenant, 4)
    claims = [c for c in claim(limit=100, cap=100) if c.batch_id == running["id"]]
    busy = CallResult(status=CallStatus.busy, failure_reason="busy", ended_at=START)
    with session_scope(write=True) as session:
        auth.set_time_zone(session, workspace_id=tenant.workspace_id, zone="Asia/Tokyo")
        dialing.record_outcomes(session, outcomes=[(c.attempt_id, busy) for c in claims], now=START)
    with session_scope() as session:
        same_evening = wall.snapshot(
            session, workspace_id=tenant.workspace_id, now=START + timedelta(seconds=30)
        )
        after_midnight = wall.snapshot(
            session, workspace_id=tenant.workspace_id, now=START + timedelta(hours=4)
        )
    assert same_evening["time_zone"] == "Asia/Tokyo"
    assert same_evening["placed"] == 4
    assert same_evening["chart"][-1] == {"minute": "21:00", "calls": 4}
    assert after_midnight["placed"] == 0
