"""Ingest benchmark: a 50,000-row CSV upload, the batch detail and the batch list, end to end.

Starts a real backend (`reflex run --env prod --backend-only`) on a fresh SQLite database,
or targets a running one with `--url/--api-key/--agent-id`, then prints each figure, its target
and PASS/MISS. See bench/README.md.

    .venv/bin/python bench/ingest.py [--rows 50000] [--url http://host:3000 --api-key bc_… ...]
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import math
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import phonenumbers
import psutil
from phonenumbers import PhoneNumber, PhoneNumberFormat, PhoneNumberType

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = ROOT / ".venv" / "bin"
SEED = 20261201
COLUMNS = ("first_name", "last_name", "appointment_time", "account_id", "city")
# Share of the recipients per calling region; "NANP" is +1 (US, Canada, ...), the rest mobiles.
COUNTRY_MIX = {"NANP": 0.80, "GB": 0.05, "DE": 0.03, "FR": 0.03, "MX": 0.03, "IN": 0.03, "AU": 0.03}
FIRST_NAMES = ("Ada", "Bob", "Chloé", "Dmitri", "Elif", "Farah", "Giulia", "Hiro", "Inès", "José")
LAST_NAMES = ("Lovelace", "Smith", "Müller", "Ivanova", "Yilmaz", "Khan", "Rossi", "Tanaka", "Ng")
HALVES = ("00", "30")
CITIES = ("San Francisco", "Austin", "New York", "London", "Berlin", "Paris", "Washington, D.C.")

TARGET_RATIO = 0.5
TARGET_RSS_MB = 300.0  # the backend's peak during an upload, above its idle size
RSS_SAMPLE_SECONDS = 0.01
TARGET_DETAIL_S = 1.0
TARGET_LIST_MEDIAN_MS = 20.0


@dataclass
class Backend:
    url: str
    api_key: str
    agent_id: str
    started_here: bool = False
    pid: int | None = None  # the process whose tree is the backend (its memory is sampled)


@dataclass
class Figure:
    name: str
    value: str
    target: str
    passed: bool | None  # None: reported, no target


# --- backend ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def backend_env(database_url: str, dialer: str | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DATABASE_URL=database_url,
        REFLEX_TELEMETRY_ENABLED="false",
        PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
        # One key sends every request of the benchmark: the per-key limit would measure itself.
        BATCH_RATE_LIMIT_PER_SECOND="0",
    )
    if dialer is not None:
        env["BATCH_DIALER"] = dialer
    return env


def run_cli(args: Sequence[str], env: dict[str, str]) -> dict[str, Any]:
    """`python -m batch_dashboard <args>`: its JSON object, or exit with its stderr."""
    python = VENV_BIN / "python"
    command = [str(python if python.exists() else sys.executable), "-m", "batch_dashboard", *args]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"`{' '.join(command[1:])}` failed ({done.returncode}):\n{done.stderr}")
    return json.loads(done.stdout)


def provision(env: dict[str, str]) -> tuple[str, str]:
    """Migrate the database and create a workspace, a caller number and an agent."""
    run_cli(["migrate"], env)
    workspace = run_cli(["create-workspace", "Bench"], env)
    workspace_id = workspace["workspace_id"]
    number = run_cli(
        ["create-phone-number", "--workspace", workspace_id, "--number", "+14155550100"], env
    )
    agent = run_cli(
        [
            "create-agent",
            "--workspace",
            workspace_id,
            "--name",
            "Bench",
            "--prompt",
            "Hi {{first_name}}",
            "--phone-number-id",
            number["id"],
        ],
        env,
    )
    return workspace["api_key"], agent["id"]


def wait_healthy(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float) -> float:
    """Seconds until GET /v1/health answers 200; exits if the backend dies or never answers."""
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        if process.poll() is not None:
            sys.exit(f"the backend exited with {process.returncode}:\n{tail(log)}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/v1/health", timeout=2).status_code == 200:
                return time.perf_counter() - started
        time.sleep(0.25)
    sys.exit(f"the backend did not answer /v1/health within {timeout:.0f} s:\n{tail(log)}")


def tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def stop_process_group(process: subprocess.Popen[bytes], pgid: int) -> None:
    """SIGTERM the backend's own process group, then SIGKILL whatever is left of it."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=20)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:  # children (e.g. the validation pool) may linger
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=5)


