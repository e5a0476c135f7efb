"""Load benchmark: API clients on loopback against one backend, p99 of the batch detail and list.

Starts a real backend (`reflex run --env prod --backend-only`, dialer off) on a fresh SQLite
(or, with `--postgres`, PostgreSQL) database holding one 1,000-recipient batch and enough small
batches to fill the list's default page, or targets a running one with
`--url/--api-key/--agent-id`; then runs `--clients` (20) closed-loop clients for `--seconds`
(60), each with its own API key — wrk threads, half on `GET /v1/batch-calls/{id}` and half on
`GET /v1/batch-calls`, or with `--client python` httpx clients alternating the two — samples the
CPU and memory of the backend's process tree, and prints each figure, its target and PASS/MISS.
See bench/README.md.

    .venv/bin/python bench/load.py [--clients 20] [--seconds 60] [--url http://host:3000 ...]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil
from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from ingest import (  # noqa: E402
    Backend,
    Figure,
    backend_env,
    build_csv,
    conclude,
    expect,
    fill_batches,
    generate_numbers,
    listening_process,
    percentile,
    post_csv,
    provision,
    scratch_dir,
    serving,
)

from batch_dashboard.services.batches import LIST_LIMIT_DEFAULT  # noqa: E402
from batch_dashboard.settings import Settings  # noqa: E402

WRK = shutil.which("wrk")  # `make bench-load` installs Debian's wrk when it is missing
TARGET_P99_MS = 100.0
TARGET_ERRORS = 0
ROUTES = ("detail", "list")
LIST_PAGE = LIST_LIMIT_DEFAULT  # a page of the list route, as the clients ask for it
DEFAULT_RATE = float(Settings.model_fields["rate_limit_per_second"].default)
DEFAULT_BURST = int(Settings.model_fields["rate_limit_burst"].default)


@dataclass
class Sample:
    route: str
    seconds: float  # sent → last byte of the body
    error: str | None


@dataclass
class Target:
    """What the clients hit, and what a correct answer looks like."""

    url: str
    keys: list[str]
    batch_id: str
    # Body sizes of the first answers: with the data frozen (dialer off) any other size means
    # the server answered something else; None when the data may change under the run.
    detail_bytes: int | None
    list_bytes: int | None


@dataclass
class TreeUsage:
    cpu_seconds: float = 0.0
    wall_seconds: float = 0.0
    peak_cpu_percent: float = 0.0  # busiest sampling interval, % of one core
    peak_rss: int = 0  # sum over the tree's processes
    processes: int = 0
    threads: int = 0


# --- backend ------------------------------------------------------------------------------


@contextlib.contextmanager
def local_backend(
    workdir: Path, args: argparse.Namespace
) -> Iterator[tuple[Backend, list[str], psutil.Process]]:
    """A fresh database, one API key per client, `reflex run --env prod --backend-only`.

    ingest.py's `local_backend` turns the per-key rate limit off (one key sends everything
    there); here every client has its own key, so the limit is left on, as in production.
    """
    with contextlib.ExitStack() as stack:
        if args.postgres:
            from dialer import PG_SERVER, postgres_database

            env = backend_env(stack.enter_context(postgres_database(PG_SERVER)), args.dialer)
            # A PostgreSQL deployment must give its processes the sealing key (this one too:
            # client_keys makes keys in-process).
            env.setdefault("BATCH_SECRET_KEY", Fernet.generate_key().decode())
            os.environ.setdefault("BATCH_SECRET_KEY", env["BATCH_SECRET_KEY"])
        else:
            env = backend_env(f"sqlite:///{workdir / 'load.db'}", args.dialer)
        env["BATCH_RATE_LIMIT_PER_SECOND"] = f"{args.rate_limit:g}"
        env["BATCH_RATE_LIMIT_BURST"] = str(args.burst)
        setup_key, agent_id = provision(env)
        keys = client_keys(env["DATABASE_URL"], setup_key, args.clients)
        url, process = stack.enter_context(serving(env, workdir, args.startup_timeout))
        backend = Backend(url=url, api_key=setup_key, agent_id=agent_id, started_here=True)
        yield backend, keys, psutil.Process(process.pid)


def client_keys(database_url: str, setup_key: str, count: int) -> list[str]:
    """`count` new keys of the setup key's workspace, made in-process with the service that
    `python -m batch_dashboard create-api-key` calls: one CLI process per key costs ~1.3 s each."""
    from batch_dashboard.db import dispose_engines, session_scope
    from batch_dashboard.services import auth

    with session_scope(database_url, write=True) as session:
        workspace_id = auth.authenticate_api_key(setup_key, database_url=database_url)
        keys = [
            auth.create_api_key(session, workspace_id=workspace_id, label=f"load client {i}")
            for i in range(count)
        ]
    dispose_engines()  # the bench process keeps no handle on the backend's database
    return [issued.api_key for issued in keys]


def tree_root(process: psutil.Process) -> psutil.Process:
    """Climb to the topmost ancestor in the same process group (e.g. granian's supervisor)."""
    with contextlib.suppress(psutil.Error):
        pgid = os.getpgid(process.pid)
        while (parent := process.parent()) is not None and os.getpgid(parent.pid) == pgid:
            process = parent
    return process


# --- data ---------------------------------------------------------------------------------


def prepare(backend: Backend, args: argparse.Namespace) -> tuple[str, int]:
    """One `--recipients` batch (CSV upload) and `--batches` − 1 small ones: (batch id, total)."""
    headers = {"Authorization": f"Bearer {backend.api_key}"}
    with httpx.Client(base_url=backend.url, headers=headers, timeout=600) as client:
        numbers = generate_numbers(args.recipients)
        seconds, batch = post_csv(client, backend, build_csv(numbers), "load big")
        print(f"created the {args.recipients:,}-recipient batch {batch['id']} in {seconds:.2f} s")
        small, seconds = fill_batches(client, backend, args.batches)
        print(f"created {small} one-recipient batches in {seconds:.1f} s")
        page = expect(client.get("/v1/batch-calls"), 200, "GET /v1/batch-calls")
    return batch["id"], len(page["batch_calls"])


def check_answers(url: str, keys: Sequence[str], batch_id: str, recipients: int) -> tuple[int, int]:
    """Parse one detail and one list answer per key (the clients won't: JSON costs them CPU);
    returns the sizes in bytes of the (smallest) detail and list answers."""
    sizes: set[tuple[int, int]] = set()
    for key in dict.fromkeys(keys):
        headers = {"Authorization": f"Bearer {key}"}
        with httpx.Client(base_url=url, headers=headers, timeout=60) as client:
            detail = client.get(f"/v1/batch-calls/{batch_id}")
            body = expect(detail, 200, f"GET /v1/batch-calls/{batch_id}")
            if len(body["recipients"]) != recipients:
                sys.exit(f"detail: {len(body['recipients'])} recipients, expected {recipients}")
            listing = client.get("/v1/batch-calls")
            page = expect(listing, 200, "GET /v1/batch-calls")
            if len(page["batch_calls"]) != LIST_PAGE or not page["next_cursor"]:
                sys.exit(f"list: {len(page['batch_calls'])} batches, expected a full page")
            sizes.add((len(detail.content), len(listing.content)))
    return min(sizes)


# --- measurement --------------------------------------------------------------------------


class TreeSampler:
    """CPU and memory of a process and all its descendants, sampled in a thread.

    CPU is the difference of each process's cumulative user+system time between its first and
    last sample, so nothing between samples is lost; processes that come and go mid-run count
    from their first sample.
    """

    def __init__(self, root: psutil.Process, interval: float) -> None:
        self.root = root
        self.interval = interval
        self.first: dict[int, float] = {}
        self.last: dict[int, float] = {}
        self.first_system: dict[int, float] = {}
        self.last_system: dict[int, float] = {}
        self.labels: dict[int, str] = {}
        self.rss: dict[int, int] = {}
        self.pss: dict[int, int] = {}
        self.usage = TreeUsage()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tree-sampler", daemon=True)
        self._started = 0.0

    def _tree(self) -> list[psutil.Process]:
        try:
            return [self.root, *self.root.children(recursive=True)]
        except psutil.Error:
            return []

    def _sample(self) -> float:
        """One pass over the tree; returns the tree's CPU seconds since the first pass."""
        processes = self._tree()
        rss = threads = 0
        for process in processes:
            with contextlib.suppress(psutil.Error), process.oneshot():
                times = process.cpu_times()
                memory = process.memory_info().rss
                threads += process.num_threads()
                cpu = times.user + times.system
                self.first.setdefault(process.pid, cpu)
                self.last[process.pid] = cpu
                self.first_system.setdefault(process.pid, times.system)
                self.last_system[process.pid] = times.system
                self.rss[process.pid] = memory
                rss += memory
                if process.pid not in self.labels:
                    self.labels[process.pid] = label(process)
        usage = self.usage
        usage.peak_rss = max(usage.peak_rss, rss)
        usage.processes = max(usage.processes, len(processes))
        usage.threads = max(usage.threads, threads)
        return sum(self.last[pid] - self.first[pid] for pid in self.last)

    def _run(self) -> None:
        previous, at = self._sample(), time.perf_counter()
        while not self._stop.wait(self.interval):
            cpu, now = self._sample(), time.perf_counter()
            busy = (cpu - previous) / (now - at) * 100
            self.usage.peak_cpu_percent = max(self.usage.peak_cpu_percent, busy)
            previous, at = cpu, now

    def start(self) -> None:
        self._started = time.perf_counter()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self.usage.cpu_seconds = self._sample()
        self.usage.wall_seconds = time.perf_counter() - self._started
        # RSS counts the pages the forked worker shares with its supervisor once per process;
        # PSS splits them. Read once, at the end: /proc/<pid>/smaps_rollup is not free.
        for process in self._tree():
            with contextlib.suppress(psutil.Error):
                self.pss[process.pid] = process.memory_full_info().pss

    def system_seconds(self) -> float:
        """The kernel's share of `usage.cpu_seconds` (syscalls, futex waits of contended locks)."""
        return sum(self.last_system[pid] - self.first_system[pid] for pid in self.last_system)

    def per_process(self) -> list[tuple[int, str, float, int]]:
        """(pid, label, % of one core over the window, RSS at the end), busiest first."""
        wall = self.usage.wall_seconds or 1.0
        rows = [
            (pid, self.labels[pid], (self.last[pid] - self.first[pid]) / wall * 100, self.rss[pid])
            for pid in self.last
        ]
        return sorted(rows, key=lambda row: -row[2])


def label(process: psutil.Process) -> str:
    """A short name for a backend process: what it runs, not its whole command line."""
    try:
        command = " ".join(process.cmdline())
        if "forkserver import main" in command:
            # The forkserver's own children are the phone-validation pool (services/phones.py).
            parent = process.parent()
            forked = parent is not None and "forkserver" in " ".join(parent.cmdline())
            return "validation pool worker" if forked else "multiprocessing forkserver"
    except psutil.Error:
        return "?"
    if "resource_tracker" in command:
        return "multiprocessing resource tracker"
    return "reflex run" if "reflex run" in command else command[:60]


async def client_loop(
    index: int,
    target: Target,
    key: str,
    measure_from: float,
    until: float,
    think: float,
    samples: list[Sample],
) -> None:
    """One API client: a single keep-alive connection, detail and list in turn, no parsing."""
    paths = {"detail": f"/v1/batch-calls/{target.batch_id}", "list": "/v1/batch-calls"}
    sizes = {"detail": target.detail_bytes, "list": target.list_bytes}
    turn = index % 2  # half the clients start on each route, so both are always in flight
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(
        base_url=target.url, headers=headers, timeout=30, limits=limits
    ) as client:
        while (started := time.perf_counter()) < until:
            route = ROUTES[turn]
            turn ^= 1
            error: str | None = None
            try:
                # Not streamed: httpx returns once the whole body is in, i.e. time to last byte.
                response = await client.get(paths[route])
                seconds = time.perf_counter() - started
                if response.status_code != 200:
                    error = f"HTTP {response.status_code}"
                elif sizes[route] is not None and len(response.content) != sizes[route]:
                    error = "body of another size"
            except httpx.HTTPError as exc:
                seconds = time.perf_counter() - started
                error = type(exc).__name__
            if started >= measure_from:
                samples.append(Sample(route, seconds, error))
            if think:
                await asyncio.sleep(think)


@dataclass
class Window:
    """The measured window: its bounds and this (client) process's CPU seconds during it."""

    start: float = 0.0
    end: float = 0.0
    client_cpu: float = 0.0

    @property
    def seconds(self) -> float:
        return self.end - self.start


def own_cpu_seconds() -> float:
    times = psutil.Process().cpu_times()
    return times.user + times.system


async def drive(
    target: Target,
    args: argparse.Namespace,
    sampler: TreeSampler | None,
) -> tuple[list[Sample], Window]:
    """All clients in this process's event loop, the sampler watching the window only.

    Requests sent during the warm-up are not kept; requests sent during the window are kept
    even when they finish after it, and the window ends when the last of them has.
    """
    window = Window(start=time.perf_counter() + args.warmup)
    until = window.start + args.seconds
    samples: list[Sample] = []

    async def open_window() -> float:
        await asyncio.sleep(max(0.0, window.start - time.perf_counter()))
        if sampler is not None:
            sampler.start()
        return own_cpu_seconds()

    opening = asyncio.create_task(open_window())
    keys = target.keys
    await asyncio.gather(
        *(
            client_loop(
                i, target, keys[i % len(keys)], window.start, until, args.think_ms / 1000, samples
            )
            for i in range(args.clients)
        )
    )
    window.end = time.perf_counter()
    window.client_cpu = own_cpu_seconds() - await opening
    if sampler is not None:
        sampler.stop()
    return samples, window


# wrk: one process per route, one thread and one connection per client, each client with its
# own key; `done` prints the figures as JSON (latencies in microseconds).
WRK_SCRIPT = """
local keys = {%(keys)s}
local given = 0
function setup(thread)
  given = given + 1
  thread:set("key", keys[(given - 1) %% #keys + 1])
end
function init(args)
  wrk.headers["Authorization"] = "Bearer " .. key
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK {"requests": %%d, "socket": %%d, "status": %%d, '
    .. '"timeout": %%d, "p50": %%d, "p95": %%d, "p99": %%d, "max": %%d, "mean": %%f}\\n',
    summary.requests, e.connect + e.read + e.write,
    e.status, e.timeout, latency:percentile(50), latency:percentile(95),
    latency:percentile(99), latency.max, latency.mean))
end
"""


def drive_wrk(
    target: Target, args: argparse.Namespace, sampler: TreeSampler | None, workdir: Path
) -> tuple[list[RouteStats], Window]:
    """Half the clients on each route, `wrk` doing the requests: a C load generator uses a few
    per cent of a core where httpx in Python used a whole one, on the machine the backend runs
    on. A warm-up run first, then the measured one with the sampler watching."""
    paths = {"detail": f"/v1/batch-calls/{target.batch_id}", "list": "/v1/batch-calls"}
    split = {"detail": args.clients - args.clients // 2, "list": args.clients // 2}
    keys = list(target.keys)
    scripts = {}
    for index, route in enumerate(ROUTES):
        # Each route's clients take their own keys (as with the Python client: one per client).
        mine = keys[index * split["detail"] :] + keys[: index * split["detail"]]
        script = workdir / f"wrk-{route}.lua"
        script.write_text(WRK_SCRIPT % {"keys": ", ".join(f'"{key}"' for key in mine)})
        scripts[route] = script

    def start(route: str, seconds: float) -> subprocess.Popen[str]:
        clients = split[route]
        command = [
            WRK,
            *("-t", str(clients), "-c", str(clients), "-d", f"{seconds:g}s", "--timeout", "30s"),
            *("-s", str(scripts[route]), f"{target.url}{paths[route]}"),
        ]
        return subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )

    if args.warmup:
        for process in [start(route, args.warmup) for route in ROUTES if split[route]]:
            process.communicate()
    # The wrk processes are the only children reaped during the window (the backend is reaped
    # when it stops), so the children's CPU before and after is theirs exactly.
    children_before = children_cpu_seconds()
    window = Window(start=time.perf_counter())
    runs = {route: start(route, args.seconds) for route in ROUTES if split[route]}
    if sampler is not None:
        sampler.start()
    outputs = {route: run.communicate()[0] for route, run in runs.items()}
    window.end = time.perf_counter()
    window.client_cpu = children_cpu_seconds() - children_before
    if sampler is not None:
        sampler.stop()
    return [wrk_stats(route, output) for route, output in outputs.items()], window


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def wrk_stats(route: str, output: str) -> RouteStats:
    line = next((line for line in output.splitlines() if line.startswith("WRK ")), None)
    if line is None:
        sys.exit(f"wrk ({route}) printed no figures:\n{output}")
    figures = json.loads(line[4:])
    kinds: Counter[str] = Counter()
    for name, kind in (("status", "non-2xx"), ("socket", "socket error"), ("timeout", "timeout")):
        if figures[name]:
            kinds[kind] = figures[name]
    return RouteStats(
        route=route,
        count=figures["requests"],
        errors=sum(kinds.values()),
        p50=figures["p50"] / 1000,
        p95=figures["p95"] / 1000,
        p99=figures["p99"] / 1000,
        max=figures["max"] / 1000,
        mean=figures["mean"] / 1000,
        error_kinds=kinds,
    )


@dataclass
class RouteStats:
    route: str
    count: int
    errors: int
    p50: float
    p95: float
    p99: float
    max: float
    mean: float
    error_kinds: Counter[str] = field(default_factory=Counter)


def route_stats(route: str, samples: Sequence[Sample]) -> RouteStats:
    mine = [s for s in samples if s.route == route]
    # Latency percentiles over every request, failed ones included: a fast 429 must not hide.
    times = [s.seconds * 1000 for s in mine] or [float("nan")]
    kinds = Counter(s.error for s in mine if s.error)
    return RouteStats(
        route=route,
        count=len(mine),
        errors=sum(kinds.values()),
        p50=percentile(times, 0.50),
        p95=percentile(times, 0.95),
        p99=percentile(times, 0.99),
        max=max(times),
        mean=statistics.fmean(times),
        error_kinds=kinds,
    )


def load_average() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


# --- the run ------------------------------------------------------------------------------


def describe_model(args: argparse.Namespace, keys: Sequence[str], frozen: bool) -> None:
    if args.think_ms:
        think = f"{args.think_ms:g} ms think time"
        load = (
            f"each client sends at most {1000 / args.think_ms:.2g} requests a second, so latency "
            "is the service time plus whatever queueing the other clients cause"
        )
    else:
        think = "no think time"
        load = (
            "the offered load is whatever the backend sustains and latency ≈ clients / "
            "throughput (Little's law): a saturation test, not a fixed rate"
        )
    if args.client == "wrk":
        routes = (
            f"{args.clients - args.clients // 2} on GET detail and {args.clients // 2} on GET list"
        )
        how = (
            f"clients are wrk threads ({WRK}), one wrk process per route; {args.warmup:g} s "
            f"warm-up run, then a {args.seconds:g} s measured run; latency = send → whole "
            "response read"
        )
    else:
        routes = "alternating GET detail / GET list"
        how = (
            "clients run as asyncio tasks on httpx.AsyncClient in this one process (it competes "
            f"with the backend for the cores); {args.warmup:g} s warm-up (not kept), then "
            f"{args.seconds:g} s measured; latency = send → last byte of the body"
        )
    print(
        f"model: {args.clients} closed-loop clients ({think}), each one keep-alive HTTP/1.1 "
        f"connection, {routes}; a client sends its next request when the previous answer has "
        f"fully arrived{' and it has thought' if args.think_ms else ''}; {load}"
    )
    print(f"       {how}")
    distinct = len(set(keys))
    shared = "" if distinct >= args.clients else f" (shared: only {distinct} given)"
    print(f"keys: {distinct} API keys for {args.clients} clients{shared}; a 429 counts as an error")
    if frozen and args.client == "python":
        print(
            "data: frozen (BATCH_DIALER=off), so every answer of a route must have the size of "
            "the first one"
        )
    elif frozen:
        print("data: frozen (BATCH_DIALER=off); sizes checked once per key before the run")
    else:
        print("data: may change during the run (dialer on or a running backend): sizes unchecked")


def run(
    backend: Backend, keys: list[str], process: psutil.Process | None, args: argparse.Namespace
) -> list[Figure]:
    batch_id, page = (args.batch_id, LIST_PAGE) if args.batch_id else prepare(backend, args)
    frozen = backend.started_here and args.dialer == "off"
    detail_bytes, list_bytes = check_answers(backend.url, keys, batch_id, args.recipients)
    print(
        f"answers: detail {detail_bytes / 1e3:.0f} kB ({args.recipients:,} recipients), "
        f"list {list_bytes / 1e3:.0f} kB ({page} batches and a next_cursor)"
    )
    target = Target(
        url=backend.url,
        keys=keys,
        batch_id=batch_id,
        detail_bytes=detail_bytes if frozen else None,
        list_bytes=list_bytes if frozen else None,
    )
    describe_model(args, keys, frozen)
    root = tree_root(process) if process is not None else None
    sampler = TreeSampler(root, args.sample_interval) if root is not None else None
    if root is None:
        print("backend tree: not found on this machine: its CPU and memory are not measured")
    print(f"load average before: {load_average()}")
    if args.client == "wrk":
        with tempfile.TemporaryDirectory(prefix="bench-wrk-") as scripts:
            stats, window = drive_wrk(target, args, sampler, Path(scripts))
        in_flight = None
    else:
        samples, window = asyncio.run(drive(target, args, sampler))
        stats = [route_stats(route, samples) for route in ROUTES]
        in_flight = sum(sample.seconds for sample in samples) / window.seconds
    print(f"load average after: {load_average()}")
    print_routes(stats, window, in_flight)
    if sampler is not None:
        print_processes(sampler)
    return figures(stats, window, sampler, page, args)


def print_routes(stats: Sequence[RouteStats], window: Window, in_flight: float | None) -> None:
    print()
    print(
        f"{'route':<8} {'count':>7} {'errors':>6} {'req/s':>7} {'mean':>7} {'p50':>7} "
        f"{'p95':>7} {'p99':>7} {'max':>7}  (ms)"
    )
    for s in stats:
        print(
            f"{s.route:<8} {s.count:>7,} {s.errors:>6} {s.count / window.seconds:>7.1f} "
            f"{s.mean:>7.1f} {s.p50:>7.1f} {s.p95:>7.1f} {s.p99:>7.1f} {s.max:>7.1f}"
        )
        for kind, n in s.error_kinds.most_common():
            print(f"         {n:>7} × {kind}")
    total = sum(s.count for s in stats)
    # Below the client count: part of the time the clients were not waiting on the server
    # (their own event loop was busy or starved of CPU), i.e. the client limited the load.
    flight = "" if in_flight is None else f", {in_flight:.1f} requests in flight on average"
    print(
        f"all      {total:>7,} {sum(s.errors for s in stats):>6} {total / window.seconds:>7.1f}"
        f"   window {window.seconds:.1f} s{flight}"
    )


def print_processes(sampler: TreeSampler) -> None:
    print(
        f"\nbackend processes over the window ({sampler.usage.threads} threads at most; % of one "
        "core, RSS at the end, PSS at the end):"
    )
    for pid, name, cpu, rss in sampler.per_process():
        if pid == sampler.root.pid:
            role = "reflex run: granian supervisor"
        elif name == "reflex run":
            role = "reflex run: granian worker (serves HTTP)"
        else:
            role = name
        pss = sampler.pss.get(pid)
        pss_text = f"{pss / 1e6:6.0f} MB" if pss is not None else "     ?"
        print(f"  {pid:>7} {cpu:6.1f} % {rss / 1e6:6.0f} MB {pss_text}  {role}")


def figures(
    stats: Sequence[RouteStats],
    window: Window,
    sampler: TreeSampler | None,
    page: int,
    args: argparse.Namespace,
) -> list[Figure]:
    names = {
        "detail": f"GET /v1/batch-calls/{{id}} ({args.recipients:,} recipients)",
        "list": f"GET /v1/batch-calls (a page of {page})",
    }
    result: list[Figure] = []
    for s in stats:
        result += [
            Figure(
                f"{names[s.route]}: p99 ms",
                f"{s.p99:.1f}",
                f"<= {TARGET_P99_MS:.0f}",
                s.p99 <= TARGET_P99_MS,
            ),
            Figure(
                "  p50 / p95 / max ms, requests",
                f"{s.p50:.1f} / {s.p95:.1f} / {s.max:.1f}, {s.count:,}",
                "-",
                None,
            ),
        ]
    errors = sum(s.errors for s in stats)
    total = sum(s.count for s in stats)
    result += [
        Figure(
            "errors (non-2xx, exceptions)",
            f"{errors}",
            f"= {TARGET_ERRORS}",
            errors <= TARGET_ERRORS,
        ),
        Figure(
            f"throughput, {args.clients} clients, req/s",
            f"{total / window.seconds:.0f}",
            "-",
            None,
        ),
    ]
    cores = os.cpu_count() or 1
    if sampler is not None:
        usage = sampler.usage
        average = usage.cpu_seconds / usage.wall_seconds * 100
        pss = sum(sampler.pss.values())
        result += [
            Figure(
                "backend CPU, % of one core: average / peak 1 s",
                f"{average:.0f} / {usage.peak_cpu_percent:.0f}",
                "-",
                None,
            ),
            Figure(f"backend CPU, % of all {cores} cores", f"{average / cores:.0f}", "-", None),
            Figure(
                "backend CPU in the kernel (system), %",
                f"{sampler.system_seconds() / max(usage.cpu_seconds, 1e-9) * 100:.0f}",
                "-",
                None,
            ),
            # What one request costs the backend, whatever else the machine is doing: with one
            # worker process, 1000 / this is the most requests a second it can serve.
            Figure(
                "backend CPU per request, ms",
                f"{usage.cpu_seconds * 1000 / max(total, 1):.1f}",
                "-",
                None,
            ),
            Figure(
                f"backend memory, MB: peak RSS sum / PSS sum at the end ({usage.processes} processes)",
                f"{usage.peak_rss / 1e6:.0f} / {pss / 1e6:.0f}",
                "-",
                None,
            ),
        ]
    client = "wrk processes" if args.client == "wrk" else "this process"
    result.append(
        Figure(
            f"client ({client}) CPU, % of one core",
            f"{window.client_cpu / window.seconds * 100:.0f}",
            "-",
            None,
        )
    )
    return result


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=20, help="concurrent API clients (20)")
    parser.add_argument("--seconds", type=float, default=60, help="measured window (60)")
    parser.add_argument("--warmup", type=float, default=5, help="unmeasured load first (5 s)")
    parser.add_argument(
        "--think-ms", type=float, default=0, help="pause of each client between requests (0)"
    )
    parser.add_argument("--recipients", type=int, default=1_000, help="the detail batch's size")
    parser.add_argument(
        "--batches", type=int, default=150, help="batches stored in all (150; a page is 100)"
    )
    parser.add_argument(
        "--postgres",
        action="store_true",
        help="start the backend on a fresh PostgreSQL database (BENCH_POSTGRES_URL's server) "
        "instead of SQLite; with REFLEX_REDIS_URL and GRANIAN_WORKERS set, the scale-out shape",
    )
    parser.add_argument("--url", help="a running backend instead of starting one")
    parser.add_argument(
        "--api-key",
        action="append",
        default=[],
        help="with --url: a workspace API key; repeat it to give clients their own keys",
    )
    parser.add_argument("--agent-id", help="with --url: an agent of that workspace with a number")
    parser.add_argument(
        "--batch-id",
        help="with --url: measure this batch (of --recipients) instead of creating data",
    )
    parser.add_argument(
        "--backend-pid",
        type=int,
        help="with --url: the backend process to sample (default: the "
        "process listening on the URL's port, when it is on this machine)",
    )
    parser.add_argument(
        "--dialer",
        choices=("embedded", "off"),
        default="off",
        help="BATCH_DIALER of the started backend (default off: the data must not change)",
    )
    parser.add_argument(
        "--rate-limit",
        type=float,
        default=DEFAULT_RATE,
        help=f"BATCH_RATE_LIMIT_PER_SECOND of the started backend ({DEFAULT_RATE:g}, per key)",
    )
    parser.add_argument(
        "--burst",
        type=int,
        default=DEFAULT_BURST,
        help=f"BATCH_RATE_LIMIT_BURST of the started backend ({DEFAULT_BURST})",
    )
    parser.add_argument(
        "--client",
        choices=("wrk", "python"),
        default="wrk" if WRK else "python",
        help="the load generator: wrk (the default when installed) or httpx in this process",
    )
    parser.add_argument("--sample-interval", type=float, default=1.0, help="psutil sampling (1 s)")
    parser.add_argument("--startup-timeout", type=float, default=180)
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (database, log)")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)
    if args.url and not (args.api_key and (args.agent_id or args.batch_id)):
        parser.error("--url needs --api-key and --agent-id (or --batch-id)")
    if not args.url and (args.api_key or args.batch_id or args.backend_pid):
        parser.error("--api-key, --batch-id and --backend-pid go with --url")
    started_only = {
        "--postgres": args.postgres,
        "--dialer": args.dialer != "off",
        "--rate-limit": args.rate_limit != DEFAULT_RATE,
        "--burst": args.burst != DEFAULT_BURST,
        "--keep": args.keep,
    }
    if args.url and any(started_only.values()):
        given = ", ".join(name for name, set_ in started_only.items() if set_)
        parser.error(f"{given}: only for a backend this script starts, not with --url")
    if args.clients < 1 or args.seconds <= 0 or args.recipients < 1:
        parser.error("--clients, --seconds and --recipients must be positive")
    if args.client == "wrk" and (WRK is None or args.think_ms):
        parser.error("--client wrk needs wrk on PATH (make bench-load installs it), no --think-ms")
    if args.batches <= LIST_PAGE:
        parser.error(f"--batches must be above {LIST_PAGE}, so that the list returns a full page")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}")
    if args.url:
        backend = Backend(
            url=args.url.rstrip("/"), api_key=args.api_key[0], agent_id=args.agent_id or ""
        )
        process = (
            psutil.Process(args.backend_pid) if args.backend_pid else listening_process(args.url)
        )
        figures = run(backend, args.api_key, process, args)
    else:
        print(
            f"backend: BATCH_DIALER={args.dialer}, BATCH_RATE_LIMIT_PER_SECOND={args.rate_limit:g} "
            f"and BATCH_RATE_LIMIT_BURST={args.burst} per key"
        )
        with (
            scratch_dir("bench-load-", args.keep) as workdir,
            local_backend(workdir, args) as (backend, keys, process),
        ):
            figures = run(backend, keys, process, args)
    return conclude(figures, args.strict)


if __name__ == "__main__":
    sys.exit(main())
