"""/agents, /phone-numbers and /settings: the workspace's agents, caller numbers and API keys.

The database work is in plain functions shaped like the services' own (a session and keyword
`workspace_id`) that only call `services/`; handlers run them, or the services directly, with
`read`/`write`. The states hold what one tab shows. Secrets and keys are kept in a state
only while their one-time dialog is open.
"""

from __future__ import annotations

import dataclasses
from functools import partial
from typing import Any

import reflex as rx
from sqlmodel import Session

from batch_dashboard.clock import to_rfc3339
from batch_dashboard.services import agents, auth, phones, webhooks
from batch_dashboard.services.errors import DomainError
from batch_dashboard.ui.states.base import error_text, read, signed_in, write
from batch_dashboard.ui.states.connections import connection_labels, provider_name

NO_NUMBER = "none"  # the caller-number select's "None" (a Radix select item cannot be "")
DELIVERIES_SHOWN = 50


# --- rows ----------------------------------------------------------------------------------


@dataclasses.dataclass
class AgentRow:
    id: str = ""
    name: str = ""
    prompt: str = ""
    first_message: str = ""
    phone_number_id: str = ""
    caller_number: str = ""  # formatted for people; "" when the agent has none
    caller_outbound: bool = False
    webhook_url: str = ""
    webhook_disabled_reason: str = ""
    opt_out_field: str = ""
    placeholders: list[str] = dataclasses.field(default_factory=list)
    # The connection it calls through (its own, else its caller number's), and its platform.
    connection: str = ""
    platform: str = ""
    on_twilio: bool = False
    stream_url: str = ""
    # On a hosted platform: the agent's id there, and the platform's console to open it in.
    external_agent_id: str = ""
    platform_console: str = ""


# Where each hosted platform's own console lists its agents (find the agent there by its id).
PLATFORM_CONSOLES = {
    "elevenlabs": "https://elevenlabs.io/app/agents",
    "vapi": "https://dashboard.vapi.ai",
    "retell": "https://dashboard.retellai.com",
}


@dataclasses.dataclass
class NumberRow:
    id: str = ""
    phone: str = ""  # formatted for people
    phone_e164: str = ""
    label: str = ""
    provider: str = ""
    outbound_enabled: bool = False
    connection_id: str = ""
    # Its connection's name ("Simulator" when it has none), and the platform if the name is
    # not just that.
    connection: str = ""
    platform: str = ""


@dataclasses.dataclass
class AttemptRow:
    at: str = ""
    status_code: str = ""
    error: str = ""


@dataclasses.dataclass
class DeliveryRow:
    id: str = ""
    event_type: str = ""
    status: str = ""
    attempt_count: int = 0
    created_at: str = ""
    attempts: list[AttemptRow] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class KeyRow:
    id: str = ""
    prefix: str = ""
    label: str = ""
    created_at: str = ""
    revoked_at: str = ""
    last_used_at: str = ""


# --- units of work, shaped like the services' own: `read`/`write` give the session and workspace


def _optional(value: Any) -> str | None:
    text = str(value or "").strip()
    return text or None


# What a number or an agent without a connection calls through.
UNLINKED = ("Simulator", "simulator")


def _platform(name: str, provider: str) -> str:
    """The platform's name beside a connection's, unless the connection is named just that."""
    platform = provider_name(provider)
    return "" if platform == name else platform


def number_row(number: Any, labels: dict[str, tuple[str, str]]) -> NumberRow:
    """A number for people; `labels` names the workspace's connections (connection_labels)."""
    public = agents.phone_number_public(number)
    name, provider = labels.get(public["connection_id"] or "", UNLINKED)
    return NumberRow(
        id=public["id"],
        phone=phones.for_people(public["phone_number"]),
        phone_e164=public["phone_number"],
        label=public["label"],
        provider=public["provider"],
        outbound_enabled=bool(public["outbound_enabled"]),
        connection_id=public["connection_id"] or "",
        connection=name,
        platform=_platform(name, provider),
    )


