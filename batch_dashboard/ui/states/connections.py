"""Settings → Telephony: the workspace's connections (add, test, import numbers, delete).

Credentials are write-only here as in the API: the Add dialog's credential inputs are not
bound to the state, so what is typed reaches the handler once, in the submitted form, and goes
straight to the service; the state holds only what `connection_public` shows (hints of the
last four characters).
"""

from __future__ import annotations

import dataclasses
import re
from functools import partial
from typing import Any

import reflex as rx
from sqlmodel import Session

from batch_dashboard.services import connections
from batch_dashboard.services.errors import Conflict, DomainError, ValidationFailed
from batch_dashboard.ui.states.base import read, signed_in, write

PROVIDER_NAMES = {
    "twilio": "Twilio",
    "elevenlabs": "ElevenLabs",
    "vapi": "Vapi",
    "retell": "Retell",
    "simulator": "Simulator",
    "http": "HTTP voice runtime",
}
# What the Add dialog offers (the HTTP runtime is configured by BATCH_PROVIDER=http instead).
ADDABLE = ("twilio", "elevenlabs", "vapi", "retell", "simulator")
# The form's words for every field the service may name in a problem's `loc`.
FIELD_LABELS = {
    "provider": "Platform",
    "name": "Name",
    "base_url": "Base URL",
    "calls_per_second": "Calls per second",
    "credentials": "Credentials",
    "account_sid": "Account SID",
    "auth_token": "Auth token",
    "bot_secret": "Bot secret",
    "api_key": "API key",
    "webhook_secret": "Webhook secret",
    "token": "Token",
}
# The Add dialog's inputs that show their own problem underneath.
FORM_FIELDS = (
    "name",
    "base_url",
    "calls_per_second",
    "account_sid",
    "auth_token",
    "api_key",
    "webhook_secret",
)
# What to do at the platform with the events URL.
SETUP_LINES = {
    "twilio": "Nothing to paste: each call tells Twilio where to report. Make sure this address "
    "is reachable from the internet (BATCH_PUBLIC_URL).",
    "elevenlabs": "Paste it as the post-call webhook URL of your ElevenLabs workspace "
    "(Agents settings → Webhooks), with transcription and call initiation failure events; its "
    "HMAC secret is this connection's webhook secret.",
    "vapi": "Paste it as the Server URL of your Vapi assistants (or organisation), with a "
    "credential sending X-Vapi-Secret: this connection's webhook secret.",
    "retell": "Paste it as the webhook URL of your Retell agents (or account); Retell signs "
    "its events with the API key of this connection.",
    "simulator": "Nothing to set up: the simulator plays every call inside Batch calls.",
    # The HTTP runtime's events have one address for every connection (docs/providers.md).
    "http": "Not this address: your runtime posts its status events to "
    "/v1/provider-events/http, signed with BATCH_HTTP_PROVIDER_SECRET.",
}


@dataclasses.dataclass
class CredentialField:
    key: str = ""
    label: str = ""
    secret: bool = False
    placeholder: str = ""


# The credential inputs of each addable platform, in the order the platform's console shows them.
CREDENTIAL_FIELDS = {
    "twilio": (
        CredentialField("account_sid", "Account SID", False, "AC…"),
        CredentialField("auth_token", "Auth token", True, ""),
    ),
    "elevenlabs": (
        CredentialField("api_key", "API key", True, "sk_…"),
        CredentialField("webhook_secret", "Webhook secret", True, "wsec_…"),
    ),
    "vapi": (
        CredentialField("api_key", "API key", True, ""),
        CredentialField("webhook_secret", "Webhook secret", True, ""),
    ),
    "retell": (CredentialField("api_key", "API key", True, "key_…"),),
    "simulator": (),
}


@dataclasses.dataclass
class ConnectionRow:
    id: str = ""
    name: str = ""
    provider: str = ""
    provider_name: str = ""
    # "Auth token …f00d", one per stored credential: hints, never the credential.
    credentials: list[str] = dataclasses.field(default_factory=list)
    calls_per_second: str = ""
    base_url: str = ""
    # Where the platform reports calls ("" for the simulator, which has none).
    events_url: str = ""
    # The events URL cut after each "/", where a narrow cell may break it.
    events_url_parts: list[str] = dataclasses.field(default_factory=list)
    setup: str = ""
    can_import: bool = False
    can_import_agents: bool = False
    # What a batch may ask it to do when a machine answers, in words.
    voicemail: str = ""
    # What the last Test / Import numbers / Delete of this row said.
    note: str = ""
    note_ok: bool = True


def provider_name(provider: str) -> str:
    return PROVIDER_NAMES.get(provider, provider)


