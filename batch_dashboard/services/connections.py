"""Telephony connections: a workspace's account at one platform (Twilio, …, or the simulator
and the HTTP runtime), with its credentials sealed at rest.

Credentials are write-only: they are sealed with the same key as webhook secrets, never
returned (the API shows the last four characters of each as a hint) and never logged. The
platform's own events reach `{BATCH_PUBLIC_URL}/v1/provider-events/{provider}/{id}`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import orjson
from sqlalchemy import func, select, update
from sqlmodel import Session

from batch_dashboard import sealing
from batch_dashboard.clock import system_clock, to_rfc3339
from batch_dashboard.ids import new_id
from batch_dashboard.models import Agent, Connection, PhoneNumber
from batch_dashboard.services.errors import (
    Conflict,
    NotFound,
    Problems,
    ValidationFailed,
    is_clean_id,
)
from batch_dashboard.settings import get_settings


@dataclass(frozen=True)
class ProviderSpec:
    """What a platform needs from a connection, and what it can do."""

    credentials: tuple[str, ...]
    # The credentials a connection may omit.
    optional: tuple[str, ...] = ()
    # What a batch's `voicemail.action` may ask of it.
    voicemail: tuple[str, ...] = ()
    # The account's default call-creation rate (calls per second).
    default_calls_per_second: float = 1.0
    can_import_numbers: bool = False
    can_import_agents: bool = False


PROVIDERS: dict[str, ProviderSpec] = {
    # The simulator plays a voicemail like any other outcome, whatever the batch asks.
    "simulator": ProviderSpec(
        credentials=(), voicemail=("hang_up", "leave_message"), default_calls_per_second=0.0
    ),
    "http": ProviderSpec(credentials=("token",), optional=("token",), default_calls_per_second=0.0),
    "twilio": ProviderSpec(
        # bot_secret: the whsec_… secret your bot signs its call results with (optional).
        credentials=("account_sid", "auth_token", "bot_secret"),
        optional=("bot_secret",),
        voicemail=("hang_up", "leave_message"),
        can_import_numbers=True,
    ),
    # Hosted voice-agent platforms: their agents live there (external_agent_id), and they post
    # call webhooks signed with webhook_secret (ElevenLabs, Vapi) or the API key (Retell).
    "elevenlabs": ProviderSpec(
        credentials=("api_key", "webhook_secret"),
        can_import_numbers=True,
        can_import_agents=True,
    ),
    # Vapi: voicemailDetection / voicemailMessage; Retell: the agent override's voicemail_option
    # (docs/providers.md). ElevenLabs sets voicemail on the agent itself.
    "vapi": ProviderSpec(
        credentials=("api_key", "webhook_secret"),
        voicemail=("hang_up", "leave_message"),
        can_import_numbers=True,
        can_import_agents=True,
    ),
    "retell": ProviderSpec(
        credentials=("api_key",),
        voicemail=("hang_up", "leave_message"),
        can_import_numbers=True,
        can_import_agents=True,
    ),
}
NAME_LENGTH = 200
CALLS_PER_SECOND_MAX = 1000.0
CREDENTIAL_MAX = 4096


def events_url(connection: Connection) -> str | None:
    """Where the platform reports calls: none for the simulator; the HTTP runtime's one route
    (it is the deployment's, configured by settings); a route per connection for the others."""
    base = f"{get_settings().public_url.rstrip('/')}/v1/provider-events"
    if connection.provider == "simulator":
        return None
    if connection.provider == "http":
        return f"{base}/http"
    return f"{base}/{connection.provider}/{connection.id}"


def _hint(value: str) -> str:
    return "…" + value[-4:] if len(value) > 8 else "…"


def connection_public(connection: Connection) -> dict[str, Any]:
    spec = PROVIDERS.get(connection.provider, ProviderSpec(credentials=()))
    return {
        "id": connection.id,
        "provider": connection.provider,
        "name": connection.name,
        "base_url": connection.base_url,
        "calls_per_second": connection.calls_per_second,
        "credentials": dict(connection.credential_hints or {}),
        "events_url": events_url(connection),
        "supports": {
            "voicemail": list(spec.voicemail),
            "import_numbers": spec.can_import_numbers,
            "import_agents": spec.can_import_agents,
        },
        "created_at": to_rfc3339(connection.created_at),
    }


def credentials(connection: Connection) -> dict[str, str]:
    """The connection's credentials, unsealed: only for the adapter that calls the platform."""
    if not connection.credentials:
        return {}
    return orjson.loads(sealing.unseal(connection.credentials))


def _check_name(value: object, problems: Problems) -> str:
    if not isinstance(value, str) or not value.strip():
        problems.add(["name"], "is required")
        return ""
    name = value.strip()
    if len(name) > NAME_LENGTH:
        problems.add(["name"], f"must be 1 to {NAME_LENGTH} characters (got {len(name)})")
    elif any(ord(char) < 32 for char in name):
        problems.add(["name"], "must not contain control characters")
    return name


def _check_base_url(value: object, problems: Problems) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > 2000:
        problems.add(["base_url"], "must be a URL such as https://api.twilio.com")
        return None
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        problems.add(
            ["base_url"], "must be an http(s) URL without a query, e.g. https://api.twilio.com"
        )
        return None
    return value.strip().rstrip("/")


def _check_rate(value: object, problems: Problems, default: float) -> float:
    if value is None:
        return default
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not (0 < value <= CALLS_PER_SECOND_MAX)
    ):
        problems.add(
            ["calls_per_second"], f"must be a number above 0 and at most {CALLS_PER_SECOND_MAX:g}"
        )
        return default
    return float(value)