def load_agents(session: Session, *, workspace_id: str) -> tuple[list[AgentRow], list[NumberRow]]:
    """The workspace's agents, and its numbers (for the caller-number picker)."""
    labels = connection_labels(session, workspace_id=workspace_id)
    numbers = [
        number_row(n, labels) for n in agents.list_phone_numbers(session, workspace_id=workspace_id)
    ]
    by_id = {n.id: n for n in numbers}
    rows = []
    for agent in agents.list_agents(session, workspace_id=workspace_id):
        public = agents.agent_public(agent)
        number = by_id.get(public["phone_number_id"] or "")
        # Unlinked, it follows its caller number's connection (the simulator without one).
        linked = public["connection_id"] or (number.connection_id if number else "")
        name, provider = labels.get(linked, UNLINKED)
        rows.append(
            AgentRow(
                id=public["id"],
                name=public["name"],
                prompt=public["prompt"],
                first_message=public["first_message"],
                phone_number_id=public["phone_number_id"] or "",
                caller_number=number.phone if number else "",
                caller_outbound=bool(number and number.outbound_enabled),
                webhook_url=public["webhook_url"] or "",
                webhook_disabled_reason=agent.webhook_disabled_reason or "",
                opt_out_field=agent.opt_out_field or "",
                placeholders=list(public["placeholders"]),
                connection=name,
                platform=_platform(name, provider),
                on_twilio=provider == "twilio",
                stream_url=public["stream_url"] or "",
                external_agent_id=public["external_agent_id"] or "",
                platform_console=PLATFORM_CONSOLES.get(provider, ""),
            )
        )
    return rows, numbers


def save_agent(
    session: Session, *, workspace_id: str, agent_id: str, form: dict[str, Any]
) -> str | None:
    """Create (agent_id "") or update an agent; a new agent's signing secret, else None."""
    number = str(form.get("phone_number_id") or NO_NUMBER)
    fields = {
        "name": str(form.get("name") or ""),
        "prompt": str(form.get("prompt") or ""),
        "first_message": str(form.get("first_message") or ""),
        "phone_number_id": None if number == NO_NUMBER else number,
        "webhook_url": _optional(form.get("webhook_url")),
        "opt_out_field": _optional(form.get("opt_out_field")),
    }
    stream_url = str(form.get("stream_url") or "").strip()
    if agent_id:
        agents.update_agent(
            session,
            workspace_id=workspace_id,
            agent_id=agent_id,
            **fields,
            # "" clears it. An agent moved to a number of another connection follows it, as a
            # new agent takes its number's: on two connections it could not call at all.
            stream_url=stream_url,
            connection_id=_number_connection(session, workspace_id, fields["phone_number_id"]),
        )
        return None
    _agent, secret = agents.create_agent(
        session, workspace_id=workspace_id, **fields, stream_url=stream_url or None
    )
    return secret


def _number_connection(session: Session, workspace_id: str, number_id: str | None) -> str | None:
    """The connection of the chosen caller number; None (the agent's stays) without one."""
    if number_id is None:
        return None
    try:
        number = agents.get_phone_number(
            session, workspace_id=workspace_id, phone_number_id=number_id
        )
    except DomainError:
        return None  # update_agent names the missing number itself
    return number.connection_id


def load_deliveries(session: Session, *, workspace_id: str, agent_id: str) -> list[DeliveryRow]:
    """The agent's latest deliveries, newest first, each with every attempt."""
    page = webhooks.list_deliveries(
        session, workspace_id=workspace_id, agent_id=agent_id, limit=DELIVERIES_SHOWN
    )
    return [
        DeliveryRow(
            id=item["id"],
            event_type=item["event_type"],
            status=item["status"],
            attempt_count=item["attempt_count"],
            created_at=item["created_at"] or "",
            attempts=[
                AttemptRow(
                    at=str(attempt.get("at") or ""),
                    status_code=""
                    if attempt.get("status_code") is None
                    else str(attempt["status_code"]),
                    error=str(attempt.get("error") or ""),
                )
                for attempt in item["attempts"]
            ],
        )
        for item in page["webhook_deliveries"]
    ]


def load_numbers(session: Session, *, workspace_id: str) -> list[NumberRow]:
    labels = connection_labels(session, workspace_id=workspace_id)
    listed = agents.list_phone_numbers(session, workspace_id=workspace_id)
    return [number_row(n, labels) for n in listed]


def save_number(
    session: Session,
    *,
    workspace_id: str,
    number_id: str,
    form: dict[str, Any],
    outbound_enabled: bool,
) -> None:
    """Add a number (number_id "") or change a number's label and outbound switch."""
    label = str(form.get("label") or "").strip()
    if number_id:
        agents.update_phone_number(
            session,
            workspace_id=workspace_id,
            phone_number_id=number_id,
            label=label,
            outbound_enabled=outbound_enabled,
        )
    else:
        agents.create_phone_number(
            session,
            workspace_id=workspace_id,
            number=str(form.get("phone_number") or ""),
            label=label,
            outbound_enabled=outbound_enabled,
        )