def listening_process(url: str) -> psutil.Process | None:
    """The process listening on `url`'s port, if it runs on this machine."""
    parts = urlsplit(url)
    if parts.hostname not in ("127.0.0.1", "localhost", "::1"):
        return None
    port = parts.port or (443 if parts.scheme == "https" else 80)
    with contextlib.suppress(psutil.Error):
        for connection in psutil.net_connections(kind="tcp"):
            listening = connection.status == "LISTEN" and connection.pid is not None
            if listening and connection.laddr and connection.laddr.port == port:
                return psutil.Process(connection.pid)
    return None


@contextlib.contextmanager
def serving(
    env: dict[str, str], workdir: Path, timeout: float, *, console: bool = False
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`reflex run --env prod` on a free port in its own process group, stopped at the end:
    the backend alone, or with `console` the console too (frontend and API on one port)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = workdir / "backend.log"
    ports = ["--frontend-port"] if console else ["--backend-only", "--backend-port"]
    command = [str(VENV_BIN / "reflex"), "run", "--env", "prod", *ports, str(port)]
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    pgid = process.pid  # start_new_session=True: the backend leads its own process group
    try:
        seconds = wait_healthy(url, process, log, timeout)
        print(f"backend: {url} (pid {process.pid}, pgid {pgid}), healthy after {seconds:.1f} s")
        print(f"         database {env['DATABASE_URL']}, log {log}")
        yield url, process
    finally:
        stop_process_group(process, pgid)
        print(f"backend stopped (process group {pgid})")


@contextlib.contextmanager
def local_backend(workdir: Path, timeout: float, dialer: str | None) -> Iterator[Backend]:
    """A fresh database and `reflex run --env prod --backend-only` on a free port."""
    env = backend_env(f"sqlite:///{workdir / 'bench.db'}", dialer)
    api_key, agent_id = provision(env)
    with serving(env, workdir, timeout) as (url, process):
        yield Backend(
            url=url, api_key=api_key, agent_id=agent_id, started_here=True, pid=process.pid
        )


@contextlib.contextmanager
def scratch_dir(prefix: str, keep: bool) -> Iterator[Path]:
    """A temporary directory for a run's database and logs, removed unless `keep`."""
    workdir = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield workdir
    finally:
        if keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def conclude(figures: Sequence[Figure], strict: bool) -> int:
    """Print the figures; the exit status (1 for a missed target under `--strict`)."""
    print_table(figures)
    missed = [figure.name for figure in figures if figure.passed is False]
    print(f"\n{len(missed)} target(s) missed" if missed else "\nall targets met")
    return 1 if missed and strict else 0


# --- data ---------------------------------------------------------------------------------


def _random_nanp(rng: random.Random) -> PhoneNumber:
    area = rng.randint(200, 999)
    exchange = rng.randint(200, 999)
    return PhoneNumber(
        country_code=1, national_number=int(f"{area}{exchange}{rng.randint(0, 9999):04d}")
    )


def _random_like_example(rng: random.Random, region: str) -> PhoneNumber:
    """A mobile number of `region`: its example's first two digits, then random digits."""
    example = phonenumbers.example_number_for_type(region, PhoneNumberType.MOBILE)
    assert example is not None, region
    national = str(example.national_number)
    digits = national[:2] + "".join(rng.choice("0123456789") for _ in national[2:])
    return PhoneNumber(country_code=example.country_code, national_number=int(digits))


def generate_numbers(count: int, seed: int = SEED) -> list[str]:
    """`count` distinct E.164 numbers that `phonenumbers` says are valid, in shuffled order."""
    rng = random.Random(seed)
    regions = list(COUNTRY_MIX)
    quotas = {region: int(count * share) for region, share in COUNTRY_MIX.items()}
    quotas["NANP"] += count - sum(quotas.values())
    numbers: list[str] = []
    seen: set[str] = set()
    for region in regions:
        made = 0
        while made < quotas[region]:
            nanp = region == "NANP"
            candidate = _random_nanp(rng) if nanp else _random_like_example(rng, region)
            if not phonenumbers.is_valid_number(candidate):
                continue
            e164 = phonenumbers.format_number(candidate, PhoneNumberFormat.E164)
            if e164 in seen or not phonenumbers.is_valid_number(phonenumbers.parse(e164, None)):
                continue
            seen.add(e164)
            numbers.append(e164)
            made += 1
    rng.shuffle(numbers)
    return numbers


def build_csv(numbers: Sequence[str], seed: int = SEED) -> bytes:
    """A header `phone,first_name,...` and one row per number (RFC 4180 quoting, CRLF)."""
    rng = random.Random(seed + 1)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["phone", *COLUMNS])
    for index, number in enumerate(numbers):
        writer.writerow(
            [
                number,
                rng.choice(FIRST_NAMES),
                rng.choice(LAST_NAMES),
                f"2026-12-{rng.randint(1, 28):02d} {rng.randint(8, 17):02d}:{rng.choice(HALVES)}",
                f"ACC-{index:07d}",
                rng.choice(CITIES),
            ]
        )
    return out.getvalue().encode()


