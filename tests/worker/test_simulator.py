"""The simulator adapter: its ledger, timing, determinism and conversations."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from batch_dashboard.clock import FrozenClock
from batch_dashboard.providers.base import AgentSnapshot, CallRequest, CallStatus
from batch_dashboard.providers.simulator import Simulator, ledger_rows, parse_outcomes, render
from batch_dashboard.settings import Settings
from tests.worker.helpers import START

AGENT = AgentSnapshot(
    id="agent_x",
    name="Acme Dental",
    prompt="Remind {{first_name}} about {{appointment_time}}.",
    first_message="Hi {{ first_name }}, your appointment is at {{appointment_time}}.",
    evaluation_criteria=[{"name": "confirmed", "description": "Confirmed"}],
    data_collection=[
        {"name": "will_attend", "type": "boolean"},
        {"name": "score", "type": "number"},
        {"name": "note", "type": "string"},
    ],
)


def request(attempt: str, to: str = "+14155552671", **variables: object) -> CallRequest:
    return CallRequest(
        attempt_id=attempt,
        attempt_number=1,
        workspace_id="ws",
        batch_id="batch",
        recipient_id="rcpt",
        to=to,
        from_="+14155550100",
        agent=AGENT,
        variables=variables or {"first_name": "Ada", "appointment_time": "3pm"},
        ringing_timeout_ms=30_000,
    )


def simulator(clock: FrozenClock, **env: str) -> Simulator:
    settings = Settings.model_validate(
        {"BATCH_SIM_OUTCOMES": "completed=1", "BATCH_SIM_CALL_SECONDS": "20", **env}
    )
    return Simulator(settings=settings, clock=clock)


def test_render_fills_placeholders_and_reports_missing_ones():
    assert render("Hi {{ first_name }}! {{x}}", {"first_name": "Ada"}) == ("Hi Ada! ", ["x"])
    assert render("{{vip}} {{n}}", {"vip": True, "n": 3}) == ("yes 3", [])


def test_outcome_mix_is_validated():
    assert parse_outcomes("completed=0.8, busy=0.2") == [("completed", 0.8), ("busy", 0.2)]
    for bad in ("ringing=1", "completed=x", "completed=-1", "", "completed=0"):
        with pytest.raises(ValueError, match="BATCH_SIM_OUTCOMES"):
            parse_outcomes(bad)


def test_a_call_rings_talks_and_ends_in_the_ledger(sqlite_url):
    clock = FrozenClock(START)
    sim = simulator(clock)
    [placed] = asyncio.run(sim.place_calls([request("att-1")]))
    assert placed.status == CallStatus.in_progress and placed.expected_end is not None
    assert asyncio.run(sim.call_status("att-1")).status == CallStatus.in_progress
    clock.advance(seconds=(placed.expected_end - START).total_seconds())
    ended = asyncio.run(sim.call_status("att-1"))
    assert ended.status == CallStatus.completed and ended.terminal
    assert 10 <= ended.duration_seconds <= 30
    assert ended.transcript[0] == {
        "role": "agent",
        "message": "Hi Ada, your appointment is at 3pm.",
        "time_in_call_secs": 0,
    }
    assert all("{{" not in turn["message"] for turn in ended.transcript)
    assert [t["time_in_call_secs"] for t in ended.transcript] == sorted(
        t["time_in_call_secs"] for t in ended.transcript
    )
    assert set(ended.evaluations) == {"confirmed"}
    assert ended.evaluations["confirmed"]["result"] in ("success", "failure", "unknown")
    assert isinstance(ended.data_collection["will_attend"]["value"], bool)
    assert isinstance(ended.data_collection["score"]["value"], int)
    assert asyncio.run(sim.call_status("never-placed")) is None


def test_placing_an_attempt_twice_rings_once(sqlite_url):
    sim = simulator(FrozenClock(START))
    asyncio.run(sim.place_calls([request("att-1")]))
    asyncio.run(sim.place_calls([request("att-1")]))
    assert len(ledger_rows(["att-1"])) == 1


def test_a_missing_placeholder_is_reported_not_sent(sqlite_url):
    sim = simulator(FrozenClock(START), BATCH_SIM_CALL_SECONDS="0")
    [result] = asyncio.run(sim.place_calls([request("att-1", first_name="Ada")]))
    assert result.terminal
    assert "{{" not in result.transcript[0]["message"]
    assert result.warnings == ["no value for placeholder {{appointment_time}}; it was left empty"]


def test_no_answer_rings_for_the_ringing_timeout(sqlite_url):
    clock = FrozenClock(START)
    sim = simulator(clock, BATCH_SIM_OUTCOMES="no_answer=1")
    [placed] = asyncio.run(sim.place_calls([request("att-1")]))
    assert placed.expected_end == START + timedelta(seconds=30)
    clock.advance(seconds=30)
    result = asyncio.run(sim.call_status("att-1"))
    assert (result.status, result.failure_reason, result.transcript) == (
        CallStatus.no_answer,
        "no_answer",
        None,
    )


def test_outcomes_are_deterministic_under_a_seed(sqlite_url):
    def outcomes(seed: str) -> list[str]:
        sim = simulator(
            FrozenClock(START),
            BATCH_SIM_SEED=seed,
            BATCH_SIM_CALL_SECONDS="0",
            BATCH_SIM_OUTCOMES="completed=0.5,busy=0.3,voicemail=0.2",
        )
        numbers = [f"+1415555{i:04d}" for i in range(2000, 2040)]
        results = asyncio.run(sim.place_calls([request(f"att-{seed}-{n}", to=n) for n in numbers]))
        return [r.status.value for r in results]

    assert outcomes("7") == outcomes("7")
    assert len(set(outcomes("7"))) == 3
    assert outcomes("7") != outcomes("8")


def test_hang_up_ends_a_live_call(sqlite_url):
    clock = FrozenClock(START)
    sim = simulator(clock)
    asyncio.run(sim.place_calls([request("att-1")]))
    clock.advance(seconds=2)
    asyncio.run(sim.hang_up("att-1"))
    result = asyncio.run(sim.call_status("att-1"))
    assert (result.status, result.failure_reason) == (CallStatus.failed, "hung_up")
