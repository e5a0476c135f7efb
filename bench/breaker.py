"""Circuit-breaker benchmark: what the breaker adds to recording call outcomes.

Two batches of the same size on a fresh SQLite database (migrated through the CLI), one with
its breaker on (the default) and one with `circuit_breaker: false`. Groups of claimed calls are
recorded through `dialing.record_outcomes`, alternating between the two batches so both see the
same machine load, with the dialer benchmark's mix (80 % connected, 10 % busy, 10 % failed: the
breaker counts every group and never trips). Prints the median time to record a group for each,
the difference, and PASS/MISS against the target.

    .venv/bin/python bench/breaker.py [--recipients 6000] [--group 200]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from ingest import Figure, backend_env, conclude, generate_numbers, provision, scratch_dir  # noqa: E402

# The breaker may add at most this share to the time it takes to record a group of ends.
TARGET_OVERHEAD = 0.10


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, default=6000, help="per batch")
    parser.add_argument("--group", type=int, default=200, help="calls recorded at once")
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--strict", action="store_true")
    args = parser.parse_args()
    with scratch_dir("bench-breaker-", args.keep) as workdir:
        env = backend_env(f"sqlite:///{workdir / 'breaker.db'}")
        _api_key, agent_id = provision(env)
        # This process records the calls itself, on the same database.
        os.environ["DATABASE_URL"] = env["DATABASE_URL"]
        figures = measure(agent_id, args.recipients, args.group)
    sys.exit(conclude(figures, strict=args.strict))


def measure(agent: str, recipients: int, group: int) -> list[Figure]:
    from sqlalchemy import func, select, update

    from batch_dashboard.db import session_scope
    from batch_dashboard.models import Agent, Batch
    from batch_dashboard.providers.base import CallResult, CallStatus
    from batch_dashboard.services import batches, dialing
    from batch_dashboard.services import recipients as recipient_rows

    with session_scope() as session:
        agent_row = session.get(Agent, agent)
        assert agent_row is not None
        workspace = agent_row.workspace_id
    numbers = generate_numbers(2 * recipients)
    start = datetime.now(UTC)
    ids = {}
    for name, breaker in (("on", None), ("off", False)):
        rows = recipient_rows.from_json(
            [{"phone": phone, "first_name": "Ada"} for phone in numbers[:recipients]],
            max_recipients=recipients,
        )
        numbers = numbers[recipients:]
        fields = {"name": f"breaker {name}", "agent_id": agent}
        if breaker is not None:
            fields["circuit_breaker"] = breaker
        batch, _ = batches.create_batch(workspace_id=workspace, fields=fields, rows=rows, now=start)
        ids[name] = batch["id"]
    with session_scope(write=True) as session:
        # Claims take from whichever batch comes first: keep the other one aside meanwhile.
        session.execute(update(Batch).where(Batch.id == ids["off"]).values(paused_at=start))
    rng = random.Random(7)
    ok = CallResult(status=CallStatus.completed, duration_seconds=5.0, transcript=[])
    busy = CallResult(status=CallStatus.busy, failure_reason="busy")
    down = CallResult(status=CallStatus.failed, failure_reason="call_failed")
    timings: dict[str, list[float]] = {"on": [], "off": []}
    now = start
    for _ in range(recipients // group):
        for name in ("on", "off"):
            other = "off" if name == "on" else "on"
            with session_scope(write=True) as session:
                session.execute(update(Batch).where(Batch.id == ids[name]).values(paused_at=None))
                session.execute(update(Batch).where(Batch.id == ids[other]).values(paused_at=now))
            now += timedelta(milliseconds=200)
            with session_scope(write=True) as session:
                claims = dialing.claim_calls(
                    session,
                    limit=group,
                    now=now,
                    lease=timedelta(seconds=60),
                    max_concurrent_calls=10 * group,
                    calls_per_second=0,
                    default_provider="simulator",
                )
            outcomes = [
                (c.attempt_id, rng.choices((ok, busy, down), (0.8, 0.1, 0.1))[0]) for c in claims
            ]
            began = time.perf_counter()
            with session_scope(write=True) as session:
                dialing.record_outcomes(session, outcomes=outcomes, now=now)
            timings[name].append(time.perf_counter() - began)
    with session_scope() as session:
        tripped = session.execute(
            select(func.count()).where(Batch.paused_reason == "failure_rate")
        ).scalar_one()
    if tripped:
        sys.exit("the breaker tripped: the mix is meant never to trip it")
    on, off = (statistics.median(timings[name]) * 1000 for name in ("on", "off"))
    overhead = (on - off) / off
    return [
        Figure(f"record {group} ends, breaker on: ms (median)", f"{on:.2f}", "—", None),
        Figure(f"record {group} ends, breaker off: ms (median)", f"{off:.2f}", "—", None),
        Figure(
            "breaker overhead",
            f"{overhead:+.1%}",
            f"≤ {TARGET_OVERHEAD:.0%}",
            overhead <= TARGET_OVERHEAD,
        ),
    ]


if __name__ == "__main__":
    main()
