"""`python -m batch_dashboard …`: one JSON object on stdout, errors on stderr with a non-zero exit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def run_cli(
    *args: str, url: str, cwd: Path, check: bool = True
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": url, "PYTHONPATH": str(PROJECT_ROOT)}
    result = subprocess.run(
        [sys.executable, "-m", "batch_dashboard", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=60,
    )
    if check:
        assert result.returncode == 0, result.stderr
    return result


@pytest.fixture
def fresh_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'cli.db'}"


def test_migrate_then_build_a_workspace(fresh_url: str, tmp_path: Path) -> None:
    assert json.loads(run_cli("migrate", url=fresh_url, cwd=tmp_path).stdout)["migrated"] is True
    # Migrating twice is harmless.
    run_cli("migrate", url=fresh_url, cwd=tmp_path)

    workspace = json.loads(run_cli("create-workspace", "Acme", url=fresh_url, cwd=tmp_path).stdout)
    assert set(workspace) == {"workspace_id", "api_key"}
    assert workspace["api_key"].startswith("bc_") and len(workspace["api_key"]) >= 35
    ws = workspace["workspace_id"]

    key = json.loads(
        run_cli("create-api-key", "--workspace", ws, url=fresh_url, cwd=tmp_path).stdout
    )
    assert key["api_key"].startswith(key["prefix"]) and key["api_key"] != workspace["api_key"]

    number = json.loads(
        run_cli(
            "create-phone-number",
            "--workspace",
            ws,
            "--number",
            "+1 415 555 0100",
            "--label",
            "Main",
            url=fresh_url,
            cwd=tmp_path,
        ).stdout
    )
    assert number["phone_number"] == "+14155550100"
    assert number["outbound_enabled"] is True and number["provider"] == "simulator"
    inbound = json.loads(
        run_cli(
            "create-phone-number",
            "--workspace",
            ws,
            "--number",
            "+14155550101",
            "--no-outbound",
            url=fresh_url,
            cwd=tmp_path,
        ).stdout
    )
    assert inbound["outbound_enabled"] is False

    agent = json.loads(
        run_cli(
            "create-agent",
            "--workspace",
            ws,
            "--name",
            "Reminders",
            "--prompt",
            "Remind {{first_name}}",
            "--first-message",
            "Hi {{first_name}} at {{time}}",
            "--phone-number-id",
            number["id"],
            "--webhook-url",
            "https://93.184.216.34/hook",
            url=fresh_url,
            cwd=tmp_path,
        ).stdout
    )
    assert agent["placeholders"] == ["first_name", "time"]
    assert agent["webhook_secret"].startswith("whsec_")
    assert agent["phone_number_id"] == number["id"]

    user = json.loads(
        run_cli(
            "create-user",
            "--workspace",
            ws,
            "--email",
            "Ops@Example.com",
            "--password",
            "correct horse",
            url=fresh_url,
            cwd=tmp_path,
        ).stdout
    )
    assert user["email"] == "ops@example.com"


def test_errors_go_to_stderr_with_a_non_zero_exit(fresh_url: str, tmp_path: Path) -> None:
    run_cli("migrate", url=fresh_url, cwd=tmp_path)
    missing = run_cli(
        "create-api-key", "--workspace", "ws_nope", url=fresh_url, cwd=tmp_path, check=False
    )
    assert missing.returncode != 0 and missing.stdout == ""
    assert "ws_nope" in missing.stderr
    ws = json.loads(run_cli("create-workspace", "A", url=fresh_url, cwd=tmp_path).stdout)[
        "workspace_id"
    ]
    bad = run_cli(
        "create-phone-number",
        "--workspace",
        ws,
        "--number",
        "4155550100",
        url=fresh_url,
        cwd=tmp_path,
        check=False,
    )
    assert bad.returncode != 0 and "country code" in bad.stderr
    short = run_cli(
        "create-user",
        "--workspace",
        ws,
        "--email",
        "a@b.c",
        "--password",
        "x",
        url=fresh_url,
        cwd=tmp_path,
        check=False,
    )
    assert short.returncode != 0 and "password" in short.stderr


def test_demo_is_idempotent_and_keeps_its_key(fresh_url: str, tmp_path: Path) -> None:
    run_cli("migrate", url=fresh_url, cwd=tmp_path)
    first = json.loads(run_cli("demo", url=fresh_url, cwd=tmp_path).stdout)
    second = json.loads(run_cli("demo", url=fresh_url, cwd=tmp_path).stdout)
    assert first == second
    assert first["api_key"].startswith("bc_")
    assert len(first["phone_numbers"]) == 2 and len(first["agents"]) == 2
    placeholders = sorted(a["placeholders"] for a in first["agents"])
    assert ["first_name", "appointment_time"] in placeholders
    banner = run_cli("demo", "--banner", url=fresh_url, cwd=tmp_path).stdout
    assert f"API key: {first['api_key']}" in banner.splitlines()
    assert first["email"] in banner


def test_keys_and_passwords_are_stored_hashed(fresh_url: str, tmp_path: Path) -> None:
    import sqlite3

    run_cli("migrate", url=fresh_url, cwd=tmp_path)
    demo = json.loads(run_cli("demo", url=fresh_url, cwd=tmp_path).stdout)
    dump = "\n".join(sqlite3.connect(tmp_path / "cli.db").iterdump())
    assert demo["api_key"] not in dump
    assert demo["password"] not in dump


def test_rotate_webhook_secret(fresh_url: str, tmp_path: Path) -> None:
    run_cli("migrate", url=fresh_url, cwd=tmp_path)
    demo = json.loads(run_cli("demo", url=fresh_url, cwd=tmp_path).stdout)
    agent_id = demo["agents"][0]["id"]
    rotated = json.loads(
        run_cli("rotate-webhook-secret", "--agent", agent_id, url=fresh_url, cwd=tmp_path).stdout
    )
    assert rotated["agent_id"] == agent_id and rotated["webhook_secret"].startswith("whsec_")
    again = json.loads(
        run_cli("rotate-webhook-secret", "--agent", agent_id, url=fresh_url, cwd=tmp_path).stdout
    )
    assert again["webhook_secret"] != rotated["webhook_secret"]
    missing = run_cli(
        "rotate-webhook-secret", "--agent", "agent_nope", url=fresh_url, cwd=tmp_path, check=False
    )
    assert missing.returncode != 0 and "agent_nope" in missing.stderr


def test_create_wall_token(fresh_url: str, tmp_path: Path) -> None:
    run_cli("migrate", url=fresh_url, cwd=tmp_path)
    ws = json.loads(run_cli("create-workspace", "A", url=fresh_url, cwd=tmp_path).stdout)[
        "workspace_id"
    ]
    token = json.loads(
        run_cli(
            "create-wall-token", "--workspace", ws, "--label", "TV", url=fresh_url, cwd=tmp_path
        ).stdout
    )
    assert (
        token["token"].startswith("wall_") and token["url_path"] == f"/wall?token={token['token']}"
    )
    assert token["token"].startswith(token["prefix"])
    missing = run_cli(
        "create-wall-token", "--workspace", "ws_nope", url=fresh_url, cwd=tmp_path, check=False
    )
    assert missing.returncode != 0 and "ws_nope" in missing.stderr


def test_create_connection_links_numbers_and_agents(fresh_url: str, tmp_path: Path) -> None:
    run_cli("migrate", url=fresh_url, cwd=tmp_path)
    ws = json.loads(run_cli("create-workspace", "Acme", url=fresh_url, cwd=tmp_path).stdout)[
        "workspace_id"
    ]
    token = "f00dfacecafebeef0123456789abcdef"
    made = json.loads(
        run_cli(
            *("create-connection", "--workspace", ws, "--provider", "twilio", "--name", "Prod"),
            *("--calls-per-second", "3", "--credential", "account_sid=AC" + "1" * 32),
            *("--credential", f"auth_token={token}"),
            url=fresh_url,
            cwd=tmp_path,
        ).stdout
    )
    assert made["provider"] == "twilio" and made["calls_per_second"] == 3.0
    assert made["events_url"].endswith(f"/v1/provider-events/twilio/{made['id']}")
    assert token not in json.dumps(made) and made["credentials"]["auth_token"] == "…cdef"
    number = json.loads(
        run_cli(
            *("create-phone-number", "--workspace", ws, "--number", "+14155550100"),
            *("--connection-id", made["id"], "--external-id", "PN" + "2" * 32),
            url=fresh_url,
            cwd=tmp_path,
        ).stdout
    )
    assert (number["provider"], number["connection_id"]) == ("twilio", made["id"])
    agent = json.loads(
        run_cli(
            *("create-agent", "--workspace", ws, "--name", "Bot", "--prompt", "Hi"),
            *("--phone-number-id", number["id"], "--stream-url", "wss://bot.example.com/s"),
            url=fresh_url,
            cwd=tmp_path,
        ).stdout
    )
    assert agent["connection_id"] == made["id"] and agent["stream_url"] == "wss://bot.example.com/s"
    refused = run_cli(
        *("create-connection", "--workspace", ws, "--provider", "twilio", "--name", "Bad"),
        "--credential",
        "auth_token",
        url=fresh_url,
        cwd=tmp_path,
        check=False,
    )
    assert refused.returncode == 1 and "KEY=VALUE" in refused.stderr


def _closed_port() -> int:
    """A port nothing listens on: bound, then released (connections to it are refused)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
@pytest.mark.parametrize("command", [["migrate"], ["create-workspace", "Acme"], ["demo"]])
def test_an_unreachable_database_is_one_line_on_stderr(
    kind: str, command: list[str], tmp_path: Path
) -> None:
    if kind == "sqlite":
        (tmp_path / "a-file").write_text("")
        url = f"sqlite:///{tmp_path / 'a-file' / 'cli.db'}"  # its directory cannot exist
    else:
        url = f"postgresql+psycopg://postgres:hunter2@127.0.0.1:{_closed_port()}/batch"
    result = run_cli(*command, url=url, cwd=tmp_path, check=False)
    assert result.returncode == 1
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: the database ") and "cannot be reached" in lines[0]
    assert "hunter2" not in result.stderr