def _rate(value: float) -> str:
    return f"{value:g}" if value > 0 else "No limit"


VOICEMAIL_WORDS = {"hang_up": "hang up", "leave_message": "leave a message"}


def _voicemail_words(actions: list[str]) -> str:
    if not actions:
        return "Machines: the platform's own setting"
    return "Machines: " + " or ".join(VOICEMAIL_WORDS.get(a, a) for a in actions)


def connection_row(public: dict[str, Any]) -> ConnectionRow:
    return ConnectionRow(
        id=public["id"],
        name=public["name"],
        provider=public["provider"],
        provider_name=provider_name(public["provider"]),
        credentials=[
            f"{FIELD_LABELS.get(key, key)} {hint}" for key, hint in public["credentials"].items()
        ],
        calls_per_second=_rate(public["calls_per_second"]),
        base_url=public["base_url"] or "",
        events_url=public["events_url"] or "",
        events_url_parts=re.findall(r"[^/]*/+|[^/]+$", public["events_url"] or ""),
        setup=SETUP_LINES.get(public["provider"], ""),
        can_import=bool(public["supports"]["import_numbers"]),
        can_import_agents=bool(public["supports"]["import_agents"]),
        voicemail=_voicemail_words(public["supports"]["voicemail"]),
    )


# --- units of work, shaped like the services' own ------------------------------------------


def load_connections(session: Session, *, workspace_id: str) -> list[ConnectionRow]:
    listed = connections.list_connections(session, workspace_id=workspace_id)
    return [connection_row(item) for item in listed["connections"]]


def connection_labels(session: Session, *, workspace_id: str) -> dict[str, tuple[str, str]]:
    """Each connection's (name, provider), by id: how numbers and agents name theirs."""
    listed = connections.list_connections(session, workspace_id=workspace_id)
    return {item["id"]: (item["name"], item["provider"]) for item in listed["connections"]}


def _number(text: str) -> float | str:
    """A rate typed in the form; text that is no number goes to the service as it is, for its
    own message."""
    try:
        return float(text)
    except ValueError:
        return text


def connection_fields(provider: str, form: dict[str, Any]) -> dict[str, Any]:
    """The Add dialog's form as the service's `fields` (the API's body)."""
    fields: dict[str, Any] = {"provider": provider, "name": str(form.get("name") or "")}
    if provider not in CREDENTIAL_FIELDS:
        return fields
    if CREDENTIAL_FIELDS[provider]:
        # An empty input is a credential not given (the service then says it is required).
        given = {f.key: str(form.get(f.key) or "") for f in CREDENTIAL_FIELDS[provider]}
        fields["credentials"] = {key: value for key, value in given.items() if value.strip()}
    base_url = str(form.get("base_url") or "").strip()
    if base_url:
        fields["base_url"] = base_url
    rate = str(form.get("calls_per_second") or "").strip()
    if rate:
        fields["calls_per_second"] = _number(rate)
    return fields


def add_connection(
    session: Session, *, workspace_id: str, provider: str, form: dict[str, Any]
) -> str:
    """Create the connection; its name."""
    fields = connection_fields(provider, form)
    made = connections.create_connection(session, workspace_id=workspace_id, fields=fields)
    return made["name"]


def field_errors(error: ValidationFailed) -> tuple[dict[str, str], str]:
    """The service's problems in the form's words, by the field they belong to (the first
    of each), and those of no field of the form."""
    by_field: dict[str, str] = {}
    others: list[str] = []
    for item in error.details or []:
        loc = [str(part) for part in item["loc"]]
        key = loc[1] if loc[:1] == ["credentials"] and len(loc) > 1 else loc[0] if loc else ""
        words = f"{FIELD_LABELS.get(key, key.replace('_', ' ').capitalize())} {item['message']}."
        if key in FORM_FIELDS:
            by_field.setdefault(key, words)
        else:
            others.append(words)
    return by_field, " ".join(others)


def in_words(error: DomainError) -> str:
    """What a row's Test, Import numbers or Delete refused, without API paths."""
    messages = [item["message"] for item in (error.details or [])[:3]] or [error.message]
    return " ".join(text[:1].upper() + text[1:].rstrip(".") + "." for text in messages)


def _count(number: int, word: str) -> str:
    return f"{number} {word}{'' if number == 1 else 's'}"


