"""Secrets at rest and in logs: a database dump holds nothing usable, and a worker's INFO log
holds no secret and no full phone number."""

from __future__ import annotations

import base64
import json
import os
import re
from pathlib import Path

import pytest
from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import MetaData, select
from sqlmodel import select as sql_select

from batch_dashboard import sealing
from batch_dashboard.db import get_engine, session_scope
from batch_dashboard.models import Agent, Connection
from batch_dashboard.services import agents, auth, connections, wall
from batch_dashboard.settings import reload_settings
from tests.conftest import Tenant
from tests.worker.helpers import batch_row, make_batch, numbers
from tests.worker.processes import start_worker, stop, wait_for
from tests.worker.receiver import Answer, Receiver

TWILIO_SID = "AC" + "7e57" * 8
TWILIO_TOKEN = "5ec7e7" * 5 + "ab"
BOT_SECRET = "whsec_" + base64.b64encode(b"the bot signs its results").decode()


def plant_secrets(tenant: Tenant) -> dict[str, str]:
    """Every kind of secret the product keeps, created through the services; their plaintext."""
    with session_scope(write=True) as session:
        first = agents.rotate_webhook_secret(
            session, workspace_id=tenant.workspace_id, agent_id=tenant.agent_id
        )
        second = agents.rotate_webhook_secret(
            session, workspace_id=tenant.workspace_id, agent_id=tenant.agent_id
        )
        auth.create_user(
            session,
            workspace_id=tenant.workspace_id,
            email="ops@example.com",
            password="correct horse battery staple",
        )
        session_token = auth.sign_in(
            session, email="ops@example.com", password="correct horse battery staple"
        )
        wall_token = wall.create_wall_token(session, workspace_id=tenant.workspace_id).token
        connections.create_connection(
            session,
            workspace_id=tenant.workspace_id,
            fields={
                "provider": "twilio",
                "name": "Twilio",
                "credentials": {
                    "account_sid": TWILIO_SID,
                    "auth_token": TWILIO_TOKEN,
                    "bot_secret": BOT_SECRET,
                },
            },
        )
    return {
        "twilio account sid": TWILIO_SID,
        "twilio auth token": TWILIO_TOKEN,
        "bot secret": BOT_SECRET,
        "api key": tenant.api_key,
        "previous webhook secret": first,
        "webhook secret": second,
        "password": "correct horse battery staple",
        "console session": session_token,
        "wall token": wall_token,
    }


def dump(url: str) -> str:
    """Every cell of every table, as text (what a backup or a leaked dump would show)."""
    metadata = MetaData()
    engine = get_engine(url)
    metadata.reflect(engine)
    lines: list[str] = []
    with engine.connect() as connection:
        for table in metadata.sorted_tables:
            for row in connection.execute(select(table)):
                lines.append(f"{table.name}: {' | '.join(map(str, row))}")
    return "\n".join(lines)


def test_a_database_dump_holds_no_usable_secret(tenant, database):
    planted = plant_secrets(tenant)
    text = dump(database)
    assert "whsec_" not in text
    for what, secret in planted.items():
        assert secret not in text, f"the {what} is stored in plaintext"
        if secret.startswith("whsec_"):
            # The signing key proper is the base64 part; it must not appear in any form.
            key = secret.removeprefix("whsec_")
            assert key not in text and base64.b64decode(key).hex() not in text
    if database.startswith("sqlite"):
        # The file itself, write-ahead log included, not just what SQL returns.
        path = Path(database.removeprefix("sqlite:///"))
        raw = b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*") if p.is_file())
        for what, secret in planted.items():
            assert secret.encode() not in raw, f"the {what} is in the database file"

    # The sealed secret opens with the configured key only.
    with session_scope() as session:
        stored = session.get(Agent, tenant.agent_id)
        assert stored is not None and stored.webhook_secret is not None
        assert stored.webhook_secret.startswith(sealing.PREFIX)
        assert sealing.unseal(stored.webhook_secret) == planted["webhook secret"]
    stranger = Fernet(Fernet.generate_key())
    with pytest.raises(InvalidToken):
        stranger.decrypt(stored.webhook_secret.removeprefix(sealing.PREFIX).encode())


def test_sqlite_keeps_its_generated_key_beside_the_database(sqlite_url):
    path = sealing.key_file_for(sqlite_url)
    assert path is not None and path.parent == Path(sqlite_url.removeprefix("sqlite:///")).parent
    sealed = sealing.seal("whsec_example")
    assert path.exists() and path.stat().st_mode & 0o077 == 0  # the owner's alone
    assert sealing.unseal(sealed) == "whsec_example"


