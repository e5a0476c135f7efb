"""/batches/new: the form, the CSV (or hand-made) recipients and their preview.

The preview is made by the very functions the API's upload uses (recipients.checked_csv,
from_json, validate), and only one page of it is ever sent to the browser.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from functools import partial
from typing import Any

import reflex as rx

from batch_dashboard.clock import system_clock, to_utc
from batch_dashboard.db import session_scope
from batch_dashboard.services import agents, auth, batches, phones, recipients, windows
from batch_dashboard.services.errors import DomainError, Problems, ValidationFailed
from batch_dashboard.services.recipients import RecipientRows
from batch_dashboard.settings import get_settings
from batch_dashboard.ui.states.base import AuthState, call, error_text, in_thread, signed_in

PREVIEW_PAGE = 50
PROBLEMS_SHOWN = 200
WEEKDAYS = windows.DAYS
SCHEDULE_DAYS_AHEAD = batches.MAX_SCHEDULE_AHEAD.days
# The form asks for seconds where the service takes milliseconds.
RINGING_SECONDS = tuple(ms // 1000 for ms in batches.RINGING_TIMEOUT_RANGE)
# How the form names the parts of a retry policy and a calling window.
PART_LABELS = {
    "max_attempts": "Attempts per recipient",
    "retry_on": "Try again on",
    "delay_seconds": "Try again after, in seconds",
    "start": "From",
    "end": "Until",
    "days": "Days",
    "timezone": "Time zone",
    "action": "When a machine answers",
    "message": "Message",
}
# "When a machine answers": the form's choice when the batch asks nothing (no `voicemail`).
NO_VOICEMAIL = "none"


@dataclasses.dataclass
class AgentOption:
    id: str = ""
    name: str = ""
    usable: bool = False
    why_not: str = ""
    placeholders: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class NumberOption:
    id: str = ""
    label: str = ""


@dataclasses.dataclass
class PreviewRow:
    row: str = ""
    phone: str = ""
    variables: str = ""
    problem: str = ""


@dataclasses.dataclass
class ProblemRow:
    row: str = ""
    column: str = ""
    reason: str = ""


def _options(workspace_id: str) -> tuple[list[AgentOption], list[NumberOption]]:
    with session_scope() as session:
        numbers = agents.list_phone_numbers(session, workspace_id=workspace_id)
        by_id = {n.id: n for n in numbers}
        options = []
        for agent in agents.list_agents(session, workspace_id=workspace_id):
            number = by_id.get(agent.phone_number_id or "")
            problem = batches.caller_problem(agent, number)
            why = ""
            if problem is batches.CallerProblem.inbound_only and number is not None:
                why = f"{phones.for_people(number.phone_number)} cannot call out"
            elif problem is not None:
                why = "No caller number bound"
            options.append(
                AgentOption(agent.id, agent.name, not why, why, agents.agent_placeholders(agent))
            )
    outbound = [
        NumberOption(
            n.id, f"{phones.for_people(n.phone_number)}" + (f" · {n.label}" if n.label else "")
        )
        for n in numbers
        if n.outbound_enabled
    ]
    return options, outbound


def _row_label(rows: RecipientRows, index: int) -> str:
    return f"Row {rows.lines[index]}" if rows.source == "csv" else f"Row {index + 1}"


def _problem_parts(rows: RecipientRows, loc: list[Any]) -> tuple[str, str]:
    if loc[:1] == ["csv_file"] and len(loc) >= 3:
        return f"Row {loc[2]}", str(loc[3]) if len(loc) > 3 else ""
    if loc[:1] == ["recipients"] and len(loc) >= 2 and isinstance(loc[1], int):
        return f"Row {loc[1] + 1}", str(loc[-1]) if len(loc) > 2 else ""
    return "File", str(loc[-1]) if loc else ""


def local_to_utc(value: str, zone: str) -> datetime:
    """A `datetime-local` value read in the viewer's time zone."""
    return to_utc(datetime.fromisoformat(value).replace(tzinfo=auth.zone_info(zone)))


def _whole(text: str, unit: int = 1) -> int | str:
    """A number typed in the form, in the service's unit; text that is no whole number goes
    to the service as it is, for its own message."""
    text = text.strip()
    return int(text) * unit if text.isdecimal() and len(text) < 12 else text


