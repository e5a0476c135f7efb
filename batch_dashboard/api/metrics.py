"""/metrics in Prometheus' text format: HTTP latency by route from this process, call and
delivery figures from the database (the same whichever process serves the scrape).

Off unless BATCH_METRICS_TOKEN is set; the scraper then sends it as a bearer token.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Iterator

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from batch_dashboard.db import session_scope
from batch_dashboard.services import metrics
from batch_dashboard.services.errors import NotFound, Unauthorized
from batch_dashboard.settings import get_settings

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


registry.register(DatabaseFigures())
router = APIRouter()


@router.get("/metrics", include_in_schema=False)
async def prometheus(request: Request) -> Response:
    token = get_settings().metrics_token
    if not token:
        raise NotFound("metrics are off: set BATCH_METRICS_TOKEN")
    given = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
    if not hmac.compare_digest(given.encode(), token.encode()):
        raise Unauthorized("send the metrics token as Authorization: Bearer <token>")
    body = await run_in_threadpool(generate_latest, registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


class ObserveLatency:
    """Pure ASGI middleware (Starlette's BaseHTTPMiddleware costs a task and a stream per
    request): the latency of every /v1 request by route template, method and status."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_noting_status)
        finally:
            route = scope.get("route")  # set by the router on this same scope
            if route is not None and scope["path"].startswith("/v1"):
                http_latency.labels(
                    scope["method"], getattr(route, "path", "?"), str(status)
                ).observe(time.perf_counter() - started)
