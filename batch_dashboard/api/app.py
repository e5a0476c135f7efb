"""The /v1 REST API: a FastAPI app built fresh by `create_api()` (Reflex mounts itself inside it)."""

from __future__ import annotations

import importlib.util
import logging
import time
from pathlib import Path
from urllib.parse import parse_qsl

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Receive, Scope, Send

from batch_dashboard import db
from batch_dashboard.api import bodies, metrics
from batch_dashboard.api.routes import (
    agents,
    batches,
    connections,
    do_not_call,
    health,
    provider_events,
    webhooks,
)
from batch_dashboard.services.errors import (
    DomainError,
    Problems,
    RateLimited,
    ValidationFailed,
    nul_problems,
)
from batch_dashboard.settings import get_settings

log = logging.getLogger(__name__)
DOCS_ASSETS = "/v1/docs-assets"
# Swagger UI 5 from the swagger-ui-py package (the machines this runs on may have no CDN; the
# 4.x of swagger-ui-bundle cannot render OpenAPI 3.1). Only its static files are used: importing
# the package would pull in its web-framework glue.
_SWAGGER_UI = importlib.util.find_spec("swagger_ui")
SWAGGER_UI_STATIC = Path(next(iter(_SWAGGER_UI.submodule_search_locations or ()))) / "static"
_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_failed",
    429: "rate_limited",
}

DATABASE_RETRY_AFTER_SECONDS = 5
_unreachable_logged_at = [0.0]  # one log line per 10 s of outage, not one per request

DESCRIPTION = """
Dial lists of phone numbers through your voice agents.

Authenticate with a workspace API key: `Authorization: Bearer bc_…` or `X-API-Key: bc_…`.
Every error has the body `{"error": {"code", "message", "details"}}`; `validation_failed`
lists every problem with its `loc` (`["recipients", 3, "phone"]`, `["csv_file", "row", 5, "phone"]`).
Times are RFC 3339 in UTC.
"""


def _error(status: int, code: str, message: str, details: list | None = None) -> JSONResponse:
    return JSONResponse(
        {"error": {"code": code, "message": message, "details": details}}, status_code=status
    )


def _loc(raw: tuple) -> list:
    # FastAPI prefixes where the value came from ("query", "path", "header", "body").
    return (
        list(raw[1:])
        if raw and raw[0] in ("query", "path", "header", "body", "cookie")
        else list(raw)
    )


class RequestGuard:
    """Every route, the console's upload included, before any routing: nothing may declare a
    body larger than the upload limit (plus room for a multipart envelope; routes that read
    bodies also count what actually arrives, for bodies sent without a length), and no query
    parameter or header may hold a NUL (the one text rule, `errors.nul_problems`; JSON bodies
    get it in `bodies.parse_json_object`, forms and CSVs in the services). Pure ASGI, like
    ObserveLatency: the common request pays a few substring checks."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            refused = self._refusal(scope)
            if refused is not None:
                response = JSONResponse(refused.body(), status_code=refused.status)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)

    @staticmethod
    def _refusal(scope: Scope) -> DomainError | None:
        declared = next((v for k, v in scope["headers"] if k == b"content-length"), b"")
        limit = get_settings().max_upload_bytes + bodies.ENVELOPE
        if bodies.declared_too_large(declared, limit):
            return bodies.too_large(limit)
        problems = Problems()
        query = scope.get("query_string", b"")
        if b"%00" in query or b"\x00" in query:
            for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
                nul_problems(value, [name], problems)
                nul_problems(name, ["query"], problems)
        for name, value in scope["headers"]:
            if b"\x00" in value:
                nul_problems(value.decode("latin-1"), [name.decode("latin-1")], problems)
        return ValidationFailed(problems.items, total=problems.total) if problems else None


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


class V1Fallback(BaseRoute):
    """Whatever no route of ours took under /v1 (an unknown path, any method, a newline in a
    path segment) answers here with the error envelope: never the console's plain-text 404.
    A known path with another method is `405` with every method its routes allow."""

    # The one label ObserveLatency gives every request answered here (unknown paths are many).
    path = "/v1/{path:path}"

    def __init__(self, routes: list[BaseRoute]) -> None:
        self.routes = routes

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        path = scope.get("path", "")
        if scope["type"] == "http" and (path == "/v1" or path.startswith("/v1/")):
            return Match.FULL, {"route": self}
        return Match.NONE, {}

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"]
        # Asked through `matches`, the routing API every route (included routers too) answers;
        # only our routes, before this one (the console's come after).
        allowed = [
            method
            for method in _METHODS
            if any(
                route.matches({**scope, "method": method})[0] is Match.FULL
                for route in self.routes[: self.routes.index(self)]
            )
        ]
        if allowed:
            response = _error(
                405,
                "method_not_allowed",
                f"{scope['method']} is not allowed on {path}; use {', '.join(allowed)}",
            )
            response.headers["Allow"] = ", ".join(allowed)
        else:
            response = _error(404, "not_found", f"no such route: {path}")
        await response(scope, receive, send)


class NewlinePaths:
    """Outside the whole app: a /v1 path with a line break answers the envelope's 404 here.
    Reflex mounts the API in a Starlette app of its own, whose catch-all mount (`.*`, which
    stops at a newline) cannot match such a path, so it would answer a plain-text 404 before
    the API sees the request. No route of ours has a line break in it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if path.startswith("/v1") and ("\n" in path or "\r" in path):
            await _error(404, "not_found", f"no such route: {path}")(scope, receive, send)
            return
        await self.app(scope, receive, send)


