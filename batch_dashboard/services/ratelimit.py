"""Requests per API key: a token bucket per key.

With `REFLEX_REDIS_URL` set (several backend processes, or several machines) the buckets live
in Redis and every process of the deployment spends from the same one, in one atomic script
that reads Redis's own clock; without it, in this process's memory (one process serves
everything then). If Redis cannot be reached, requests are let through and that is logged once
a minute: the limit protects the service, it must not take it down.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from typing import Protocol

from batch_dashboard.services.errors import RateLimited
from batch_dashboard.settings import get_settings

log = logging.getLogger(__name__)
REDIS_KEY_PREFIX = "batch_dashboard:ratelimit:"


def _refused(rate: float, burst: int, tokens: float) -> RateLimited:
    wait = max(1, math.ceil((1 - tokens) / rate))
    return RateLimited(
        f"too many requests for this API key: at most {rate:g} a second "
        f"(bursts of {burst}); try again in {wait} s",
        retry_after=wait,
    )


class Buckets(Protocol):
    def take(self, key_hash: str, *, rate: float, burst: int) -> None:
        """Spend one request of this key, or raise `RateLimited` saying when to come back."""


class KeyBuckets:
    """This process's buckets."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}  # key hash → (tokens, last refill)

    def take(self, key_hash: str, *, rate: float, burst: int) -> None:
        if rate <= 0:
            return
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(key_hash, (float(burst), now))
            tokens = min(float(burst), tokens + (now - last) * rate)
            if tokens < 1:
                self._buckets[key_hash] = (tokens, now)
                raise _refused(rate, burst, tokens)
            self._buckets[key_hash] = (tokens - 1, now)
            if len(self._buckets) > 100_000:  # keys seen once long ago are not kept forever
                self._buckets.clear()


# Refill by the time elapsed (Redis's clock, the same for every process), spend one token if
# there is one, store, and let an idle bucket expire once it would be full again anyway.
# Lua numbers come back as integers, so the tokens left are returned as a string.
_TAKE = """
local rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local stored = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(stored[1]) or burst
local at = tonumber(stored[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
local allowed = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return {allowed, tostring(tokens)}
"""


class RedisBuckets:
    """The deployment's buckets, shared by every process through Redis."""

    def __init__(self, url: str) -> None:
        import redis

        self._errors = (redis.RedisError, OSError)
        # Short timeouts: a request waits for its bucket at most this long before it is let
        # through (see the module's docstring).
        self._redis = redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
        self._take = self._redis.register_script(_TAKE)
        self._warned_at = 0.0

    def take(self, key_hash: str, *, rate: float, burst: int) -> None:
        if rate <= 0:
            return
        try:
            allowed, tokens = self._take(keys=[REDIS_KEY_PREFIX + key_hash], args=[rate, burst])
        except self._errors as error:
            if time.monotonic() - self._warned_at > 60:
                self._warned_at = time.monotonic()
                log.warning("rate limit not applied: Redis unreachable (%s)", type(error).__name__)
            return
        if not int(allowed):
            raise _refused(rate, burst, float(tokens))


def in_redis() -> bool:
    """Whether spending a request is a network round trip (to Redis)."""
    return bool(get_settings().redis_url.strip())


_chosen: tuple[str, Buckets] | None = None
_choosing = threading.Lock()


def buckets() -> Buckets:
    """Redis's when `REFLEX_REDIS_URL` is set (Reflex's own variable: the deployment runs
    several backend processes then), this process's otherwise."""
    global _chosen
    url = get_settings().redis_url.strip()
    chosen = _chosen
    if chosen is None or chosen[0] != url:
        with _choosing:
            chosen = _chosen
            if chosen is None or chosen[0] != url:
                chosen = _chosen = (url, RedisBuckets(url) if url else KeyBuckets())
    return chosen[1]
