"""Tables, status enums and the public (API) shapes.

Stored times are aware UTC. Variable maps that are only ever passed through (a recipient's
`dynamic_vars`) are kept as JSON text so 50,000 of them are stored and served without a
decode/encode round trip.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict
from pydantic import Field as PydanticField
from sqlalchemy import JSON, Column, Float, Index, String, Table, Text, UniqueConstraint, text
from sqlmodel import Field, SQLModel
from sqlmodel.sql.sqltypes import UTCDateTime


class BatchStatus(StrEnum):
    scheduled = "scheduled"
    pending = "pending"
    running = "running"
    completed = "completed"
    cancelled = "cancelled"
    failed = "failed"


class RecipientStatus(StrEnum):
    pending = "pending"
    dialing = "dialing"
    completed = "completed"
    failed = "failed"
    cancelled = "cancelled"


RECIPIENT_STATUSES = tuple(status.value for status in RecipientStatus)


class Workspace(SQLModel, table=True):
    id: str = Field(primary_key=True, max_length=40)
    name: str = Field(max_length=200)
    created_at: datetime
    # The IANA zone the console shows times in (and the wall's "today"); None until the first
    # sign-in sets it from the browser.
    time_zone: str | None = Field(default=None, max_length=64)


class User(SQLModel, table=True):
    id: str = Field(primary_key=True, max_length=40)
    workspace_id: str = Field(foreign_key="workspace.id", index=True, max_length=40)
    email: str = Field(max_length=320, unique=True)
    password_hash: str = Field(max_length=200)
    created_at: datetime


class ConsoleSession(SQLModel, table=True):
    """A signed-in browser. Only the token's SHA-256 is stored."""

    __tablename__ = "console_session"
    id: str = Field(primary_key=True, max_length=40)
    user_id: str = Field(foreign_key="user.id", index=True, max_length=40)
    token_hash: str = Field(max_length=64, unique=True)
    created_at: datetime
    expires_at: datetime


class SignInThrottle(SQLModel, table=True):
    """Recent failed sign-ins of one account (`account:` + the email's SHA-256) or one client
    address (`address:` + the address), and until when its sign-ins are refused. In the
    database so that every backend process sees the same count."""

    __tablename__ = "sign_in_throttle"
    key: str = Field(primary_key=True, max_length=80)
    failures: int = 0
    last_failure_at: datetime
    blocked_until: datetime | None = None


class WallToken(SQLModel, table=True):
    """Opens /wall for one workspace, read-only. Only the token's SHA-256 is stored."""

    __tablename__ = "wall_token"
    id: str = Field(primary_key=True, max_length=40)
    workspace_id: str = Field(foreign_key="workspace.id", index=True, max_length=40)
    label: str = Field(default="", max_length=200)
    prefix: str = Field(max_length=16)
    token_hash: str = Field(max_length=64, unique=True)
    created_at: datetime
    revoked_at: datetime | None = None


class DoNotCall(SQLModel, table=True):
    """Numbers a workspace must never call; checked at the moment of dialing."""

    __tablename__ = "do_not_call"
    workspace_id: str = Field(foreign_key="workspace.id", primary_key=True, max_length=40)
    phone: str = Field(primary_key=True, max_length=20)
    reason: str = Field(default="", max_length=500)
    source: str = Field(default="api", max_length=20)  # api, console, import, opt_out
    created_at: datetime


class CallMinute(SQLModel, table=True):
    """Calls that ended, per workspace and minute, kept in step with recipients: the wall
    screen's totals and chart read a few of these rows instead of counting recipients."""

    __tablename__ = "call_minute"
    workspace_id: str = Field(foreign_key="workspace.id", primary_key=True, max_length=40)
    minute: datetime = Field(primary_key=True)
    placed: int = 0
    connected: int = 0
    failed: int = 0


class ApiKey(SQLModel, table=True):
    __tablename__ = "api_key"
    id: str = Field(primary_key=True, max_length=40)
    workspace_id: str = Field(foreign_key="workspace.id", index=True, max_length=40)
    prefix: str = Field(max_length=16)
    key_hash: str = Field(max_length=64, unique=True)
    label: str = Field(default="", max_length=200)
    created_at: datetime
    revoked_at: datetime | None = None
    # Written at most once a minute per key (see auth.authenticate_api_key).
    last_used_at: datetime | None = None


