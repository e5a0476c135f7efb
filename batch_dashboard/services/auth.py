"""Workspaces, API keys and console users.

API keys are `bc_` + 43 URL-safe characters from `secrets`; only their SHA-256 and a display
prefix are stored. Passwords are hashed with argon2.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import bindparam, case, delete, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, select

from batch_dashboard.clock import system_clock
from batch_dashboard.db import fetch_one, get_engine
from batch_dashboard.ids import new_id
from batch_dashboard.models import ApiKey, ConsoleSession, SignInThrottle, User, Workspace
from batch_dashboard.services.errors import (
    Conflict,
    NotFound,
    RateLimited,
    Unauthorized,
    ValidationFailed,
    checked_label,
)

KEY_PREFIX = "bc_"
DISPLAY_PREFIX_LENGTH = 10
_password_hasher = PasswordHasher()


@dataclass(frozen=True)
class IssuedKey:
    id: str
    api_key: str  # shown once
    prefix: str


def hash_key(api_key: str) -> str:
    return hashlib.sha256(api_key.encode()).hexdigest()


def create_workspace(session: Session, *, name: str, now: datetime | None = None) -> Workspace:
    name = name.strip()
    if not 1 <= len(name) <= 200:
        raise ValidationFailed.at(["name"], "must be 1 to 200 characters")
    workspace = Workspace(id=new_id("ws"), name=name, created_at=now or system_clock.now())
    session.add(workspace)
    session.flush()
    return workspace


def get_workspace(session: Session, *, workspace_id: str) -> Workspace:
    workspace = session.get(Workspace, workspace_id)
    if workspace is None:
        raise NotFound(f"no workspace {workspace_id}")
    return workspace


def find_workspace_by_name(session: Session, *, name: str) -> Workspace | None:
    return session.exec(
        select(Workspace).where(Workspace.name == name).order_by(Workspace.id).limit(1)
    ).first()


def create_api_key(
    session: Session, *, workspace_id: str, label: str = "", now: datetime | None = None
) -> IssuedKey:
    label = checked_label(label)
    get_workspace(session, workspace_id=workspace_id)
    api_key = KEY_PREFIX + secrets.token_urlsafe(32)
    record = ApiKey(
        id=new_id("key"),
        workspace_id=workspace_id,
        prefix=api_key[:DISPLAY_PREFIX_LENGTH],
        key_hash=hash_key(api_key),
        label=label,
        created_at=now or system_clock.now(),
    )
    session.add(record)
    session.flush()
    return IssuedKey(id=record.id, api_key=api_key, prefix=record.prefix)


_KEY_LOOKUP = select(
    ApiKey.__table__.c.key_hash, ApiKey.__table__.c.revoked_at, ApiKey.__table__.c.workspace_id
).where(ApiKey.__table__.c.key_hash == bindparam("digest"))


def authenticate_api_key(api_key: str | None, *, database_url: str | None = None) -> str:
    """The workspace id of a live key; `Unauthorized` for a missing, unknown or revoked one."""
    if not api_key or not api_key.startswith(KEY_PREFIX) or len(api_key) > 200:
        raise Unauthorized("missing or invalid API key: send Authorization: Bearer <key>")
    digest = hash_key(api_key)
    # Outside any session: this runs before every API request (db.fetch_one).
    record = fetch_one(_KEY_LOOKUP, {"digest": digest}, get_engine(database_url))
    # The lookup is by hash, so timing reveals nothing about the key; the constant-time
    # comparison guards against a collation-insensitive index ever matching a near miss.
    if record is None or not hmac.compare_digest(record[0], digest):
        raise Unauthorized("unknown API key")
    if record[1] is not None:
        raise Unauthorized("this API key has been revoked")
    return record[2]


def list_api_keys(session: Session, *, workspace_id: str) -> list[ApiKey]:
    return list(
        session.exec(
            select(ApiKey).where(ApiKey.workspace_id == workspace_id).order_by(ApiKey.id.desc())
        )
    )


def revoke_api_key(
    session: Session, *, workspace_id: str, key_id: str, now: datetime | None = None
) -> ApiKey:
    record = session.get(ApiKey, key_id)
    if record is None or record.workspace_id != workspace_id:
        raise NotFound(f"no API key {key_id}")
    if record.revoked_at is None:
        record.revoked_at = now or system_clock.now()
        session.add(record)
        session.flush()
    return record


def create_user(
    session: Session, *, workspace_id: str, email: str, password: str, now: datetime | None = None
) -> User:
    get_workspace(session, workspace_id=workspace_id)
    email = email.strip().lower()
    if "@" not in email or len(email) > 320:
        raise ValidationFailed.at(["email"], "must be an email address")
    if len(password) < 8:
        raise ValidationFailed.at(["password"], "must be at least 8 characters")
    if session.exec(select(User).where(User.email == email)).first() is not None:
        raise Conflict(f"a user with the email {email} already exists")
    user = User(
        id=new_id("user"),
        workspace_id=workspace_id,
        email=email,
        password_hash=_password_hasher.hash(password),
        created_at=now or system_clock.now(),
    )
    session.add(user)
    session.flush()
    return user


def find_user(session: Session, *, email: str) -> User | None:
    return session.exec(select(User).where(User.email == email.strip().lower())).first()


def verify_password(user: User, password: str) -> bool:
    try:
        return _password_hasher.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


# --- console sessions --------------------------------------------------------------------------

SESSION_LIFETIME = timedelta(hours=12)


@dataclass(frozen=True)
class Viewer:
    """Who is looking at the console: a user of one workspace."""

    user_id: str
    email: str
    workspace_id: str
    workspace_name: str


def sign_in(
    session: Session,
    *,
    email: str,
    password: str,
    client_address: str = "",
    now: datetime | None = None,
) -> str:
    """A new session token for the right email and password; `Unauthorized` otherwise, or
    `TooManySignIns` while the account or the client address is throttled (checked before
    the password, so a throttled guess costs no argon2 hash and learns nothing)."""
    now = now or system_clock.now()
    keys = _throttle_keys(email, client_address)
    check_sign_in_throttle(session, keys=keys, now=now)
    user = find_user(session, email=email)
    if user is None:
        # Spend the same time as a real check, so timing does not tell which emails exist.
        _password_hasher.hash(password or "x")
    if user is None or not verify_password(user, password):
        _record_failure(session, keys=keys, now=now)
        # The failure must outlive the refusal: the caller's unit of work rolls back on it.
        session.commit()
        raise Unauthorized("wrong email or password")
    session.execute(delete(SignInThrottle).where(SignInThrottle.key == keys[0][0]))
    token = secrets.token_urlsafe(32)
    session.add(
        ConsoleSession(
            id=new_id("sess"),
            user_id=user.id,
            token_hash=hash_key(token),
            created_at=now,
            expires_at=now + SESSION_LIFETIME,
        )
    )
    session.flush()
    return token


# --- the sign-in throttle ----------------------------------------------------------------------
# Failures are counted per account and per client address in the database, so every backend
# process shares them. Past the free failures each one blocks further sign-ins for twice as long
# as the one before (1 s, 2 s, 4 s … up to 15 minutes); a success clears its account's count
# (not its address's: one good account must not launder guesses at others); counts left alone
# for an hour start again.

ACCOUNT_FREE_FAILURES = 5
# Higher: an office or a carrier's NAT puts many people behind one address.
ADDRESS_FREE_FAILURES = 20
FIRST_BLOCK = timedelta(seconds=1)
MAX_BLOCK = timedelta(minutes=15)
FORGET_FAILURES_AFTER = timedelta(hours=1)


class TooManySignIns(RateLimited):
    """Sign-ins refused for a while after repeated failures."""


def _throttle_keys(email: str, client_address: str) -> list[tuple[str, int, str]]:
    """(key, free failures, what people are told is throttled), the account first."""
    keys = [(f"account:{hash_key(email.strip().lower())}", ACCOUNT_FREE_FAILURES, "this account")]
    if client_address:
        keys.append((f"address:{client_address[:64]}", ADDRESS_FREE_FAILURES, "this address"))
    return keys


def block_after(failures: int, free: int) -> timedelta | None:
    """How long sign-ins stay refused after the `failures`-th failure in a row."""
    if failures < free:
        return None
    return min(MAX_BLOCK, FIRST_BLOCK * 2 ** min(failures - free, 20))


def check_sign_in_throttle(
    session: Session, *, keys: list[tuple[str, int, str]], now: datetime
) -> None:
    rows = session.exec(
        select(SignInThrottle).where(SignInThrottle.key.in_([key for key, _, _ in keys]))
    ).all()
    blocked = {row.key: row.blocked_until for row in rows if row.blocked_until}
    for key, _free, who in keys:
        until = blocked.get(key)
        if until is not None and until > now:
            wait = max(1, math.ceil((until - now).total_seconds()))
            raise TooManySignIns(
                f"Too many failed sign-ins for {who}. Try again in {_duration(wait)}.",
                retry_after=wait,
            )


def _record_failure(session: Session, *, keys: list[tuple[str, int, str]], now: datetime) -> None:
    table = SignInThrottle.__table__
    dialect_insert = (
        postgresql_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    )
    for key, free, _who in keys:
        # One atomic statement, so concurrent failures in several processes all count.
        statement = dialect_insert(table).values(key=key, failures=1, last_failure_at=now)
        failures = session.execute(
            statement.on_conflict_do_update(
                index_elements=["key"],
                set_={
                    "failures": case(
                        (table.c.last_failure_at < now - FORGET_FAILURES_AFTER, 1),
                        else_=table.c.failures + 1,
                    ),
                    "last_failure_at": now,
                },
            ).returning(table.c.failures)
        ).scalar_one()
        if (block := block_after(failures, free)) is not None:
            session.execute(
                update(table).where(table.c.key == key).values(blocked_until=now + block)
            )


def purge_sign_in_throttle(session: Session, *, now: datetime) -> int:
    """Forget counts that would start again anyway (housekeeping): the table holds one row per
    email or address someone failed with, and guessing at random emails must not grow it."""
    result = session.execute(
        delete(SignInThrottle).where(
            SignInThrottle.last_failure_at < now - FORGET_FAILURES_AFTER,
            (SignInThrottle.blocked_until.is_(None)) | (SignInThrottle.blocked_until < now),
        )
    )
    return result.rowcount or 0


def _duration(seconds: int) -> str:
    if seconds < 60:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    minutes = math.ceil(seconds / 60)
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


def viewer_for(
    session: Session, *, token: str | None, now: datetime | None = None
) -> Viewer | None:
    """The signed-in user of a live session token, or None."""
    if not token or len(token) > 200:
        return None
    now = now or system_clock.now()
    row = session.exec(
        select(ConsoleSession, User, Workspace)
        .join(User, User.id == ConsoleSession.user_id)
        .join(Workspace, Workspace.id == User.workspace_id)
        .where(ConsoleSession.token_hash == hash_key(token))
    ).first()
    if row is None:
        return None
    console_session, user, workspace = row
    if console_session.expires_at <= now:
        return None
    return Viewer(user.id, user.email, workspace.id, workspace.name)


def sign_out(session: Session, *, token: str | None) -> None:
    if token:
        session.execute(delete(ConsoleSession).where(ConsoleSession.token_hash == hash_key(token)))
