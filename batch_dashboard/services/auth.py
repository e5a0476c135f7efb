"""Workspaces, API keys and console users.

API keys are `bc_` + 43 URL-safe characters from `secrets`; only their SHA-256 and a display
prefix are stored. Passwords are hashed with argon2.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import logging
import math
import secrets
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import bindparam, case, delete, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, select

from batch_dashboard.clock import system_clock, to_utc
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

log = logging.getLogger(__name__)

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


def time_zone_of(session: Session, *, workspace_id: str) -> str | None:
    """The workspace's IANA time zone, None until someone signed in (or chose one)."""
    return get_workspace(session, workspace_id=workspace_id).time_zone


def zone_info(zone: str | None) -> ZoneInfo:
    """A stored zone as a tzinfo; UTC for none (a workspace nobody has signed in to)."""
    try:
        return ZoneInfo(zone) if zone else ZoneInfo("UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def workspace_today(
    session: Session, *, workspace_id: str, now: datetime | None = None
) -> tuple[datetime, str]:
    """When "today" began in the workspace's time zone (as UTC), and that zone's name: what
    the wall's totals and chart count from."""
    zone = time_zone_of(session, workspace_id=workspace_id) or "UTC"
    local = (now or system_clock.now()).astimezone(zone_info(zone))
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    return midnight.astimezone(UTC), zone


@functools.cache
def _zones() -> frozenset[str]:
    return frozenset(available_timezones())  # reads the zone database from disk: once


def set_time_zone(
    session: Session, *, workspace_id: str, zone: str, only_if_unset: bool = False
) -> str | None:
    """Set the workspace's time zone (an IANA name); with `only_if_unset`, only the first time
    (the browser's zone at the first sign-in). Returns the zone in force."""
    workspace = get_workspace(session, workspace_id=workspace_id)
    if only_if_unset and workspace.time_zone:
        return workspace.time_zone
    zone = zone.strip() if isinstance(zone, str) else ""
    if zone not in _zones():
        if only_if_unset:
            return workspace.time_zone  # a browser that names no known zone changes nothing
        raise ValidationFailed.at(["time_zone"], "must be an IANA time zone like Europe/Berlin")
    workspace.time_zone = zone
    session.add(workspace)
    session.flush()
    return zone


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
    ApiKey.__table__.c.key_hash,
    ApiKey.__table__.c.revoked_at,
    ApiKey.__table__.c.workspace_id,
    ApiKey.__table__.c.last_used_at,
).where(ApiKey.__table__.c.key_hash == bindparam("digest"))
# "Last used" is for people (which key is still in use?): to the minute is enough, and spares
# a write on every request.
LAST_USED_PRECISION = timedelta(minutes=1)


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
    _note_use(digest, record[3], database_url)
    return record[2]


# Keys whose use this process has just noted (digest → when), so that requests arriving
# before the write lands do not queue more writes.
_noted: dict[str, datetime] = {}
# One writer thread: the key check runs on the event loop (see api/deps.py), where waiting
# for SQLite's write lock behind the dialer would stall every request and websocket.
_use_writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="api-key-last-used")


def _note_use(digest: str, last_used_at: datetime | None, database_url: str | None) -> None:
    now = system_clock.now()
    if last_used_at is not None and now - to_utc(last_used_at) < LAST_USED_PRECISION:
        return
    noted = _noted.get(digest)
    if noted is not None and now - noted < LAST_USED_PRECISION:
        return
    _noted[digest] = now
    _use_writer.submit(_write_use, digest, now, database_url)


def _write_use(digest: str, now: datetime, database_url: str | None) -> None:
    table = ApiKey.__table__
    try:
        with get_engine(database_url).begin() as connection:
            connection.execute(
                update(table)
                .where(table.c.key_hash == digest)
                .where(
                    (table.c.last_used_at.is_(None))
                    | (table.c.last_used_at < now - LAST_USED_PRECISION)
                )
                .values(last_used_at=now)
            )
    except Exception:  # "last used" is a courtesy: never worth failing or retrying over
        log.warning("could not record an API key's last use", exc_info=True)


def wait_for_key_uses() -> None:
    """Until the last uses noted so far are written (tests; a clean shutdown)."""
    _use_writer.submit(lambda: None).result()


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


def list_users(session: Session, *, workspace_id: str) -> list[User]:
    return list(
        session.exec(select(User).where(User.workspace_id == workspace_id).order_by(User.email))
    )


INITIAL_PASSWORD_BYTES = 12


def add_user(
    session: Session, *, workspace_id: str, email: str, now: datetime | None = None
) -> tuple[User, str]:
    """A new member of the workspace with a random initial password, returned this once (it is
    stored hashed) for the person who adds them to pass on."""
    password = secrets.token_urlsafe(INITIAL_PASSWORD_BYTES)
    user = create_user(session, workspace_id=workspace_id, email=email, password=password, now=now)
    return user, password


def remove_user(session: Session, *, workspace_id: str, user_id: str, acting_user_id: str) -> None:
    """The member loses access at once: their sessions end with them."""
    user = session.get(User, user_id) if isinstance(user_id, str) else None
    if user is None or user.workspace_id != workspace_id:
        raise NotFound(f"no user {user_id}")
    if user.id == acting_user_id:
        raise Conflict("you cannot remove yourself; another member can")
    session.execute(delete(ConsoleSession).where(ConsoleSession.user_id == user.id))
    session.delete(user)
    session.flush()


def change_password(
    session: Session,
    *,
    workspace_id: str,
    user_id: str,
    current: str,
    new: str,
    keep_token: str | None = None,
) -> None:
    """The signed-in user's own password; their other sessions end (the one asking stays)."""
    user = session.get(User, user_id)
    if user is None or user.workspace_id != workspace_id:
        raise NotFound(f"no user {user_id}")
    if not verify_password(user, current):
        raise ValidationFailed.at(["current_password"], "is not your current password")
    if len(new) < 8:
        raise ValidationFailed.at(["new_password"], "must be at least 8 characters")
    if new == current:
        raise ValidationFailed.at(["new_password"], "must differ from the current one")
    user.password_hash = _password_hasher.hash(new)
    session.add(user)
    others = delete(ConsoleSession).where(ConsoleSession.user_id == user.id)
    if keep_token:
        others = others.where(ConsoleSession.token_hash != hash_key(keep_token))
    session.execute(others)
    session.flush()


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
    # The workspace's time zone; None until the first sign-in sets it from the browser.
    time_zone: str | None = None


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
    return Viewer(user.id, user.email, workspace.id, workspace.name, workspace.time_zone)


def sign_out(session: Session, *, token: str | None) -> None:
    if token:
        session.execute(delete(ConsoleSession).where(ConsoleSession.token_hash == hash_key(token)))
