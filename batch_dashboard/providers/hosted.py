"""What the hosted voice-agent platforms' adapters (ElevenLabs, Vapi, Retell) share: the
connection they serve, their API's address and our timeout, the events URL the platform must
call, and httpx clients (one async client per event loop, a short-lived one for the account's
synchronous reads)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping

import httpx

from batch_dashboard.clock import Clock, system_clock
from batch_dashboard.providers.base import Provider

TIMEOUT_SECONDS = 15.0


class HostedPlatform(Provider):
    # The platform's public API; a connection's base_url overrides it.
    default_base_url = ""
    # Their webhooks record each call's end at once; polling is only the fallback for a webhook
    # that never comes, so it stays well inside the platforms' API limits.
    poll_interval = 10.0

    def __init__(
        self,
        *,
        connection_id: str,
        credentials: Mapping[str, str],
        base_url: str | None,
        public_url: str,
        clock: Clock = system_clock,
        timeout: float = TIMEOUT_SECONDS,
    ) -> None:
        super().__init__(clock=clock)
        self.connection_id = connection_id
        self._credentials = dict(credentials or {})
        self.base_url = (base_url or self.default_base_url).rstrip("/")
        self.public_url = public_url.rstrip("/")
        self.timeout = timeout
        self._client: httpx.AsyncClient | None = None
        self._client_loop: asyncio.AbstractEventLoop | None = None

    def __repr__(self) -> str:  # never a credential
        return f"{type(self).__name__}({self.connection_id}, {self.base_url})"

    def _credential(self, key: str) -> str:
        return self._credentials.get(key) or ""

    @property
    def events_url(self) -> str:
        """Where the platform must send its webhooks for this connection."""
        return f"{self.public_url}/v1/provider-events/{self.name}/{self.connection_id}"

    def _headers(self) -> dict[str, str]:
        raise NotImplementedError

    def _client_options(self) -> dict[str, object]:
        return {
            "base_url": self.base_url,
            "headers": self._headers(),
            "timeout": httpx.Timeout(self.timeout),
            "follow_redirects": False,
        }

    def _async_client(self) -> httpx.AsyncClient:
        """One client per event loop (a client's connections belong to the loop that made
        them)."""
        loop = asyncio.get_running_loop()
        if self._client is None or self._client_loop is not loop or self._client.is_closed:
            self._client = httpx.AsyncClient(**self._client_options())  # type: ignore[arg-type]
            self._client_loop = loop
        return self._client

    def _sync_client(self) -> httpx.Client:
        return httpx.Client(**self._client_options())  # type: ignore[arg-type]

    async def aclose(self) -> None:
        client, self._client = self._client, None
        self._client_loop = None
        if client is not None and not client.is_closed:
            with contextlib.suppress(RuntimeError):  # its loop is gone already
                await client.aclose()
