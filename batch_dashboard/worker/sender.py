"""The webhook sender: takes due deliveries from the outbox and posts them, each on its own
task so one slow endpoint never delays another agent's events.

Each attempt connects to an address that was checked against SSRF a moment before (never to
a name resolved again later), with the original Host header and TLS server name.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import random
from datetime import timedelta
from urllib.parse import urlsplit, urlunsplit

import httpx
from sqlalchemy.exc import DBAPIError

from batch_dashboard.clock import Clock, system_clock
from batch_dashboard.db import session_scope
from batch_dashboard.retry_after import retry_after_seconds
from batch_dashboard.services import webhooks
from batch_dashboard.services.webhooks import AttemptResult, DeliveryJob, TargetRefused
from batch_dashboard.settings import Settings, get_settings
from batch_dashboard.worker.outage import DatabaseWatch

log = logging.getLogger(__name__)

MAX_IN_FLIGHT = 100
IDLE_SECONDS = 0.25


def _retry_after(response: httpx.Response, clock: Clock) -> timedelta | None:
    seconds = retry_after_seconds(response.headers.get("retry-after"), clock.now())
    return None if seconds is None else timedelta(seconds=seconds)


def pinned_request(url: str, address: str, port: int) -> tuple[str, dict[str, str], dict[str, str]]:
    """The URL rewritten to the checked address, with the Host header and TLS name of the original."""
    parts = urlsplit(url)
    literal = (
        f"[{address}]" if ipaddress.ip_address(address.split("%")[0]).version == 6 else address
    )
    pinned = urlunsplit((parts.scheme, f"{literal}:{port}", parts.path or "/", parts.query, ""))
    host = parts.hostname or ""
    default_port = 443 if parts.scheme == "https" else 80
    host_header = host if port == default_port else f"{host}:{port}"
    extensions = {"sni_hostname": host} if parts.scheme == "https" else {}
    return pinned, {"host": host_header}, extensions


class Sender:
    def __init__(
        self,
        *,
        settings: Settings | None = None,
        clock: Clock = system_clock,
        watch: DatabaseWatch | None = None,
    ) -> None:
        self.settings = settings or get_settings()
        self.watch = watch or DatabaseWatch()
        self.clock = clock
        self.in_flight: set[asyncio.Task[None]] = set()
        self._client: httpx.AsyncClient | None = None
        self._rng = random.Random()

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                timeout=httpx.Timeout(webhooks.SEND_TIMEOUT_SECONDS),
                follow_redirects=False,  # a 3xx is a failure, never followed
                limits=httpx.Limits(max_connections=MAX_IN_FLIGHT),
            )
        return self._client

    async def run(self, stop: asyncio.Event) -> None:
        try:
            while not stop.is_set():
                # The dialer probes an unreachable database; the sender waits for its word.
                await self.watch.wait_until_back(stop)
                room = MAX_IN_FLIGHT - len(self.in_flight)
                try:
                    jobs = await asyncio.to_thread(self._claim, room) if room > 0 else []
                except DBAPIError as error:
                    if (wait := self.watch.failed(error)) is not None:
                        await self.watch.pause(stop, wait)
                        continue
                    log.exception("claiming webhook deliveries failed; trying again")
                    jobs = []
                for job in jobs:
                    task = asyncio.create_task(self.deliver(job), name=f"webhook-{job.id}")
                    self.in_flight.add(task)
                    task.add_done_callback(self.in_flight.discard)
                if not jobs:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), timeout=IDLE_SECONDS)
        finally:
            if self.in_flight:
                # Attempts under way finish (at most the send timeout); unfinished ones are
                # sent again, with the same webhook-id, after their lease.
                await asyncio.wait(self.in_flight, timeout=webhooks.SEND_TIMEOUT_SECONDS + 1)
            if self._client is not None:
                await self._client.aclose()

    def _claim(self, limit: int) -> list[DeliveryJob]:
        with session_scope(write=True) as session:
            return webhooks.claim_due(session, now=self.clock.now(), limit=limit)

    async def deliver(self, job: DeliveryJob) -> str:
        result = await self.attempt(job)
        if not result.success:
            log.info(
                "webhook %s to agent %s failed: %s",
                job.id,
                job.agent_id,
                result.error or result.status_code,
            )
        return await asyncio.to_thread(self._record, job, result)

    async def attempt(self, job: DeliveryJob) -> AttemptResult:
        allow_private = self.settings.webhook_allow_private_targets
        try:
            _host, port, addresses = await asyncio.to_thread(
                webhooks.resolve_target, job.url, allow_private=allow_private
            )
        except TargetRefused as refused:
            return AttemptResult(error=f"refused: {refused}", final=refused.permanent)
        if not job.secrets:
            return AttemptResult(error="the agent has no signing secret")
        now = self.clock.now()
        headers = webhooks.signature_headers(
            msg_id=job.id, timestamp=now, body=job.payload, secrets=job.secrets
        )
        url, host_header, extensions = pinned_request(job.url, addresses[0], port)
        try:
            response = await self._http().post(
                url,
                content=job.payload.encode(),
                headers={**headers, **host_header},
                extensions=extensions,
            )
        except httpx.TimeoutException:
            return AttemptResult(error=f"no answer within {webhooks.SEND_TIMEOUT_SECONDS:.0f} s")
        except httpx.HTTPError as error:
            return AttemptResult(error=f"{type(error).__name__}: {error}"[:300])
        error = None
        if 300 <= response.status_code < 400:
            error = f"redirect to {response.headers.get('location', '?')[:200]} not followed"
        return AttemptResult(
            status_code=response.status_code,
            error=error,
            retry_after=_retry_after(response, self.clock),
        )

    def _record(self, job: DeliveryJob, result: AttemptResult) -> str:
        with session_scope(write=True) as session:
            return webhooks.record_attempt(
                session,
                job=job,
                result=result,
                now=self.clock.now(),
                schedule=self.settings.retry_schedule_seconds,
                rng=self._rng,
            )