def test_postgresql_without_a_key_refuses_to_start(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/none")
    monkeypatch.delenv("BATCH_SECRET_KEY", raising=False)
    reload_settings()
    try:
        with pytest.raises(sealing.SecretKeyMissing, match="BATCH_SECRET_KEY"):
            sealing.seal("whsec_example")
    finally:
        monkeypatch.undo()
        reload_settings()


def test_a_new_key_first_reseals_and_the_old_one_still_opens(tenant, database, monkeypatch):
    planted = plant_secrets(tenant)
    old = sealing.cipher()
    # PostgreSQL runs with BATCH_SECRET_KEY; SQLite with its generated key file. Either way
    # the operator puts the new key first and keeps the current one after it.
    key_file = sealing.key_file_for(database)
    current = os.environ.get("BATCH_SECRET_KEY") or (key_file and key_file.read_text().strip())
    new_key = Fernet.generate_key().decode()
    monkeypatch.setenv("BATCH_SECRET_KEY", f"{new_key},{current}")
    reload_settings()
    with session_scope(write=True) as session:
        assert agents.reseal_webhook_secrets(session.connection()) == 2  # the tenant's agents
        assert connections.reseal_credentials(session.connection()) == 1
    with session_scope() as session:
        [twilio] = session.exec(sql_select(Connection)).all()
        stored_credentials = twilio.credentials.removeprefix(sealing.PREFIX).encode()
        opened = Fernet(new_key.encode()).decrypt(stored_credentials).decode()
        assert planted["twilio auth token"] in opened
        stored = session.get(Agent, tenant.agent_id)
        assert stored is not None and stored.webhook_secret is not None
        assert sealing.unseal(stored.webhook_secret) == planted["webhook secret"]
        token = stored.webhook_secret.removeprefix(sealing.PREFIX).encode()
        assert Fernet(new_key.encode()).decrypt(token).decode() == planted["webhook secret"]
        with pytest.raises(InvalidToken):
            old.decrypt(token)  # the old key alone no longer opens it


# --- logs ------------------------------------------------------------------------------------

PHONE_DIGITS = re.compile(r"\d[\d\s().-]{8,}\d")


@pytest.mark.slow
@pytest.mark.xdist_group("processes")
@pytest.mark.parametrize("log_format", ["text", "json"])
def test_an_info_log_names_ids_never_numbers_or_secrets(
    tenant, database, tmp_path: Path, log_format: str
):
    planted = plant_secrets(tenant)
    with Receiver() as receiver:
        receiver.script["/hook?token=customer-secret-token"] = [Answer(status=500)] * 3
        os.environ["BATCH_WEBHOOK_ALLOW_PRIVATE_TARGETS"] = "true"
        try:
            reload_settings()
            with session_scope(write=True) as session:
                agents.set_webhook_url(
                    session,
                    workspace_id=tenant.workspace_id,
                    agent_id=tenant.agent_id,
                    webhook_url=f"{receiver.url}/hook?token=customer-secret-token",
                )
        finally:
            del os.environ["BATCH_WEBHOOK_ALLOW_PRIVATE_TARGETS"]
            reload_settings()
        batch = make_batch(tenant, 6)
        log = tmp_path / "worker.log"
        worker = start_worker(
            database,
            log,
            BATCH_SIM_CALL_SECONDS="0",
            BATCH_CALLS_PER_SECOND="0",
            BATCH_SIM_OUTCOMES="completed=0.5,failed=0.5",
            BATCH_WEBHOOK_ALLOW_PRIVATE_TARGETS="true",
            BATCH_WEBHOOK_RETRY_SCHEDULE="0",
            BATCH_LOG_FORMAT=log_format,
        )
        try:
            wait_for(
                lambda: (
                    batch_row(batch["id"]).status == "completed" and len(receiver.received()) >= 3
                ),
                timeout=60,
                what="the batch and some failed deliveries",
                log=log,
            )
        finally:
            assert stop(worker) == 0
    text = log.read_text()
    assert "webhook" in text and "started" in text  # the log did say things
    if log_format == "json":
        lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
        assert lines and all({"time", "level", "logger", "message"} <= set(line) for line in lines)
    for what, secret in planted.items():
        assert secret not in text, f"the {what} is in the log"
    assert "customer-secret-token" not in text
    for number in numbers(6):
        digits = number.removeprefix("+")
        found = [m for m in PHONE_DIGITS.findall(text) if re.sub(r"\D", "", m) == digits]
        assert digits not in text and not found, f"{number} is in the log"