def _check_credentials(
    provider: str, value: object, problems: Problems, *, partial: bool
) -> dict[str, str] | None:
    spec = PROVIDERS[provider]
    if value is None:
        if not partial and set(spec.credentials) - set(spec.optional):
            problems.add(["credentials"], f"is required: {', '.join(spec.credentials)}")
        return None if partial else {}
    if not isinstance(value, Mapping):
        problems.add(["credentials"], f"must be an object with {', '.join(spec.credentials)}")
        return None
    found: dict[str, str] = {}
    for key, item in value.items():
        if key not in spec.credentials:
            known = ", ".join(spec.credentials) or "none"
            problems.add(["credentials", str(key)], f"is not a {provider} credential ({known})")
        elif not isinstance(item, str) or not item.strip() or len(item) > CREDENTIAL_MAX:
            problems.add(["credentials", key], "must be a non-empty string")
        elif any(ord(char) < 32 for char in item):
            problems.add(["credentials", key], "must not contain control characters")
        elif key == "bot_secret" and not _is_signing_secret(item.strip()):
            problems.add(["credentials", key], "must be a whsec_… secret (Standard Webhooks)")
        else:
            found[key] = item.strip()
    if not partial:
        for key in spec.credentials:
            if (
                key not in found
                and key not in spec.optional
                and ["credentials", key] not in [p["loc"] for p in problems.items]
            ):
                problems.add(["credentials", key], "is required")
    return found


def _is_signing_secret(value: str) -> bool:
    from standardwebhooks import Webhook

    try:
        Webhook(value)
    except Exception:
        return False
    return value.startswith("whsec_")


def _seal(connection: Connection, values: dict[str, str]) -> None:
    connection.credentials = sealing.seal(orjson.dumps(values).decode()) if values else ""
    connection.credential_hints = {key: _hint(item) for key, item in values.items()}


def create_connection(
    session: Session,
    *,
    workspace_id: str,
    fields: Mapping[str, Any],
    now: datetime | None = None,
) -> dict[str, Any]:
    problems = Problems()
    provider = fields.get("provider")
    if provider not in PROVIDERS:
        problems.add(["provider"], f"must be one of {', '.join(PROVIDERS)}")
        problems.raise_if_any()
    assert isinstance(provider, str)
    spec = PROVIDERS[provider]
    unknown = set(fields) - {"provider", "name", "credentials", "base_url", "calls_per_second"}
    for key in sorted(unknown):
        problems.add([key], "is not a field of a connection")
    connection = Connection(
        id=new_id("conn"),
        workspace_id=workspace_id,
        provider=provider,
        name=_check_name(fields.get("name"), problems),
        base_url=_check_base_url(fields.get("base_url"), problems),
        calls_per_second=_check_rate(
            fields.get("calls_per_second"), problems, spec.default_calls_per_second
        ),
        created_at=now or system_clock.now(),
    )
    values = _check_credentials(provider, fields.get("credentials"), problems, partial=False)
    problems.raise_if_any()
    _seal(connection, values or {})
    session.add(connection)
    session.flush()
    return connection_public(connection)


