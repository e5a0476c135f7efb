"""/v1/batch-calls: thin handlers over services.batches."""

from __future__ import annotations

from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from sqlmodel import Session
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from batch_dashboard.api import bodies
from batch_dashboard.api.deps import CallerDep, FastJSONResponse
from batch_dashboard.api.openapi import (
    CREATE_BATCH_OPENAPI,
    ERRORS,
    cursor_query,
    enum_query,
    limit_query,
)
from batch_dashboard.models import RECIPIENT_STATUSES, BatchDetail, BatchList, BatchPublic
from batch_dashboard.services import agents, batches, idempotency, recipients
from batch_dashboard.services.errors import (
    PayloadTooLarge,
    UnsupportedMediaType,
    ValidationFailed,
)
from batch_dashboard.settings import get_settings

router = APIRouter(prefix="/v1/batch-calls", tags=["Batch calls"])

FORM_FIELDS = (
    "name",
    "agent_id",
    "phone_number_id",
    "scheduled_at",
    "ringing_timeout_ms",
    "max_concurrency",
    "retry_policy",
    "calling_window",
    "voicemail",
    "circuit_breaker",
)


async def _read_form(request: Request, limit: int) -> tuple[dict[str, str], bytes]:
    parser = MultiPartParser(
        request.headers,
        bodies.limited_stream(request, limit + bodies.ENVELOPE),
        max_files=1,
        max_fields=20,
    )
    # The file is read into memory whole right after anyway: spooled to disk past 1 MB (the
    # default), each 64 kB chunk would cost a write and a trip to a worker thread, and the
    # read another.
    parser.spool_max_size = limit + bodies.ENVELOPE
    try:
        form = await parser.parse()
    except MultiPartException as error:
        raise ValidationFailed.at(
            ["body"], f"is not a valid multipart form: {error.message}"
        ) from None
    try:
        upload = form.get("csv_file")
        if upload is None:
            raise ValidationFailed.at(
                ["csv_file"], "is required: attach the recipients as a CSV file"
            )
        if isinstance(upload, UploadFile):
            data = await upload.read()
        else:
            data = upload.encode()
        fields = {name: value for name in FORM_FIELDS if isinstance(value := form.get(name), str)}
    finally:
        await form.close()
    if len(data) > limit:
        raise PayloadTooLarge(
            f"csv_file is larger than the limit of {limit:,} bytes",
            [{"loc": ["csv_file"], "message": f"must be at most {limit:,} bytes"}],
        )
    return fields, data


@router.post(
    "",
    status_code=202,
    summary="Create a batch call (JSON or CSV upload)",
    response_model=BatchPublic,
    responses=ERRORS,
    openapi_extra=CREATE_BATCH_OPENAPI,
)
async def create_batch_call(
    request: Request,
    caller: CallerDep,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            description="Same key and body within 24 h answer the first batch again.",
            max_length=255,
        ),
    ] = None,
) -> Response:
    workspace_id = caller.workspace_id
    settings = get_settings()
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if bodies.is_json(content_type):
        body = await bodies.read_limited(request, settings.max_upload_bytes)
        payload = bodies.parse_json_object(body)
        rows = await run_in_threadpool(
            recipients.from_json,
            payload.get("recipients"),
            max_recipients=settings.max_recipients_per_batch,
        )
        fields, from_form, request_hash = payload, False, idempotency.fingerprint(payload)
    elif content_type == "multipart/form-data":
        fields, data = await _read_form(request, settings.max_upload_bytes)
        rows = await run_in_threadpool(
            recipients.from_csv,
            data,
            max_recipients=settings.max_recipients_per_batch,
            max_bytes=settings.max_upload_bytes,
            check_while_reading_from=settings.parallel_validation_threshold,
        )
        from_form, request_hash = True, idempotency.fingerprint(fields, data)
    else:
        raise UnsupportedMediaType(
            "send the batch as application/json, or as multipart/form-data with a csv_file",
            [{"loc": ["Content-Type"], "message": f"{content_type or 'missing'} is not supported"}],
        )
    batch, _created = await run_in_threadpool(
        batches.create_batch,
        workspace_id=workspace_id,
        fields=fields,
        rows=rows,
        from_form=from_form,
        idempotency_key=idempotency_key,
        request_hash=request_hash,
    )
    return FastJSONResponse(
        batch, status_code=202, headers={"Location": f"/v1/batch-calls/{batch['id']}"}
    )


