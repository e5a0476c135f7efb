"""Rate limit benchmark: what spending one request of a key costs, in this process's memory
and in Redis (the deployment-wide bucket used when REFLEX_REDIS_URL is set), one caller and
several threads at once (as the API's worker threads call it).

    python bench/ratelimit.py [--redis redis://127.0.0.1:6379/13] [--requests 20000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from batch_dashboard.services import ratelimit  # noqa: E402


def per_call_us(buckets: ratelimit.Buckets, requests: int, threads: int) -> tuple[float, float]:
    """Mean and 99th percentile microseconds of one `take`, and never refused (a high rate)."""
    key = f"bench-{uuid.uuid4().hex}"
    timings: list[float] = []

    def spend(count: int) -> list[float]:
        mine = []
        for _ in range(count):
            started = time.perf_counter()
            buckets.take(key, rate=1e9, burst=10**9)
            mine.append((time.perf_counter() - started) * 1e6)
        return mine

    with ThreadPoolExecutor(threads) as pool:
        for part in pool.map(spend, [requests // threads] * threads):
            timings.extend(part)
    timings.sort()
    return statistics.fmean(timings), timings[int(len(timings) * 0.99)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/13")
    parser.add_argument("--requests", type=int, default=20_000)
    args = parser.parse_args()
    print("| buckets | threads | mean µs | p99 µs |")
    print("| --- | --- | --- | --- |")
    for name, buckets in (
        ("memory", ratelimit.KeyBuckets()),
        ("redis", ratelimit.RedisBuckets(args.redis)),
    ):
        for threads in (1, 8):
            mean, p99 = per_call_us(buckets, args.requests, threads)
            print(f"| {name} | {threads} | {mean:.1f} | {p99:.1f} |")


if __name__ == "__main__":
    main()
