"""/v1/health: the one route without auth."""

from __future__ import annotations

import logging

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from batch_dashboard.db import is_unreachable, session_scope
from batch_dashboard.models import Health
from batch_dashboard.telemetry import dialer_state

router = APIRouter(prefix="/v1", tags=["Health"])
log = logging.getLogger(__name__)


def _database_ok() -> bool:
    try:
        with session_scope() as session:
            session.execute(text("SELECT 1"))
        return True
    except (SQLAlchemyError, OSError) as error:
        # A monitor asks every few seconds: one line each time, the traceback only when the
        # failure is something other than the database being out of reach.
        if is_unreachable(error):
            log.warning("health: database unreachable")
        else:
            log.warning("health: database check failed", exc_info=True)
        return False


@router.get(
    "/health",
    summary="Liveness of the API, the database and the dialer",
    response_model=Health,
    responses={503: {"model": Health, "description": "The database cannot be reached"}},
)
def health() -> JSONResponse:
    ok = _database_ok()
    body = {
        "status": "ok" if ok else "unavailable",
        "database": "ok" if ok else "unreachable",
        "dialer": dialer_state(database_ok=ok),
    }
    return JSONResponse(body, status_code=200 if ok else 503)
