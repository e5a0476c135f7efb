"""Requests per API key: a token bucket per key in this process.

Several backends each keep their own buckets, so a key may get up to (backends × rate); the
defaults are set with that in mind, and a proxy in front is the place for a global limit.
"""

from __future__ import annotations

import math
import threading
import time

from batch_dashboard.services.errors import RateLimited


class KeyBuckets:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}  # key hash → (tokens, last refill)

    def take(self, key_hash: str, *, rate: float, burst: int) -> None:
        """Spend one request of this key, or raise `RateLimited` saying when to come back."""
        if rate <= 0:
            return
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(key_hash, (float(burst), now))
            tokens = min(float(burst), tokens + (now - last) * rate)
            if tokens < 1:
                self._buckets[key_hash] = (tokens, now)
                wait = math.ceil((1 - tokens) / rate)
                raise RateLimited(
                    f"too many requests for this API key: at most {rate:g} a second "
                    f"(bursts of {burst}); try again in {wait} s",
                    retry_after=wait,
                )
            self._buckets[key_hash] = (tokens - 1, now)
            if len(self._buckets) > 100_000:  # keys seen once long ago are not kept forever
                self._buckets.clear()


buckets = KeyBuckets()
