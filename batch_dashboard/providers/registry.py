"""Provider adapters by key: a telephony connection's id (its platform account, with its own
credentials), or a provider's name for numbers without a connection (BATCH_PROVIDER, the
simulator and the HTTP runtime configured by settings)."""

from __future__ import annotations

import asyncio
import importlib
import time
from typing import Any

from batch_dashboard.clock import Clock, system_clock
from batch_dashboard.providers.base import Provider, ProviderError
from batch_dashboard.settings import Settings, get_settings

KNOWN = ("simulator", "http", "twilio", "elevenlabs", "vapi", "retell")
# Hosted voice-agent platforms: module and class of each adapter.
HOSTED = {
    "elevenlabs": ("batch_dashboard.providers.elevenlabs", "ElevenLabsProvider"),
    "vapi": ("batch_dashboard.providers.vapi", "VapiProvider"),
    "retell": ("batch_dashboard.providers.retell", "RetellProvider"),
}
CONNECTION_PREFIX = "conn_"
# A connection's adapter is rebuilt this often, so new credentials (a rotated auth token)
# reach every worker without a restart.
CONNECTION_TTL_SECONDS = 60.0


class Registry:
    def __init__(self, *, settings: Settings | None = None, clock: Clock = system_clock) -> None:
        self.settings = settings or get_settings()
        self.clock = clock
        self._providers: dict[str, Provider] = {}
        self._built_at: dict[str, float] = {}

    def get(self, key: str) -> Provider:
        """The adapter for a connection id or a provider name (a connection's is read from the
        database when it is not fresh: call `provider` from the event loop)."""
        stale = key.startswith(CONNECTION_PREFIX) and (
            time.monotonic() - self._built_at.get(key, 0.0) > CONNECTION_TTL_SECONDS
        )
        if key not in self._providers or stale:
            self._providers[key] = self._build(key)
            self._built_at[key] = time.monotonic()
        return self._providers[key]

    async def provider(self, key: str) -> Provider:
        if key in self._providers and not key.startswith(CONNECTION_PREFIX):
            return self._providers[key]
        return await asyncio.to_thread(self.get, key)

    def _build(self, key: str) -> Provider:
        if key.startswith(CONNECTION_PREFIX):
            return self._for_connection(key)
        if key == "simulator":
            from batch_dashboard.providers.simulator import Simulator

            return Simulator(settings=self.settings, clock=self.clock)
        if key == "http":
            from batch_dashboard.providers.http import HttpProvider

            return HttpProvider(settings=self.settings, clock=self.clock)
        raise ProviderError(
            f"unknown telephony provider {key!r} (known: {', '.join(KNOWN)})", retryable=False
        )

    def _for_connection(self, connection_id: str) -> Provider:
        from batch_dashboard.db import session_scope
        from batch_dashboard.models import Connection

        with session_scope() as session:
            connection = session.get(Connection, connection_id)
            if connection is None:
                raise ProviderError(f"connection {connection_id} was deleted", retryable=False)
            if connection.provider in ("simulator", "http"):
                # The deployment's own simulator or runtime, shared by every connection naming it.
                return self.get(connection.provider)
            return platform_adapter(connection, settings=self.settings, clock=self.clock)

    async def aclose(self) -> None:
        # Connections of the simulator or the runtime share one adapter: close each once.
        for provider in {id(p): p for p in self._providers.values()}.values():
            await provider.aclose()
        self._providers.clear()
        self._built_at.clear()


def platform_adapter(connection: Any, *, settings: Settings, clock: Clock = system_clock) -> Any:
    """The adapter of a connection to a platform account, built from its sealed credentials."""
    from batch_dashboard.services import connections

    secrets = connections.credentials(connection)
    if connection.provider == "twilio":
        from batch_dashboard.providers.twilio import TwilioProvider

        return TwilioProvider(
            connection_id=connection.id,
            account_sid=secrets.get("account_sid", ""),
            auth_token=secrets.get("auth_token", ""),
            base_url=connection.base_url,
            public_url=settings.public_url,
            clock=clock,
        )
    if connection.provider in HOSTED:
        module, name = HOSTED[connection.provider]
        try:
            adapter = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError):
            raise ProviderError(
                f"the {connection.provider} adapter is not part of this installation",
                retryable=False,
            ) from None
        return adapter(
            connection_id=connection.id,
            credentials=secrets,
            base_url=connection.base_url,
            public_url=settings.public_url,
            clock=clock,
        )
    raise ProviderError(f"unknown telephony provider {connection.provider!r}", retryable=False)