def _field_errors(problems: Problems) -> dict[str, str]:
    """The parser's problems next to their fields: the first of each, in the form's words
    where the form asks in other units or names."""
    errors: dict[str, str] = {}
    for item in problems.items:
        field, *part = item["loc"]
        message = item["message"]
        if field == "ringing_timeout_ms":
            message = f"Between {RINGING_SECONDS[0]} and {RINGING_SECONDS[1]} seconds."
        elif part:
            message = f"{PART_LABELS.get(str(part[0]), part[0])}: {message}"
        errors.setdefault(str(field), message)
    return errors


class UploadedRecipients(rx.State):
    """The parsed CSV of the New batch page, in a state of its own: with Redis, Reflex loads and
    saves a state with its children as a whole, and the form's every keystroke must not carry
    50,000 parsed rows there and back."""

    _rows: RecipientRows | None = None


class NewBatchState(rx.State):
    # Which rows typed by hand were sent, by their position on the page (blank rows are not).
    _kept: list[int] = []

    name: str = ""
    agent_id: str = ""
    caller_id: str = "agent"
    schedule_local: str = ""
    ringing_seconds: str = "30"
    max_concurrency: str = ""
    # Calling rules (optional).
    retry_attempts: str = "1"
    retry_on: list[str] = ["no_answer", "busy"]
    retry_delay_minutes: str = "30"
    window_on: bool = False
    window_start: str = "09:00"
    window_end: str = "20:00"
    window_days: list[str] = ["mon", "tue", "wed", "thu", "fri"]
    window_zone: str = "recipient"
    # What to do when a machine answers (the batch's `voicemail`).
    voicemail_action: str = NO_VOICEMAIL
    voicemail_message: str = ""
    mode: str = "csv"
    agent_options: list[AgentOption] = []
    number_options: list[NumberOption] = []
    # Preview of the recipients (one page), with counts and the problems found.
    file_name: str = ""
    parsing: bool = False
    total_rows: int = 0
    invalid_count: int = 0
    preview: list[PreviewRow] = []
    preview_page: int = 0
    problems: list[ProblemRow] = []
    more_problems: int = 0
    # Rows typed by hand: phone plus the agent's placeholders.
    manual_rows: list[dict[str, str]] = [{"phone": ""}]
    # What is wrong with each row typed by hand ("" for none), in step with manual_rows, and
    # the cells to mark ("<row index>:<column>").
    manual_errors: list[str] = [""]
    manual_bad_cells: list[str] = []
    field_errors: dict[str, str] = {}
    form_error: str = ""
    submitting: bool = False

    @rx.var
    def placeholders(self) -> list[str]:
        for option in self.agent_options:
            if option.id == self.agent_id:
                return option.placeholders
        return []

    @rx.var
    def valid_count(self) -> int:
        return self.total_rows - self.invalid_count

    @rx.var
    def preview_pages(self) -> int:
        return max(1, -(-self.total_rows // PREVIEW_PAGE))

    @rx.var
    def submit_label(self) -> str:
        return "Schedule batch" if self.schedule_local else "Start batch"

    @rx.event
    @signed_in
    async def open(self):
        # A fresh form first, then the options: what is typed while they load (the page is on
        # screen before this runs) comes after the reset and is kept.
        self.name, self.caller_id, self.schedule_local, self.ringing_seconds = "", "agent", "", "30"
        self.max_concurrency, self.agent_id = "", ""
        self.voicemail_action, self.voicemail_message = NO_VOICEMAIL, ""
        self.field_errors, self.form_error, self.mode = {}, "", "csv"
        await self._clear_recipients()
        yield
        self.agent_options, self.number_options = await call(self, _options)
        usable = [option.id for option in self.agent_options if option.usable]
        if self.agent_id not in usable:
            self.agent_id = usable[0] if usable else ""
            self._fit_rows()

    async def _uploaded(self) -> UploadedRecipients:
        return await self.get_state(UploadedRecipients)

    async def _clear_recipients(self) -> None:
        (await self._uploaded())._rows = None
        self.file_name, self.total_rows, self.invalid_count = "", 0, 0
        self.preview, self.problems, self.more_problems, self.preview_page = [], [], 0, 0
        self.manual_rows = [self._blank_row()]
        self.manual_errors, self.manual_bad_cells = [""], []

    def _blank_row(self) -> dict[str, str]:
        return {"phone": "", **dict.fromkeys(self.placeholders, "")}

    @rx.event
    def set_name(self, value: str) -> None:
        self.name = value

    @rx.event
    def set_agent(self, value: str) -> None:
        self.agent_id = value
        self._fit_rows()

    def _fit_rows(self) -> None:
        """Rows typed by hand take the chosen agent's placeholders, keeping what was typed."""
        self.manual_rows = [
            {"phone": row.get("phone", ""), **{p: row.get(p, "") for p in self.placeholders}}
            for row in self.manual_rows
        ]

    @rx.event
    def set_caller_id(self, value: str) -> None:
        self.caller_id = value

    @rx.event
    def set_schedule_local(self, value: str) -> None:
        self.schedule_local = value

    @rx.event
    def set_ringing_seconds(self, value: str) -> None:
        self.ringing_seconds = value

    @rx.event
    def set_max_concurrency(self, value: str) -> None:
        self.max_concurrency = value

    @rx.event
    def set_retry_attempts(self, value: str) -> None:
        self.retry_attempts = value

    @rx.event
    def set_retry_delay_minutes(self, value: str) -> None:
        self.retry_delay_minutes = value

    @rx.event
    def toggle_retry_on(self, reason: str) -> None:
        self.retry_on = (
            [r for r in self.retry_on if r != reason]
            if reason in self.retry_on
            else [*self.retry_on, reason]
        )

    @rx.event
    def set_window_on(self, value: bool) -> None:
        self.window_on = value

    @rx.event
    def set_window_start(self, value: str) -> None:
        self.window_start = value

    @rx.event
    def set_window_end(self, value: str) -> None:
        self.window_end = value

    @rx.event
    def set_window_zone(self, value: str) -> None:
        self.window_zone = value

    @rx.event
    def set_voicemail_action(self, value: str) -> None:
        self.voicemail_action = value

    @rx.event
    def set_voicemail_message(self, value: str) -> None:
        self.voicemail_message = value

    @rx.event
    def toggle_window_day(self, day: str) -> None:
        self.window_days = (
            [d for d in self.window_days if d != day]
            if day in self.window_days
            else [*self.window_days, day]
        )

    @rx.event
    async def set_mode(self, value: str | list[str]) -> None:
        self.mode = "manual" if value == "manual" else "csv"
        await self._clear_recipients()

    @rx.event
    def download_sample(self):
        columns = self.placeholders if self.agent_id else None
        return rx.download(data=agents.sample_csv(columns), filename="sample.csv")

    # --- CSV -------------------------------------------------------------------------------

    @rx.event
    async def handle_upload(self, files: list[rx.UploadFile]):
        if not files:
            return
        upload = files[0]
        self.parsing, self.form_error = True, ""
        await self._clear_recipients()
        self.file_name = upload.filename or "recipients.csv"
        yield
        settings = get_settings()

        def parse() -> RecipientRows:
            return recipients.checked_csv(
                upload.file,
                max_recipients=settings.max_recipients_per_batch,
                max_bytes=settings.max_upload_bytes,
                parallel_from=settings.parallel_validation_threshold,
            )

        try:
            rows = await in_thread(parse)
        except DomainError as error:
            self.parsing, self.file_name = False, ""
            self.form_error = error_text(error)
            return
        (await self._uploaded())._rows = rows
        self._refresh_preview(rows)
        self.parsing = False

    def _refresh_preview(self, rows: RecipientRows | None) -> None:
        if rows is None:
            return
        self.total_rows = len(rows)
        self.invalid_count = len(rows.invalid_rows)
        by_row: dict[str, list[str]] = {}
        problems = []
        for item in rows.problems.items:
            row, column = _problem_parts(rows, item["loc"])
            by_row.setdefault(row, []).append(
                f"{column}: {item['message']}" if column else item["message"]
            )
            problems.append(ProblemRow(row, column, item["message"]))
        self.problems = problems[:PROBLEMS_SHOWN]
        self.more_problems = max(0, len(problems) - PROBLEMS_SHOWN)
        self.preview_page = min(self.preview_page, max(0, -(-len(rows) // PREVIEW_PAGE) - 1))
        start = self.preview_page * PREVIEW_PAGE
        page = []
        for index in range(start, min(start + PREVIEW_PAGE, len(rows))):
            label = _row_label(rows, index)
            page.append(
                PreviewRow(
                    row=label,
                    phone=phones.for_people(rows.phones[index])
                    if rows.phones[index]
                    else rows.as_written.get(index, ""),
                    variables=", ".join(f"{k}: {v}" for k, v in rows.variables[index].items()),
                    problem="; ".join(by_row.get(label, [])),
                )
            )
        self.preview = page

    @rx.event
    async def turn_preview_page(self, delta: int) -> None:
        self.preview_page = min(max(0, self.preview_page + delta), self.preview_pages - 1)
        self._refresh_preview((await self._uploaded())._rows)

    @rx.event
    async def drop_invalid_rows(self):
        uploaded = await self._uploaded()
        if uploaded._rows is None:
            return None
        dropped = len(uploaded._rows.invalid_rows)
        # Up to 50,000 rows: off the event loop, which the other tabs share.
        uploaded._rows = await in_thread(
            lambda rows: recipients.validate(recipients.drop_invalid(rows)), uploaded._rows
        )
        self.preview_page = 0
        self._refresh_preview(uploaded._rows)
        return rx.toast.success(f"Dropped {dropped} invalid row{'s' if dropped != 1 else ''}")

    @rx.event
    async def clear_file(self) -> None:
        await self._clear_recipients()

    # --- rows by hand ----------------------------------------------------------------------

    @rx.event
    def add_row(self) -> None:
        self.manual_rows = [*self.manual_rows, self._blank_row()]
        self.manual_errors = [*self.manual_errors, ""]

    @rx.event
    def remove_row(self, index: int) -> None:
        rows = [row for i, row in enumerate(self.manual_rows) if i != index]
        self.manual_rows = rows or [self._blank_row()]
        # Marks are by position: after a removal they would point at the wrong rows.
        self.manual_errors, self.manual_bad_cells = [""] * len(self.manual_rows), []

    @rx.event
    def set_cell(self, index: int, column: str, value: str) -> None:
        rows = [dict(row) for row in self.manual_rows]
        if 0 <= index < len(rows):
            rows[index][column] = value
        self.manual_rows = rows
        cell = f"{index}:{column}"
        if cell in self.manual_bad_cells:
            self.manual_bad_cells = [c for c in self.manual_bad_cells if c != cell]

    def _manual_recipients(self) -> tuple[RecipientRows, list[int]]:
        """The rows typed by hand (blank ones skipped), checked as the API checks them, and the
        position on the page of each."""
        kept = [i for i, row in enumerate(self.manual_rows) if any(v.strip() for v in row.values())]
        items = [
            {
                **{k: v for k, v in self.manual_rows[i].items() if k != "phone"},
                "phone": self.manual_rows[i].get("phone", ""),
            }
            for i in kept
        ]
        rows = recipients.from_json(items, max_recipients=get_settings().max_recipients_per_batch)
        return recipients.validate(rows), kept

    def _mark_manual(self, problems: list[dict[str, Any]], kept: list[int]) -> str:
        """Each problem on the row and cell people see (rows counted from 1, by the page's
        own order); returns the form's message."""
        errors = [""] * len(self.manual_rows)
        cells: list[str] = []
        lines: list[str] = []
        for item in problems:
            loc, message = item["loc"], item["message"]
            if loc[:1] != ["recipients"] or len(loc) < 2 or not isinstance(loc[1], int):
                lines.append(message)
                continue
            position = kept[loc[1]] if loc[1] < len(kept) else loc[1]
            column = "phone" if len(loc) < 3 or loc[2] in ("phone", "phone_number") else loc[-1]
            typed = (
                self.manual_rows[position].get(str(column), "") if position < len(errors) else ""
            )
            said = f'{column} "{typed}" {message}' if typed else f"{column} {message}"
            if position < len(errors):
                errors[position] = f"{errors[position]}; {said}" if errors[position] else said
            cells.append(f"{position}:{column}")
            lines.append(f"Row {position + 1}: {said}")
        self.manual_errors, self.manual_bad_cells = errors, cells
        shown = "; ".join(lines[:3])
        more = f" (and {len(lines) - 3} more)" if len(lines) > 3 else ""
        return f"Fix the marked rows: {shown}{more}"

    def _unfilled_placeholders(self, kept: list[int]) -> list[dict[str, Any]]:
        """A row typed by hand with an empty variable the agent's prompt uses would be called
        with a hole in what the agent says: flagged before anything starts."""
        return [
            {
                "loc": ["recipients", k, "dynamic_vars", name],
                "message": f"is empty; the agent says {{{{{name}}}}}",
            }
            for k, i in enumerate(kept)
            for name in self.placeholders
            if not self.manual_rows[i].get(name, "").strip()
        ]

    # --- submit ----------------------------------------------------------------------------

    def _retry_policy(self) -> dict[str, Any] | str:
        attempts = self.retry_attempts.strip()
        if attempts in ("", "1"):
            return ""
        return {
            "max_attempts": _whole(attempts),
            "retry_on": list(self.retry_on),
            "delay_seconds": _whole(self.retry_delay_minutes, 60),
        }

    def _calling_window(self) -> dict[str, Any] | str:
        if not self.window_on:
            return ""
        return {
            "start": self.window_start,
            "end": self.window_end,
            "days": [day for day in WEEKDAYS if day in self.window_days],
            "timezone": self.window_zone.strip() or "recipient",
        }

    def _voicemail(self) -> dict[str, Any] | str:
        if self.voicemail_action == NO_VOICEMAIL:
            return ""
        if self.voicemail_action == "leave_message":
            return {"action": "leave_message", "message": self.voicemail_message}
        return {"action": self.voicemail_action}

    def _fields(self, zone: str) -> dict[str, Any] | None:
        """The form as the API's form fields, checked by the service's own parser; None, with
        the problems next to their fields, when it refuses them."""
        fields: dict[str, Any] = {
            "name": self.name,
            "agent_id": self.agent_id,
            "phone_number_id": "" if self.caller_id == "agent" else self.caller_id,
            "ringing_timeout_ms": _whole(self.ringing_seconds, 1000),
            # The service checks it (against the workspace's limit) like any API request.
            "max_concurrency": _whole(self.max_concurrency),
            "retry_policy": self._retry_policy(),
            "calling_window": self._calling_window(),
            "voicemail": self._voicemail(),
        }
        errors: dict[str, str] = {}
        if self.schedule_local:
            try:
                fields["scheduled_at"] = local_to_utc(self.schedule_local, zone).isoformat()
            except ValueError:
                errors["scheduled_at"] = "Pick a date and time."
        problems = Problems()
        batches.parse_fields(
            fields,
            from_form=True,
            now=system_clock.now(),
            problems=problems,
            concurrency_limit=get_settings().max_concurrent_calls,
        )
        errors = {**_field_errors(problems), **errors}
        policy = fields["retry_policy"]
        if policy and not policy["retry_on"]:
            errors.setdefault("retry_policy", "Choose which outcomes to try again.")
        if not self.name.strip():
            errors["name"] = "Give the batch a name."
        if not self.agent_id:
            errors["agent_id"] = "Choose an agent."
        self.field_errors = errors
        return None if errors else fields

    async def _recipients(self) -> RecipientRows | None:
        """The rows to call (the file's, or those typed by hand); None, with the form's error
        saying why, when there are none or some are invalid."""
        if self.mode == "manual":
            rows, kept = await in_thread(self._manual_recipients)
            problems = [*rows.problems.items, *self._unfilled_placeholders(kept)]
            if problems:
                problems.sort(key=lambda item: item["loc"][1] if len(item["loc"]) > 1 else 0)
                self.form_error = self._mark_manual(problems, kept)
                return None
            if not len(rows):
                self.form_error = "Add recipients: type a phone number in the first row."
                return None
            self.manual_errors, self.manual_bad_cells = [""] * len(self.manual_rows), []
            self._kept = kept
            return rows
        rows = (await self._uploaded())._rows
        if rows is None or not len(rows):
            self.form_error = "Add recipients: drop a CSV file here, or switch to rows by hand."
            return None
        if rows.invalid_rows:
            self.form_error = "Some rows are invalid: fix the file, or drop the invalid rows."
            return None
        return rows

    @rx.event
    @signed_in
    async def submit(self):
        self.form_error = ""
        if (fields := self._fields((await self.get_state(AuthState)).timezone)) is None:
            return
        if (rows := await self._recipients()) is None:
            return
        self.submitting = True
        yield
        create = partial(batches.create_batch, fields=fields, rows=rows, from_form=True)
        try:
            batch, _created = await call(self, create)
        except ValidationFailed as error:
            details = error.details or []
            self.field_errors = {
                str(d["loc"][0]): d["message"]
                for d in details
                if d["loc"] and d["loc"][0] not in ("recipients", "csv_file")
            }
            rows_said = [d for d in details if d["loc"][:1] in (["recipients"], ["csv_file"])]
            if self.mode == "manual" and rows_said:
                self.form_error = self._mark_manual(rows_said, self._kept)
            elif rows_said:
                self.form_error = "; ".join(
                    " · ".join(p for p in _problem_parts(rows, d["loc"]) if p) + f": {d['message']}"
                    for d in rows_said[:3]
                )
            elif not self.field_errors:
                self.form_error = error_text(error)
            else:
                self.form_error = "Some fields need a change: see the messages next to them."
            return
        except DomainError as error:
            self.form_error = error_text(error)
            return
        finally:
            self.submitting = False
        yield rx.redirect(f"/batches/{batch['id']}")