def load_keys(session: Session, *, workspace_id: str) -> list[KeyRow]:
    """Keys by their display prefix: never the key, never its hash."""
    return [
        KeyRow(
            id=key.id,
            prefix=key.prefix,
            label=key.label,
            created_at=to_rfc3339(key.created_at) or "",
            revoked_at=to_rfc3339(key.revoked_at) or "",
            last_used_at=to_rfc3339(key.last_used_at) or "",
        )
        for key in auth.list_api_keys(session, workspace_id=workspace_id)
    ]


# --- /agents -------------------------------------------------------------------------------


class AgentsState(rx.State):
    rows: list[AgentRow] = []
    numbers: list[NumberRow] = []
    loaded: bool = False
    # The create / edit dialog. Text fields come with the submitted form; the select is held here.
    editor_open: bool = False
    editing_id: str = ""
    form_name: str = ""
    form_prompt: str = ""
    form_first_message: str = ""
    form_number: str = NO_NUMBER
    form_webhook_url: str = ""
    form_opt_out_field: str = ""
    form_stream_url: str = ""
    form_error: str = ""
    saving: bool = False
    # A signing secret, shown once: cleared when its dialog closes.
    secret: str = ""
    secret_title: str = ""
    # Rotation confirmation.
    rotate_id: str = ""
    rotate_name: str = ""
    rotating: bool = False
    # The deliveries panel.
    deliveries_open: bool = False
    deliveries_agent: str = ""
    deliveries: list[DeliveryRow] = []
    deliveries_loading: bool = False

    @rx.var
    def secret_open(self) -> bool:
        return bool(self.secret)

    @rx.var
    def confirm_rotate(self) -> bool:
        return bool(self.rotate_id)

    @rx.event
    @signed_in
    async def open(self):
        self.editor_open, self.deliveries_open, self.secret, self.rotate_id = False, False, "", ""
        await self._reload()

    async def _reload(self) -> None:
        self.rows, self.numbers = await read(self, load_agents)
        self.loaded = True

    def _fill_form(self, row: AgentRow) -> None:
        self.editing_id, self.form_name, self.form_prompt = row.id, row.name, row.prompt
        self.form_first_message, self.form_webhook_url = row.first_message, row.webhook_url
        self.form_opt_out_field, self.form_stream_url = row.opt_out_field, row.stream_url
        self.form_number = row.phone_number_id or NO_NUMBER
        self.form_error, self.editor_open = "", True

    @rx.event
    def new_agent(self) -> None:
        self._fill_form(AgentRow())

    @rx.event
    def edit_agent(self, row: dict) -> None:
        fields = {f.name for f in dataclasses.fields(AgentRow)}
        self._fill_form(AgentRow(**{k: v for k, v in row.items() if k in fields}))

    @rx.event
    def set_editor_open(self, value: bool) -> None:
        self.editor_open = bool(value)
        if not value:
            self.form_error = ""

    @rx.event
    def set_form_number(self, value: str) -> None:
        self.form_number = value or NO_NUMBER

    @rx.event
    @signed_in
    async def save(self, form: dict[str, Any]):
        self.saving, self.form_error = True, ""
        yield
        form = {**form, "phone_number_id": self.form_number}
        try:
            secret = await write(self, partial(save_agent, agent_id=self.editing_id, form=form))
        except DomainError as error:
            self.form_error = error_text(error)
            return
        finally:
            self.saving = False
        self.editor_open = False
        await self._reload()
        if secret:
            self.secret_title = "Agent created: its webhook signing secret"
            self.secret = secret
        else:
            yield rx.toast.success("Agent saved")

    @rx.event
    def close_secret(self, _open: bool = False) -> None:
        self.secret, self.secret_title = "", ""

    @rx.event
    def ask_rotate(self, agent_id: str, name: str) -> None:
        self.rotate_id, self.rotate_name = agent_id, name

    @rx.event
    def cancel_rotate(self, _open: bool = False) -> None:
        if not self.rotating:
            self.rotate_id, self.rotate_name = "", ""

    @rx.event
    @signed_in
    async def rotate(self):
        if not self.rotate_id:
            return
        self.rotating = True
        yield
        name = self.rotate_name
        rotate = partial(agents.rotate_webhook_secret, agent_id=self.rotate_id)
        try:
            secret = await write(self, rotate)
        except DomainError as error:
            yield rx.toast.error(error_text(error))
            return
        finally:
            self.rotating, self.rotate_id, self.rotate_name = False, "", ""
        self.secret_title = f"New signing secret for {name}"
        self.secret = secret

    @rx.event
    @signed_in
    async def show_deliveries(self, agent_id: str, name: str):
        self.deliveries_agent, self.deliveries = name, []
        self.deliveries_open, self.deliveries_loading = True, True
        yield
        try:
            self.deliveries = await read(self, partial(load_deliveries, agent_id=agent_id))
        except DomainError as error:
            self.deliveries_open = False
            yield rx.toast.error(error_text(error))
        finally:
            self.deliveries_loading = False

    @rx.event
    def set_deliveries_open(self, value: bool) -> None:
        self.deliveries_open = bool(value)
        if not value:
            self.deliveries = []