# --- measurements -------------------------------------------------------------------------


def timed(action: Callable[[], httpx.Response]) -> tuple[float, httpx.Response]:
    """Seconds from sending the request to having the whole response body."""
    started = time.perf_counter()
    response = action()
    response.read()
    return time.perf_counter() - started, response


def expect(response: httpx.Response, status: int, what: str) -> Any:
    if response.status_code != status:
        sys.exit(f"{what}: expected {status}, got {response.status_code}: {response.text[:2000]}")
    return response.json()


def post_csv(client: httpx.Client, backend: Backend, data: bytes, name: str) -> tuple[float, dict]:
    """POST the CSV as multipart; seconds to the 202 and the Batch it answered."""
    seconds, response = timed(
        lambda: client.post(
            "/v1/batch-calls",
            files={"csv_file": ("recipients.csv", data, "text/csv")},
            data={"name": name, "agent_id": backend.agent_id},
        )
    )
    return seconds, expect(response, 202, f"POST /v1/batch-calls ({name})")


def tree_rss(root: psutil.Process) -> int:
    """Bytes resident in `root` and every process under it (the server, its workers and the
    validation pool); processes that end while being read count as nothing."""
    total = 0
    with contextlib.suppress(psutil.Error):
        for process in [root, *root.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):
                total += process.memory_info().rss
    return total


def tree_cpu(root: psutil.Process | None) -> float:
    """CPU seconds (user + system) used so far by `root` and every process under it."""
    total = 0.0
    if root is None:
        return total
    with contextlib.suppress(psutil.Error):
        for process in [root, *root.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):
                times = process.cpu_times()
                total += times.user + times.system
    return total


@contextlib.contextmanager
def peak_rss(root: psutil.Process | None) -> Iterator[list[int]]:
    """The largest `tree_rss` seen while the block runs, sampled every 10 ms by a thread
    ([0] without a process to watch)."""
    peak = [0]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], tree_rss(root))
            done.wait(RSS_SAMPLE_SECONDS)

    sampler = threading.Thread(target=sample, daemon=True) if root is not None else None
    if sampler is not None:
        sampler.start()
    try:
        yield peak
    finally:
        done.set()
        if sampler is not None:
            sampler.join()


def naive_loop(numbers: Sequence[str]) -> tuple[float, int]:
    """One core, no tricks: parse + is_valid_number for each number; seconds and valid count."""
    started = time.perf_counter()
    valid = 0
    for number in numbers:
        if phonenumbers.is_valid_number(phonenumbers.parse(number, None)):
            valid += 1
    return time.perf_counter() - started, valid


def time_detail(client: httpx.Client, batch_id: str, expected: int, repeats: int) -> list[float]:
    seconds: list[float] = []
    for _ in range(repeats):
        elapsed, response = timed(lambda: client.get(f"/v1/batch-calls/{batch_id}"))
        body = expect(response, 200, f"GET /v1/batch-calls/{batch_id}")
        if len(body["recipients"]) != expected:
            sys.exit(f"detail: {len(body['recipients'])} recipients, expected {expected}")
        seconds.append(elapsed)
    return seconds


def count_batches(client: httpx.Client) -> int:
    total, cursor = 0, None
    while True:
        params: dict[str, Any] = {"limit": 200}
        if cursor:
            params["cursor"] = cursor
        page = expect(client.get("/v1/batch-calls", params=params), 200, "GET /v1/batch-calls")
        total += len(page["batch_calls"])
        cursor = page["next_cursor"]
        if not cursor:
            return total