@router.get(
    "", summary="List batch calls, newest first", response_model=BatchList, responses=ERRORS
)
async def list_batch_calls(
    caller: CallerDep,
    limit: Annotated[int, limit_query(batches.LIST_LIMIT_MAX)] = batches.LIST_LIMIT_DEFAULT,
    cursor: Annotated[str | None, cursor_query()] = None,
    status: Annotated[
        str | None, enum_query("Only batches in this status", batches.BATCH_STATUSES)
    ] = None,
    agent_id: Annotated[str | None, Query(description="Only batches of this agent")] = None,
) -> Response:
    query = {"limit": limit, "cursor": cursor, "status": status, "agent_id": agent_id}
    page = await caller.read(
        partial(batches.list_batches, **query),
        from_memory=partial(batches.list_batches_from_memory, **query),
    )
    return FastJSONResponse(page)


@router.get(
    "/sample.csv",
    summary="A sample CSV that uploads cleanly",
    response_class=Response,
    responses={
        200: {"content": {"text/csv": {"example": "phone,first_name\r\n+14155552671,Ada\r\n"}}},
        **ERRORS,
    },
)
async def sample_csv(
    caller: CallerDep,
    agent_id: Annotated[
        str | None, Query(description="Columns from this agent's placeholders")
    ] = None,
) -> Response:
    def columns_of_agent(session: Session, *, workspace_id: str) -> list[str] | None:
        if agent_id is None:
            return None
        agent = agents.get_agent(session, workspace_id=workspace_id, agent_id=agent_id)
        return agents.agent_placeholders(agent)

    columns = await caller.read(columns_of_agent)
    filename = "sample.csv" if agent_id is None else f"{agent_id}-sample.csv"
    return Response(
        agents.sample_csv(columns),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@router.get(
    "/{batch_id}",
    summary="A batch call with its recipients",
    response_model=BatchDetail,
    responses=ERRORS,
)
async def get_batch_call(
    batch_id: str,
    caller: CallerDep,
    recipient_status: Annotated[
        str | None, enum_query("Only recipients in this status", RECIPIENT_STATUSES)
    ] = None,
) -> Response:
    query = {"batch_id": batch_id, "recipient_status": recipient_status}
    body = await caller.read(
        partial(batches.batch_detail_json, **query),
        from_memory=partial(batches.batch_detail_json_from_memory, **query),
    )
    return Response(body, media_type="application/json")


@router.post(
    "/{batch_id}/cancel",
    summary="Cancel a batch that has not started dialing",
    response_model=BatchPublic,
    responses=ERRORS,
)
async def cancel_batch_call(batch_id: str, caller: CallerDep) -> Response:
    return FastJSONResponse(await caller.write(partial(batches.cancel_batch, batch_id=batch_id)))


STOP_BODY = {
    "required": False,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "properties": {
                    "hang_up": {
                        "type": "boolean",
                        "default": False,
                        "description": "Hang up the calls in progress instead of letting them finish",
                    }
                },
                "additionalProperties": False,
            },
            "example": {"hang_up": True},
        }
    },
}


@router.post(
    "/{batch_id}/stop",
    summary="Stop a batch: no new calls; calls in progress finish (or are hung up)",
    description=(
        "Pending recipients end `cancelled` at once and are never dialed; calls in progress "
        'finish, or are hung up with `{"hang_up": true}`; the batch ends `cancelled` when '
        "its last live call has ended (`stopping` is true meanwhile). A scheduled or pending "
        "batch is simply cancelled. `409 batch_not_stoppable` once completed, cancelled or failed."
    ),
    response_model=BatchPublic,
    responses=ERRORS,
    openapi_extra={"requestBody": STOP_BODY},
)
async def stop_batch_call(batch_id: str, request: Request, caller: CallerDep) -> Response:
    options = await bodies.read_json_object(request, bodies.SMALL_BODY, optional=True)
    hang_up = options.pop("hang_up", False)
    _no_other_fields(options)
    if not isinstance(hang_up, bool):
        raise ValidationFailed.at(["hang_up"], "must be true or false")
    return FastJSONResponse(
        await caller.write(partial(batches.stop_batch, batch_id=batch_id, hang_up=hang_up))
    )


