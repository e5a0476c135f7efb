"""/v1/webhook-deliveries: every event sent (or being sent) to the workspace's agents."""

from __future__ import annotations

from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel

from batch_dashboard.api.deps import CallerDep
from batch_dashboard.api.openapi import ERRORS, cursor_query, enum_query, limit_query
from batch_dashboard.services import webhooks

router = APIRouter(prefix="/v1", tags=["Webhooks"], responses=ERRORS)


class DeliveryAttempt(BaseModel):
    at: str
    status_code: int | None
    error: str | None


class WebhookDeliveryPublic(BaseModel):
    id: str
    agent_id: str
    batch_id: str | None
    recipient_id: str | None
    event_type: str
    url: str
    status: str
    attempt_count: int
    attempts: list[DeliveryAttempt]
    next_attempt_at: str | None
    created_at: str
    delivered_at: str | None


class WebhookDeliveryList(BaseModel):
    webhook_deliveries: list[WebhookDeliveryPublic]
    next_cursor: str | None


@router.get(
    "/webhook-deliveries",
    summary="Webhook deliveries with their attempts, newest first",
    description=(
        "One delivery per event (`conversation.completed` or `call.failed`) and agent URL. "
        "`status` is `pending` (to be tried at `next_attempt_at`), `delivered` (a 2xx answer) "
        "or `failed` (the retry schedule is spent, or the endpoint answered 410 Gone, which "
        "also disables the agent's webhook). The `id` is the `webhook-id` header the endpoint "
        "received, the same on every attempt."
    ),
    response_model=WebhookDeliveryList,
)
async def list_webhook_deliveries(
    caller: CallerDep,
    agent_id: Annotated[str | None, Query(description="Only this agent's deliveries")] = None,
    status: Annotated[
        str | None, enum_query("Only deliveries in this status", webhooks.DELIVERY_STATUSES)
    ] = None,
    batch_id: Annotated[str | None, Query(description="Only events of this batch")] = None,
    limit: Annotated[int, limit_query(webhooks.LIST_LIMIT_MAX)] = 100,
    cursor: Annotated[str | None, cursor_query()] = None,
) -> dict[str, Any]:
    return await caller.read(
        partial(
            webhooks.list_deliveries,
            agent_id=agent_id,
            status=status,
            batch_id=batch_id,
            limit=limit,
            before=cursor,
        )
    )
