"""The per-request lookups of db.fetch_all (the API key check, the batch's version) and the
detail rendered once per change."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import orjson
import pytest
from sqlalchemy.engine import make_url
from sqlmodel import Session

from batch_dashboard.db import session_scope
from batch_dashboard.models import Batch
from batch_dashboard.services import auth, batches
from batch_dashboard.services.errors import NotFound, Unauthorized
from tests.conftest import _pg_admin, make_tenant
from tests.worker.helpers import make_batch


def test_the_key_check_and_the_version_lookup_answer_on_both_databases(database: str) -> None:
    tenant = make_tenant()
    other = make_tenant("Other")
    assert auth.authenticate_api_key(tenant.api_key) == tenant.workspace_id
    with pytest.raises(Unauthorized):
        auth.authenticate_api_key("bc_" + "x" * 43)
    batch = make_batch(tenant, 3)
    assert (
        batches.batch_detail_json_from_memory(
            workspace_id=tenant.workspace_id, batch_id=batch["id"]
        )
        is None
    )  # found, not rendered yet
    with pytest.raises(NotFound):  # another workspace's batch does not exist for this one
        batches.batch_detail_json_from_memory(workspace_id=other.workspace_id, batch_id=batch["id"])


@pytest.mark.postgres
def test_a_lookup_survives_postgresql_closing_its_pooled_connection(postgres_url: str) -> None:
    tenant = make_tenant()
    assert auth.authenticate_api_key(tenant.api_key) == tenant.workspace_id  # pools a connection
    with _pg_admin() as admin:
        ended = admin.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = %s",
            (make_url(postgres_url).database,),
        ).fetchone()
    assert ended is not None and ended[0] >= 1
    # The pooled connection is dead: the lookup notices, replaces it and answers.
    assert auth.authenticate_api_key(tenant.api_key) == tenant.workspace_id


def test_pollers_that_miss_together_wait_for_one_render(
    database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    tenant = make_tenant()
    batch = make_batch(tenant, 50)
    renders: list[str] = []
    misses: list[bytes | None] = []
    everyone_missed = threading.Event()
    render, look = batches.reads._detail, batches.batch_detail_json_from_memory

    def counted_look(**kwargs: Any) -> bytes | None:
        misses.append(found := look(**kwargs))
        if len(misses) >= 8:  # the others have looked and missed: they queue behind the render
            everyone_missed.set()
        return found

    def counted(session: Session, found: Batch, recipient_status: str | None) -> dict[str, Any]:
        renders.append(found.id)
        assert everyone_missed.wait(10)  # render only once the others are queued behind it
        return render(session, found, recipient_status)

    monkeypatch.setattr(batches.reads, "batch_detail_json_from_memory", counted_look)
    monkeypatch.setattr(batches.reads, "_detail", counted)

    def poll() -> bytes:  # as Caller.read serves the route: from memory, else the render
        query = {"workspace_id": tenant.workspace_id, "batch_id": batch["id"]}
        if (body := batches.reads.batch_detail_json_from_memory(**query)) is not None:
            return body
        with session_scope() as session:
            return batches.reads.batch_detail_json(session, **query)

    with ThreadPoolExecutor(8) as pool:
        bodies = list(pool.map(lambda _: poll(), range(8)))
    assert renders == [batch["id"]] and len(set(bodies)) == 1
    assert orjson.loads(bodies[0])["batch_call"]["total_recipients"] == 50
