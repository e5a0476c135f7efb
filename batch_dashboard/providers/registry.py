"""Provider adapters by name (a phone number names its provider; BATCH_PROVIDER is the default)."""

from __future__ import annotations

from batch_dashboard.clock import Clock, system_clock
from batch_dashboard.providers.base import Provider, ProviderError
from batch_dashboard.settings import Settings, get_settings

KNOWN = ("simulator", "http")


class Registry:
    def __init__(self, *, settings: Settings | None = None, clock: Clock = system_clock) -> None:
        self.settings = settings or get_settings()
        self.clock = clock
        self._providers: dict[str, Provider] = {}

    def get(self, name: str) -> Provider:
        if name not in self._providers:
            self._providers[name] = self._build(name)
        return self._providers[name]

    def _build(self, name: str) -> Provider:
        if name == "simulator":
            from batch_dashboard.providers.simulator import Simulator

            return Simulator(settings=self.settings, clock=self.clock)
        if name == "http":
            from batch_dashboard.providers.http import HttpProvider

            return HttpProvider(settings=self.settings, clock=self.clock)
        raise ProviderError(
            f"unknown telephony provider {name!r} (known: {', '.join(KNOWN)})", retryable=False
        )

    async def aclose(self) -> None:
        for provider in self._providers.values():
            await provider.aclose()
        self._providers.clear()
