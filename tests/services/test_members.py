"""Members of a workspace, a user's own password, the workspace's time zone and when each
API key was last used (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from batch_dashboard.clock import system_clock
from batch_dashboard.db import session_scope
from batch_dashboard.services import auth
from batch_dashboard.services.errors import Conflict, NotFound, ValidationFailed
from tests.conftest import Tenant


def _sign_in(email: str, password: str) -> str:
    with session_scope(write=True) as session:
        return auth.sign_in(session, email=email, password=password)


def _viewer(token: str) -> auth.Viewer | None:
    with session_scope() as session:
        return auth.viewer_for(session, token=token)


def test_members_are_added_with_a_password_shown_once_and_removed(tenant, other_tenant):
    with session_scope(write=True) as session:
        owner = auth.create_user(
            session, workspace_id=tenant.workspace_id, email="owner@example.com", password="o" * 10
        )
        member, password = auth.add_user(
            session, workspace_id=tenant.workspace_id, email=" New@Example.com "
        )
    assert member.email == "new@example.com" and len(password) >= 16
    assert password not in member.password_hash  # stored hashed
    token = _sign_in("new@example.com", password)
    with session_scope() as session:
        emails = [u.email for u in auth.list_users(session, workspace_id=tenant.workspace_id)]
        others = auth.list_users(session, workspace_id=other_tenant.workspace_id)
    assert {"owner@example.com", "new@example.com"} <= set(emails)
    assert "new@example.com" not in [u.email for u in others]
    with session_scope(write=True) as session, pytest.raises(Conflict):
        auth.add_user(session, workspace_id=tenant.workspace_id, email="new@example.com")
    with session_scope(write=True) as session, pytest.raises(Conflict):
        auth.remove_user(
            session, workspace_id=tenant.workspace_id, user_id=owner.id, acting_user_id=owner.id
        )
    with session_scope(write=True) as session, pytest.raises(NotFound):
        auth.remove_user(  # another workspace's member looks like nobody
            session,
            workspace_id=other_tenant.workspace_id,
            user_id=member.id,
            acting_user_id=owner.id,
        )
    with session_scope(write=True) as session:
        auth.remove_user(
            session, workspace_id=tenant.workspace_id, user_id=member.id, acting_user_id=owner.id
        )
    assert _viewer(token) is None  # signed out at once
    with pytest.raises(Exception, match="wrong email or password"):
        _sign_in("new@example.com", password)


def test_changing_your_password_signs_you_out_elsewhere(tenant):
    with session_scope(write=True) as session:
        user = auth.create_user(
            session, workspace_id=tenant.workspace_id, email="me@example.com", password="first-pass"
        )
    here, elsewhere = (
        _sign_in("me@example.com", "first-pass"),
        _sign_in("me@example.com", "first-pass"),
    )
    for current, new, loc in (
        ("wrong-pass", "second-pass", "current_password"),
        ("first-pass", "short", "new_password"),
    ):
        with session_scope(write=True) as session, pytest.raises(ValidationFailed) as refused:
            auth.change_password(
                session,
                workspace_id=tenant.workspace_id,
                user_id=user.id,
                current=current,
                new=new,
                keep_token=here,
            )
        assert refused.value.details[0]["loc"] == [loc]
    with session_scope(write=True) as session:
        auth.change_password(
            session,
            workspace_id=tenant.workspace_id,
            user_id=user.id,
            current="first-pass",
            new="second-pass",
            keep_token=here,
        )
    assert _viewer(here) is not None and _viewer(elsewhere) is None
    assert _sign_in("me@example.com", "second-pass")


def test_the_workspace_time_zone_is_set_once_from_a_browser_and_then_chosen(tenant):
    with session_scope(write=True) as session:
        assert auth.time_zone_of(session, workspace_id=tenant.workspace_id) is None
        for zone in ("Mars/Olympus", "Europe/Berlin", "America/New_York"):
            auth.set_time_zone(
                session, workspace_id=tenant.workspace_id, zone=zone, only_if_unset=True
            )
        assert auth.time_zone_of(session, workspace_id=tenant.workspace_id) == "Europe/Berlin"
        with pytest.raises(ValidationFailed):
            auth.set_time_zone(session, workspace_id=tenant.workspace_id, zone="Mars/Olympus")
        auth.set_time_zone(session, workspace_id=tenant.workspace_id, zone="Asia/Tokyo")
        # 23:30 UTC on Dec 1 is already Dec 2 in Tokyo: its today began at 15:00 UTC.
        start, zone = auth.workspace_today(
            session, workspace_id=tenant.workspace_id, now=datetime(2026, 12, 1, 23, 30, tzinfo=UTC)
        )
    assert (start, zone) == (datetime(2026, 12, 1, 15, 0, tzinfo=UTC), "Asia/Tokyo")


def test_an_api_key_says_when_it_was_last_used_to_the_minute(tenant: Tenant, monkeypatch):
    def last_used() -> datetime | None:
        auth.wait_for_key_uses()
        with session_scope() as session:
            [key] = [
                k
                for k in auth.list_api_keys(session, workspace_id=tenant.workspace_id)
                if tenant.api_key.startswith(k.prefix)
            ]
            return key.last_used_at

    assert last_used() is None
    moment = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
    monkeypatch.setattr(system_clock, "now", lambda: moment)
    assert auth.authenticate_api_key(tenant.api_key) == tenant.workspace_id
    assert last_used() == moment
    monkeypatch.setattr(system_clock, "now", lambda: moment + timedelta(seconds=30))
    auth.authenticate_api_key(tenant.api_key)
    assert last_used() == moment  # within the minute: no write
    monkeypatch.setattr(system_clock, "now", lambda: moment + timedelta(minutes=2))
    auth.authenticate_api_key(tenant.api_key)
    assert last_used() == moment + timedelta(minutes=2)
