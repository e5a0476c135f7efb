"""Dialer benchmark: how many zero-length simulated calls per second the workers get through.

Creates a batch of 10,000 recipients on a fresh database, starts real
`python -m batch_dashboard worker` processes (one on SQLite; 1, 2 and 4 on one PostgreSQL
workspace, side by side; four on four workspaces) and times them until the batch is completed,
checks that every recipient ended and was dialed exactly once and that the sampled calls in
progress never exceeded the cap, then profiles the SQLite case in-process. Prints each figure,
its target and PASS/MISS. See bench/README.md.

    .venv/bin/python bench/dialer.py [--recipients 10000] [--skip-postgres] [--no-profile]
    .venv/bin/python bench/dialer.py --quick      # PostgreSQL 1/2/4 workers, 4,000 calls, once
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import os
import pstats
import re
import signal
import statistics
import subprocess
import sys
import sysconfig
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
from cryptography.fernet import Fernet
from ingest import (
    ROOT,
    VENV_BIN,
    Figure,
    backend_env,
    conclude,
    generate_numbers,
    run_cli,
    scratch_dir,
    stop_process_group,
    tail,
)

# The bench process builds batches through the service layer (and profiles the worker) itself.
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

PG_SERVER = os.environ.get("BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432")
TARGET_SQLITE_CPS = 1_000.0
TARGET_POSTGRES_CPS = 2_000.0
# One workspace on PostgreSQL: N workers against one worker, calls/s (first claim → finished).
TARGET_SCALING = {2: 1.5, 4: 1.5}
CAP = 200
# Every worker (and the in-process profile) runs with exactly these settings.
WORKER_ENV = {
    "BATCH_SIM_CALL_SECONDS": "0",
    "BATCH_MAX_CONCURRENT_CALLS": str(CAP),
    "BATCH_CALLS_PER_SECOND": "0",
    "BATCH_SIM_OUTCOMES": "completed=0.8,busy=0.1,failed=0.1",
    "BATCH_WORKER_MAX_CALLS": "200",
    "BATCH_LOG_LEVEL": "INFO",
    # PostgreSQL has no key file beside the database; every process needs the same key.
    "BATCH_SECRET_KEY": os.environ.get("BATCH_SECRET_KEY") or Fernet.generate_key().decode(),
}
FIRST_NAMES = ("Ada", "Bob", "Chloé", "Dmitri", "Elif", "Farah", "Giulia", "Hiro", "Inès", "José")
POLL_SECONDS = 0.05
TERMINAL = ("completed", "failed", "cancelled")
# Rows of the profile that only wrap or wait (the event loop, the thread pool, idle waits):
# their cumulative time is the whole run, so they are left out of the top list.
IDLE_OR_WRAPPER = re.compile(
    r"base_events\.py.*\((run_forever|run_until_complete|_run_once)\)"
    r"|runners\.py.*\((run|__exit__|close)\)"
    r"|events\.py.*\(_run\)"
    r"|concurrent/futures/thread\.py.*\((_worker|run)\)"
    r"|threading\.py|selectors\.py.*\(select\)"
    r"|select\.epoll|_queue\.SimpleQueue|_thread\.lock|built-in method _asyncio"
    r"|bench/dialer\.py"
)
# (file, function) in the profile and what it is, for the phase table under the top list.
PHASES = (
    ("worker/dialer.py", "_claim", "claim: Dialer._claim (one transaction)"),
    ("services/dialing.py", "claim_calls", "  dialing.claim_calls"),
    ("providers/simulator.py", "_place", "place: Simulator._place (one transaction)"),
    ("providers/simulator.py", "decide", "  Simulator.decide (per call)"),
    ("providers/simulator.py", "_rng", "    Simulator._rng (a random.Random per call)"),
    ("providers/simulator.py", "_conversation", "    _conversation (per connected call)"),
    ("worker/dialer.py", "_record", "record: Dialer._record (one transaction)"),
    ("services/dialing.py", "record_outcomes", "  dialing.record_outcomes"),
    ("~", "<method 'commit' of 'sqlite3.Connection' objects>", "sqlite3 commit (all)"),
    ("~", "<method 'execute' of 'sqlite3.Cursor' objects>", "sqlite3 execute (all)"),
    ("~", "<method 'executemany' of 'sqlite3.Cursor' objects>", "sqlite3 executemany (all)"),
)
STDLIB = sysconfig.get_paths()["stdlib"]


@dataclass
class Setup:
    """A migrated database with `workspaces` workspaces, each with a caller number and an agent."""

    url: str
    env: dict[str, str]
    tenants: list[tuple[str, str]]  # (workspace id, agent id)


@dataclass
class Run:
    """What one timed run found in the database afterwards."""

    recipients: int
    launched_at: datetime
    seen_done_s: float  # origin → the bench saw every batch completed (poll granularity)
    first_started_at: datetime
    finished_at: datetime
    ended_p10: datetime
    ended_p90: datetime
    statuses: dict[str, int]
    ledger_rows: int
    ledger_matched: int
    ledger_numbers: int
    conversations: int
    counters_ok: bool
    claims: int = 0  # claim transactions that took recipients (attempt ids share a stem)
    claim_to_place_ms: float = 0.0  # median, claim's `now` → the simulator's `placed_at`
    origin: str = "worker launch"  # what launched_at is: the workers' start, or with --warm
    exit_codes: list[int] = field(default_factory=list)
    placed: list[int] = field(default_factory=list)
    # The batches' dialing counters summed per workspace, sampled every poll: the busiest sample
    # and how many samples there were.
    peak_in_progress: int = 0
    samples: int = 0
    # With --warm (and in the scaling case): the workers' CPU seconds from the batch's creation
    # to its completion, all workers together; -1 when not measured.
    worker_cpu: float = -1.0
    # The same span: the PostgreSQL server's CPU seconds (0 on SQLite).
    database_cpu: float = -1.0
    cap: int = CAP  # the workspace's concurrency cap the workers ran with

    @property
    def cpu_per_call_ms(self) -> float:
        """Workers' and PostgreSQL's CPU per call, in ms (negative when not measured)."""
        if self.worker_cpu < 0:
            return -1.0
        return (self.worker_cpu + max(0.0, self.database_cpu)) / self.recipients * 1000

    @property
    def db_seconds(self) -> float:
        return (self.finished_at - self.first_started_at).total_seconds()

    @property
    def launch_seconds(self) -> float:
        return (self.finished_at - self.launched_at).total_seconds()

    @property
    def startup_seconds(self) -> float:
        return (self.first_started_at - self.launched_at).total_seconds()

    @property
    def middle_rate(self) -> float:
        """Calls per second between the 10th and the 90th percentile of the calls' ends."""
        seconds = (self.ended_p90 - self.ended_p10).total_seconds()
        return 0.8 * self.recipients / seconds if seconds > 0 else float("inf")

    def problems(self) -> list[str]:
        found: list[str] = []
        n = self.recipients
        ended = sum(self.statuses.get(status, 0) for status in TERMINAL)
        if ended != n or sum(self.statuses.values()) != n:
            found.append(f"recipients by status {self.statuses}, expected all {n:,} terminal")
        if self.ledger_rows != n or self.ledger_matched != n:
            found.append(
                f"simulator ledger has {self.ledger_rows:,} new rows, {self.ledger_matched:,} "
                f"of them for these recipients; expected {n:,}"
            )
        if self.ledger_numbers != n:
            found.append(f"ledger dialed {self.ledger_numbers:,} distinct numbers, not {n:,}")
        if self.conversations != self.statuses.get("completed", 0):
            found.append(f"{self.conversations:,} conversations for {self.statuses} recipients")
        if not self.counters_ok:
            found.append("batch counters disagree with the recipients' statuses")
        if any(code != 0 for code in self.exit_codes):
            found.append(f"worker exit codes {self.exit_codes}")
        if self.placed and sum(self.placed) != n:
            found.append(f"workers logged {self.placed} placed calls, {sum(self.placed):,} in all")
        if self.peak_in_progress > self.cap:
            found.append(
                f"{self.peak_in_progress} calls in progress in a workspace, cap {self.cap}"
            )
        return found