def create_api() -> FastAPI:
    api = FastAPI(
        title="Batch calls API",
        version="1.0.0",
        description=DESCRIPTION,
        openapi_url="/v1/openapi.json",
        docs_url=None,
        redoc_url=None,
    )

    @api.exception_handler(DomainError)
    async def domain_error(_request: Request, error: DomainError) -> JSONResponse:
        response = JSONResponse(error.body(), status_code=error.status)
        if isinstance(error, RateLimited):
            response.headers["Retry-After"] = str(error.retry_after)
        return response

    @api.exception_handler(RequestValidationError)
    async def request_invalid(_request: Request, error: RequestValidationError) -> JSONResponse:
        details = [{"loc": _loc(item["loc"]), "message": item["msg"]} for item in error.errors()]
        where = ".".join(str(part) for part in details[0]["loc"]) if details else "request"
        return _error(
            422,
            "validation_failed",
            f"{where}: {details[0]['message']}" if details else "the request is not valid",
            details,
        )

    @api.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, error: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(error.status_code, "error")
        response = _error(error.status_code, code, str(error.detail))
        for name, value in (error.headers or {}).items():
            response.headers[name] = value
        return response

    async def database_error(_request: Request, error: Exception) -> JSONResponse:
        if not db.is_unreachable(error):
            raise error  # a failed statement on a live database is a bug: see `unexpected`
        if time.monotonic() - _unreachable_logged_at[0] > 10:
            _unreachable_logged_at[0] = time.monotonic()
            log.warning("database unreachable: answering 503 (%s)", type(error).__name__)
        response = _error(
            503,
            "database_unreachable",
            "the database cannot be reached right now; try again in a few seconds",
        )
        response.headers["Retry-After"] = str(DATABASE_RETRY_AFTER_SECONDS)
        return response

    for kind in db.driver_errors():
        api.add_exception_handler(kind, database_error)

    @api.exception_handler(Exception)
    async def unexpected(_request: Request, error: Exception) -> JSONResponse:
        log.exception("unhandled error", exc_info=error)
        return _error(500, "internal_error", "something went wrong on our side; it has been logged")

    api.add_middleware(metrics.ObserveLatency)
    api.add_middleware(RequestGuard)

    api.mount(DOCS_ASSETS, StaticFiles(directory=SWAGGER_UI_STATIC), name="docs-assets")

    @api.get("/v1/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/v1/openapi.json",
            title="Batch calls API",
            swagger_js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url="/favicon.ico",
        )

    api.include_router(health.router)
    api.include_router(metrics.router)
    api.include_router(batches.router)
    api.include_router(agents.router)
    api.include_router(webhooks.router)
    api.include_router(do_not_call.router)
    api.include_router(connections.router)
    api.include_router(provider_events.router)

    # Last of our routes, before those Reflex mounts after them: nothing under /v1 falls through.
    api.router.routes.append(V1Fallback(api.router.routes))

    return api
