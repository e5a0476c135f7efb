"""/agents, /phone-numbers and /settings: the workspace's agents, caller numbers and API keys.

The database work is in plain functions (one unit of work each, run off the event loop with
`in_thread`) that only call `services/`; the states hold what one tab shows. Secrets and keys
are kept in a state only while their one-time dialog is open.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import reflex as rx

from batch_dashboard.clock import to_rfc3339
from batch_dashboard.db import session_scope
from batch_dashboard.services import agents, auth, phones, webhooks
from batch_dashboard.services.errors import DomainError
from batch_dashboard.ui.states.base import current_workspace, error_text, in_thread

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


@dataclasses.dataclass
class NumberRow:
    id: str = ""
    phone: str = ""  # formatted for people
    phone_e164: str = ""
    label: str = ""
    provider: str = ""
    outbound_enabled: bool = False


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


# --- units of work (plain functions: the states' handlers call these in a thread) ----------


def _optional(value: Any) -> str | None:
    text = str(value or "").strip()
    return text or None


def number_row(number: Any) -> NumberRow:
    public = agents.phone_number_public(number)
    return NumberRow(
        id=public["id"],
        phone=phones.for_people(public["phone_number"]),
        phone_e164=public["phone_number"],
        label=public["label"],
        provider=public["provider"],
        outbound_enabled=bool(public["outbound_enabled"]),
    )


def load_agents(workspace_id: str) -> tuple[list[AgentRow], list[NumberRow]]:
    """The workspace's agents, and its numbers (for the caller-number picker)."""
    with session_scope() as session:
        numbers = [
            number_row(n) for n in agents.list_phone_numbers(session, workspace_id=workspace_id)
        ]
        by_id = {n.id: n for n in numbers}
        rows = []
        for agent in agents.list_agents(session, workspace_id=workspace_id):
            public = agents.agent_public(agent)
            number = by_id.get(public["phone_number_id"] or "")
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
                )
            )
    return rows, numbers


def save_agent(workspace_id: str, agent_id: str, form: dict[str, Any]) -> str | None:
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
    with session_scope(write=True) as session:
        if agent_id:
            agents.update_agent(session, workspace_id=workspace_id, agent_id=agent_id, **fields)
            return None
        _agent, secret = agents.create_agent(session, workspace_id=workspace_id, **fields)
        return secret


def rotate_secret(workspace_id: str, agent_id: str) -> str:
    with session_scope(write=True) as session:
        return agents.rotate_webhook_secret(session, workspace_id=workspace_id, agent_id=agent_id)


def load_deliveries(workspace_id: str, agent_id: str) -> list[DeliveryRow]:
    """The agent's latest deliveries, newest first, each with every attempt."""
    with session_scope() as session:
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


def load_numbers(workspace_id: str) -> list[NumberRow]:
    with session_scope() as session:
        return [
            number_row(n) for n in agents.list_phone_numbers(session, workspace_id=workspace_id)
        ]


def save_number(
    workspace_id: str, number_id: str, form: dict[str, Any], outbound_enabled: bool
) -> None:
    """Add a number (number_id "") or change a number's label and outbound switch."""
    label = str(form.get("label") or "").strip()
    with session_scope(write=True) as session:
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


def load_keys(workspace_id: str) -> list[KeyRow]:
    """Keys by their display prefix: never the key, never its hash."""
    with session_scope() as session:
        return [
            KeyRow(
                id=key.id,
                prefix=key.prefix,
                label=key.label,
                created_at=to_rfc3339(key.created_at) or "",
                revoked_at=to_rfc3339(key.revoked_at) or "",
            )
            for key in auth.list_api_keys(session, workspace_id=workspace_id)
        ]


def create_key(workspace_id: str, label: str) -> str:
    with session_scope(write=True) as session:
        return auth.create_api_key(session, workspace_id=workspace_id, label=label).api_key


