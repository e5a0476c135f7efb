"""The rules of a batch: its fields read and checked, and whether its agent can call out."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from enum import StrEnum
from typing import Any

from sqlalchemy import Row, Select, func
from sqlmodel import Session

from batch_dashboard.clock import to_rfc3339, to_utc
from batch_dashboard.models import Agent, Batch, PhoneNumber
from batch_dashboard.services import agents, windows
from batch_dashboard.services.errors import (
    NotFound,
    Problems,
    is_clean_id,
    json_object_field,
    nul_problems,
)
from batch_dashboard.services.outcomes import RETRY_ON, RETRY_ON_WORDS, RetryOn

MAX_SCHEDULE_AHEAD = timedelta(days=30)
RINGING_TIMEOUT_RANGE = (1_000, 80_000)
DEFAULT_RINGING_TIMEOUT_MS = 30_000
NAME_LENGTH = (1, 200)


@dataclass
class BatchFields:
    name: str
    agent_id: str
    phone_number_id: str | None
    scheduled_at: datetime | None
    ringing_timeout_ms: int
    max_concurrency: int | None = None
    retry_policy: dict[str, Any] | None = None
    calling_window: dict[str, Any] | None = None
    voicemail: dict[str, Any] | None = None
    circuit_breaker: dict[str, Any] | None = None


# --- reading the request ------------------------------------------------------------------

# RFC 3339 section 5.6 exactly (`T` and `Z` in either case, seconds required, an offset
# required); `datetime.fromisoformat` also takes ISO 8601 forms such as week dates, basic
# format and minutes without seconds, which are not RFC 3339.
_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?"
    r"(?:([Zz])|([+-])(\d{2}):(\d{2}))",
    re.ASCII,
)


def parse_rfc3339(value: str) -> datetime:
    """An RFC 3339 date-time with its offset; ValueError says what is wrong."""
    match = _RFC3339.fullmatch(value)
    if match is None:
        if _RFC3339.fullmatch(value + "Z"):
            raise ValueError("must include a time zone offset, e.g. Z or +02:00")
        raise ValueError(f"{value!r} is not an RFC 3339 date-time such as 2026-12-01T15:00:00Z")
    year, month, day, hour, minute, second, fraction, _zulu, sign, off_h, off_m = match.groups()
    if int(off_h or 0) > 23 or int(off_m or 0) > 59:
        raise ValueError(f"{value!r} has an offset out of range")
    offset = timedelta(hours=int(off_h or 0), minutes=int(off_m or 0))
    try:
        return datetime(
            int(year),
            int(month),
            int(day),
            int(hour),
            int(minute),
            int(second),
            int((fraction or "0")[:6].ljust(6, "0")),
            tzinfo=timezone(-offset if sign == "-" else offset),
        )
    except ValueError:
        # A leap second (:60) included: no clock here can schedule one.
        raise ValueError(f"{value!r} is not a date-time that exists") from None


def _parse_timestamp(value: object, problems: Problems, now: datetime) -> datetime | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        problems.add(["scheduled_at"], "must be an RFC 3339 date-time string")
        return None
    try:
        moment = to_utc(parse_rfc3339(value))
    except ValueError as error:
        problems.add(["scheduled_at"], str(error))
        return None
    except OverflowError:
        problems.add(["scheduled_at"], "is out of range")
        return None
    if moment <= now:
        problems.add(["scheduled_at"], f"must be in the future (now is {to_rfc3339(now)})")
    elif moment > now + MAX_SCHEDULE_AHEAD:
        problems.add(["scheduled_at"], "must be at most 30 days ahead")
    return moment


def _parse_int(
    value: object,
    problems: Problems,
    field: str,
    *,
    from_form: bool,
    low: int,
    high: int,
    default: int | None,
    unit: str = "",
) -> int | None:
    """An optional whole number in [low, high]; forms send it as text."""
    if value is None or (from_form and value == ""):
        return default
    if from_form and isinstance(value, str) and value.strip().isdecimal() and len(value) < 12:
        value = int(value.strip())
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        got = f" (got {value})" if isinstance(value, int) and not isinstance(value, bool) else ""
        problems.add([field], f"must be a whole number{unit} from {low} to {high}{got}")
        return default
    return value


def _parse_retry_policy(
    value: object, problems: Problems, *, from_form: bool
) -> dict[str, Any] | None:
    value = json_object_field(
        value,
        problems,
        field="retry_policy",
        allowed={"max_attempts", "retry_on", "delay_seconds"},
        shape="with max_attempts, retry_on, delay_seconds",
        from_form=from_form,
    )
    if value is None:
        return None
    attempts = value.get("max_attempts", 1)
    if not isinstance(attempts, int) or isinstance(attempts, bool) or not 1 <= attempts <= 10:
        problems.add(["retry_policy", "max_attempts"], "must be an integer from 1 to 10")
    retry_on = value.get("retry_on", [r.value for r in RETRY_ON])
    if not isinstance(retry_on, list) or not all(
        isinstance(r, str) and r in RETRY_ON for r in retry_on
    ):
        problems.add(["retry_policy", "retry_on"], f"must be a list of: {', '.join(RETRY_ON)}")
    delay = value.get("delay_seconds", 600)
    if not isinstance(delay, int) or isinstance(delay, bool) or not 60 <= delay <= 86_400:
        problems.add(["retry_policy", "delay_seconds"], "must be an integer from 60 to 86400")
    return {"max_attempts": attempts, "retry_on": retry_on, "delay_seconds": delay}


def _parse_id(
    fields: Mapping[str, Any], name: str, problems: Problems, *, required: bool
) -> str | None:
    value = fields.get(name)
    if value is None or value == "":
        if required:
            problems.add([name], "is required")
        return None
    if not isinstance(value, str) or not is_clean_id(value):
        problems.add([name], "must be an id string")
        return None
    return value


def parse_fields(
    fields: Mapping[str, Any],
    *,
    from_form: bool,
    now: datetime,
    problems: Problems,
    concurrency_limit: int = 10_000,
) -> BatchFields:
    # Form fields and the console's arrive here without the JSON body reader's check.
    nul_problems({k: v for k, v in fields.items() if k != "recipients"}, [], problems)
    name = fields.get("name")
    if not isinstance(name, str):
        problems.add(["name"], "is required" if name is None else "must be a string")
        name = ""
    elif not name.strip():
        problems.add(["name"], "must not be blank")
    elif not NAME_LENGTH[0] <= len(name) <= NAME_LENGTH[1]:
        problems.add(["name"], f"must be 1 to 200 characters (got {len(name)})")
    elif any(ord(char) < 32 for char in name):
        problems.add(["name"], "must not contain control characters")
    return BatchFields(
        name=name.strip(),
        agent_id=_parse_id(fields, "agent_id", problems, required=True) or "",
        phone_number_id=_parse_id(fields, "phone_number_id", problems, required=False),
        scheduled_at=_parse_timestamp(fields.get("scheduled_at"), problems, now),
        ringing_timeout_ms=_parse_int(
            fields.get("ringing_timeout_ms"),
            problems,
            "ringing_timeout_ms",
            from_form=from_form,
            low=RINGING_TIMEOUT_RANGE[0],
            high=RINGING_TIMEOUT_RANGE[1],
            default=DEFAULT_RINGING_TIMEOUT_MS,
            unit=" of milliseconds",
        )
        or DEFAULT_RINGING_TIMEOUT_MS,
        max_concurrency=_parse_int(
            fields.get("max_concurrency"),
            problems,
            "max_concurrency",
            from_form=from_form,
            low=1,
            high=concurrency_limit,
            default=None,
            unit=" of calls",
        ),
        retry_policy=_parse_retry_policy(fields.get("retry_policy"), problems, from_form=from_form),
        calling_window=windows.parse_window(
            fields.get("calling_window"), problems, from_form=from_form
        ),
        voicemail=_parse_voicemail(fields.get("voicemail"), problems, from_form=from_form),
        circuit_breaker=_parse_circuit_breaker(
            fields.get("circuit_breaker"), problems, from_form=from_form
        ),
    )


BREAKER_DEFAULTS: dict[str, Any] = {"failure_rate": 0.5, "min_attempts": 10, "window_seconds": 120}
BREAKER_MIN_ATTEMPTS = (1, 10_000)
BREAKER_WINDOW_SECONDS = (10, 86_400)


def _parse_circuit_breaker(
    value: object, problems: Problems, *, from_form: bool
) -> dict[str, Any] | None:
    """`false` turns the breaker off; an object sets any of its three numbers (the others keep
    their defaults); absent, null or `true`: the defaults. Stored filled in, with `enabled`."""
    if from_form and isinstance(value, str) and value.strip().lower() in ("false", "true"):
        value = value.strip().lower() == "true"
    if value is False:
        return {"enabled": False, **BREAKER_DEFAULTS}
    if value is True:
        value = None
    value = json_object_field(
        value,
        problems,
        field="circuit_breaker",
        allowed=set(BREAKER_DEFAULTS),
        shape="with failure_rate, min_attempts, window_seconds, or false",
        from_form=from_form,
    )
    if value is None:
        return None
    rate = value.get("failure_rate", BREAKER_DEFAULTS["failure_rate"])
    if (
        not isinstance(rate, int | float)
        or isinstance(rate, bool)
        or not 0 < rate <= 1
        or rate != rate  # NaN
    ):
        problems.add(
            ["circuit_breaker", "failure_rate"],
            "must be a number above 0 and at most 1 (the share of failed attempts, 0.5 = half)",
        )
    low, high = BREAKER_MIN_ATTEMPTS
    attempts = value.get("min_attempts", BREAKER_DEFAULTS["min_attempts"])
    if not isinstance(attempts, int) or isinstance(attempts, bool) or not low <= attempts <= high:
        problems.add(
            ["circuit_breaker", "min_attempts"], f"must be an integer from {low} to {high}"
        )
    low, high = BREAKER_WINDOW_SECONDS
    window = value.get("window_seconds", BREAKER_DEFAULTS["window_seconds"])
    if not isinstance(window, int) or isinstance(window, bool) or not low <= window <= high:
        problems.add(
            ["circuit_breaker", "window_seconds"], f"must be an integer from {low} to {high}"
        )
    return {
        "enabled": True,
        "failure_rate": rate,
        "min_attempts": attempts,
        "window_seconds": window,
    }


def breaker_settings(stored: dict[str, Any] | None) -> dict[str, Any]:
    """A batch's breaker as stored, the defaults filled in (None: made before it existed)."""
    return {"enabled": True, **BREAKER_DEFAULTS, **(stored or {})}


