"""Twilio with real `worker` processes: a worker SIGKILLed between sending placements and storing
Twilio's call sids dials nobody twice, and each connection's calls per second holds across three
workers on PostgreSQL."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from batch_dashboard.settings import reload_settings
from tests.conftest import make_tenant
from tests.fakes.twilio import CallbackBehaviour
from tests.providers.twilio_setup import (
    PUBLIC,
    ApiServer,
    batch_status,
    connect,
    create_batch,
    fake_account,
)
from tests.worker.processes import start_worker, stop, wait_for

WORKER_ENV = {"BATCH_PUBLIC_URL": PUBLIC, "BATCH_CALLS_PER_SECOND": "0"}


def _ended(setup, batch_id: str) -> bool:
    return batch_status(setup, batch_id)["batch_call"]["status"] == "completed"


def test_a_worker_killed_before_storing_the_sids_dials_nobody_twice(
    tenant, database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BATCH_PUBLIC_URL", PUBLIC)
    reload_settings()
    # No callback ever comes: what the dead worker placed can only be settled by its sid, which
    # it never stored.
    with (
        ApiServer() as api,
        fake_account(api, time_scale=0.01, callbacks=CallbackBehaviour(drop=True)) as fake,
    ):
        setup = connect(tenant, fake, api)
        phones = [f"+141555530{10 + i}" for i in range(6)]
        batch = create_batch(setup, phones)
        log = tmp_path / "worker.log"
        crashing = start_worker(database, log, BATCH_CRASH_AT="after_place", **WORKER_ENV)
        crashing.wait(timeout=60)
        assert crashing.returncode == -9, log.read_text()[-3000:]
        placed = {call.to for call in fake.calls}
        assert placed, "the worker died before placing anything"
        survivor = start_worker(database, log, **WORKER_ENV)
        try:
            wait_for(lambda: _ended(setup, batch["id"]), timeout=90, what="the end", log=log)
        finally:
            assert stop(survivor) == 0
        recipients = batch_status(setup, batch["id"])["recipients"]
        for recipient in recipients:
            calls = fake.calls_to(recipient["phone"])
            assert len(calls) == 1, recipient  # never dialed a second time
            if recipient["phone"] in placed:
                assert (recipient["status"], recipient["failure_reason"]) == (
                    "failed",
                    "outcome_unknown",
                )
            else:
                assert recipient["status"] == "completed"


@pytest.mark.postgres
def test_calls_per_second_holds_across_three_workers(
    postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BATCH_PUBLIC_URL", PUBLIC)
    reload_settings()
    tenant = make_tenant()
    rate = 4
    with ApiServer() as api, fake_account(api, time_scale=0.01) as fake:
        setup = connect(tenant, fake, api, calls_per_second=rate)
        phones = [f"+141555531{10 + i}" for i in range(24)]
        batch = create_batch(setup, phones)
        log = tmp_path / "workers.log"
        workers = [start_worker(postgres_url, log, **WORKER_ENV) for _ in range(3)]
        try:
            wait_for(lambda: _ended(setup, batch["id"]), timeout=120, what="the end", log=log)
        finally:
            for worker in workers:
                assert stop(worker) == 0
        assert sorted(call.to for call in fake.calls) == sorted(phones)  # each once
        # The claims are paced exactly: in any second, at most `rate` calls were started
        # (each recipient's started_at is its claim's time, written by the worker).
        started = sorted(
            datetime.fromisoformat(r["started_at"].replace("Z", "+00:00")).timestamp()
            for r in batch_status(setup, batch["id"])["recipients"]
        )
        for first, later in zip(started, started[rate:], strict=False):
            assert later - first >= 1.0 - 0.002, (first, later)
        # Twilio sees them after a trip of varying length: still never twice the rate.
        created = sorted(moment for moment, _wall in fake.create_times())
        for first, later in zip(created, created[2 * rate :], strict=False):
            assert later - first >= 1.0, (first, later)
