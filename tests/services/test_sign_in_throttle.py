"""Sign-in is throttled per account and per client address, with growing waits, through the
database (so every backend process shares the counts): 30 wrong passwords then the right one
and the 31st try is refused with a message saying how long to wait; after that wait the right
password works. Time is a FrozenClock, not sleeps."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
import reflex as rx
from sqlmodel import select

from batch_dashboard.clock import FrozenClock
from batch_dashboard.db import session_scope
from batch_dashboard.services import auth
from batch_dashboard.services.errors import Unauthorized
from batch_dashboard.ui.states.base import AuthState
from tests.conftest import PROJECT_ROOT, Tenant
from tests.ui.test_admin_states import run

EMAIL, PASSWORD = "ada@example.com", "correct horse"


@pytest.fixture
def user(tenant: Tenant) -> str:
    with session_scope(write=True) as session:
        auth.create_user(session, workspace_id=tenant.workspace_id, email=EMAIL, password=PASSWORD)
    return EMAIL


def _try(
    password: str, clock: FrozenClock, *, email: str = EMAIL, address: str = "203.0.113.7"
) -> str:
    """One sign-in in its own unit of work, as a request would make it: what came of it."""
    try:
        with session_scope(write=True) as session:
            auth.sign_in(
                session, email=email, password=password, client_address=address, now=clock.now()
            )
    except auth.TooManySignIns as refused:
        return f"throttled: {refused.message}"
    except Unauthorized:
        return "wrong"
    return "signed in"


def test_the_31st_try_is_refused_and_the_right_password_works_after_the_wait(
    user: str,
) -> None:
    clock = FrozenClock(datetime(2026, 12, 2, 9, 0, tzinfo=UTC))
    results = []
    for _ in range(30):  # the attack: 30 guesses in 6 s on one socket
        results.append(_try("wrong password", clock))
        clock.advance(seconds=0.2)
    assert results[:5] == ["wrong"] * 5  # a few typos cost nothing
    # Past them, waits grow (1 s, 2 s, 4 s …): most guesses are refused before any hashing.
    assert results.count("wrong") <= 8, results
    thirty_first = _try(PASSWORD, clock)
    assert thirty_first.startswith("throttled: Too many failed sign-ins for this account.")
    assert "Try again in" in thirty_first

    with session_scope() as session:
        keys = auth._throttle_keys(EMAIL, "203.0.113.7")
        with pytest.raises(auth.TooManySignIns) as refused:
            auth.check_sign_in_throttle(session, keys=keys, now=clock.now())
    clock.advance(seconds=refused.value.retry_after)
    assert _try(PASSWORD, clock) == "signed in"
    # A success clears the account's count: the next typo is a typo again.
    assert _try("typo", clock) == "wrong" and _try(PASSWORD, clock) == "signed in"


def test_waits_grow_and_are_capped() -> None:
    assert auth.block_after(4, 5) is None
    waits = [auth.block_after(n, 5) for n in range(5, 20)]
    assert waits[:4] == [timedelta(seconds=s) for s in (1, 2, 4, 8)]
    assert waits == sorted(waits) and waits[-1] == auth.MAX_BLOCK


def test_one_address_guessing_at_many_accounts_is_throttled(user: str) -> None:
    clock = FrozenClock(datetime(2026, 12, 2, 9, 0, tzinfo=UTC))
    for n in range(auth.ADDRESS_FREE_FAILURES):
        # Four guesses per account stay under each account's own limit.
        assert _try("guess", clock, email=f"user{n // 4}@example.com") == "wrong"
    refused = _try(PASSWORD, clock)
    assert refused.startswith("throttled: Too many failed sign-ins for this address.")
    assert _try(PASSWORD, clock, address="198.51.100.9") == "signed in"  # another address


def test_the_count_is_shared_by_processes_through_the_database(user: str, database: str) -> None:
    """Another process (a second backend) makes the failures; this one sees the block."""
    now = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
    script = f"""
import json
from datetime import datetime
from batch_dashboard.db import session_scope
from batch_dashboard.services import auth
outcomes = []
for _ in range(auth.ACCOUNT_FREE_FAILURES):
    try:
        with session_scope(write=True) as session:
            auth.sign_in(session, email={EMAIL!r}, password="nope",
                         client_address="192.0.2.1", now=datetime.fromisoformat({now.isoformat()!r}))
    except auth.Unauthorized as error:
        outcomes.append(type(error).__name__)
print(json.dumps(outcomes))
"""
    other = subprocess.run(
        [sys.executable, "-c", script],
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert json.loads(other.stdout) == ["Unauthorized"] * auth.ACCOUNT_FREE_FAILURES
    clock = FrozenClock(now)
    assert _try(PASSWORD, clock, address="192.0.2.99").startswith("throttled:")
    clock.advance(seconds=1)
    assert _try(PASSWORD, clock, address="192.0.2.99") == "signed in"


def test_the_sign_in_form_says_how_long_to_wait(user: str, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FrozenClock(datetime(2026, 12, 2, 9, 0, tzinfo=UTC))
    monkeypatch.setattr(auth, "system_clock", clock)  # the clock the console's sign-in reads
    root = rx.State(_reflex_internal_init=True)
    state = root.get_substate(AuthState.get_full_name().split("."))
    for _ in range(auth.ACCOUNT_FREE_FAILURES):
        run(state.sign_in({"email": EMAIL, "password": "wrong password"}))
        assert state.login_error == "Wrong email or password."
    run(state.sign_in({"email": EMAIL, "password": PASSWORD}))
    assert state.login_error == "Too many failed sign-ins for this account. Try again in 1 second."
    assert state.session_token == ""
    clock.advance(seconds=1)
    events = run(state.sign_in({"email": EMAIL, "password": PASSWORD}))
    assert state.login_error == "" and state.session_token
    assert "/batches" in str(events[-1])


def test_housekeeping_forgets_old_counts_only(user: str) -> None:
    from batch_dashboard.models import SignInThrottle
    from batch_dashboard.worker.scheduler import housekeeping

    clock = FrozenClock(datetime(2026, 12, 2, 9, 0, tzinfo=UTC))
    _try("wrong", clock, email="old@example.com")
    clock.advance(hours=2)
    _try("wrong", clock, email="recent@example.com")
    housekeeping(clock)
    with session_scope() as session:
        left = {row.key for row in session.exec(select(SignInThrottle))}
    assert left == {key for key, _, _ in auth._throttle_keys("recent@example.com", "203.0.113.7")}