def breaker_public(stored: dict[str, Any] | None) -> dict[str, Any] | bool:
    """A batch's `circuit_breaker` as the API shows it: its three numbers, or false."""
    settings = breaker_settings(stored)
    if not settings["enabled"]:
        return False
    return {key: settings[key] for key in BREAKER_DEFAULTS}


VOICEMAIL_ACTIONS = ("hang_up", "leave_message")
VOICEMAIL_MESSAGE_MAX = 2000


def _parse_voicemail(
    value: object, problems: Problems, *, from_form: bool
) -> dict[str, Any] | None:
    """What to do when a machine answers: hang up, or leave `message` (placeholders allowed)."""
    value = json_object_field(
        value,
        problems,
        field="voicemail",
        allowed={"action", "message"},
        shape='with action ("hang_up" or "leave_message") and, to leave one, message',
        from_form=from_form,
    )
    if value is None:
        return None
    action, message = value.get("action"), value.get("message")
    if action not in VOICEMAIL_ACTIONS:
        problems.add(["voicemail", "action"], f"must be one of {', '.join(VOICEMAIL_ACTIONS)}")
    if action == "leave_message" and (not isinstance(message, str) or not message.strip()):
        problems.add(["voicemail", "message"], "is required to leave a message")
    elif message is not None and (
        not isinstance(message, str) or len(message) > VOICEMAIL_MESSAGE_MAX
    ):
        problems.add(["voicemail", "message"], f"must be text of at most {VOICEMAIL_MESSAGE_MAX}")
    parsed: dict[str, Any] = {"action": action}
    if action == "leave_message" and isinstance(message, str):
        parsed["message"] = message
    return parsed


