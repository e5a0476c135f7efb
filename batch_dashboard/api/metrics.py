"""/metrics in Prometheus' text format: HTTP latency by route from this process, call and
delivery figures from the database (the same whichever process serves the scrape).

Off unless BATCH_METRICS_TOKEN is set; the scraper then sends it as a bearer token.
"""

from __future__ import annotations

import hmac
import time

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from batch_dashboard.services.errors import NotFound, Unauthorized
from batch_dashboard.settings import get_settings
from batch_dashboard.telemetry import http_latency, registry

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