# --- databases ----------------------------------------------------------------------------


def bench_env(database_url: str, cap: int = CAP) -> dict[str, str]:
    env = backend_env(database_url)
    env.update(WORKER_ENV)
    env["BATCH_MAX_CONCURRENT_CALLS"] = str(cap)
    return env


def use_database(env: dict[str, str]) -> None:
    """Point this process's settings and engines at the bench database (env before settings)."""
    os.environ.update({key: env[key] for key in ("DATABASE_URL", *WORKER_ENV)})
    from batch_dashboard import db
    from batch_dashboard.settings import reload_settings

    db.dispose_engines()
    reload_settings()


def provision(database_url: str, workspaces: int, cap: int = CAP) -> Setup:
    """`migrate`, then per workspace `create-workspace`, `create-phone-number`, `create-agent`;
    the workers get `cap` as every workspace's concurrency cap."""
    env = bench_env(database_url, cap)
    run_cli(["migrate"], env)
    tenants: list[tuple[str, str]] = []
    for index in range(workspaces):
        workspace = run_cli(["create-workspace", f"Bench {index + 1}"], env)
        workspace_id = workspace["workspace_id"]
        number = run_cli(
            [
                "create-phone-number",
                "--workspace",
                workspace_id,
                "--number",
                f"+141555501{index:02d}",
            ],
            env,
        )
        agent = run_cli(
            [
                "create-agent",
                "--workspace",
                workspace_id,
                "--name",
                f"Bench {index + 1}",
                "--prompt",
                "Hi {{first_name}}, about your appointment at {{appointment_time}}.",
                "--phone-number-id",
                number["id"],
            ],
            env,
        )
        tenants.append((workspace_id, agent["id"]))
    return Setup(url=database_url, env=env, tenants=tenants)