class CallerProblem(StrEnum):
    """Why a batch's agent cannot call out (the words finish "the batch cannot be dialed: …")."""

    agent_deleted = "its agent was deleted"
    no_number = "its agent has no caller number"
    number_deleted = "its caller number was deleted"
    inbound_only = "its caller number is not enabled for outbound calls"
    other_connection = "its agent and its caller number are on different telephony connections"


def caller_problem(agent: Agent | None, number: PhoneNumber | None) -> CallerProblem | None:
    """The one rule for whether an agent can call out with a number: at creation, in the
    console's agent picker, and again at every claim (either may be deleted meanwhile)."""
    if agent is None or agent.deleted_at is not None:
        return CallerProblem.agent_deleted
    if number is None:
        return CallerProblem.no_number
    if number.deleted_at is not None:
        return CallerProblem.number_deleted
    if not number.outbound_enabled:
        return CallerProblem.inbound_only
    # Unlinked on either side: it follows the other's (the simulator without one).
    if agent.connection_id and number.connection_id and agent.connection_id != number.connection_id:
        return CallerProblem.other_connection
    return None


def caller_number_id(override: str | None, agent: Agent | None) -> str | None:
    """The batch's own caller number, else its agent's."""
    return override or (agent.phone_number_id if agent else None)


def calling_through(query: Select[Any], connection_id: str) -> Select[Any]:
    """`query`, which reads the batch table, kept to the batches whose caller number (their
    own, else their agent's) is on this connection: the platform's events about them, and the
    batches a refused account pauses."""
    batches_t, agents_t, numbers_t = Batch.__table__, Agent.__table__, PhoneNumber.__table__
    return (
        query.join(agents_t, agents_t.c.id == batches_t.c.agent_id)
        .join(
            numbers_t,
            numbers_t.c.id
            == func.coalesce(batches_t.c.phone_number_id, agents_t.c.phone_number_id),
        )
        .where(numbers_t.c.connection_id == connection_id)
    )


