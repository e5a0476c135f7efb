"""The per-request lookups of db.fetch_all: the API key check and the batch's version."""

from __future__ import annotations

import pytest
from sqlalchemy.engine import make_url

from batch_dashboard.services import auth, batches
from batch_dashboard.services.errors import NotFound, Unauthorized
from tests.conftest import _pg_admin, make_tenant


def test_the_key_check_and_the_version_lookup_answer_on_both_databases(database: str) -> None:
    tenant = make_tenant()
    other = make_tenant("Other")
    assert auth.authenticate_api_key(tenant.api_key) == tenant.workspace_id
    with pytest.raises(Unauthorized):
        auth.authenticate_api_key("bc_" + "x" * 43)
    with pytest.raises(NotFound):  # another workspace's batch does not exist for this one
        batches.batch_detail_json_from_memory(workspace_id=other.workspace_id, batch_id="batch_0")


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