class ConnectionsState(rx.State):
    rows: list[ConnectionRow] = []
    loaded: bool = False
    # The row whose Test or Import numbers is running.
    busy_id: str = ""
    # The Add dialog. Only the platform is held here: the other inputs come with the submitted
    # form (the credentials never return to the browser).
    add_open: bool = False
    form_provider: str = ADDABLE[0]
    form_errors: dict[str, str] = {}
    form_error: str = ""
    adding: bool = False
    # Delete confirmation.
    delete_id: str = ""
    delete_name: str = ""
    deleting: bool = False

    @rx.var
    def confirm_delete(self) -> bool:
        return bool(self.delete_id)

    @rx.event
    @signed_in
    async def open(self):
        self.add_open, self.delete_id, self.busy_id = False, "", ""
        await self._reload()

    async def _reload(self) -> None:
        notes = {row.id: (row.note, row.note_ok) for row in self.rows}
        rows = await read(self, load_connections)
        for row in rows:
            row.note, row.note_ok = notes.get(row.id, ("", True))
        self.rows, self.loaded = rows, True

    def _set_note(self, connection_id: str, note: str, ok: bool) -> None:
        self.rows = [
            dataclasses.replace(row, note=note, note_ok=ok) if row.id == connection_id else row
            for row in self.rows
        ]

    # --- add -------------------------------------------------------------------------------

    @rx.event
    def start_add(self) -> None:
        self.form_provider, self.form_errors, self.form_error = ADDABLE[0], {}, ""
        self.add_open = True

    @rx.event
    def set_add_open(self, value: bool) -> None:
        self.add_open = bool(value)
        if not value:
            self.form_errors, self.form_error = {}, ""

    @rx.event
    def set_form_provider(self, value: str) -> None:
        self.form_provider = value if value in ADDABLE else ADDABLE[0]
        self.form_errors, self.form_error = {}, ""

    @rx.event
    @signed_in
    async def add(self, form: dict[str, Any]):
        self.adding, self.form_errors, self.form_error = True, {}, ""
        yield
        add = partial(add_connection, provider=self.form_provider, form=form)
        try:
            name = await write(self, add)
        except ValidationFailed as error:
            self.form_errors, self.form_error = field_errors(error)
            return
        except DomainError as error:
            self.form_error = in_words(error)
            return
        finally:
            self.adding = False
        self.add_open = False
        await self._reload()
        yield rx.toast.success(f"{name} added")

    # --- at the platform -------------------------------------------------------------------

    @rx.event
    @signed_in
    async def test(self, connection_id: str):
        self.busy_id = connection_id
        yield
        try:
            await read(self, partial(connections.test_connection, connection_id=connection_id))
        except DomainError as error:
            self._set_note(connection_id, in_words(error), False)
            return
        finally:
            self.busy_id = ""
        self._set_note(connection_id, "Connected", True)

    @rx.event
    @signed_in
    async def import_numbers(self, connection_id: str):
        self.busy_id = connection_id
        yield
        run = partial(connections.import_numbers, connection_id=connection_id)
        try:
            result = await write(self, run)
        except DomainError as error:
            self._set_note(connection_id, in_words(error), False)
            return
        finally:
            self.busy_id = ""
        added = len(result["added"])
        self._set_note(
            connection_id,
            f"Added {_count(added, 'number')} ({result['already_here']} already here)",
            True,
        )

    @rx.event
    @signed_in
    async def import_agents(self, connection_id: str):
        self.busy_id = connection_id
        yield
        run = partial(connections.import_agents, connection_id=connection_id)
        try:
            result = await write(self, run)
        except DomainError as error:
            self._set_note(connection_id, in_words(error), False)
            return
        finally:
            self.busy_id = ""
        self._set_note(
            connection_id,
            f"Added {_count(len(result['added']), 'agent')}, refreshed {len(result['refreshed'])}",
            True,
        )

    # --- delete ----------------------------------------------------------------------------

    @rx.event
    def ask_delete(self, connection_id: str, name: str) -> None:
        self.delete_id, self.delete_name = connection_id, name

    @rx.event
    def cancel_delete(self, _open: bool = False) -> None:
        if not self.deleting:
            self.delete_id, self.delete_name = "", ""

    @rx.event
    @signed_in
    async def delete(self):
        if not self.delete_id:
            return
        self.deleting = True
        yield
        connection_id, name = self.delete_id, self.delete_name
        remove = partial(connections.delete_connection, connection_id=connection_id)
        try:
            await write(self, remove)
        except Conflict as error:
            # "…is used by 2 phone number(s) and 1 agent(s): move or delete them first"
            words = error.message.replace(f"connection {connection_id}", name)
            self._set_note(connection_id, words.rstrip(".") + ".", False)
            return
        except DomainError as error:
            yield rx.toast.error(in_words(error))
            return
        finally:
            self.deleting, self.delete_id, self.delete_name = False, "", ""
        await self._reload()
        yield rx.toast.success(f"{name} deleted")