def revoke_key(workspace_id: str, key_id: str) -> None:
    with session_scope(write=True) as session:
        auth.revoke_api_key(session, workspace_id=workspace_id, key_id=key_id)


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
    async def open(self):
        workspace_id = await current_workspace(self)
        if not workspace_id:
            return
        self.editor_open, self.deliveries_open, self.secret, self.rotate_id = False, False, "", ""
        await self._reload(workspace_id)

    async def _reload(self, workspace_id: str) -> None:
        self.rows, self.numbers = await in_thread(load_agents, workspace_id)
        self.loaded = True

    def _fill_form(self, row: AgentRow) -> None:
        self.editing_id, self.form_name, self.form_prompt = row.id, row.name, row.prompt
        self.form_first_message, self.form_webhook_url = row.first_message, row.webhook_url
        self.form_opt_out_field = row.opt_out_field
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
    async def save(self, form: dict[str, Any]):
        workspace_id = await current_workspace(self)
        if not workspace_id:
            return
        self.saving, self.form_error = True, ""
        yield
        agent_id = self.editing_id
        form = {**form, "phone_number_id": self.form_number}
        try:
            secret = await in_thread(save_agent, workspace_id, agent_id, form)
        except DomainError as error:
            self.saving, self.form_error = False, error_text(error)
            return
        self.saving, self.editor_open = False, False
        await self._reload(workspace_id)
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
    async def rotate(self):
        workspace_id, agent_id = await current_workspace(self), self.rotate_id
        if not workspace_id or not agent_id:
            return
        self.rotating = True
        yield
        try:
            secret = await in_thread(rotate_secret, workspace_id, agent_id)
        except DomainError as error:
            self.rotating, self.rotate_id = False, ""
            yield rx.toast.error(error_text(error))
            return
        self.secret_title = f"New signing secret for {self.rotate_name}"
        self.rotating, self.rotate_id, self.rotate_name = False, "", ""
        self.secret = secret

    @rx.event
    async def show_deliveries(self, agent_id: str, name: str):
        workspace_id = await current_workspace(self)
        if not workspace_id:
            return
        self.deliveries_agent, self.deliveries = name, []
        self.deliveries_open, self.deliveries_loading = True, True
        yield
        try:
            self.deliveries = await in_thread(load_deliveries, workspace_id, agent_id)
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
    async def open(self):
        workspace_id = await current_workspace(self)
        if not workspace_id:
            return
        self.editor_open = False
        await self._reload(workspace_id)

    async def _reload(self, workspace_id: str) -> None:
        self.rows = await in_thread(load_numbers, workspace_id)
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
    async def save(self, form: dict[str, Any]):
        workspace_id = await current_workspace(self)
        if not workspace_id:
            return
        self.saving, self.form_error = True, ""
        yield
        number_id, adding = self.editing_id, not self.editing_id
        try:
            await in_thread(save_number, workspace_id, number_id, form, self.form_outbound)
        except DomainError as error:
            self.saving, self.form_error = False, error_text(error)
            return
        self.saving, self.editor_open = False, False
        await self._reload(workspace_id)
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
    async def open(self):
        workspace_id = await current_workspace(self)
        if not workspace_id:
            return
        self.create_open, self.new_key, self.revoke_id = False, "", ""
        await self._reload(workspace_id)

    async def _reload(self, workspace_id: str) -> None:
        self.keys = await in_thread(load_keys, workspace_id)
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
    async def create(self, form: dict[str, Any]):
        workspace_id = await current_workspace(self)
        if not workspace_id:
            return
        label = str(form.get("label") or "").strip()
        if len(label) > 200:
            self.create_error = "label: must be at most 200 characters"
            return
        self.creating, self.create_error = True, ""
        yield
        try:
            key = await in_thread(create_key, workspace_id, label)
        except DomainError as error:
            self.creating, self.create_error = False, error_text(error)
            return
        self.creating, self.new_key = False, key
        await self._reload(workspace_id)

    @rx.event
    def ask_revoke(self, key_id: str, prefix: str) -> None:
        self.revoke_id, self.revoke_prefix = key_id, prefix

    @rx.event
    def cancel_revoke(self, _open: bool = False) -> None:
        if not self.revoking:
            self.revoke_id, self.revoke_prefix = "", ""

    @rx.event
    async def revoke(self):
        workspace_id, key_id = await current_workspace(self), self.revoke_id
        if not workspace_id or not key_id:
            return
        self.revoking = True
        yield
        try:
            await in_thread(revoke_key, workspace_id, key_id)
        except DomainError as error:
            self.revoking, self.revoke_id = False, ""
            yield rx.toast.error(error_text(error))
            return
        prefix = self.revoke_prefix
        self.revoking, self.revoke_id, self.revoke_prefix = False, "", ""
        await self._reload(workspace_id)
        yield rx.toast.success(f"Key {prefix}… revoked")