class Connection(SQLModel, table=True):
    """A workspace's account at a telephony platform (services/connections.py)."""

    __tablename__ = "connection"
    id: str = Field(primary_key=True, max_length=40)
    workspace_id: str = Field(foreign_key="workspace.id", index=True, max_length=40)
    provider: str = Field(max_length=20)
    name: str = Field(max_length=200)
    # The credentials as one sealed JSON object (sealing.py); never returned or logged.
    credentials: str = Field(default="", sa_column=Column(Text, nullable=False))
    # The last characters of each credential, what the API and the console show.
    credential_hints: dict[str, str] = Field(
        default_factory=dict, sa_column=Column(JSON, nullable=False)
    )
    base_url: str | None = Field(default=None, max_length=2000)
    # The account's call-creation limit, held across every worker (0: none).
    calls_per_second: float = 1.0
    # Pacing shared by every worker: the earliest moment this account may create a call.
    next_call_at: datetime | None = None
    created_at: datetime


class PhoneNumber(SQLModel, table=True):
    __tablename__ = "phone_number"
    id: str = Field(primary_key=True, max_length=40)
    workspace_id: str = Field(foreign_key="workspace.id", index=True, max_length=40)
    phone_number: str = Field(max_length=20)
    label: str = Field(default="", max_length=200)
    provider: str = Field(default="simulator", max_length=40)
    # The account it calls through (None: the provider above with the deployment's settings),
    # and its id there where the platform has one.
    connection_id: str | None = Field(default=None, foreign_key="connection.id", max_length=40)
    external_id: str | None = Field(default=None, max_length=200)
    outbound_enabled: bool = True
    created_at: datetime
    deleted_at: datetime | None = None
    # Dial pacing shared by every worker: the earliest moment this number may dial again.
    next_dial_at: datetime | None = None


class Agent(SQLModel, table=True):
    id: str = Field(primary_key=True, max_length=40)
    workspace_id: str = Field(foreign_key="workspace.id", index=True, max_length=40)
    name: str = Field(max_length=200)
    prompt: str = Field(sa_column=Column(Text, nullable=False))
    first_message: str = Field(default="", sa_column=Column(Text, nullable=False))
    phone_number_id: str | None = Field(default=None, foreign_key="phone_number.id", max_length=40)
    webhook_url: str | None = Field(default=None, max_length=2000)
    webhook_secret: str | None = Field(default=None, max_length=200)
    webhook_secret_previous: str | None = Field(default=None, max_length=200)
    webhook_secret_rotated_at: datetime | None = None
    webhook_disabled_reason: str | None = Field(default=None, max_length=500)
    # The data-collection field that says the callee opted out: a true value adds the number
    # to the workspace's do-not-call list.
    opt_out_field: str | None = Field(default=None, max_length=64)
    # [{"name": ..., "description": ...}]
    evaluation_criteria: list[dict[str, Any]] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False)
    )
    # [{"name": ..., "type": "string|boolean|number", "description": ...}]
    data_collection: list[dict[str, Any]] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False)
    )
    # The platform it runs on: its connection, and its id there (hosted platforms) or the
    # media-stream websocket of the user's own bot (Twilio).
    connection_id: str | None = Field(default=None, foreign_key="connection.id", max_length=40)
    external_agent_id: str | None = Field(default=None, max_length=200)
    stream_url: str | None = Field(default=None, max_length=2000)
    created_at: datetime
    deleted_at: datetime | None = None


