"""Worker processes on PostgreSQL: four dial 2,000 recipients (nobody twice, all finished, the
workspace's concurrency cap never exceeded — sampled throughout — and pacing respected); two
or four on one workspace split its cap, each getting a share, also when one's calls last longer."""

from __future__ import annotations

import re
import threading
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import func, select

from batch_dashboard.db import session_scope
from batch_dashboard.models import Recipient
from batch_dashboard.providers.simulator import ledger_rows
from batch_dashboard.services import agents, dialing
from tests.conftest import make_tenant
from tests.worker.helpers import (
    START,
    assert_counts_consistent,
    batch_row,
    make_batch,
    numbers,
)
from tests.worker.processes import start_worker, stop, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.xdist_group("processes")]

CAP = 20
CALLS_PER_SECOND = 100  # per caller number
PACING_SLICE = 25  # CALLS_PER_SECOND × 0.25 s: what one claim may take at once


@contextmanager
def sampled_calls_in_progress() -> Iterator[list[int]]:
    """The recipients dialing, counted every 20 ms by a thread until the block ends."""
    samples: list[int] = []
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            with session_scope() as session:
                samples.append(
                    session.execute(
                        select(func.count())
                        .select_from(Recipient)
                        .where(Recipient.status == "dialing")
                    ).scalar_one()
                )
            done.wait(0.02)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        yield samples
    finally:
        done.set()
        sampler.join()


def placed_per_worker(log: Path) -> list[int]:
    """Each worker's `placed` count, from the line it logs when it stops (in stopping order)."""
    return [int(n) for n in re.findall(r"stopped \(\{'placed': (\d+)", log.read_text())]


def test_four_workers_share_the_work_and_the_limits(postgres_url, tmp_path: Path) -> None:
    tenant = make_tenant()
    with session_scope(write=True) as session:
        second_number = agents.create_phone_number(
            session, workspace_id=tenant.workspace_id, number="+14155550102"
        )
    first = make_batch(tenant, 1000, ringing_timeout_ms=1000)
    from batch_dashboard.services import batches, recipients

    rows = recipients.from_json(
        [{"phone": phone} for phone in numbers(1000, start=5000)], max_recipients=10_000
    )
    second, _ = batches.create_batch(
        workspace_id=tenant.workspace_id,
        fields={
            "name": "Second",
            "agent_id": tenant.agent_id,
            "phone_number_id": second_number.id,
            "ringing_timeout_ms": 1000,
        },
        rows=rows,
    )
    env = {
        "BATCH_SIM_CALL_SECONDS": "0.05",
        "BATCH_SIM_OUTCOMES": "completed=0.9,busy=0.1",
        "BATCH_MAX_CONCURRENT_CALLS": str(CAP),
        "BATCH_CALLS_PER_SECOND": str(CALLS_PER_SECOND),
    }
    log = tmp_path / "workers.log"
    workers = [start_worker(postgres_url, log, **env) for _ in range(4)]
    with sampled_calls_in_progress() as samples:
        try:
            wait_for(
                lambda: (
                    batch_row(first["id"]).status == batch_row(second["id"]).status == "completed"
                ),
                timeout=180,
                what="both batches to complete",
                log=log,
            )
        finally:
            codes = [stop(worker) for worker in workers]
    assert codes == [0, 0, 0, 0], log.read_text()[-6000:]
    for batch in (first, second):
        assert_counts_consistent(batch["id"])
    calls = ledger_rows()
    assert len(calls) == 2000
    assert max(Counter(call["to_number"] for call in calls).values()) == 1
    assert len(samples) > 50 and max(samples) <= CAP, max(samples)
    assert max(samples) >= CAP // 2  # the cap was actually reached, not trivially held
    # Pacing: in any sliding second, one caller number dialed at most its rate (plus one slice).
    by_number: dict[str, list[float]] = defaultdict(list)
    for call in calls:
        by_number[call["from_number"]].append(call["placed_at"].timestamp())
    assert set(by_number) == {"+14155550100", "+14155550102"}
    for times in by_number.values():
        times.sort()
        start = 0
        worst = 0
        for end, moment in enumerate(times):
            while moment - times[start] >= 1.0:
                start += 1
            worst = max(worst, end - start + 1)
        assert worst <= CALLS_PER_SECOND + PACING_SLICE, worst
    # All four workers did some of the work.
    placed = placed_per_worker(log)
    assert len(placed) == 4 and min(placed) > 0 and sum(placed) == 2000, placed


def test_a_claim_takes_this_dialers_share_of_the_cap(postgres_url) -> None:
    """Every connected dialer (PostgreSQL's list of connections) gets an even share of the cap;
    what this dialer already holds in the workspace counts against its share."""
    tenant = make_tenant()
    make_batch(tenant, 30)

    def claim(held: int) -> int:
        with session_scope(write=True) as session:
            claims = dialing.claim_calls(
                session,
                limit=100,
                now=START,
                lease=timedelta(seconds=30),
                max_concurrent_calls=10,
                calls_per_second=0,
                default_provider="simulator",
                worker_id="test-host:1",
                held={tenant.workspace_id: held},
            )
        return len(claims)

    plain = postgres_url.replace("postgresql+psycopg", "postgresql")
    with psycopg.connect(plain, application_name=dialing.DIALER_NAME_PREFIX + "elsewhere:2"):
        assert claim(held=0) == 5  # two dialers: half the cap each
        assert claim(held=5) == 0  # its half is taken, though the cap has room
        assert claim(held=3) == 2  # it ended some of its calls meanwhile
    # The other dialer went away: the whole cap is this one's, less what is in progress.
    assert claim(held=0) == 3