# --- /phone-numbers ------------------------------------------------------------------------


class NumbersState(rx.State):
    rows: list[NumberRow] = []
    loaded: bool = False
    editor_open: bool = False
    editing_id: str = ""  # "" while adding a number
    editing_phone: str = ""
    form_label: str = ""
    form_outbound: bool = True
    form_error: str = ""
    saving: bool = False

    @rx.event
    @signed_in
    async def open(self):
        self.editor_open = False
        await self._reload()

    async def _reload(self) -> None:
        self.rows = await read(self, load_numbers)
        self.loaded = True

    @rx.event
    def new_number(self) -> None:
        self.editing_id, self.editing_phone, self.form_label = "", "", ""
        self.form_outbound, self.form_error, self.editor_open = True, "", True

    @rx.event
    def edit_number(self, row: dict) -> None:
        self.editing_id, self.editing_phone = str(row.get("id", "")), str(row.get("phone", ""))
        self.form_label = str(row.get("label", ""))
        self.form_outbound = bool(row.get("outbound_enabled"))
        self.form_error, self.editor_open = "", True

    @rx.event
    def set_editor_open(self, value: bool) -> None:
        self.editor_open = bool(value)
        if not value:
            self.form_error = ""

    @rx.event
    def set_form_outbound(self, value: bool) -> None:
        self.form_outbound = bool(value)

    @rx.event
    @signed_in
    async def save(self, form: dict[str, Any]):
        self.saving, self.form_error = True, ""
        yield
        adding = not self.editing_id
        save = partial(
            save_number, number_id=self.editing_id, form=form, outbound_enabled=self.form_outbound
        )
        try:
            await write(self, save)
        except DomainError as error:
            self.form_error = error_text(error)
            return
        finally:
            self.saving = False
        self.editor_open = False
        await self._reload()
        yield rx.toast.success("Number added" if adding else "Number saved")


# --- /settings -----------------------------------------------------------------------------


class SettingsState(rx.State):
    keys: list[KeyRow] = []
    loaded: bool = False
    create_open: bool = False
    creating: bool = False
    create_error: str = ""
    # The new key, shown once: cleared when its dialog closes.
    new_key: str = ""
    revoke_id: str = ""
    revoke_prefix: str = ""
    revoking: bool = False

    @rx.var
    def confirm_revoke(self) -> bool:
        return bool(self.revoke_id)

    @rx.event
    @signed_in
    async def open(self):
        self.create_open, self.new_key, self.revoke_id = False, "", ""
        await self._reload()

    async def _reload(self) -> None:
        self.keys = await read(self, load_keys)
        self.loaded = True

    @rx.event
    def start_create(self) -> None:
        self.create_open, self.create_error, self.new_key = True, "", ""

    @rx.event
    def set_create_open(self, value: bool) -> None:
        """Closing the dialog also forgets the key it showed."""
        self.create_open = bool(value)
        if not value:
            self.new_key, self.create_error = "", ""

    @rx.event
    @signed_in
    async def create(self, form: dict[str, Any]):
        label = str(form.get("label") or "")
        self.creating, self.create_error = True, ""
        yield
        try:
            issued = await write(self, partial(auth.create_api_key, label=label))
        except DomainError as error:
            self.create_error = error_text(error)
            return
        finally:
            self.creating = False
        self.new_key = issued.api_key
        await self._reload()

    @rx.event
    def ask_revoke(self, key_id: str, prefix: str) -> None:
        self.revoke_id, self.revoke_prefix = key_id, prefix

    @rx.event
    def cancel_revoke(self, _open: bool = False) -> None:
        if not self.revoking:
            self.revoke_id, self.revoke_prefix = "", ""

    @rx.event
    @signed_in
    async def revoke(self):
        if not self.revoke_id:
            return
        self.revoking = True
        yield
        prefix = self.revoke_prefix
        revoke = partial(auth.revoke_api_key, key_id=self.revoke_id)
        try:
            await write(self, revoke)
        except DomainError as error:
            yield rx.toast.error(error_text(error))
            return
        finally:
            self.revoking, self.revoke_id, self.revoke_prefix = False, "", ""
        await self._reload()
        yield rx.toast.success(f"Key {prefix}… revoked")
