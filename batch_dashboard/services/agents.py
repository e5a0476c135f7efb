"""Agents, caller numbers, placeholders and sample CSVs."""

from __future__ import annotations

import base64
import csv
import io
import re
import secrets
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import Connection, bindparam, update
from sqlmodel import Session, select

from batch_dashboard import sealing
from batch_dashboard.clock import system_clock
from batch_dashboard.ids import new_id
from batch_dashboard.models import Agent, PhoneNumber
from batch_dashboard.services import connections, phones, webhooks
from batch_dashboard.services.errors import (
    NotFound,
    Problems,
    checked_label,
    is_clean_id,
    nul_problems,
)
from batch_dashboard.settings import get_settings

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]{0,63})\s*\}\}")
# Variables the runtime fills in itself (hosted platforms' convention), never asked of a CSV.
SYSTEM_PREFIX = "system__"
DEFAULT_SAMPLE_COLUMNS = ("first_name", "appointment_time")
_SAMPLE_VALUES = {
    "first_name": ("Ada", "Grace"),
    "last_name": ("Lovelace", "Hopper"),
    "name": ("Ada Lovelace", "Grace Hopper"),
    "full_name": ("Ada Lovelace", "Grace Hopper"),
    "appointment_time": ("3pm", "10:30am"),
    "appointment_date": ("2026-12-01", "2026-12-02"),
    "date": ("2026-12-01", "2026-12-02"),
    "time": ("3pm", "10:30am"),
    "email": ("ada@example.com", "grace@example.com"),
    "city": ("London", "New York"),
    "company": ("Analytical Engines Ltd", "Navy Labs"),
}
SAMPLE_PHONES = ("+14155552671", "+14155552672")


def placeholders(*texts: str) -> list[str]:
    """`{{name}}` placeholders in order of first use, without the runtime's own variables."""
    names: list[str] = []
    for text in texts:
        for match in PLACEHOLDER.finditer(text or ""):
            name = match.group(1)
            if name not in names and not name.startswith(SYSTEM_PREFIX):
                names.append(name)
    return names


def agent_placeholders(agent: Agent) -> list[str]:
    return placeholders(agent.first_message, agent.prompt)


def sample_csv(columns: list[str] | None = None) -> str:
    """A CSV with a phone column and example variables whose two rows upload cleanly.

    `columns=None` gives generic example columns; an agent's (possibly empty) list gives its own.
    """
    columns = list(DEFAULT_SAMPLE_COLUMNS) if columns is None else list(columns)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(["phone", *columns])
    for row in range(2):
        values = [_SAMPLE_VALUES.get(name, (f"{name} 1", f"{name} 2"))[row] for name in columns]
        writer.writerow([SAMPLE_PHONES[row], *values])
    return buffer.getvalue()


def new_webhook_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def agent_public(agent: Agent) -> dict[str, Any]:
    return {
        "id": agent.id,
        "name": agent.name,
        "prompt": agent.prompt,
        "first_message": agent.first_message,
        "phone_number_id": agent.phone_number_id,
        "webhook_url": agent.webhook_url,
        "placeholders": agent_placeholders(agent),
        "connection_id": agent.connection_id,
        "external_agent_id": agent.external_agent_id,
        "stream_url": agent.stream_url,
    }


def phone_number_public(number: PhoneNumber) -> dict[str, Any]:
    return {
        "id": number.id,
        "phone_number": number.phone_number,
        "label": number.label,
        "provider": number.provider,
        "outbound_enabled": number.outbound_enabled,
        "connection_id": number.connection_id,
        "external_id": number.external_id,
    }


def list_agents(session: Session, *, workspace_id: str) -> list[Agent]:
    return list(
        session.exec(
            select(Agent)
            .where(Agent.workspace_id == workspace_id, Agent.deleted_at.is_(None))
            .order_by(Agent.id)
        )
    )


def get_agent(session: Session, *, workspace_id: str, agent_id: str) -> Agent:
    agent = session.get(Agent, agent_id) if is_clean_id(agent_id) else None
    if agent is None or agent.workspace_id != workspace_id or agent.deleted_at is not None:
        raise NotFound(f"no agent {agent_id} in this workspace")
    return agent


def workspace_of_agent(session: Session, *, agent_id: str) -> str:
    """For operator tools (the CLI) that name an agent without a workspace."""
    agent = session.get(Agent, agent_id) if is_clean_id(agent_id) else None
    if agent is None or agent.deleted_at is not None:
        raise NotFound(f"no agent {agent_id}")
    return agent.workspace_id


def list_phone_numbers(session: Session, *, workspace_id: str) -> list[PhoneNumber]:
    return list(
        session.exec(
            select(PhoneNumber)
            .where(PhoneNumber.workspace_id == workspace_id, PhoneNumber.deleted_at.is_(None))
            .order_by(PhoneNumber.id)
        )
    )


def get_phone_number(session: Session, *, workspace_id: str, phone_number_id: str) -> PhoneNumber:
    number = session.get(PhoneNumber, phone_number_id) if is_clean_id(phone_number_id) else None
    if number is None or number.workspace_id != workspace_id or number.deleted_at is not None:
        raise NotFound(f"no phone number {phone_number_id} in this workspace")
    return number