def caller_number(session: Session, *, batch: Batch | Row[Any]) -> PhoneNumber | None:
    """The number a batch calls from (the dialer's lookup; the identity map makes it cheap)."""
    agent = session.get(Agent, batch.agent_id)
    number_id = caller_number_id(batch.phone_number_id, agent)
    return session.get(PhoneNumber, number_id) if number_id else None


def _check_voicemail_support(
    session: Session, number: PhoneNumber, voicemail: dict[str, Any], problems: Problems
) -> None:
    from batch_dashboard.models import Connection
    from batch_dashboard.services.connections import PROVIDERS

    connection = session.get(Connection, number.connection_id) if number.connection_id else None
    provider = connection.provider if connection else number.provider
    spec = PROVIDERS.get(provider)
    supported = spec.voicemail if spec else ()
    if voicemail.get("action") not in supported:
        problems.add(
            ["voicemail", "action"],
            f"the {provider} connection of caller number {number.phone_number} supports "
            + (", ".join(supported) if supported else "no voicemail option"),
        )


def check_caller(
    session: Session, *, workspace_id: str, fields: BatchFields, problems: Problems
) -> None:
    """The agent exists here and its caller number (override, else bound) can call out."""
    if not fields.agent_id:
        return
    try:
        agent = agents.get_agent(session, workspace_id=workspace_id, agent_id=fields.agent_id)
    except NotFound as error:
        problems.add(["agent_id"], error.message)
        return
    loc = ["phone_number_id"] if fields.phone_number_id else ["agent_id"]
    number_id = caller_number_id(fields.phone_number_id, agent)
    number = session.get(PhoneNumber, number_id) if number_id else None
    if number is not None and number.workspace_id != workspace_id:
        number = None
    problem = caller_problem(agent, number)
    if problem is None and number is not None and fields.voicemail:
        _check_voicemail_support(session, number, fields.voicemail, problems)
    if problem is CallerProblem.no_number and number_id is None:
        problems.add(
            loc,
            f"agent {agent.id} has no caller number: bind a phone number to the agent "
            "or pass phone_number_id",
        )
    elif problem in (CallerProblem.no_number, CallerProblem.number_deleted):
        problems.add(
            loc,
            f"no phone number {number_id} in this workspace"
            if fields.phone_number_id
            else f"the agent's caller number {number_id} no longer exists",
        )
    elif problem is CallerProblem.inbound_only:
        assert number is not None
        problems.add(
            loc,
            f"caller number {number.phone_number} ({number.id}) is not enabled for outbound calls",
        )
    elif problem is CallerProblem.other_connection:
        assert number is not None
        problems.add(
            loc,
            f"agent {agent.id} is on connection {agent.connection_id} but caller number "
            f"{number.phone_number} ({number.id}) is on connection {number.connection_id}: "
            "a batch calls through one connection",
        )


_DAY_WORDS = {
    "mon": "Mon",
    "tue": "Tue",
    "wed": "Wed",
    "thu": "Thu",
    "fri": "Fri",
    "sat": "Sat",
    "sun": "Sun",
}
_ALL_DAYS = list(_DAY_WORDS)


def rules_in_force(public: dict[str, Any], *, workspace_limit: int) -> list[str]:
    """A batch's calling rules in words, as its page lists them (from the public Batch)."""
    concurrency = public.get("max_concurrency") or workspace_limit
    said = [f"Up to {concurrency} calls at once", f"Rings {public['ringing_timeout_ms'] // 1000} s"]
    window = public.get("calling_window")
    if window:
        days = window.get("days") or _ALL_DAYS
        if days == _ALL_DAYS:
            day_words = "every day"
        elif days == _ALL_DAYS[:5]:
            day_words = "Mon–Fri"
        else:
            day_words = ", ".join(_DAY_WORDS[d] for d in days)
        zone = window.get("timezone", "recipient")
        where = "the recipient's time zone" if zone == "recipient" else zone
        said.append(f"Calls {window['start']}–{window['end']}, {day_words}, in {where}")
        if zone == "recipient":
            said.append(
                "Numbers without a known time zone are called anyway"
                if window.get("unknown_timezone") == "call"
                else "Numbers without a known time zone are not called"
            )
    else:
        said.append("Calls at any time of day")
    policy = public.get("retry_policy")
    if policy and policy.get("max_attempts", 1) > 1:
        reasons = ", ".join(RETRY_ON_WORDS[RetryOn(r)].lower() for r in policy["retry_on"])
        minutes = policy["delay_seconds"] // 60
        said.append(
            f"Up to {policy['max_attempts']} attempts on {reasons or 'no outcome'}, "
            f"{minutes} min apart"
        )
    else:
        said.append("One attempt per number")
    voicemail = public.get("voicemail")
    if voicemail:
        said.append(
            "On voicemail: leave a message"
            if voicemail.get("action") == "leave_message"
            else "On voicemail: hang up"
        )
    return said
