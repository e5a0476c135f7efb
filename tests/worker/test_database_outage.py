"""A worker whose database cannot be reached says so once, backs off (a handful of attempts in
seconds, not hundreds), says once that the database is back, and dials.

PostgreSQL goes away behind a TCP proxy the test owns (tests/tcp_proxy.py); a SQLite file is
unreachable while its directory cannot exist (a file stands in its place), and comes back when
the test puts the database there.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlalchemy.engine import make_url

from batch_dashboard import db
from batch_dashboard.settings import reload_settings
from batch_dashboard.telemetry import dialer_state, set_dialer_running
from batch_dashboard.worker.outage import DatabaseWatch
from tests.conftest import make_tenant
from tests.tcp_proxy import TcpProxy
from tests.worker.helpers import batch_row, make_batch
from tests.worker.processes import start_worker, stop, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("processes")]

WORKER_ENV = {
    "BATCH_SIM_CALL_SECONDS": "0",
    "BATCH_SIM_OUTCOMES": "completed=1",
    "BATCH_CALLS_PER_SECOND": "0",
}
WATCHED_SECONDS = 6


def test_waits_double_up_to_the_cap_and_each_change_is_said_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "a-file").write_text("")
    engine = db.make_engine(f"sqlite:///{tmp_path / 'a-file' / 'x.db'}")
    with pytest.raises(Exception) as unreachable:
        engine.connect()
    engine.dispose()
    watch = DatabaseWatch(first_wait=0.5, max_wait=4)
    set_dialer_running(True)
    try:
        with caplog.at_level("INFO", logger="batch_dashboard.worker.outage"):
            waits = [watch.failed(unreachable.value) for _ in range(6)]
            assert dialer_state() == "waiting for database"
            assert watch.failed(ValueError("a bug, not an outage")) is None
            watch.reached()
            watch.reached()
        assert dialer_state() == "running"
    finally:
        set_dialer_running(False)
    assert waits == [0.5, 1, 2, 4, 4, 4]
    said = [record.getMessage() for record in caplog.records]
    assert len(said) == 2, said
    assert said[0].startswith("database unreachable (unable to open database file)")
    assert said[1].startswith("database back after") and "(6 attempts)" in said[1]


def _lines(log: Path, text: str) -> int:
    return sum(text in line for line in log.read_text().splitlines())


def test_a_worker_backs_off_while_postgresql_is_away_and_dials_when_it_is_back(
    postgres_url: str, tmp_path: Path
) -> None:
    tenant = make_tenant()
    target = make_url(postgres_url)
    log = tmp_path / "worker.log"
    with TcpProxy(target.port or 5432) as proxy:
        proxy.go_down()
        worker = start_worker(
            target.set(port=proxy.port).render_as_string(hide_password=False), log, **WORKER_ENV
        )
        try:
            wait_for(lambda: "database unreachable" in log.read_text(), timeout=30, what="it")
            time.sleep(WATCHED_SECONDS)
            attempts = proxy.turned_away
            # Backing off from 0.5 s, doubling: 4 or 5 tries in 6 s (the sender's and the
            # scheduler's first looks may add one each); without backoff it was ~20 a second.
            assert 2 <= attempts <= 10, attempts
            assert _lines(log, "database unreachable") == 1
            assert "Traceback" not in log.read_text()

            batch = make_batch(tenant, 5)
            proxy.come_back()
            wait_for(lambda: "database back" in log.read_text(), timeout=30, what="back", log=log)
            wait_for(
                lambda: batch_row(batch["id"]).status == "completed",
                timeout=60,
                what="the batch dialed",
                log=log,
            )

            proxy.go_down()  # and once more while it works: again one line each way
            wait_for(
                lambda: _lines(log, "database unreachable") == 2, timeout=30, what="2nd", log=log
            )
            proxy.come_back()
            wait_for(lambda: _lines(log, "database back") == 2, timeout=60, what="2nd", log=log)
        finally:
            assert stop(worker) == 0
    text = log.read_text()
    assert _lines(log, "database unreachable") == 2 and _lines(log, "database back") == 2
    assert "Traceback" not in text, text[-3000:]


def test_a_worker_waits_for_a_sqlite_file_it_cannot_open(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tenant = make_tenant()
    batch = make_batch(tenant, 5)
    db.dispose_engines()  # closes the WAL: the file alone is the whole database
    blocked = tmp_path / "later"
    blocked.write_text("")  # a file where the database's directory should be
    later_url = f"sqlite:///{blocked / 'test.db'}"
    log = tmp_path / "worker.log"
    worker = start_worker(
        later_url, log, BATCH_SECRET_KEY=Fernet.generate_key().decode(), **WORKER_ENV
    )
    try:
        wait_for(lambda: "database unreachable" in log.read_text(), timeout=30, what="it", log=log)
        time.sleep(WATCHED_SECONDS)
        assert _lines(log, "database unreachable") == 1
        assert "Traceback" not in log.read_text()

        blocked.unlink()
        blocked.mkdir()
        shutil.copy(make_url(sqlite_url).database or "", blocked / "test.db")
        monkeypatch.setenv("DATABASE_URL", later_url)
        db.dispose_engines()
        reload_settings()
        wait_for(lambda: "database back" in log.read_text(), timeout=30, what="back", log=log)
        wait_for(
            lambda: batch_row(batch["id"]).status == "completed",
            timeout=60,
            what="the batch dialed",
            log=log,
        )
    finally:
        assert stop(worker) == 0
    assert _lines(log, "database back") == 1
    assert "Traceback" not in log.read_text()