def _run_workers(
    postgres_url: str, log: Path, envs: list[dict[str, str]], batch_id: str
) -> tuple[list[int], list[int]]:
    """One worker per environment until the batch is completed: the sampled calls in progress,
    and the calls each worker placed, in the order of `envs` (its stop line, by pid)."""
    workers = [start_worker(postgres_url, log, **env) for env in envs]
    with sampled_calls_in_progress() as samples:
        try:
            wait_for(
                lambda: batch_row(batch_id).status == "completed",
                timeout=180,
                what="the batch to complete",
                log=log,
            )
        finally:
            codes = [stop(worker) for worker in workers]
    text = log.read_text()
    assert codes == [0] * len(envs), text[-6000:]
    by_pid = {
        int(pid): int(n) for pid, n in re.findall(r":(\d+) stopped \(\{'placed': (\d+)", text)
    }
    return samples, [by_pid.get(worker.pid, 0) for worker in workers]


@pytest.mark.parametrize("count", [2, 4])
def test_workers_on_one_workspace_split_its_cap(postgres_url, tmp_path: Path, count: int) -> None:
    tenant = make_tenant()
    batch = make_batch(tenant, 800, ringing_timeout_ms=1000)
    env = {
        # Zero-length calls: each worker cycles claim → place → record as fast as it can, the
        # shape in which taking the whole cap made the workers dial in turns.
        "BATCH_SIM_CALL_SECONDS": "0",
        "BATCH_SIM_OUTCOMES": "completed=0.9,busy=0.1",
        "BATCH_MAX_CONCURRENT_CALLS": str(CAP),
        "BATCH_CALLS_PER_SECOND": "0",
    }
    samples, placed = _run_workers(
        postgres_url, tmp_path / "workers.log", [env] * count, batch["id"]
    )
    assert_counts_consistent(batch["id"])
    calls = ledger_rows()
    assert len(calls) == 800
    assert max(Counter(call["to_number"] for call in calls).values()) == 1
    assert len(samples) > 20 and max(samples) <= CAP, max(samples)
    # Each worker dialed a share: an even split is 800 / count; taking turns with the whole cap,
    # as before the split, leaves some workers with (almost) nothing.
    assert len(placed) == count and sum(placed) == 800, placed
    assert min(placed) >= 800 / count / 4, placed


def test_a_worker_with_longer_calls_does_not_starve_another(postgres_url, tmp_path: Path) -> None:
    """One worker's calls last 1 s, the other's no time at all: the first holds at most its half
    of the cap, so the second keeps dialing in the other half (instead of the first taking
    every slot again the moment its calls end)."""
    tenant = make_tenant()
    batch = make_batch(tenant, 300, ringing_timeout_ms=1000)
    env = {
        "BATCH_SIM_OUTCOMES": "completed=1",
        "BATCH_MAX_CONCURRENT_CALLS": "10",
        "BATCH_CALLS_PER_SECOND": "0",
    }
    envs = [
        {**env, "BATCH_SIM_CALL_SECONDS": "1"},
        {**env, "BATCH_SIM_CALL_SECONDS": "0"},
    ]
    samples, (long, short) = _run_workers(postgres_url, tmp_path / "workers.log", envs, batch["id"])
    assert max(samples) <= 10, max(samples)
    assert len(ledger_rows()) == 300 and long + short == 300, (long, short)
    # Holding 5 slots for 1 s a call, the first places at most ~5 calls a second; the second
    # cycles its 5 many times a second (how many depends on the machine's load). Without the
    # split the first took all 10 slots back each time its calls ended, and the second placed
    # only what it caught in between.
    assert long > 0 and short >= 2 * long, (long, short)


def test_a_claim_that_waited_for_the_workspace_sees_the_calls_claimed_meanwhile(
    postgres_url,
) -> None:
    """Two claims of one batch whose `max_concurrency` is 4: the second reads the batches, then
    waits for the workspace lock the first holds; once the first commits its 4 calls, the
    second must count them (read under the lock) and take none."""
    tenant = make_tenant()
    make_batch(tenant, 20, max_concurrency=4)

    def claim(limit: int) -> list[dialing.Claim]:
        with session_scope(write=True) as session:
            return _claim_in(session, limit)

    def _claim_in(session, limit: int) -> list[dialing.Claim]:
        return dialing.claim_calls(
            session,
            limit=limit,
            now=START,
            lease=timedelta(seconds=30),
            max_concurrent_calls=100,
            calls_per_second=0,
            default_provider="simulator",
        )

    second: list[dialing.Claim] = []
    with session_scope(write=True) as session:
        first = _claim_in(session, 4)
        waiting = threading.Thread(target=lambda: second.extend(claim(100)))
        waiting.start()
        waiting.join(0.5)  # it reads the candidates, then waits for this transaction's lock
        assert waiting.is_alive()
    waiting.join(10)
    assert len(first) == 4 and second == []
