"""Settings → Workspace and Members: the workspace's time zone, its users (added with an
initial password shown once, removed), and the signed-in user's own password."""

from __future__ import annotations

import dataclasses
from functools import partial
from typing import Any

import reflex as rx
from sqlmodel import Session

from batch_dashboard.clock import to_rfc3339
from batch_dashboard.services import auth
from batch_dashboard.services.errors import DomainError
from batch_dashboard.ui.states.base import (
    AuthState,
    error_text,
    read,
    signed_in,
    workspace_of,
    write,
    write_as_user,
)


@dataclasses.dataclass
class MemberRow:
    id: str = ""
    email: str = ""
    created_at: str = ""


def load_members(session: Session, *, workspace_id: str) -> list[MemberRow]:
    return [
        MemberRow(id=user.id, email=user.email, created_at=to_rfc3339(user.created_at) or "")
        for user in auth.list_users(session, workspace_id=workspace_id)
    ]


def _add_member(session: Session, *, workspace_id: str, email: str) -> tuple[str, str]:
    user, password = auth.add_user(session, workspace_id=workspace_id, email=email)
    return user.email, password


def _field_error(error: DomainError) -> str:
    """A form's error without the API's field path: the form shows it next to the field."""
    details = error.details or []
    return details[0]["message"] if len(details) == 1 else error_text(error)


class MembersState(rx.State):
    members: list[MemberRow] = []
    loaded: bool = False
    # Add a member: the dialog, its error, and the initial password shown once.
    add_open: bool = False
    adding: bool = False
    add_error: str = ""
    new_email: str = ""
    new_password: str = ""
    # Remove a member: who is asked about.
    remove_id: str = ""
    remove_email: str = ""
    removing: bool = False
    # Your password: the errors next to the fields.
    password_errors: dict[str, str] = {}
    saving_password: bool = False
    # The workspace's time zone as chosen in the form.
    zone_choice: str = ""
    saving_zone: bool = False

    @rx.var
    def confirm_remove(self) -> bool:
        return bool(self.remove_id)

    @rx.event
    @signed_in
    async def open(self):
        self.add_open, self.new_password, self.remove_id = False, "", ""
        self.password_errors = {}
        self.members = await read(self, load_members)
        self.zone_choice = await read(self, auth.time_zone_of) or ""
        self.loaded = True

    # --- members ---------------------------------------------------------------------------

    @rx.event
    def start_add(self) -> None:
        self.add_open, self.add_error, self.new_password, self.new_email = True, "", "", ""

    @rx.event
    def set_add_open(self, value: bool) -> None:
        """Closing the dialog also forgets the password it showed."""
        self.add_open = bool(value)
        if not value:
            self.new_password, self.new_email, self.add_error = "", "", ""

    @rx.event
    @signed_in
    async def add(self, form: dict[str, Any]):
        email = str(form.get("email") or "")
        self.adding, self.add_error = True, ""
        yield
        try:
            self.new_email, self.new_password = await write(self, partial(_add_member, email=email))
        except DomainError as error:
            self.add_error = _field_error(error)
            return
        finally:
            self.adding = False
        self.members = await read(self, load_members)

    @rx.event
    def ask_remove(self, user_id: str, email: str) -> None:
        self.remove_id, self.remove_email = user_id, email

    @rx.event
    def cancel_remove(self, _open: bool = False) -> None:
        if not self.removing:
            self.remove_id, self.remove_email = "", ""

    @rx.event
    @signed_in
    async def remove(self):
        await workspace_of(self)  # a tab whose session ended goes to sign in, whatever it asks
        if not self.remove_id:
            return
        self.removing = True
        yield
        email = self.remove_email
        try:
            await write_as_user(
                self,
                lambda session, *, workspace_id, user_id, target=self.remove_id: auth.remove_user(
                    session, workspace_id=workspace_id, user_id=target, acting_user_id=user_id
                ),
            )
        except DomainError as error:
            yield rx.toast.error(error_text(error))
            return
        finally:
            self.removing, self.remove_id, self.remove_email = False, "", ""
        self.members = await read(self, load_members)
        yield rx.toast.success(f"{email} can no longer sign in")

    # --- your password ---------------------------------------------------------------------

    @rx.event
    @signed_in
    async def change_password(self, form: dict[str, Any]):
        current = str(form.get("current_password") or "")
        new = str(form.get("new_password") or "")
        again = str(form.get("repeat_password") or "")
        if new != again:
            self.password_errors = {"repeat_password": "Does not match the new password."}
            return
        self.saving_password, self.password_errors = True, {}
        yield
        token = (await self.get_state(AuthState)).session_token
        try:
            await write_as_user(
                self, partial(auth.change_password, current=current, new=new, keep_token=token)
            )
        except DomainError as error:
            self.password_errors = {
                str(d["loc"][0]): d["message"].capitalize() + "."
                for d in error.details or []
                if d["loc"]
            } or {"new_password": error_text(error)}
            return
        finally:
            self.saving_password = False
        yield rx.set_value("current-password", "")
        yield rx.set_value("new-password", "")
        yield rx.set_value("repeat-password", "")
        yield rx.toast.success("Password changed; your other sessions were signed out")

    # --- time zone -------------------------------------------------------------------------

    @rx.event
    def set_zone_choice(self, value: str) -> None:
        self.zone_choice = value

    @rx.event
    @signed_in
    async def save_zone(self):
        self.saving_zone = True
        yield
        try:
            zone = await write(self, partial(auth.set_time_zone, zone=self.zone_choice))
        except DomainError as error:
            yield rx.toast.error(_field_error(error))
            return
        finally:
            self.saving_zone = False
        (await self.get_state(AuthState)).timezone = zone or ""
        yield rx.toast.success(f"Times are shown in {zone}")
