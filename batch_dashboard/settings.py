"""The one Settings object: every knob of docs/operations.md, from the environment and `.env`."""

from __future__ import annotations

import os
from functools import lru_cache
from typing import Literal

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    database_url: str = Field(
        "sqlite:///data/batch_dashboard.db", validation_alias=AliasChoices("DATABASE_URL")
    )
    dialer: Literal["embedded", "off"] = Field("embedded", validation_alias="BATCH_DIALER")
    provider: str = Field("simulator", validation_alias="BATCH_PROVIDER")
    # How telephony platforms reach this service (their events; Twilio signs this exact URL).
    public_url: str = Field(
        default_factory=lambda: f"http://localhost:{os.environ.get('PORT') or 3000}",
        validation_alias="BATCH_PUBLIC_URL",
    )
    sim_outcomes: str = Field(
        "completed=0.8,no_answer=0.1,busy=0.05,failed=0.05", validation_alias="BATCH_SIM_OUTCOMES"
    )
    sim_call_seconds: float = Field(20, validation_alias="BATCH_SIM_CALL_SECONDS")
    sim_seed: int | None = Field(None, validation_alias="BATCH_SIM_SEED")
    max_concurrent_calls: int = Field(10, ge=1, validation_alias="BATCH_MAX_CONCURRENT_CALLS")
    calls_per_second: float = Field(5, ge=0, validation_alias="BATCH_CALLS_PER_SECOND")
    max_recipients_per_batch: int = Field(
        50_000, ge=1, validation_alias="BATCH_MAX_RECIPIENTS_PER_BATCH"
    )
    max_upload_bytes: int = Field(20 * 1024 * 1024, ge=1, validation_alias="BATCH_MAX_UPLOAD_BYTES")
    webhook_retry_schedule: str = Field(
        "5,300,1800,7200,18000,36000,36000", validation_alias="BATCH_WEBHOOK_RETRY_SCHEDULE"
    )
    webhook_allow_private_targets: bool = Field(
        False, validation_alias="BATCH_WEBHOOK_ALLOW_PRIVATE_TARGETS"
    )
    log_level: str = Field("INFO", validation_alias="BATCH_LOG_LEVEL")
    log_format: Literal["text", "json"] = Field("text", validation_alias="BATCH_LOG_FORMAT")
    # Batches at least this large are validated on a second core while the first one stores them.
    parallel_validation_threshold: int = Field(
        5_000, ge=1, validation_alias="BATCH_PARALLEL_VALIDATION_THRESHOLD"
    )

    # Reflex's own variable: several backend processes share console state through it, and
    # the per-key request limit too (services/ratelimit.py).
    redis_url: str = Field("", validation_alias="REFLEX_REDIS_URL")
    # Requests per API key: per deployment with REFLEX_REDIS_URL, else per process (0: no limit).
    rate_limit_per_second: float = Field(100, ge=0, validation_alias="BATCH_RATE_LIMIT_PER_SECOND")
    rate_limit_burst: int = Field(200, ge=1, validation_alias="BATCH_RATE_LIMIT_BURST")
    # Fernet key(s) sealing webhook secrets at rest; first seals, all unseal (sealing.py).
    secret_key: str = Field("", validation_alias="BATCH_SECRET_KEY")
    # /metrics is served only when this is set; scrapers send it as a bearer token.
    metrics_token: str = Field("", validation_alias="BATCH_METRICS_TOKEN")
    # The dialer's own knobs (docs/operations.md, "Dialer internals"; the defaults suit production).
    lease_seconds: float = Field(30, gt=0, validation_alias="BATCH_LEASE_SECONDS")
    worker_max_calls: int = Field(500, ge=1, validation_alias="BATCH_WORKER_MAX_CALLS")
    recovery_interval_seconds: float = Field(
        2, gt=0, validation_alias="BATCH_RECOVERY_INTERVAL_SECONDS"
    )
    shutdown_grace_seconds: float = Field(20, ge=0, validation_alias="BATCH_SHUTDOWN_GRACE_SECONDS")
    http_provider_url: str = Field("", validation_alias="BATCH_HTTP_PROVIDER_URL")
    http_provider_token: str = Field("", validation_alias="BATCH_HTTP_PROVIDER_TOKEN")
    http_provider_secret: str = Field("", validation_alias="BATCH_HTTP_PROVIDER_SECRET")
    # Where the runtime posts status events: https://<this host>/v1/provider-events/http
    http_provider_callback_url: str = Field("", validation_alias="BATCH_HTTP_PROVIDER_CALLBACK_URL")
    http_provider_timeout_seconds: float = Field(
        10, gt=0, validation_alias="BATCH_HTTP_PROVIDER_TIMEOUT_SECONDS"
    )

    @field_validator("public_url", mode="after")
    @classmethod
    def _public_url_or_default(cls, value: str) -> str:
        return value.strip().rstrip("/") or f"http://localhost:{os.environ.get('PORT') or 3000}"

    @field_validator("sim_seed", mode="before")
    @classmethod
    def _empty_seed_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @property
    def retry_schedule_seconds(self) -> list[int]:
        return [int(part) for part in self.webhook_retry_schedule.split(",") if part.strip()]


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()


def reload_settings() -> Settings:
    """Forget the cached settings (tests and the CLI change the environment)."""
    get_settings.cache_clear()
    return get_settings()
