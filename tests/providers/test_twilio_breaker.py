"""A Twilio account that refuses us (suspended, credentials rotated away) pauses every batch on
its connection at once, with nobody's attempt spent; fixed and resumed, they finish. The real
dialer against the Twilio fake (tests/fakes/twilio.py), SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import func, select

from batch_dashboard.db import session_scope
from batch_dashboard.models import BreakerTrip
from batch_dashboard.services import metrics
from tests.providers.test_twilio import run_dialer, twilio  # noqa: F401 - the fixture
from tests.providers.twilio_setup import Setup, batch_status, create_batch

# Twilio's answer for an account that is suspended or closed: 403 with error 20403
# (https://www.twilio.com/docs/api/errors/20403).
SUSPENDED = {"status": 403, "code": 20403, "message": "403 Forbidden", "retry_after": None}


def _paused(setup: Setup, *batch_ids: str) -> Callable[[], bool]:
    return lambda: all(
        batch_status(setup, batch_id)["batch_call"]["paused"] for batch_id in batch_ids
    )


def test_a_suspended_account_pauses_every_batch_on_its_connection(twilio: Setup) -> None:  # noqa: F811
    fake = twilio.fake
    fake.fail_next(100, operation="create_call", **SUSPENDED)  # type: ignore[arg-type]
    first = create_batch(twilio, ["+14155552061", "+14155552062", "+14155552063"])
    second = create_batch(twilio, ["+14155552064", "+14155552065"])
    off = create_batch(twilio, ["+14155552066"], circuit_breaker=False)
    paused = _paused(twilio, first["id"], second["id"])
    run_dialer(
        lambda: paused() and batch_status(twilio, off["id"])["batch_call"]["status"] == "completed"
    )

    assert fake.calls == []  # Twilio created nothing
    # A batch whose breaker is off fails its calls as before instead of dialing into the
    # refusal again and again.
    [lone] = batch_status(twilio, off["id"])["recipients"]
    assert (lone["status"], lone["failure_reason"]) == ("failed", "provider_error")
    for batch in (first, second):
        detail = batch_status(twilio, batch["id"])
        shown = detail["batch_call"]
        assert shown["status"] == "running" and shown["paused_reason"] == "account_suspended"
        trip = shown["circuit_breaker_trip"]
        assert trip["connection_id"] == twilio.connection["id"]
        assert "20403" in trip["last_error"]
        assert {(r["status"], r["attempts"]) for r in detail["recipients"]} == {("pending", 0)}
    with session_scope() as session:
        assert session.execute(select(func.count()).select_from(BreakerTrip)).scalar_one() == 2
        assert metrics.snapshot(session)["breaker_trips"]["account_suspended"] == 2


def test_rotated_credentials_pause_and_a_resume_finishes_the_list(twilio: Setup) -> None:  # noqa: F811
    fake = twilio.fake
    token = fake.auth_token
    fake.auth_token = "rotated-at-twilio"  # the stored token is refused with 401 / 20003
    batch = create_batch(twilio, ["+14155552071", "+14155552072"])
    run_dialer(_paused(twilio, batch["id"]))
    shown = batch_status(twilio, batch["id"])["batch_call"]
    assert shown["paused_reason"] == "authentication_refused"
    assert "20003" in shown["circuit_breaker_trip"]["last_error"]

    fake.auth_token = token  # the operator fixed the credentials
    assert twilio.post(f"/v1/batch-calls/{batch['id']}/resume").status_code == 200
    run_dialer(lambda: batch_status(twilio, batch["id"])["batch_call"]["status"] == "completed")
    detail = batch_status(twilio, batch["id"])
    assert {(r["status"], r["attempts"]) for r in detail["recipients"]} == {("completed", 1)}
    assert len(fake.calls) == 2