def update_connection(
    session: Session, *, workspace_id: str, connection_id: str, fields: Mapping[str, Any]
) -> dict[str, Any]:
    """Change the name, base URL, rate or credentials (given credentials replace the stored
    ones key by key: rotating an auth token needs only the new token)."""
    connection = get_connection(session, workspace_id=workspace_id, connection_id=connection_id)
    spec = PROVIDERS[connection.provider]
    problems = Problems()
    for key in sorted(set(fields) - {"name", "credentials", "base_url", "calls_per_second"}):
        problems.add([key], "is not a field a connection can change")
    if "name" in fields:
        connection.name = _check_name(fields["name"], problems)
    if "base_url" in fields:
        connection.base_url = _check_base_url(fields["base_url"], problems)
    if "calls_per_second" in fields:
        connection.calls_per_second = _check_rate(
            fields["calls_per_second"], problems, spec.default_calls_per_second
        )
    given = _check_credentials(
        connection.provider, fields.get("credentials"), problems, partial=True
    )
    problems.raise_if_any()
    if given:
        _seal(connection, {**credentials(connection), **given})
    session.add(connection)
    session.flush()
    return connection_public(connection)


def get_connection(session: Session, *, workspace_id: str, connection_id: str) -> Connection:
    connection = session.get(Connection, connection_id) if is_clean_id(connection_id) else None
    if connection is None or connection.workspace_id != workspace_id:
        raise NotFound(f"no connection {connection_id}")
    return connection


def get_connection_public(
    session: Session, *, workspace_id: str, connection_id: str
) -> dict[str, Any]:
    return connection_public(
        get_connection(session, workspace_id=workspace_id, connection_id=connection_id)
    )


def list_connections(session: Session, *, workspace_id: str) -> dict[str, Any]:
    rows = session.exec(
        select(Connection)
        .where(Connection.workspace_id == workspace_id)
        .order_by(Connection.created_at, Connection.id)
    ).scalars()
    return {"connections": [connection_public(row) for row in rows]}


def delete_connection(session: Session, *, workspace_id: str, connection_id: str) -> None:
    connection = get_connection(session, workspace_id=workspace_id, connection_id=connection_id)
    numbers = session.execute(
        select(func.count())
        .select_from(PhoneNumber)
        .where(PhoneNumber.connection_id == connection.id, PhoneNumber.deleted_at.is_(None))
    ).scalar_one()
    agents_using = session.execute(
        select(func.count())
        .select_from(Agent)
        .where(Agent.connection_id == connection.id, Agent.deleted_at.is_(None))
    ).scalar_one()
    if numbers or agents_using:
        raise Conflict(
            f"connection {connection_id} is used by {numbers} phone number(s) and "
            f"{agents_using} agent(s): move or delete them first"
        )
    # Deleted numbers and agents keep their history; they no longer point here.
    for table in (PhoneNumber, Agent):
        session.execute(
            update(table).where(table.connection_id == connection.id).values(connection_id=None)
        )
    session.delete(connection)
    session.flush()


def check_link(
    session: Session, *, workspace_id: str, connection_id: object, loc: list[str | int]
) -> str | None:
    """A `connection_id` given for a number or an agent: one of this workspace's, or None."""
    if connection_id is None or connection_id == "":
        return None
    if not isinstance(connection_id, str):
        raise ValidationFailed.at(loc, "must be a connection id")
    try:
        return get_connection(session, workspace_id=workspace_id, connection_id=connection_id).id
    except NotFound as error:
        raise ValidationFailed.at(loc, error.message) from None


# --- at the platform --------------------------------------------------------------------------