def create_phone_number(
    session: Session,
    *,
    workspace_id: str,
    number: str,
    label: str = "",
    provider: str = "simulator",
    outbound_enabled: bool = True,
    connection_id: str | None = None,
    external_id: str | None = None,
    now: datetime | None = None,
) -> PhoneNumber:
    """A caller number; with a connection, its provider is the connection's."""
    if connection_id is not None:
        provider = connections.get_connection(
            session, workspace_id=workspace_id, connection_id=connection_id
        ).provider
    problems = Problems()
    clean, reason = phones.normalize(number)
    canonical = phones.check_valid(clean) if clean else None
    if reason:
        problems.add(["phone_number"], reason)
    elif canonical is None:
        problems.add(["phone_number"], phones.invalid_reason(clean or ""))
    label = checked_label(label, problems)
    problems.raise_if_any()
    record = PhoneNumber(
        id=new_id("pn"),
        workspace_id=workspace_id,
        phone_number=canonical or "",
        label=label,
        provider=provider,
        outbound_enabled=outbound_enabled,
        connection_id=connection_id,
        external_id=_external_id(external_id, problems, field="external_id"),
        created_at=now or system_clock.now(),
    )
    session.add(record)
    session.flush()
    return record


def _external_id(value: str | None, problems: Problems, *, field: str) -> str | None:
    """A platform's own id for a number or an agent."""
    if value is None or not value.strip():
        return None
    if len(value) > 200 or any(ord(char) < 33 for char in value.strip()):
        problems.add([field], "must be the platform's id: up to 200 characters, no spaces")
    return value.strip()


def _check_stream_url(value: str | None, problems: Problems) -> str | None:
    if value is None or not value.strip():
        return None
    url = value.strip()
    parts = urlsplit(url)
    if parts.scheme not in ("wss", "ws") or not parts.hostname or len(url) > 2000:
        problems.add(["stream_url"], "must be the bot's media-stream websocket, wss://…")
    return url


def _check_agent(
    session: Session,
    workspace_id: str,
    name: str,
    prompt: str,
    phone_number_id: str | None,
    webhook_url: str | None,
    first_message: str = "",
) -> None:
    problems = Problems()
    texts = {
        "name": name,
        "prompt": prompt,
        "first_message": first_message,
        "webhook_url": webhook_url,
    }
    nul_problems(texts, [], problems)
    if not 1 <= len(name.strip()) <= 200:
        problems.add(["name"], "must be 1 to 200 characters")
    if not prompt.strip():
        problems.add(["prompt"], "is required")
    if phone_number_id is not None:
        try:
            get_phone_number(session, workspace_id=workspace_id, phone_number_id=phone_number_id)
        except NotFound as error:
            problems.add(["phone_number_id"], error.message)
    webhooks.check_webhook_url(
        webhook_url, allow_private=get_settings().webhook_allow_private_targets, problems=problems
    )
    problems.raise_if_any()


def create_agent(
    session: Session,
    *,
    workspace_id: str,
    name: str,
    prompt: str,
    first_message: str = "",
    phone_number_id: str | None = None,
    webhook_url: str | None = None,
    evaluation_criteria: list[dict[str, Any]] | None = None,
    data_collection: list[dict[str, Any]] | None = None,
    opt_out_field: str | None = None,
    connection_id: str | None = None,
    external_agent_id: str | None = None,
    stream_url: str | None = None,
    now: datetime | None = None,
) -> tuple[Agent, str]:
    """The new agent and its webhook signing secret (shown once). Without a connection it is
    on its caller number's."""
    _check_agent(session, workspace_id, name, prompt, phone_number_id, webhook_url, first_message)
    problems = Problems()
    if connection_id is None and phone_number_id is not None:
        connection_id = session.get(PhoneNumber, phone_number_id).connection_id  # type: ignore[union-attr]
    elif connection_id is not None:
        connections.get_connection(session, workspace_id=workspace_id, connection_id=connection_id)
    external_agent_id = _external_id(external_agent_id, problems, field="external_agent_id")
    stream_url = _check_stream_url(stream_url, problems)
    problems.raise_if_any()
    secret = new_webhook_secret()
    agent = Agent(
        id=new_id("agent"),
        workspace_id=workspace_id,
        name=name.strip(),
        prompt=prompt,
        first_message=first_message,
        phone_number_id=phone_number_id,
        webhook_url=webhook_url,
        webhook_secret=sealing.seal(secret),
        evaluation_criteria=evaluation_criteria or [],
        data_collection=data_collection or [],
        opt_out_field=opt_out_field or None,
        connection_id=connection_id,
        external_agent_id=external_agent_id,
        stream_url=stream_url,
        created_at=now or system_clock.now(),
    )
    session.add(agent)
    session.flush()
    return agent, secret