class Batch(SQLModel, table=True):
    __table_args__ = (
        Index("ix_batch_workspace_created", "workspace_id", "created_at", "id"),
        Index("ix_batch_status_scheduled", "status", "scheduled_at"),
        Index("ix_batch_workspace_status", "workspace_id", "status"),
        # The workspace's calls in progress are summed over these few rows on every claim.
        Index(
            "ix_batch_live_calls",
            "workspace_id",
            sqlite_where=text("dialing_count > 0"),
            postgresql_where=text("dialing_count > 0"),
        ),
    )
    id: str = Field(primary_key=True, max_length=40)
    workspace_id: str = Field(foreign_key="workspace.id", max_length=40)
    name: str = Field(max_length=200)
    agent_id: str = Field(foreign_key="agent.id", index=True, max_length=40)
    phone_number_id: str | None = Field(default=None, foreign_key="phone_number.id", max_length=40)
    status: str = Field(max_length=16)
    scheduled_at: datetime | None = None
    ringing_timeout_ms: int = 30_000
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    total_recipients: int = 0
    # Counters kept in step with recipient transitions, in the same transaction, so that the
    # list, the detail and the wall screen never count recipients.
    pending_count: int = 0
    dialing_count: int = 0
    completed_count: int = 0
    failed_count: int = 0
    cancelled_count: int = 0
    # Bumped by every change; live pages poll it to know when to reload.
    version: int = 0
    # At most this many of the batch's calls at once (within the workspace's limit).
    max_concurrency: int | None = None
    # Set while a running batch is paused: no new dials, live calls finish.
    paused_at: datetime | None = None
    # Set when a running batch was stopped: no new dials; it ends `cancelled` with its last call.
    stopped_at: datetime | None = None
    # Stopped with {"hang_up": true}: the workers hang its live calls up.
    hang_up_on_stop: bool = False
    # {"max_attempts", "retry_on": [...], "delay_seconds"}; None: one attempt.
    retry_policy: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    # {"start", "end", "days", "timezone", "unknown_timezone"}; None: any time.
    calling_window: dict[str, Any] | None = Field(
        default=None, sa_column=Column(JSON, nullable=True)
    )
    # When some recipients wait for their calling window: the earliest time one opens.
    next_window_at: datetime | None = None
    # {"action": "hang_up" | "leave_message", "message": "..."}; None: the platform's default.
    voicemail: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    # {"enabled", "failure_rate", "min_attempts", "window_seconds"} (services/breaker.py);
    # None: the defaults (batches made before the breaker existed).
    circuit_breaker: dict[str, Any] | None = Field(
        default=None, sa_column=Column(JSON, nullable=True)
    )
    # Why a paused batch is paused: "manual", or what tripped its breaker.
    paused_reason: str | None = Field(default=None, max_length=40)
    # While paused by the breaker: the counts that tripped it and the platform's last words.
    breaker_trip: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    # The breaker's sliding window: attempts recorded, and failures by reason, per slice of
    # time (services/breaker.py). Emptied by a trip and a resume.
    breaker_buckets: dict[str, Any] | None = Field(
        default=None, sa_column=Column(JSON, nullable=True)
    )


class BreakerTrip(SQLModel, table=True):
    """Each time a breaker paused a batch: what /metrics counts, and its history."""

    __tablename__ = "breaker_trip"
    id: str = Field(primary_key=True, max_length=40)
    workspace_id: str = Field(foreign_key="workspace.id", index=True, max_length=40)
    batch_id: str = Field(foreign_key="batch.id", index=True, max_length=40)
    connection_id: str | None = Field(default=None, max_length=40)
    reason: str = Field(max_length=40)
    tripped_at: datetime
    details: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class Recipient(SQLModel, table=True):
    __table_args__ = (
        UniqueConstraint("batch_id", "position", name="uq_recipient_batch_position"),
        Index("ix_recipient_batch_status_position", "batch_id", "status", "position"),
        # Partial: a recipient has no attempt and no end until dialed, and every query on these
        # columns compares them to a value, so rows without one need no entry (an upload of
        # 50,000 rows writes two index entries fewer per row).
        Index(
            "ix_recipient_attempt",
            "attempt_id",
            sqlite_where=text("attempt_id IS NOT NULL"),
            postgresql_where=text("attempt_id IS NOT NULL"),
        ),
        # Calls per minute on live pages: the calls of a batch that ended recently.
        Index(
            "ix_recipient_batch_ended",
            "batch_id",
            "ended_at",
            sqlite_where=text("ended_at IS NOT NULL"),
            postgresql_where=text("ended_at IS NOT NULL"),
        ),
        # Expired leases are looked for among the (few) recipients being dialed.
        Index(
            "ix_recipient_dialing_lease",
            "lease_expires_at",
            sqlite_where=text("status = 'dialing'"),
            postgresql_where=text("status = 'dialing'"),
        ),
    )
    id: str = Field(primary_key=True, max_length=40)
    batch_id: str = Field(foreign_key="batch.id", max_length=40)
    position: int
    phone: str = Field(max_length=20)
    dynamic_vars: str = Field(default="{}", sa_column=Column(Text, nullable=False))
    status: str = Field(max_length=16)
    attempts: int = 0
    attempt_id: str | None = Field(default=None, max_length=40)
    # The platform's id of the attempt's call, stored before anything else happens to it.
    provider_call_id: str | None = Field(default=None, max_length=100)
    lease_expires_at: datetime | None = None
    next_attempt_at: datetime | None = None
    conversation_id: str | None = Field(default=None, max_length=40)
    failure_reason: str | None = Field(default=None, max_length=40)
    started_at: datetime | None = None
    ended_at: datetime | None = None
    duration_seconds: float | None = None