def create_batches(setup: Setup, numbers: Sequence[str]) -> list[str]:
    """One batch per workspace, the numbers split evenly, through `batches.create_batch`."""
    use_database(setup.env)
    from batch_dashboard.services import batches, recipients
    from batch_dashboard.settings import get_settings

    # Validate on this core: no process pool left behind in the bench process.
    settings = get_settings().model_copy(update={"parallel_validation_threshold": 1 << 30})
    ids: list[str] = []
    share = -(-len(numbers) // len(setup.tenants))
    for index, (workspace_id, agent_id) in enumerate(setup.tenants):
        chunk = numbers[index * share : (index + 1) * share]
        rows = recipients.from_json(
            [
                {
                    "phone": phone,
                    "first_name": FIRST_NAMES[position % len(FIRST_NAMES)],
                    "appointment_time": f"2026-12-{position % 28 + 1:02d} 10:30",
                }
                for position, phone in enumerate(chunk)
            ],
            max_recipients=len(chunk),
        )
        batch, _ = batches.create_batch(
            workspace_id=workspace_id,
            fields={"name": f"Bench dialer {index + 1}", "agent_id": agent_id},
            rows=rows,
            settings=settings,
        )
        if batch["total_recipients"] != len(chunk):
            sys.exit(f"batch {batch['id']} holds {batch['total_recipients']}, not {len(chunk)}")
        ids.append(batch["id"])
    return ids


def batch_statuses(batch_ids: Sequence[str]) -> tuple[list[str], int]:
    """The batches' statuses, and the most calls in progress in any one workspace (the
    counters equal the recipients dialing, and one statement reads them all at one instant)."""
    from sqlalchemy import select

    from batch_dashboard.db import session_scope
    from batch_dashboard.models import Batch

    table = Batch.__table__
    with session_scope() as session:
        rows = session.execute(
            select(table.c.status, table.c.workspace_id, table.c.dialing_count).where(
                table.c.id.in_(batch_ids)
            )
        ).all()
    per_workspace: dict[str, int] = {}
    for row in rows:
        per_workspace[row.workspace_id] = per_workspace.get(row.workspace_id, 0) + row.dialing_count
    return [row.status for row in rows], max(per_workspace.values(), default=0)


def ledger_count() -> int:
    from sqlalchemy import func, select

    from batch_dashboard.db import session_scope
    from batch_dashboard.providers.simulator import ledger

    with session_scope() as session:
        return session.execute(select(func.count()).select_from(ledger)).scalar_one()


def inspect(
    batch_ids: Sequence[str], recipients: int, launched_at: datetime, ledger_before: int
) -> Run:
    """Timestamps, statuses, the ledger and the counters, read back from the database."""
    from sqlalchemy import func, select

    from batch_dashboard.db import session_scope
    from batch_dashboard.models import Batch, Conversation, Recipient
    from batch_dashboard.providers.simulator import ledger

    r, b = Recipient.__table__, Batch.__table__
    mine = r.c.batch_id.in_(batch_ids)
    with session_scope() as session:
        first = session.execute(select(func.min(r.c.started_at)).where(mine)).scalar_one()
        finished = session.execute(
            select(func.max(b.c.finished_at)).where(b.c.id.in_(batch_ids))
        ).scalar_one()
        ends = session.execute(
            select(r.c.ended_at).where(mine, r.c.ended_at.is_not(None)).order_by(r.c.ended_at)
        ).scalars()
        ended = list(ends)
        placed = session.execute(
            select(r.c.attempt_id, r.c.started_at, ledger.c.placed_at, ledger.c.to_number)
            .join(ledger, ledger.c.attempt_id == r.c.attempt_id)
            .where(mine)
        ).all()
        statuses = dict(
            session.execute(select(r.c.status, func.count()).where(mine).group_by(r.c.status)).all()
        )
        ledger_total = session.execute(select(func.count()).select_from(ledger)).scalar_one()
        conversations = session.execute(
            select(func.count())
            .select_from(Conversation)
            .where(Conversation.batch_id.in_(batch_ids))
        ).scalar_one()
        counters_ok = True
        for batch in session.execute(select(b).where(b.c.id.in_(batch_ids))):
            actual = dict(
                session.execute(
                    select(r.c.status, func.count())
                    .where(r.c.batch_id == batch.id)
                    .group_by(r.c.status)
                ).all()
            )
            stored = {
                "pending": batch.pending_count,
                "dialing": batch.dialing_count,
                "completed": batch.completed_count,
                "failed": batch.failed_count,
                "cancelled": batch.cancelled_count,
            }
            counters_ok &= stored == {status: actual.get(status, 0) for status in stored}
            counters_ok &= batch.status == "completed"
    if first is None or finished is None or not ended:
        sys.exit(f"no timestamps in the database (first {first}, finished {finished})")
    return Run(
        recipients=recipients,
        launched_at=launched_at,
        seen_done_s=0.0,
        first_started_at=first,
        finished_at=finished,
        ended_p10=ended[len(ended) // 10],
        ended_p90=ended[min(len(ended) - 1, len(ended) * 9 // 10)],
        statuses=statuses,
        # This run's calls: new ledger rows in all, and the ledger's rows for these recipients.
        ledger_rows=ledger_total - ledger_before,
        ledger_matched=len(placed),
        ledger_numbers=len({row.to_number for row in placed}),
        conversations=conversations,
        counters_ok=counters_ok,
        **claim_cycle(placed),
    )


def claim_cycle(placed: Sequence[Any]) -> dict[str, Any]:
    """Claims (one attempt-id stem each) and the median delay from a claim to its placement."""
    claims: dict[str, float] = {}
    for attempt_id, started_at, placed_at, _number in placed:
        stem = attempt_id.rsplit("-", 1)[0]
        claims[stem] = (placed_at - started_at).total_seconds() * 1000
    return {
        "claims": len(claims),
        "claim_to_place_ms": statistics.median(claims.values()) if claims else 0.0,
    }


@contextlib.contextmanager
def postgres_database(server: str) -> Iterator[str]:
    """CREATE DATABASE bench_dialer_<random>; dropped (WITH (FORCE)) at the end."""
    import psycopg

    admin_url = server.replace("postgresql+psycopg", "postgresql") + "/postgres"
    name = f"bench_dialer_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    print(f"postgres: created database {name}")
    try:
        yield f"{server}/{name}"
    finally:
        from batch_dashboard import db

        db.dispose_engines()
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        print(f"postgres: dropped database {name}")


# --- worker processes ---------------------------------------------------------------------


def start_worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    python = VENV_BIN / "python"
    command = [str(python if python.exists() else sys.executable), "-m", "batch_dashboard"]
    with log.open("wb") as log_file:
        return subprocess.Popen(
            [*command, "worker"],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # each worker leads its own process group
        )


@dataclass
class Worker:
    process: subprocess.Popen[bytes]
    pgid: int  # start_new_session=True: the worker leads its own process group
    log: Path

    def started(self) -> bool:
        return " started" in self.log.read_text(errors="replace")

    def placed(self) -> int:
        found = re.findall(r"stopped \(\{'placed': (\d+)", self.log.read_text(errors="replace"))
        return int(found[-1]) if found else 0


def workers_cpu(running: Sequence[Worker]) -> float:
    """CPU seconds (user + system) the worker processes used so far."""
    total = 0.0
    for worker in running:
        with contextlib.suppress(psutil.Error):
            times = psutil.Process(worker.process.pid).cpu_times()
            total += times.user + times.system
    return total


def postgres_cpu() -> float:
    """CPU seconds (user + system) the PostgreSQL server's processes used so far (on this
    machine; backends that exited meanwhile are not counted)."""
    total = 0.0
    for process in psutil.process_iter(["name", "cpu_times"]):
        times = process.info["cpu_times"]
        if process.info["name"] in ("postgres", "postmaster") and times is not None:
            total += times.user + times.system
    return total


def wait_started(running: Sequence[Worker], timeout: float) -> None:
    """Until every worker has logged `worker … started` (its SIGTERM handler is in place)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(worker.started() or worker.process.poll() is not None for worker in running):
            return
        time.sleep(POLL_SECONDS)


@contextlib.contextmanager
def workers(env: dict[str, str], count: int, workdir: Path, tag: str) -> Iterator[list[Worker]]:
    """`count` workers, each in its own process group; SIGTERM to each group at the end."""
    running: list[Worker] = []
    try:
        for index in range(count):
            log = workdir / f"{re.sub(r'[^A-Za-z0-9]+', '-', tag)}-worker{index + 1}.log"
            process = start_worker(env, log)
            running.append(Worker(process=process, pgid=process.pid, log=log))
        yield running
    finally:
        # A worker signalled before its handler is installed just dies (-15): let them all
        # come up first, so that the exit codes say whether each one shut down cleanly.
        wait_started(running, 30)
        for worker in running:  # all at once, so they drain together
            with contextlib.suppress(ProcessLookupError):
                os.killpg(worker.pgid, signal.SIGTERM)
        # One SIGTERM only: once a worker's event loop has closed, its handler is gone and a
        # second SIGTERM would kill it (-15) while it exits cleanly. Stragglers: ingest's way.
        deadline = time.monotonic() + 30
        for worker in running:
            with contextlib.suppress(subprocess.TimeoutExpired):
                worker.process.wait(timeout=max(0.1, deadline - time.monotonic()))
        for worker in running:
            if worker.process.poll() is None:
                stop_process_group(worker.process, worker.pgid)
            else:
                with contextlib.suppress(ProcessLookupError):  # anything it left behind
                    os.killpg(worker.pgid, signal.SIGKILL)
        print(f"workers stopped (process groups {', '.join(str(w.pgid) for w in running)})")


def timed_run(
    setup: Setup,
    numbers: Sequence[str],
    count: int,
    workdir: Path,
    tag: str,
    timeout: float,
    warm: bool = False,
) -> Run:
    """Start `count` workers and wait until every batch is completed.

    The batches are created first, then the workers started; with `warm`, the workers are
    started and have logged `started` before the batches are created.
    """
    with contextlib.ExitStack() as stack:
        cpu_before = database_before = 0.0
        if warm:
            running = stack.enter_context(workers(setup.env, count, workdir, tag))
            wait_started(running, timeout)
            cpu_before, database_before = workers_cpu(running), postgres_cpu()
        use_database(setup.env)
        ledger_before = ledger_count()
        batch_ids = create_batches(setup, numbers)
        launched_at = datetime.now(UTC)
        started = time.perf_counter()
        if not warm:
            running = stack.enter_context(workers(setup.env, count, workdir, tag))
        how = "already running" if warm else "started now"
        print(f"{tag}: {len(numbers):,} recipients in {len(batch_ids)} batch(es); {count} {how}")
        peak, samples = 0, 0
        while True:
            statuses, in_progress = batch_statuses(batch_ids)
            peak, samples = max(peak, in_progress), samples + 1
            if all(status == "completed" for status in statuses):
                break
            if any(status in ("failed", "cancelled") for status in statuses):
                sys.exit(f"{tag}: a batch ended {statuses}:\n{tail(running[0].log)}")
            dead = [worker for worker in running if worker.process.poll() is not None]
            if dead:
                code = dead[0].process.returncode
                sys.exit(f"{tag}: a worker exited with {code}:\n{tail(dead[0].log)}")
            if time.perf_counter() - started > timeout:
                sys.exit(f"{tag}: not completed after {timeout:.0f} s:\n{tail(running[0].log)}")
            time.sleep(POLL_SECONDS)
        seen = time.perf_counter() - started
        cpu_used = workers_cpu(running) - cpu_before if warm else -1.0
        database_used = postgres_cpu() - database_before if warm else -1.0
    result = inspect(batch_ids, len(numbers), launched_at, ledger_before)
    result.seen_done_s = seen
    result.origin = "batch created" if warm else "worker launch"
    result.exit_codes = [worker.process.returncode for worker in running]
    result.placed = [worker.placed() for worker in running]
    result.peak_in_progress, result.samples = peak, samples
    result.cap = int(setup.env["BATCH_MAX_CONCURRENT_CALLS"])
    result.worker_cpu = cpu_used
    result.database_cpu = database_used
    report(tag, result)
    return result


def report(tag: str, run: Run) -> None:
    n = run.recipients
    print(
        f"{tag}: first claim {run.startup_seconds:.2f} s after {run.origin}; "
        f"first claim → batch finished {run.db_seconds:.2f} s = {n / run.db_seconds:,.0f} calls/s; "
        f"{run.origin} → finished {run.launch_seconds:.2f} s = {n / run.launch_seconds:,.0f} calls/s; "
        f"middle 80 % of call ends {run.middle_rate:,.0f} calls/s; "
        f"seen completed by the bench after {run.seen_done_s:.2f} s"
    )
    print(
        f"{tag}: statuses {run.statuses}, ledger {run.ledger_rows:,} rows / "
        f"{run.ledger_numbers:,} numbers, {run.conversations:,} conversations, "
        f"placed per worker {run.placed}, exit codes {run.exit_codes}; "
        f"calls in progress at most {run.peak_in_progress} of {run.cap} ({run.samples} samples)"
    )
    print(
        f"{tag}: {run.claims} claims of {n / max(1, run.claims):.0f} recipients on average, "
        f"one every {run.db_seconds / max(1, run.claims) * 1000:.1f} ms; "
        f"claim → placed {run.claim_to_place_ms:.1f} ms (median)"
        + (
            f"; CPU per 1,000 calls: workers {run.worker_cpu / n * 1000:.2f} s, "
            f"PostgreSQL {run.database_cpu / n * 1000:.2f} s"
            if run.worker_cpu >= 0
            else ""
        )
    )
    for problem in run.problems():
        print(f"{tag}: CHECK FAILED: {problem}")


def figures_for(tag: str, runs: Sequence[Run], target: float | None) -> list[Figure]:
    """Medians over the runs; the checks must hold in every run."""
    n = runs[0].recipients

    def median(values: Sequence[float], digits: int = 0) -> tuple[float, str]:
        shown = ", ".join(f"{value:,.{digits}f}" for value in values)
        return statistics.median(values), shown

    rate, rates = median([n / run.db_seconds for run in runs])
    launch, launches = median([n / run.launch_seconds for run in runs])
    middle, middles = median([run.middle_rate for run in runs])
    startup, startups = median([run.startup_seconds for run in runs], 2)
    problems = [problem for run in runs for problem in run.problems()]
    of = f"median of {len(runs)}" if len(runs) > 1 else "1 run"
    return [
        Figure(
            f"{tag}: calls/s, first claim → finished ({of}: {rates})",
            f"{rate:,.0f}",
            f">= {target:,.0f}" if target else "-",
            rate >= target if target else None,
        ),
        Figure(
            f"{tag}: calls/s, {runs[0].origin} → finished ({launches})", f"{launch:,.0f}", "-", None
        ),
        Figure(
            f"{tag}: calls/s, middle 80 % of call ends ({middles})", f"{middle:,.0f}", "-", None
        ),
        Figure(
            f"{tag}: s from {runs[0].origin} to first claim ({startups})",
            f"{startup:.2f}",
            "-",
            None,
        ),
        Figure(
            f"{tag}: all {n:,} terminal, {n:,} ledger rows, each number once",
            "ok" if not problems else f"{len(problems)} problem(s)",
            "all runs",
            not problems,
        ),
    ]


# --- profile ------------------------------------------------------------------------------


def profile_sqlite(
    setup: Setup, numbers: Sequence[str], top: int, timeout: float, clock: str = "wall"
) -> Run:
    """`run_worker(stop)` in this process under cProfile (every thread), until completed.

    `clock="cpu"` times each thread's CPU (`time.thread_time`): waits for the GIL, for locks
    and for a core on a busy machine drop out; "wall" (cProfile's default) counts them.
    """
    timer: tuple[Callable[[], float], ...] = (time.thread_time,) if clock == "cpu" else ()
    batch_ids = create_batches(setup, numbers)  # also sets the environment, then the settings
    from batch_dashboard.worker.main import run_worker

    profiles: list[cProfile.Profile] = []

    def profile_this_thread() -> None:  # the dialer's database work runs in to_thread
        profile = cProfile.Profile(*timer)
        profiles.append(profile)
        profile.enable()

    def watch(loop: asyncio.AbstractEventLoop, stop: asyncio.Event, done: list[float]) -> None:
        # A plain (unprofiled) thread: polling is not part of the worker's time.
        started = time.perf_counter()
        while time.perf_counter() - started < timeout:
            if all(status == "completed" for status in batch_statuses(batch_ids)):
                done.append(time.perf_counter() - started)
                break
            time.sleep(POLL_SECONDS)
        loop.call_soon_threadsafe(stop.set)

    async def main(done: list[float]) -> None:
        loop = asyncio.get_running_loop()
        loop.set_default_executor(
            ThreadPoolExecutor(thread_name_prefix="profiled", initializer=profile_this_thread)
        )
        stop = asyncio.Event()
        watcher = threading.Thread(target=watch, args=(loop, stop, done), daemon=True)
        watcher.start()
        await run_worker(stop)
        watcher.join()

    print(
        f"profile: {len(numbers):,} recipients, run_worker in-process under cProfile "
        f"({clock} clock)"
    )
    done: list[float] = []
    ledger_before = ledger_count()
    launched_at = datetime.now(UTC)
    main_profile = cProfile.Profile(*timer)
    cpu_started = time.process_time()
    main_profile.enable()
    asyncio.run(main(done))  # shuts the default executor down, so its threads have ended
    main_profile.disable()
    cpu = time.process_time() - cpu_started
    if not done:
        sys.exit(f"profile: the batch did not complete within {timeout:.0f} s")
    stats = pstats.Stats(main_profile)
    for profile in profiles:
        stats.add(profile)
    result = inspect(batch_ids, len(numbers), launched_at, ledger_before)
    result.seen_done_s = done[0]
    report("profile", result)
    print(
        f"profile: process CPU {cpu:.2f} s for {result.launch_seconds:.2f} s wall "
        f"({len(profiles)} pool threads + the event loop, merged)"
    )
    print_profile(stats, top)
    return result


def _label(key: tuple[str, int, str]) -> str:
    filename, line, name = key
    if filename == "~":
        return name
    site = [p + os.sep for p in sys.path if "site-packages" in p]
    for prefix in (*site, str(ROOT) + os.sep, STDLIB + os.sep):
        if filename.startswith(prefix):
            filename = filename[len(prefix) :]
            break
    else:
        filename = Path(filename).name
    return f"{filename}:{line}({name})"


def print_profile(stats: pstats.Stats, top: int) -> None:
    entries: dict[tuple[str, int, str], tuple[Any, ...]] = stats.stats  # type: ignore[attr-defined]
    rows = sorted(entries.items(), key=lambda item: item[1][3], reverse=True)
    shown = [(key, value) for key, value in rows if not IDLE_OR_WRAPPER.search(_label(key))]
    print(
        f"\ntop {top} by cumulative time (all threads merged; event-loop/thread-pool wrappers "
        "and idle waits left out; cumulative time of coroutines counts only while they run)"
    )
    print(f"{'ncalls':>10} {'tottime':>8} {'cumtime':>8} {'percall µs':>10}  function")
    for key, (_cc, calls, tottime, cumtime, _callers) in shown[:top]:
        per = cumtime / calls * 1e6 if calls else 0.0
        print(f"{calls:>10} {tottime:>8.3f} {cumtime:>8.3f} {per:>10.1f}  {_label(key)}")
    by_self = sorted(shown, key=lambda item: item[1][2], reverse=True)[:15]
    print("\ntop 15 by own time (tottime)")
    for key, (_cc, calls, tottime, cumtime, _callers) in by_self:
        print(f"{calls:>10} {tottime:>8.3f} {cumtime:>8.3f}  {_label(key)}")
    print("\nphases (cumulative s under the profiler)")
    for suffix, function, what in PHASES:
        for (filename, _line, name), (_cc, calls, _tt, cumtime, _callers) in rows:
            if name == function and filename.endswith(suffix):
                print(f"{cumtime:>8.3f} s {calls:>7} calls  {what}")
                break


# --- the run ------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--recipients", type=int, default=None, help="batch size (10,000; --quick: 4,000)"
    )
    parser.add_argument("--skip-postgres", action="store_true", help="only the SQLite case")
    parser.add_argument(
        "--scaling",
        default="1,2,4",
        help="worker counts run on one PostgreSQL workspace, side by side (1,2,4; '' skips)",
    )
    parser.add_argument(
        "--cap",
        type=int,
        default=CAP,
        help=f"the workspace's concurrency cap in the scaling case ({CAP}; the targets hold at {CAP})",
    )
    parser.add_argument(
        "--ceiling",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also run one worker alone at each share of the cap, for the ceiling (default: on)",
    )
    parser.add_argument(
        "--workers", type=int, default=4, help="PostgreSQL workers for the workspaces case (4)"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="only the PostgreSQL scaling case, 4,000 recipients, 1 run each",
    )
    parser.add_argument(
        "--pg-workspaces",
        type=int,
        default=4,
        help="also run PostgreSQL with this many workspaces, one batch each (0: don't)",
    )
    parser.add_argument(
        "--profile",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="profile the SQLite case in-process (default: on)",
    )
    parser.add_argument(
        "--repeats", type=int, default=3, help="runs per case, each on a fresh database (3)"
    )
    parser.add_argument(
        "--warm",
        action="store_true",
        help="start the workers (and wait for them) before creating the batch",
    )
    parser.add_argument(
        "--profile-clock",
        choices=("wall", "cpu"),
        default="wall",
        help="cProfile's timer: wall clock (default) or each thread's CPU time",
    )
    parser.add_argument("--top", type=int, default=25, help="profile rows to print")
    parser.add_argument("--timeout", type=float, default=600, help="seconds per run")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (databases, logs)")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)
    try:
        args.scaling = [int(count) for count in args.scaling.split(",") if count.strip()]
    except ValueError:
        parser.error("--scaling takes worker counts separated by commas, e.g. 1,2,4")
    if args.quick:
        args.repeats, args.profile, args.pg_workspaces = 1, False, 0
    if args.recipients is None:
        args.recipients = 4_000 if args.quick else 10_000
    if (
        min(args.recipients, args.workers, args.repeats, args.cap, *args.scaling) < 1
        or args.pg_workspaces < 0
    ):
        parser.error("--recipients, --workers, --scaling, --repeats and --cap must be at least 1")
    return args


def measure(
    args: argparse.Namespace,
    workdir: Path,
    numbers: Sequence[str],
    *,
    postgres: bool,
    workspaces: int,
    count: int,
    tag: str,
) -> list[Run]:
    """`--repeats` runs, each on a fresh database (a new SQLite file or PostgreSQL database)."""
    runs: list[Run] = []
    for attempt in range(1, args.repeats + 1):
        label = f"{tag} #{attempt}"
        if postgres:
            with postgres_database(PG_SERVER) as url:
                setup = provision(url, workspaces)
                runs.append(
                    timed_run(setup, numbers, count, workdir, label, args.timeout, args.warm)
                )
        else:
            path = workdir / f"{re.sub(r'[^a-z0-9]+', '-', label.lower())}.db"
            setup = provision(f"sqlite:///{path}", workspaces)
            runs.append(timed_run(setup, numbers, count, workdir, label, args.timeout, args.warm))
    return runs


def scaling(args: argparse.Namespace, workdir: Path, numbers: Sequence[str]) -> list[Figure]:
    """One workspace on PostgreSQL with each of `--scaling` worker counts. The counts take turns
    within each repeat (1, 2, 4, 1, 2, 4, …) so that a change in the machine's load falls on
    all of them alike; then the side-by-side table and the figures. The workers are always
    started (and have logged `started`) before the batch is created: on 2 cores, four Python
    start-ups overlapping the first calls would be measured as the dialing's cost.

    With `--ceiling`, each repeat also runs one worker alone with the cap cut to the share N
    workers get (so its claims are as small as theirs) and prints what N workers could reach at
    most: every core busy with nothing but that worker's and PostgreSQL's CPU per call, nothing
    lost to several processes sharing the cores or waiting for each other."""
    from batch_dashboard.services.dialing import fair_share  # how the workers split the cap

    cap: int = args.cap
    runs: dict[int, list[Run]] = {count: [] for count in args.scaling}
    alone: dict[int, list[Run]] = {
        count: [] for count in args.scaling if count > 1 and args.ceiling
    }
    for attempt in range(1, args.repeats + 1):
        for count in args.scaling:
            label = f"PostgreSQL 1 workspace, {count} worker(s) #{attempt}"
            with postgres_database(PG_SERVER) as url:
                setup = provision(url, 1, cap)
                runs[count].append(
                    timed_run(setup, numbers, count, workdir, label, args.timeout, warm=True)
                )
        for count in alone:
            share = fair_share(cap, count)
            label = (
                f"PostgreSQL 1 workspace, 1 worker, cap {share} (the share of {count}) #{attempt}"
            )
            with postgres_database(PG_SERVER) as url:
                setup = provision(url, 1, share)
                alone[count].append(
                    timed_run(setup, numbers, 1, workdir, label, args.timeout, warm=True)
                )
    n = len(numbers)
    rate = {
        count: statistics.median(n / run.db_seconds for run in done) for count, done in runs.items()
    }
    base = rate.get(1)
    cores = os.cpu_count() or 1
    # calls/s if every core ran only the dialing at the CPU per call of claims that small
    ceiling = {
        count: cores * 1000 / statistics.median(run.cpu_per_call_ms for run in done)
        for count, done in alone.items()
    }
    print(f"\nOne workspace on PostgreSQL, {n:,} zero-length calls, cap {cap}:")
    print(
        f"{'workers':>7}  {'calls/s (median)':>16}  {'× 1 worker':>10}  {'ceiling ×':>9}  "
        f"{'middle 80 %':>11}  {'peak in progress':>16}  {'CPU s/1,000 calls: workers':>26}  "
        f"{'PostgreSQL':>10}  {'placed per worker (last run)'}  runs"
    )
    for count, done in runs.items():
        ratio = f"{rate[count] / base:.2f}" if base else "-"
        bound = f"{ceiling[count] / base:.2f}" if base and count in ceiling else "-"
        middle = statistics.median(run.middle_rate for run in done)
        peak = max(run.peak_in_progress for run in done)
        shown = ", ".join(f"{n / run.db_seconds:,.0f}" for run in done)
        cpu = statistics.median(run.worker_cpu / n * 1000 for run in done)
        database = statistics.median(run.database_cpu / n * 1000 for run in done)
        print(
            f"{count:>7}  {rate[count]:>16,.0f}  {ratio:>10}  {bound:>9}  {middle:>11,.0f}  "
            f"{peak:>10} / {cap:<4} {cpu:>26.2f}  {database:>10.2f}  "
            f"{done[-1].placed!s:<28}  {shown}"
        )
    if alone:
        print(
            "ceiling ×: one worker alone with the cap cut to the share each of N workers gets "
            "(claims as small as theirs) used, per call, the CPU below (workers + PostgreSQL);\n"
            f"{cores} cores doing nothing else would make at most {cores} × 1,000 / that calls/s, "
            "shown against one worker's calls/s at the whole cap:"
        )
        for count, done in alone.items():
            per_call = statistics.median(run.cpu_per_call_ms for run in done)
            print(
                f"  {count} workers: claims of ~{fair_share(cap, count)}, "
                f"{per_call:.3f} ms CPU per call alone → at most {ceiling[count]:,.0f} calls/s"
                + (f" = {ceiling[count] / base:.2f}× one worker" if base else "")
            )
    figures: list[Figure] = []
    for count, done in runs.items():
        figures += figures_for(
            f"PG 1 workspace, {count} worker(s)", done, TARGET_POSTGRES_CPS if count == 4 else None
        )
        figures.append(
            Figure(
                f"PG 1 workspace, {count} worker(s): calls in progress, most sampled "
                f"({sum(run.samples for run in done)} samples)",
                str(max(run.peak_in_progress for run in done)),
                f"<= {cap}",
                all(run.peak_in_progress <= cap for run in done),
            )
        )
        target = TARGET_SCALING.get(count) if cap == CAP else None
        if base and count != 1:
            figures.append(
                Figure(
                    f"PG 1 workspace: {count} workers / 1 worker, calls/s (medians)",
                    f"{rate[count] / base:.2f}",
                    f">= {target:.1f}" if target else "-",
                    rate[count] / base >= target if target else None,
                )
            )
        if base and count in alone:
            figures.append(
                Figure(
                    f"PG 1 workspace: {count} workers / 1 worker at most, from the CPU per call "
                    f"of claims of ~{fair_share(cap, count)}",
                    f"{ceiling[count] / base:.2f}",
                    "-",
                    None,
                )
            )
    return figures


def run(args: argparse.Namespace, workdir: Path) -> list[Figure]:
    n: int = args.recipients
    started = time.perf_counter()
    numbers = generate_numbers(n)
    print(f"data: {n:,} distinct valid numbers, made in {time.perf_counter() - started:.1f} s")
    shown = {k: v for k, v in WORKER_ENV.items() if k != "BATCH_SECRET_KEY"}
    print(f"worker env: {' '.join(f'{k}={v}' for k, v in shown.items())}")
    figures: list[Figure] = []

    if not args.quick:
        runs = measure(
            args, workdir, numbers, postgres=False, workspaces=1, count=1, tag="SQLite 1 worker"
        )
        figures += figures_for("SQLite, 1 worker", runs, TARGET_SQLITE_CPS)

    if not args.skip_postgres:
        workers_ = args.workers
        if args.scaling:
            figures += scaling(args, workdir, numbers)
        if args.pg_workspaces > 1:
            spaces = args.pg_workspaces
            tag = f"PostgreSQL {workers_} workers, {spaces} workspaces"
            runs = measure(
                args, workdir, numbers, postgres=True, workspaces=spaces, count=workers_, tag=tag
            )
            figures += figures_for(f"PG, {workers_} workers, {spaces} workspaces", runs, None)

    if args.profile:
        setup = provision(f"sqlite:///{workdir / 'profile.db'}", 1)
        result = profile_sqlite(setup, numbers, args.top, args.timeout, args.profile_clock)
        figures.append(
            Figure(
                "SQLite in-process under cProfile: calls/s, 1 run",
                f"{n / result.db_seconds:,.0f}",
                "-",
                None,
            )
        )
    return figures


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}, load average {load}")
    with scratch_dir("bench-dialer-", args.keep) as workdir:
        try:
            figures = run(args, workdir)
        finally:
            from batch_dashboard import db

            db.dispose_engines()
    print(f"load average at the end: {', '.join(f'{v:.2f}' for v in os.getloadavg())}")
    return conclude(figures, args.strict)


if __name__ == "__main__":
    sys.exit(main())