def delete_agent(
    session: Session, *, workspace_id: str, agent_id: str, now: datetime | None = None
) -> Agent:
    """Soft delete: batches keep their history; the dialer fails batches that still need it."""
    agent = get_agent(session, workspace_id=workspace_id, agent_id=agent_id)
    agent.deleted_at = now or system_clock.now()
    session.add(agent)
    session.flush()
    return agent


def update_phone_number(
    session: Session,
    *,
    workspace_id: str,
    phone_number_id: str,
    label: str | None = None,
    outbound_enabled: bool | None = None,
) -> PhoneNumber:
    number = get_phone_number(session, workspace_id=workspace_id, phone_number_id=phone_number_id)
    if label is not None:
        number.label = checked_label(label)
    if outbound_enabled is not None:
        number.outbound_enabled = outbound_enabled
    session.add(number)
    session.flush()
    return number


def delete_phone_number(
    session: Session, *, workspace_id: str, phone_number_id: str, now: datetime | None = None
) -> PhoneNumber:
    number = get_phone_number(session, workspace_id=workspace_id, phone_number_id=phone_number_id)
    number.deleted_at = now or system_clock.now()
    session.add(number)
    session.flush()
    return number


def set_webhook_url(
    session: Session, *, workspace_id: str, agent_id: str, webhook_url: str | None
) -> Agent:
    """Change (or clear) an agent's webhook URL; setting it again re-enables a disabled webhook."""
    agent = get_agent(session, workspace_id=workspace_id, agent_id=agent_id)
    problems = Problems()
    webhooks.check_webhook_url(
        webhook_url, allow_private=get_settings().webhook_allow_private_targets, problems=problems
    )
    problems.raise_if_any()
    agent.webhook_url = webhook_url
    agent.webhook_disabled_reason = None
    session.add(agent)
    session.flush()
    return agent


def rotate_webhook_secret(
    session: Session, *, workspace_id: str, agent_id: str, now: datetime | None = None
) -> str:
    """A new signing secret (shown once); the old one keeps signing alongside it for 24 hours."""
    agent = get_agent(session, workspace_id=workspace_id, agent_id=agent_id)
    secret = new_webhook_secret()
    agent.webhook_secret_previous = agent.webhook_secret
    agent.webhook_secret = sealing.seal(secret)
    agent.webhook_secret_rotated_at = now or system_clock.now()
    session.add(agent)
    session.flush()
    return secret


def reseal_webhook_secrets(connection: Connection, *, database_url: str | None = None) -> int:
    """Seal every stored webhook secret under the first BATCH_SECRET_KEY (plaintext ones from
    before sealing included); the migration and `reseal-secrets` both run this."""
    agents_t = Agent.__table__
    rows = connection.execute(
        select(agents_t.c.id, agents_t.c.webhook_secret, agents_t.c.webhook_secret_previous)
    ).all()
    changes = [
        {
            "agent": row.id,
            "current": row.webhook_secret
            and sealing.reseal(row.webhook_secret, database_url=database_url),
            "previous": row.webhook_secret_previous
            and sealing.reseal(row.webhook_secret_previous, database_url=database_url),
        }
        for row in rows
        if row.webhook_secret or row.webhook_secret_previous
    ]
    if changes:
        connection.execute(
            update(agents_t)
            .where(agents_t.c.id == bindparam("agent"))
            .values(
                webhook_secret=bindparam("current"), webhook_secret_previous=bindparam("previous")
            ),
            changes,
        )
    return len(changes)


def update_agent(
    session: Session,
    *,
    workspace_id: str,
    agent_id: str,
    name: str,
    prompt: str,
    first_message: str,
    phone_number_id: str | None,
    webhook_url: str | None,
    opt_out_field: str | None = None,
    connection_id: str | None = None,
    external_agent_id: str | None = None,
    stream_url: str | None = None,
) -> Agent:
    """`connection_id`, `external_agent_id` and `stream_url` are kept as they are when None and
    cleared by "" (checked as at creation otherwise)."""
    agent = get_agent(session, workspace_id=workspace_id, agent_id=agent_id)
    # An unchanged URL is not checked again: its host may be unreachable right now.
    new_url = webhook_url if webhook_url != agent.webhook_url else None
    _check_agent(session, workspace_id, name, prompt, phone_number_id, new_url, first_message)
    if connection_id:
        connections.get_connection(session, workspace_id=workspace_id, connection_id=connection_id)
    problems = Problems()
    external = (
        None
        if external_agent_id is None
        else _external_id(external_agent_id, problems, field="external_agent_id")
    )
    stream = None if stream_url is None else _check_stream_url(stream_url, problems)
    problems.raise_if_any()
    if connection_id is not None:
        agent.connection_id = connection_id or None
    if external_agent_id is not None:
        agent.external_agent_id = external
    if stream_url is not None:
        agent.stream_url = stream
    if webhook_url != agent.webhook_url:
        agent.webhook_disabled_reason = None
    agent.name, agent.prompt, agent.first_message = name.strip(), prompt, first_message
    agent.phone_number_id, agent.webhook_url = phone_number_id, webhook_url
    agent.opt_out_field = (opt_out_field or "").strip()[:64] or None
    session.add(agent)
    session.flush()
    return agent