def fill_batches(client: httpx.Client, backend: Backend, target: int) -> tuple[int, float]:
    """Create one-recipient JSON batches until `target` are stored; (created, seconds)."""
    missing = max(0, target - count_batches(client))
    started = time.perf_counter()
    for index in range(missing):
        payload = {
            "name": f"bench small {index + 1}",
            "agent_id": backend.agent_id,
            "recipients": [{"phone": "+14155552671", "first_name": "Ada"}],
        }
        expect(client.post("/v1/batch-calls", json=payload), 202, "POST /v1/batch-calls (JSON)")
    return missing, time.perf_counter() - started


def time_list(client: httpx.Client, requests: int, expected: int) -> list[float]:
    for _ in range(5):  # warm-up, not measured
        client.get("/v1/batch-calls").read()
    seconds: list[float] = []
    for _ in range(requests):
        elapsed, response = timed(lambda: client.get("/v1/batch-calls"))
        page = expect(response, 200, "GET /v1/batch-calls")
        if len(page["batch_calls"]) != expected:
            sys.exit(f"list: {len(page['batch_calls'])} batches, expected {expected}")
        seconds.append(elapsed)
    return seconds


def percentile(values: Sequence[float], share: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def verdict(value: float, limit: float) -> bool:
    return value <= limit


def print_table(figures: Sequence[Figure]) -> None:
    rows = [("figure", "value", "target", "result")]
    for figure in figures:
        result = "-" if figure.passed is None else ("PASS" if figure.passed else "MISS")
        rows.append((figure.name, figure.value, figure.target, result))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    line = "-+-".join("-" * width for width in widths)
    print()
    for position, row in enumerate(rows):
        print(" | ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
        if position == 0:
            print(line)


# --- the run ------------------------------------------------------------------------------


def backend_process(backend: Backend) -> psutil.Process | None:
    """The backend's root process: the one started here, else the one listening on its URL."""
    if backend.pid is not None:
        with contextlib.suppress(psutil.Error):
            return psutil.Process(backend.pid)
    return listening_process(backend.url)


def run(backend: Backend, args: argparse.Namespace) -> list[Figure]:
    rows: int = args.rows
    started = time.perf_counter()
    numbers = generate_numbers(rows)
    data = build_csv(numbers)
    print(
        f"data: {rows:,} distinct valid numbers ({COUNTRY_MIX['NANP']:.0%} +1), CSV "
        f"{len(data) / 1e6:.1f} MB, made in {time.perf_counter() - started:.1f} s"
    )
    figures: list[Figure] = []
    headers = {"Authorization": f"Bearer {backend.api_key}"}
    with httpx.Client(base_url=backend.url, headers=headers, timeout=600) as client:
        health = expect(client.get("/v1/health"), 200, "GET /v1/health")
        print(f"health: {json.dumps(health)}")
        warm_seconds, _ = post_csv(client, backend, build_csv(numbers[:20]), "bench warm-up")
        print(f"warm-up: 20-row CSV in {warm_seconds * 1000:.0f} ms (not measured)")

        root = backend_process(backend)
        idle = tree_rss(root) if root is not None else 0
        if root is not None:
            print(
                f"backend memory before the uploads: {idle / 1e6:.0f} MB RSS (pid {root.pid} and children)"
            )
        ingest: list[float] = []
        loop: list[float] = []
        above_idle: list[float] = []
        cpu: list[float] = []  # the backend's CPU seconds per upload (every core, every process)
        batch_id = ""
        # An upload, then the naive loop, in turns: a change in the machine's load between the
        # two halves would otherwise tilt the ratio.
        for attempt in range(1, args.repeats + 1):
            cpu_before = tree_cpu(root)
            with peak_rss(root) as peak:
                seconds, batch = post_csv(client, backend, data, f"bench csv {attempt}")
            cpu.append(tree_cpu(root) - cpu_before)
            if batch["total_recipients"] != rows:
                sys.exit(f"the batch holds {batch['total_recipients']} recipients, not {rows}")
            batch_id = batch["id"]
            ingest.append(seconds)
            above_idle.append((peak[0] - idle) / 1e6)
            memory = (
                f", backend peak RSS {peak[0] / 1e6:.0f} MB, CPU {cpu[-1]:.2f} s"
                if root is not None
                else ""
            )
            print(f"CSV upload {attempt}: 202 after {seconds:.3f} s ({batch_id}){memory}")
            seconds, valid = naive_loop(numbers)
            if valid != rows:
                sys.exit(f"naive loop: only {valid:,} of {rows:,} numbers are valid")
            loop.append(seconds)
            print(f"naive parse+is_valid_number loop {attempt}: {seconds:.3f} s")
        ingest_median = statistics.median(ingest)
        loop_median = statistics.median(loop)
        ratio = ingest_median / loop_median

        detail = time_detail(client, batch_id, rows, args.detail_repeats)
        print("GET detail: " + ", ".join(f"{s:.3f}" for s in detail) + " s")
        detail_median = statistics.median(detail)

        created, fill_seconds = fill_batches(client, backend, args.batches)
        if created:
            print(
                f"created {created} one-recipient JSON batches in {fill_seconds:.1f} s "
                f"({created / fill_seconds:.0f}/s)"
            )
        stored = count_batches(client)
        print(f"batches stored: {stored:,}")
        listing = time_list(client, args.list_requests, min(100, stored))
        list_median = statistics.median(listing) * 1000
        list_p95 = percentile(listing, 0.95) * 1000

    per = f"{rows:,} rows"
    figures += [
        Figure(f"CSV {per}: s to 202 (median of {len(ingest)})", f"{ingest_median:.3f}", "-", None),
        Figure(
            f"naive 1-core loop {per}: s (median of {len(loop)})", f"{loop_median:.3f}", "-", None
        ),
        Figure(
            "ratio 202 / naive loop",
            f"{ratio:.2f}",
            f"<= {TARGET_RATIO}",
            verdict(ratio, TARGET_RATIO),
        ),
        *(
            [
                Figure(
                    f"backend CPU per upload, s (median of {len(cpu)}; all its processes)",
                    f"{statistics.median(cpu):.2f}",
                    "-",
                    None,
                ),
                Figure(
                    f"backend peak RSS during an upload, MB above idle ({idle / 1e6:.0f} MB; "
                    f"the largest of {len(above_idle)})",
                    f"{max(above_idle):.0f}",
                    f"<= {TARGET_RSS_MB:.0f}",
                    verdict(max(above_idle), TARGET_RSS_MB),
                ),
            ]
            if root is not None
            else []
        ),
        Figure(
            f"GET detail {per}: s (median of {len(detail)})",
            f"{detail_median:.3f}",
            f"<= {TARGET_DETAIL_S}",
            verdict(detail_median, TARGET_DETAIL_S),
        ),
        Figure(
            f"GET list of {stored:,}: ms median ({len(listing)} req)",
            f"{list_median:.1f}",
            f"<= {TARGET_LIST_MEDIAN_MS:.0f}",
            verdict(list_median, TARGET_LIST_MEDIAN_MS),
        ),
        Figure("GET list: ms p95", f"{list_p95:.1f}", "-", None),
    ]
    if created:
        figures.append(
            Figure("one-recipient JSON creates per s", f"{created / fill_seconds:.0f}", "-", None)
        )
    return figures


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=50_000, help="CSV size (default 50,000)")
    parser.add_argument("--url", help="a running backend instead of starting one")
    parser.add_argument("--api-key", help="with --url: a workspace API key")
    parser.add_argument("--agent-id", help="with --url: an agent of that workspace with a number")
    parser.add_argument("--repeats", type=int, default=3, help="CSV uploads and naive loops")
    parser.add_argument("--detail-repeats", type=int, default=5)
    parser.add_argument("--batches", type=int, default=1_000, help="batches stored before listing")
    parser.add_argument("--list-requests", type=int, default=200)
    parser.add_argument(
        "--dialer",
        choices=("embedded", "off"),
        help="BATCH_DIALER for the started backend (default: the environment's, i.e. embedded)",
    )
    parser.add_argument("--startup-timeout", type=float, default=180)
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (database, log)")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="the upload figures only: 1 upload and loop, 1 detail, 100 batches, 20 list requests",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.repeats, args.detail_repeats, args.batches, args.list_requests = 1, 1, 100, 20
    if args.url and not (args.api_key and args.agent_id):
        parser.error("--url needs --api-key and --agent-id")
    if args.rows < 1:
        parser.error("--rows must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}")
    if args.url:
        backend = Backend(url=args.url.rstrip("/"), api_key=args.api_key, agent_id=args.agent_id)
        figures = run(backend, args)
    else:
        with (
            scratch_dir("bench-ingest-", args.keep) as workdir,
            local_backend(workdir, args.startup_timeout, args.dialer) as backend,
        ):
            figures = run(backend, args)
    return conclude(figures, args.strict)


if __name__ == "__main__":
    sys.exit(main())