def _no_other_fields(rest: dict[str, Any]) -> None:
    if rest:
        raise ValidationFailed.at([next(iter(rest))], "is not a field of this request")


@router.post(
    "/{batch_id}/pause",
    summary="Pause a running batch: no new calls; calls already live finish",
    response_model=BatchPublic,
    responses=ERRORS,
)
async def pause_batch_call(batch_id: str, caller: CallerDep) -> Response:
    return FastJSONResponse(await caller.write(partial(batches.pause_batch, batch_id=batch_id)))


@router.post(
    "/{batch_id}/resume",
    summary="Resume a paused batch",
    response_model=BatchPublic,
    responses=ERRORS,
)
async def resume_batch_call(batch_id: str, caller: CallerDep) -> Response:
    return FastJSONResponse(await caller.write(partial(batches.resume_batch, batch_id=batch_id)))


RETRY_BODY = {
    "required": False,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "properties": {
                    "failure_reasons": {
                        "type": "array",
                        "items": {"type": "string"},
                        "description": (
                            "Only recipients that failed for these reasons (default: every "
                            "reason a retry redials: no_answer, busy, voicemail, declined, "
                            "provider_error, call_failed, hung_up, outcome_unknown)"
                        ),
                    }
                },
                "additionalProperties": False,
            },
            "example": {"failure_reasons": ["no_answer", "busy"]},
        }
    },
}


@router.post(
    "/{batch_id}/retry",
    summary="Dial a completed batch's failed and unanswered recipients again",
    description=(
        "Recipients that failed for a reason worth another try (no answer, busy, voicemail, a "
        "telephony error, an unknown outcome) go back to `pending` as new attempts of the same "
        "batch, which is `running` again; `failure_reasons` narrows them to some of those. "
        "Numbers on the do-not-call list, invalid numbers and `batch_failed` recipients are "
        "not redialled. `409 conflict` unless the batch is `completed`."
    ),
    response_model=BatchPublic,
    responses=ERRORS,
    openapi_extra={"requestBody": RETRY_BODY},
)
async def retry_batch_call(batch_id: str, request: Request, caller: CallerDep) -> Response:
    options = await bodies.read_json_object(request, bodies.SMALL_BODY, optional=True)
    reasons = options.pop("failure_reasons", None)
    _no_other_fields(options)
    if reasons is not None and (
        not isinstance(reasons, list) or not all(isinstance(r, str) for r in reasons)
    ):
        raise ValidationFailed.at(["failure_reasons"], "must be a list of failure reasons")
    return FastJSONResponse(
        await caller.write(partial(batches.retry_batch, batch_id=batch_id, failure_reasons=reasons))
    )


@router.get(
    "/{batch_id}/export",
    summary="The batch's results as CSV (the console's Export results)",
    description=(
        "The input columns, then status, failure reason, outcome, attempts, times, and one "
        "column per evaluation (`evaluation_<name>`, `evaluation_<name>_rationale`) and "
        "collected-data field (`collected_<name>`), written as the console shows them. Cells "
        "a spreadsheet would run as a formula start with `'`; the file uploads again as a new "
        "batch unchanged (the prefix is removed on import)."
    ),
    response_class=Response,
    responses={
        200: {
            "content": {
                "text/csv": {
                    "example": "phone,first_name,status,failure_reason,outcome,attempts\r\n"
                    "'+14155552671,Ada,completed,,Connected,1\r\n"
                }
            }
        },
        **ERRORS,
    },
)
async def export_batch_call(batch_id: str, caller: CallerDep) -> Response:
    text = await caller.read(partial(batches.export_results_csv, batch_id=batch_id))
    return Response(
        text,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{batch_id}-results.csv"'},
    )
