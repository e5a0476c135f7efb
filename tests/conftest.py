"""Shared fixtures: a real database per test (SQLite file, and PostgreSQL for the same tests),
a fresh API app, and a workspace with an agent and caller numbers."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from cryptography.fernet import Fernet
from fastapi.testclient import TestClient

from batch_dashboard import db
from batch_dashboard.settings import reload_settings

PG_SERVER = os.environ.get("TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432")
PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _pg_admin() -> psycopg.Connection:
    return psycopg.connect(
        PG_SERVER.replace("postgresql+psycopg", "postgresql") + "/postgres", autocommit=True
    )


def _migrate(url: str) -> None:
    from alembic import command
    from alembic.config import Config

    config = Config(str(PROJECT_ROOT / "alembic.ini"))
    config.attributes["configure_logging"] = False
    config.attributes["database_url"] = url
    command.upgrade(config, "head")
    db.dispose_engines()


def _worker_tag(request: pytest.FixtureRequest) -> str:
    worker = getattr(request.config, "workerinput", {}).get("workerid", "main")
    return f"{worker}_{os.getpid()}"


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    _migrate(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def postgres_template(request: pytest.FixtureRequest) -> Iterator[str]:
    name = f"bc_template_{_worker_tag(request)}"
    with _pg_admin() as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.execute(f'CREATE DATABASE "{name}"')
    _migrate(f"{PG_SERVER}/{name}")
    yield name
    with _pg_admin() as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _use_database(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    monkeypatch.setenv("DATABASE_URL", url)
    db.dispose_engines()
    reload_settings()


@pytest.fixture
def sqlite_url(
    sqlite_template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    path = tmp_path / "test.db"
    shutil.copy(sqlite_template, path)
    url = f"sqlite:///{path}"
    _use_database(monkeypatch, url)
    monkeypatch.chdir(tmp_path)  # the demo key file and other data/ files land here
    yield url
    db.dispose_engines()
    reload_settings()


@pytest.fixture
def postgres_url(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[str]:
    template = request.getfixturevalue("postgres_template")
    name = f"bc_test_{uuid.uuid4().hex[:12]}"
    with _pg_admin() as admin:
        admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    url = f"{PG_SERVER}/{name}"
    # PostgreSQL has no key file beside the database: every process gets the key this way.
    monkeypatch.setenv("BATCH_SECRET_KEY", Fernet.generate_key().decode())
    _use_database(monkeypatch, url)
    monkeypatch.chdir(tmp_path)
    yield url
    db.dispose_engines()
    reload_settings()
    with _pg_admin() as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database(request: pytest.FixtureRequest) -> str:
    """Each test that takes this runs twice: on a SQLite file and on PostgreSQL."""
    return request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "postgres_url")


@dataclass
class Tenant:
    workspace_id: str
    api_key: str
    agent_id: str  # placeholders first_name, appointment_time; bound to `number_id`
    number_id: str
    inbound_only_number_id: str
    unbound_agent_id: str  # no caller number

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}


def make_tenant(name: str = "Acme") -> Tenant:
    from batch_dashboard.db import session_scope
    from batch_dashboard.services import agents, auth

    with session_scope(write=True) as session:
        workspace = auth.create_workspace(session, name=name)
        key = auth.create_api_key(session, workspace_id=workspace.id)
        number = agents.create_phone_number(
            session, workspace_id=workspace.id, number="+14155550100", label="Main"
        )
        inbound = agents.create_phone_number(
            session,
            workspace_id=workspace.id,
            number="+14155550101",
            label="Inbound",
            outbound_enabled=False,
        )
        agent, _secret = agents.create_agent(
            session,
            workspace_id=workspace.id,
            name="Reminders",
            prompt="Remind {{first_name}} of the appointment at {{appointment_time}}.",
            first_message="Hi {{ first_name }}!",
            phone_number_id=number.id,
        )
        unbound, _secret = agents.create_agent(
            session, workspace_id=workspace.id, name="Unbound", prompt="Say hello."
        )
        return Tenant(
            workspace_id=workspace.id,
            api_key=key.api_key,
            agent_id=agent.id,
            number_id=number.id,
            inbound_only_number_id=inbound.id,
            unbound_agent_id=unbound.id,
        )


@pytest.fixture
def tenant(database: str) -> Tenant:
    return make_tenant()


@pytest.fixture
def other_tenant(database: str) -> Tenant:
    return make_tenant("Other")


@pytest.fixture
def client(database: str) -> Iterator[TestClient]:
    from batch_dashboard.api.app import create_api

    with TestClient(create_api(), raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """Let fixtures see whether their test failed (browser tests keep a screenshot then)."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report