class Conversation(SQLModel, table=True):
    id: str = Field(primary_key=True, max_length=40)
    workspace_id: str = Field(foreign_key="workspace.id", index=True, max_length=40)
    batch_id: str = Field(foreign_key="batch.id", index=True, max_length=40)
    recipient_id: str = Field(foreign_key="recipient.id", index=True, max_length=40)
    agent_id: str = Field(foreign_key="agent.id", max_length=40)
    transcript: list[dict[str, Any]] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False)
    )
    evaluations: dict[str, Any] = Field(
        default_factory=dict, sa_column=Column(JSON, nullable=False)
    )
    data_collection: dict[str, Any] = Field(
        default_factory=dict, sa_column=Column(JSON, nullable=False)
    )
    started_at: datetime
    ended_at: datetime
    duration_seconds: float
    # What the call could not do as asked, e.g. a placeholder without a value.
    warnings: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))


class IdempotencyRecord(SQLModel, table=True):
    __tablename__ = "idempotency_record"
    __table_args__ = (UniqueConstraint("workspace_id", "key", name="uq_idempotency_workspace_key"),)
    id: str = Field(primary_key=True, max_length=40)
    workspace_id: str = Field(foreign_key="workspace.id", max_length=40)
    key: str = Field(max_length=255)
    request_hash: str = Field(max_length=64)
    batch_id: str | None = Field(default=None, max_length=40)
    created_at: datetime
    completed_at: datetime | None = None


class WebhookDelivery(SQLModel, table=True):
    __tablename__ = "webhook_delivery"
    __table_args__ = (Index("ix_webhook_delivery_due", "status", "next_attempt_at"),)
    id: str = Field(primary_key=True, max_length=40)
    workspace_id: str = Field(foreign_key="workspace.id", index=True, max_length=40)
    agent_id: str = Field(foreign_key="agent.id", index=True, max_length=40)
    batch_id: str | None = Field(default=None, max_length=40)
    recipient_id: str | None = Field(default=None, max_length=40)
    event_type: str = Field(max_length=60)
    url: str = Field(max_length=2000)
    payload: str = Field(sa_column=Column(Text, nullable=False))
    status: str = Field(default="pending", max_length=16)
    attempt_count: int = 0
    # [{"at": ..., "status_code": ..., "error": ...}]
    attempts: list[dict[str, Any]] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False)
    )
    next_attempt_at: datetime | None = None
    created_at: datetime
    delivered_at: datetime | None = None


# The simulator's own ledger (providers/simulator.py): the carrier's record, not part of the
# domain model, so a plain table.
simulator_ledger = Table(
    "simulator_call",
    SQLModel.metadata,
    Column("attempt_id", String(80), primary_key=True),
    Column("to_number", String(20), nullable=False),
    Column("from_number", String(20), nullable=False),
    Column("status", String(16), nullable=False),
    Column("placed_at", UTCDateTime(), nullable=False),
    Column("answered_at", UTCDateTime(), nullable=True),
    Column("ends_at", UTCDateTime(), nullable=False),
    Column("duration_seconds", Float, nullable=True),
    Column("result", Text, nullable=False),
    Column("hung_up_at", UTCDateTime(), nullable=True),
)


# --- Public shapes (documentation of the REST contract; responses are built by services) ---


class Counts(BaseModel):
    pending: int
    dialing: int
    completed: int
    failed: int
    cancelled: int


class CircuitBreakerSettings(BaseModel):
    """A batch pauses itself when at least `failure_rate` of at least `min_attempts` attempts
    that ended within `window_seconds` failed with provider_error, call_failed,
    outcome_unknown, invalid_number or declined (busy, no answer and voicemail never count)."""

    failure_rate: float = PydanticField(0.5, gt=0, le=1, description="Share of failed attempts")
    min_attempts: int = PydanticField(10, ge=1, le=10_000)
    window_seconds: int = PydanticField(120, ge=10, le=86_400)


class BreakerTripPublic(BaseModel):
    """What paused a batch by its circuit breaker."""

    reason: str = PydanticField(
        description="failure_rate, authentication_refused or account_suspended"
    )
    tripped_at: str
    window_seconds: int
    attempts: int | None = PydanticField(description="Attempts in the window (failure_rate)")
    failures: int | None = PydanticField(description="Of them, failed (failure_rate)")
    failure_rate: float | None
    by_outcome: dict[str, int] = PydanticField(description="The failures by failure reason")
    last_error: str | None = PydanticField(description="The platform's last words")
    connection_id: str | None = PydanticField(
        description="The connection the platform refused (account-wide trips)"
    )
    given_back: int = PydanticField(
        description="Recipients put back in line, their attempt not spent (platform faults)"
    )