def reseal_credentials(db: Any, *, database_url: str | None = None) -> int:
    """Seal every connection's credentials under the first BATCH_SECRET_KEY (`reseal-secrets`,
    after a new key was put first)."""
    table = Connection.__table__
    rows = db.execute(
        select(table.c.id, table.c.credentials).where(table.c.credentials != "")
    ).all()
    for row in rows:
        db.execute(
            update(table)
            .where(table.c.id == row.id)
            .values(credentials=sealing.reseal(row.credentials, database_url=database_url))
        )
    return len(rows)


def _adapter(connection: Connection) -> Any:
    from batch_dashboard.providers.registry import platform_adapter

    return platform_adapter(connection, settings=get_settings())


def test_connection(session: Session, *, workspace_id: str, connection_id: str) -> dict[str, Any]:
    """One harmless authenticated read at the platform: `{"ok": true}`, or a 422 saying what
    the platform answered."""
    from batch_dashboard.providers.base import ProviderError

    connection = get_connection(session, workspace_id=workspace_id, connection_id=connection_id)
    if connection.provider in ("simulator", "http"):
        return {"ok": True}
    try:
        _adapter(connection).check()
    except ProviderError as error:
        raise ValidationFailed.at(["credentials"], str(error)) from None
    return {"ok": True}


def import_numbers(session: Session, *, workspace_id: str, connection_id: str) -> dict[str, Any]:
    """The account's phone numbers that this workspace does not have yet, added (linked to the
    connection, outbound when the platform says they can make calls)."""
    from batch_dashboard.providers.base import ProviderError
    from batch_dashboard.services import agents

    connection = get_connection(session, workspace_id=workspace_id, connection_id=connection_id)
    if not PROVIDERS[connection.provider].can_import_numbers:
        raise ValidationFailed.at(
            ["connection_id"], f"{connection.provider} connections have no numbers to import"
        )
    try:
        found = _adapter(connection).incoming_numbers()
    except ProviderError as error:
        raise ValidationFailed.at(["credentials"], str(error)) from None
    have = {
        number.phone_number
        for number in agents.list_phone_numbers(session, workspace_id=workspace_id)
    }
    added = []
    for item in found:
        if item["phone_number"] in have:
            continue
        number = agents.create_phone_number(
            session,
            workspace_id=workspace_id,
            number=item["phone_number"],
            label=item["label"][:200],
            outbound_enabled=item["voice"],
            connection_id=connection.id,
            external_id=item["external_id"],
        )
        have.add(number.phone_number)
        added.append(agents.phone_number_public(number))
    return {"added": added, "already_here": len(found) - len(added)}


def import_agents(session: Session, *, workspace_id: str, connection_id: str) -> dict[str, Any]:
    """The platform's agents as local agents of this connection: created, or refreshed (name,
    first message, prompt and so their `{{placeholders}}`) when already imported."""
    from batch_dashboard.providers.base import ProviderError
    from batch_dashboard.services import agents

    connection = get_connection(session, workspace_id=workspace_id, connection_id=connection_id)
    if not PROVIDERS[connection.provider].can_import_agents:
        raise ValidationFailed.at(
            ["connection_id"], f"{connection.provider} connections have no agents to import"
        )
    try:
        found = _adapter(connection).list_agents()
    except ProviderError as error:
        raise ValidationFailed.at(["credentials"], str(error)) from None
    known = {
        agent.external_agent_id: agent
        for agent in agents.list_agents(session, workspace_id=workspace_id)
        if agent.connection_id == connection.id and agent.external_agent_id
    }
    added, refreshed = [], []
    for item in found:
        name = (item.name or item.external_agent_id)[:200]
        local = known.get(item.external_agent_id)
        if local is None:
            local, _secret = agents.create_agent(
                session,
                workspace_id=workspace_id,
                name=name,
                prompt=item.prompt or f"The {connection.provider} agent {name}.",
                first_message=item.first_message,
                connection_id=connection.id,
                external_agent_id=item.external_agent_id,
            )
            added.append(agents.agent_public(local))
        else:
            local.name, local.first_message = name, item.first_message
            local.prompt = item.prompt or local.prompt
            session.add(local)
            refreshed.append(agents.agent_public(local))
    session.flush()
    return {"added": added, "refreshed": refreshed}
