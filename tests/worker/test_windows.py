"""Calling windows, checked at the moment of dialing with an injected clock."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from batch_dashboard.db import session_scope
from batch_dashboard.services import batches, recipients, windows
from batch_dashboard.services.errors import Problems
from tests.worker.helpers import assert_counts_consistent, batch_row, claim

WINDOW = {
    "start": "08:00",
    "end": "21:00",
    "days": list(windows.DAYS),
    "timezone": "recipient",
    "unknown_timezone": "fail",
}
SF = "+14155552671"  # America/Los_Angeles: UTC-8 in December, UTC-7 in summer
TOLL_FREE = "+18005550199"
MULTI_ZONE = "+16055550123"  # South Dakota: Central and Mountain time


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(
    ("moment", "inside"),
    [
        (utc(2026, 12, 1, 15, 59), False),  # 07:59 in San Francisco
        (utc(2026, 12, 1, 16, 0), True),  # 08:00
        (utc(2026, 12, 2, 4, 59), True),  # 20:59
        (utc(2026, 12, 2, 5, 0), False),  # 21:00
    ],
)
def test_window_edges_in_local_time(moment, inside):
    zones = windows.zones_for(SF, {}, WINDOW)
    assert zones == ["America/Los_Angeles"]
    assert windows.allowed(moment, zones, WINDOW) is inside


def test_a_dst_change_moves_the_window_in_utc():
    zones = ["America/Los_Angeles"]
    # 8 March 2026: clocks go forward. 08:00 local is 16:00 UTC on the 7th, 15:00 UTC on the 9th.
    assert windows.allowed(utc(2026, 3, 7, 16, 0), zones, WINDOW)
    assert not windows.allowed(utc(2026, 3, 7, 15, 30), zones, WINDOW)
    assert windows.allowed(utc(2026, 3, 9, 15, 0), zones, WINDOW)
    assert windows.next_open(utc(2026, 3, 8, 6, 0), zones, WINDOW) == utc(2026, 3, 8, 15, 0)


def test_a_multi_zone_area_code_needs_the_window_open_everywhere():
    zones = windows.zones_for(MULTI_ZONE, {}, WINDOW)
    assert set(zones) == {"America/North_Dakota/Center", "America/Denver"}
    # 08:00 Central is 07:00 Mountain: not yet; 08:00 Mountain is 09:00 Central: yes.
    assert not windows.allowed(utc(2026, 12, 1, 14, 0), zones, WINDOW)
    assert windows.allowed(utc(2026, 12, 1, 15, 0), zones, WINDOW)
    assert windows.next_open(utc(2026, 12, 1, 14, 0), zones, WINDOW) == utc(2026, 12, 1, 15, 0)


def test_a_toll_free_number_has_no_zone_and_a_recipient_zone_wins():
    assert windows.zones_for(TOLL_FREE, {}, WINDOW) is None
    assert windows.zones_for(TOLL_FREE, {"timezone": "Europe/Berlin"}, WINDOW) == ["Europe/Berlin"]
    assert windows.zones_for(SF, {"timezone": "Asia/Tokyo"}, WINDOW) == ["Asia/Tokyo"]
    assert windows.zones_for(SF, {"timezone": "Mars/Olympus"}, WINDOW) == ["America/Los_Angeles"]
    fixed = {**WINDOW, "timezone": "Europe/Berlin"}
    assert windows.zones_for(SF, {}, fixed) == ["Europe/Berlin"]


def test_days_and_validation():
    weekdays = {**WINDOW, "days": ["mon", "tue", "wed", "thu", "fri"]}
    assert not windows.allowed(
        utc(2026, 12, 5, 20, 0), ["America/Los_Angeles"], weekdays
    )  # Saturday
    problems = Problems()
    windows.parse_window(
        {"start": "9am", "end": "08:00", "days": ["mo"], "timezone": "Nowhere"},
        problems,
        from_form=False,
    )
    locs = [p["loc"] for p in problems.items]
    assert ["calling_window", "start"] in locs and ["calling_window", "days"] in locs
    assert ["calling_window", "timezone"] in locs


def _batch(tenant, phones: list[dict], window: dict) -> str:
    rows = recipients.from_json(phones, max_recipients=100)
    batch, _ = batches.create_batch(
        workspace_id=tenant.workspace_id,
        fields={"name": "Windowed", "agent_id": tenant.agent_id, "calling_window": window},
        rows=rows,
        now=utc(2026, 12, 1, 10, 0),
    )
    return batch["id"]


def test_outside_the_window_nothing_is_dialed_and_the_batch_says_when(tenant):
    batch_id = _batch(
        tenant,
        [
            {"phone": SF},
            {"phone": TOLL_FREE},
            {"phone": "+14155552672", "timezone": "Europe/Berlin"},
        ],
        WINDOW,
    )
    early = utc(2026, 12, 1, 10, 0)  # 02:00 in San Francisco, 11:00 in Berlin
    calls = claim(now=early)
    assert [c.phone for c in calls] == ["+14155552672"]  # its own zone says Berlin: inside
    with session_scope() as session:
        detail = batches.batch_detail(session, workspace_id=tenant.workspace_id, batch_id=batch_id)
    by_phone = {r["phone"]: r for r in detail["recipients"]}
    assert (by_phone[TOLL_FREE]["status"], by_phone[TOLL_FREE]["failure_reason"]) == (
        "failed",
        "timezone_unknown",
    )
    assert by_phone[SF]["status"] == "pending" and by_phone[SF]["attempts"] == 0
    assert detail["batch_call"]["status"] == "running"
    assert detail["batch_call"]["next_window_at"] == "2026-12-01T16:00:00Z"
    assert claim(now=utc(2026, 12, 1, 15, 59)) == []
    assert [c.phone for c in claim(now=utc(2026, 12, 1, 16, 0))] == [SF]
    assert_counts_consistent(batch_id)
    assert batch_row(batch_id).status == "running"


def test_retries_respect_the_calling_window(tenant):
    from batch_dashboard.providers.base import CallResult, CallStatus
    from batch_dashboard.services import dialing

    rows = recipients.from_json([{"phone": SF}], max_recipients=10)
    batch, _ = batches.create_batch(
        workspace_id=tenant.workspace_id,
        fields={
            "name": "Retry late",
            "agent_id": tenant.agent_id,
            "calling_window": WINDOW,
            "retry_policy": {"max_attempts": 2, "retry_on": ["busy"], "delay_seconds": 3600},
        },
        rows=rows,
        now=utc(2026, 12, 1, 10, 0),
    )
    late = utc(2026, 12, 2, 4, 30)  # 20:30 in San Francisco: inside, retry due at 21:30: outside
    [call] = claim(now=late)
    with session_scope(write=True) as session:
        dialing.record_outcomes(
            session,
            outcomes=[
                (
                    call.attempt_id,
                    CallResult(status=CallStatus.busy, failure_reason="busy", ended_at=late),
                )
            ],
            now=late,
        )
    assert claim(now=utc(2026, 12, 2, 5, 30)) == []  # the retry is due, but the window is closed
    with session_scope() as session:
        detail = batches.batch_detail(
            session, workspace_id=tenant.workspace_id, batch_id=batch["id"]
        )
    assert detail["batch_call"]["next_window_at"] == "2026-12-02T16:00:00Z"
    [retried] = claim(now=utc(2026, 12, 2, 16, 0))
    assert retried.attempt_number == 2