class BatchPublic(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "example": {
                "id": "batch_01JD7Q9ZJ5T1F7M8V3ZCX0A4BN",
                "name": "Appointment reminders",
                "agent_id": "agent_01JD7Q8R3P2M6C1T0S9W4YQ2HE",
                "phone_number_id": None,
                "status": "pending",
                "scheduled_at": None,
                "ringing_timeout_ms": 30000,
                "created_at": "2026-12-01T15:00:00Z",
                "started_at": None,
                "finished_at": None,
                "total_recipients": 2,
                "counts": {"pending": 2, "dialing": 0, "completed": 0, "failed": 0, "cancelled": 0},
            }
        }
    )
    id: str
    name: str
    agent_id: str
    phone_number_id: str | None = PydanticField(
        description="Caller-ID override; null means the agent's bound number."
    )
    status: BatchStatus
    scheduled_at: str | None
    ringing_timeout_ms: int
    created_at: str
    started_at: str | None
    finished_at: str | None
    total_recipients: int
    counts: Counts
    retry_policy: dict[str, Any] | None = None
    calling_window: dict[str, Any] | None = None
    next_window_at: str | None = PydanticField(
        None, description="While recipients wait for their calling window: when it next opens"
    )
    max_concurrency: int | None = PydanticField(
        None, description="At most this many calls of this batch at once"
    )
    paused: bool = PydanticField(False, description="A paused batch places no new calls")
    voicemail: dict[str, Any] | None = PydanticField(
        None,
        description='When a machine answers: {"action": "hang_up" | "leave_message", "message"}',
    )
    stopping: bool = PydanticField(
        False,
        description="Stopped while calls were live: no new calls; it ends cancelled with its last call",
    )
    circuit_breaker: CircuitBreakerSettings | Literal[False] = PydanticField(
        default_factory=CircuitBreakerSettings,
        description="The batch's circuit breaker, or false when it is off",
    )
    paused_reason: str | None = PydanticField(
        None,
        description="While paused: manual, failure_rate, authentication_refused or "
        "account_suspended",
    )
    circuit_breaker_trip: BreakerTripPublic | None = PydanticField(
        None, description="While paused by the circuit breaker: what tripped it"
    )


class RecipientPublic(BaseModel):
    id: str
    phone: str = PydanticField(description="E.164")
    dynamic_vars: dict[str, str | int | float | bool]
    status: RecipientStatus
    attempts: int
    conversation_id: str | None
    failure_reason: str | None
    started_at: str | None
    ended_at: str | None
    duration_seconds: float | None
    next_attempt_at: str | None = PydanticField(
        None, description="When a pending recipient waits for a retry or its calling window"
    )


class BatchDetail(BaseModel):
    batch_call: BatchPublic
    recipients: list[RecipientPublic]


class BatchList(BaseModel):
    batch_calls: list[BatchPublic]
    next_cursor: str | None


class AgentPublic(BaseModel):
    id: str
    name: str
    prompt: str
    first_message: str
    phone_number_id: str | None
    webhook_url: str | None
    placeholders: list[str]
    connection_id: str | None = PydanticField(None, description="The telephony connection")
    external_agent_id: str | None = PydanticField(
        None, description="The agent's id at its platform (ElevenLabs, Vapi, Retell)"
    )
    stream_url: str | None = PydanticField(
        None, description="Twilio: the wss:// media stream of the user's own bot"
    )


class AgentList(BaseModel):
    agents: list[AgentPublic]


class PhoneNumberPublic(BaseModel):
    id: str
    phone_number: str
    label: str
    provider: str
    outbound_enabled: bool
    connection_id: str | None = PydanticField(None, description="The telephony connection")
    external_id: str | None = PydanticField(None, description="The number's id at its platform")


class PhoneNumberList(BaseModel):
    phone_numbers: list[PhoneNumberPublic]


class Health(BaseModel):
    status: str
    database: str
    dialer: str


class ErrorDetail(BaseModel):
    loc: list[str | int]
    message: str


class ErrorBody(BaseModel):
    code: str
    message: str
    details: list[ErrorDetail] | None


class ErrorResponse(BaseModel):
    error: ErrorBody
