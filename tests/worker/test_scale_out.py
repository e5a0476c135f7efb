"""Four worker processes on PostgreSQL dial 2,000 recipients: nobody twice, all finished, the
workspace's concurrency cap never exceeded (sampled throughout) and pacing respected."""

from __future__ import annotations

import re
import threading
from collections import Counter, defaultdict
from pathlib import Path

import pytest
from sqlalchemy import func, select

from batch_dashboard.db import session_scope
from batch_dashboard.models import Recipient
from batch_dashboard.providers.simulator import ledger_rows
from batch_dashboard.services import agents
from tests.worker.helpers import assert_counts_consistent, batch_row, make_batch, numbers
from tests.worker.processes import start_worker, stop, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.xdist_group("processes")]

CAP = 20
CALLS_PER_SECOND = 100  # per caller number
PACING_SLICE = 25  # CALLS_PER_SECOND × 0.25 s: what one claim may take at once


def test_four_workers_share_the_work_and_the_limits(postgres_url, tmp_path: Path) -> None:
    from tests.conftest import make_tenant

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
    log = tmp_path / "workers.log"
    workers = [start_worker(postgres_url, log, **env) for _ in range(4)]
    sampler.start()
    try:
        wait_for(
            lambda: batch_row(first["id"]).status == batch_row(second["id"]).status == "completed",
            timeout=180,
            what="both batches to complete",
            log=log,
        )
    finally:
        done.set()
        sampler.join()
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
    placed = [int(n) for n in re.findall(r"stopped \(\{'placed': (\d+)", log.read_text())]
    assert len(placed) == 4 and min(placed) > 0 and sum(placed) == 2000, placed
