"""What this process tells about itself: the Prometheus registry and its series, and whether it
runs a dialer. Shared by the API (which serves /metrics and /v1/health) and the worker (which
observes dial latency and reports its state), so neither owns it.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from batch_dashboard.db import session_scope
from batch_dashboard.services import metrics

registry = CollectorRegistry()
http_latency = Histogram(
    "batch_http_request_seconds",
    "Time to answer /v1 requests, by route template",
    ["method", "route", "status"],
    registry=registry,
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
dial_latency = Histogram(
    "batch_dial_seconds",
    "Time the provider took to accept a group of calls (this process's dialer)",
    registry=registry,
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


class DatabaseFigures(Collector):
    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        with session_scope() as session:
            figures = metrics.snapshot(session)
        recipients = GaugeMetricFamily(
            "batch_recipients", "Recipients by status (pending is the queue)", labels=["status"]
        )
        for status, value in figures["recipients"].items():
            recipients.add_metric([status], value)
        yield recipients
        calls = CounterMetricFamily("batch_calls", "Calls that ended, by result", labels=["result"])
        for result, value in figures["calls"].items():
            calls.add_metric([result], value)
        yield calls
        failed = GaugeMetricFamily(
            "batch_recipients_failed", "Failed recipients by reason", labels=["reason"]
        )
        for reason, value in figures["failed_by_reason"].items():
            failed.add_metric([reason], value)
        yield failed
        deliveries = GaugeMetricFamily(
            "batch_webhook_deliveries", "Webhook deliveries by status", labels=["status"]
        )
        for status, value in figures["webhook_deliveries"].items():
            deliveries.add_metric([status], value)
        yield deliveries
        trips = CounterMetricFamily(
            "batch_breaker_trips",
            "Batches paused by their circuit breaker, by what tripped it",
            labels=["reason"],
        )
        for reason, value in figures["breaker_trips"].items():
            trips.add_metric([reason], value)
        yield trips


registry.register(DatabaseFigures())


# --- the dialer's state, for /v1/health -------------------------------------------------------

_dialer_running = False
_waiting_for_database = False


def set_dialer_running(running: bool) -> None:
    global _dialer_running
    _dialer_running = running


def set_waiting_for_database(waiting: bool) -> None:
    """The worker of this process cannot reach the database and is backing off."""
    global _waiting_for_database
    _waiting_for_database = waiting


def dialer_state(*, database_ok: bool = True) -> str:
    """`running`, `off`, or `waiting for database` when this process runs a dialer that cannot
    reach the database (it noticed, or the health check just did)."""
    if not _dialer_running:
        return "off"
    if _waiting_for_database or not database_ok:
        return "waiting for database"
    return "running"
