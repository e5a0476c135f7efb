"""`python -m batch_dashboard <command>`: one JSON object on stdout, or an error on stderr."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from batch_dashboard.db import is_unreachable, session_scope
from batch_dashboard.sealing import SecretKeyMissing
from batch_dashboard.services import agents, auth, demo
from batch_dashboard.services.errors import DomainError
from batch_dashboard.settings import get_settings

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def migrate(_args: argparse.Namespace) -> dict[str, Any]:
    from alembic import command
    from alembic.config import Config

    config = Config(str(PROJECT_ROOT / "alembic.ini"))
    config.attributes["configure_logging"] = False
    command.upgrade(config, "head")
    return {"migrated": True, "database_url": _redacted(get_settings().database_url)}


def _redacted(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def run_demo(args: argparse.Namespace) -> dict[str, Any]:
    with session_scope(write=True) as session:
        return demo.seed_demo(session)


def create_workspace(args: argparse.Namespace) -> dict[str, Any]:
    with session_scope(write=True) as session:
        workspace = auth.create_workspace(session, name=args.name)
        issued = auth.create_api_key(session, workspace_id=workspace.id)
        return {"workspace_id": workspace.id, "api_key": issued.api_key}


def create_api_key(args: argparse.Namespace) -> dict[str, Any]:
    with session_scope(write=True) as session:
        issued = auth.create_api_key(session, workspace_id=args.workspace, label=args.label)
        return {"api_key": issued.api_key, "prefix": issued.prefix, "id": issued.id}


def create_phone_number(args: argparse.Namespace) -> dict[str, Any]:
    with session_scope(write=True) as session:
        auth.get_workspace(session, workspace_id=args.workspace)
        number = agents.create_phone_number(
            session,
            workspace_id=args.workspace,
            number=args.number,
            label=args.label,
            provider=args.provider or get_settings().provider,
            outbound_enabled=args.outbound,
            connection_id=args.connection_id,
            external_id=args.external_id,
        )
        return agents.phone_number_public(number)


def create_agent(args: argparse.Namespace) -> dict[str, Any]:
    with session_scope(write=True) as session:
        auth.get_workspace(session, workspace_id=args.workspace)
        agent, secret = agents.create_agent(
            session,
            workspace_id=args.workspace,
            name=args.name,
            prompt=args.prompt,
            first_message=args.first_message,
            phone_number_id=args.phone_number_id,
            webhook_url=args.webhook_url,
            opt_out_field=args.opt_out_field,
            connection_id=args.connection_id,
            external_agent_id=args.external_agent_id,
            stream_url=args.stream_url,
        )
        return {**agents.agent_public(agent), "webhook_secret": secret}


def create_connection(args: argparse.Namespace) -> dict[str, Any]:
    from batch_dashboard.services import connections

    credentials: dict[str, str] = {}
    for item in args.credential:
        key, separator, value = item.partition("=")
        if not separator or not key:
            raise DomainError(f"--credential takes KEY=VALUE (got {key or item!r})")
        credentials[key.strip()] = value
    fields: dict[str, Any] = {
        "provider": args.provider,
        "name": args.name,
        "credentials": credentials,
    }
    if args.base_url:
        fields["base_url"] = args.base_url
    if args.calls_per_second is not None:
        fields["calls_per_second"] = args.calls_per_second
    with session_scope(write=True) as session:
        auth.get_workspace(session, workspace_id=args.workspace)
        return connections.create_connection(session, workspace_id=args.workspace, fields=fields)


def create_user(args: argparse.Namespace) -> dict[str, Any]:
    with session_scope(write=True) as session:
        user = auth.create_user(
            session, workspace_id=args.workspace, email=args.email, password=args.password
        )
        return {"id": user.id, "workspace_id": user.workspace_id, "email": user.email}


def rotate_webhook_secret(args: argparse.Namespace) -> dict[str, Any]:
    with session_scope(write=True) as session:
        workspace_id = agents.workspace_of_agent(session, agent_id=args.agent)
        secret = agents.rotate_webhook_secret(
            session, workspace_id=workspace_id, agent_id=args.agent
        )
        return {"agent_id": args.agent, "webhook_secret": secret, "previous_valid_for_hours": 24}


def create_wall_token(args: argparse.Namespace) -> dict[str, Any]:
    from batch_dashboard.services import wall

    with session_scope(write=True) as session:
        auth.get_workspace(session, workspace_id=args.workspace)
        issued = wall.create_wall_token(session, workspace_id=args.workspace, label=args.label)
        return {
            "id": issued.id,
            "token": issued.token,
            "prefix": issued.prefix,
            "url_path": f"/wall?token={issued.token}",
        }


def reseal_secrets(_args: argparse.Namespace) -> dict[str, Any]:
    from batch_dashboard.services import connections

    with session_scope(write=True) as session:
        db = session.connection()
        return {
            "agents_resealed": agents.reseal_webhook_secrets(db),
            "connections_resealed": connections.reseal_credentials(db),
        }


def worker(_args: argparse.Namespace) -> None:
    from batch_dashboard.logs import configure_logging
    from batch_dashboard.worker.main import main as run_worker

    configure_logging()
    run_worker()


def serve(_args: argparse.Namespace) -> None:
    from batch_dashboard import serve as server

    demo_logins = run_demo(_args)
    code = server.serve(
        port=int(os.environ.get("PORT", "3000")),
        host=server.host_from_env(),
        banner=lambda console: _banner(demo_logins, console),
    )
    raise SystemExit(code)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m batch_dashboard", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, metavar="command")

    def command(
        name: str, handler: Callable[[argparse.Namespace], Any], help_: str
    ) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_, description=help_)
        sub.set_defaults(handler=handler)
        return sub

    command("migrate", migrate, "apply the database migrations (alembic upgrade head)")
    demo_cmd = command(
        "demo", run_demo, "create or refresh the Demo workspace and print its logins"
    )
    demo_cmd.add_argument("--banner", action="store_true", help="print for people, not JSON")
    sub = command("create-workspace", create_workspace, "a workspace and its first API key")
    sub.add_argument("name")
    sub = command("create-api-key", create_api_key, "a new API key (shown once)")
    sub.add_argument("--workspace", required=True)
    sub.add_argument("--label", default="")
    sub = command("create-phone-number", create_phone_number, "a caller number")
    sub.add_argument("--workspace", required=True)
    sub.add_argument("--number", required=True, help="E.164, e.g. +14155550100")
    sub.add_argument("--label", default="")
    sub.add_argument("--provider", default=None)
    sub.add_argument("--no-outbound", dest="outbound", action="store_false")
    sub.add_argument(
        "--connection-id", default=None, help="the telephony connection it calls through"
    )
    sub.add_argument("--external-id", default=None, help="the number's id at the platform")
    sub = command("create-agent", create_agent, "an agent (prints its webhook secret once)")
    sub.add_argument("--workspace", required=True)
    sub.add_argument("--name", required=True)
    sub.add_argument("--prompt", required=True)
    sub.add_argument("--first-message", default="")
    sub.add_argument("--phone-number-id", default=None)
    sub.add_argument("--webhook-url", default=None)
    sub.add_argument(
        "--opt-out-field",
        default=None,
        help="data-collection field whose true value adds the callee to the do-not-call list",
    )
    sub.add_argument("--connection-id", default=None, help="the telephony connection it runs on")
    sub.add_argument("--external-agent-id", default=None, help="the agent's id at the platform")
    sub.add_argument("--stream-url", default=None, help="Twilio: the bot's wss:// media stream")
    sub = command(
        "create-connection",
        create_connection,
        "a telephony connection (prints it with its events_url; never the credentials)",
    )
    sub.add_argument("--workspace", required=True)
    sub.add_argument("--provider", required=True, help="twilio, simulator, http")
    sub.add_argument("--name", required=True)
    sub.add_argument("--base-url", default=None, help="the platform's API base URL, if not its own")
    sub.add_argument("--calls-per-second", type=float, default=None)
    sub.add_argument(
        "--credential",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="repeat for each, e.g. account_sid=AC… auth_token=…",
    )
    sub = command("create-user", create_user, "a console login")
    sub.add_argument("--workspace", required=True)
    sub.add_argument("--email", required=True)
    sub.add_argument("--password", required=True)
    sub = command(
        "rotate-webhook-secret",
        rotate_webhook_secret,
        "a new webhook signing secret; the old one also signs for 24 hours",
    )
    sub.add_argument("--agent", required=True)
    sub = command(
        "create-wall-token", create_wall_token, "a read-only wall screen link (shown once)"
    )
    sub.add_argument("--workspace", required=True)
    sub.add_argument("--label", default="")
    command(
        "reseal-secrets",
        reseal_secrets,
        "seal every webhook secret and connection credential under the first BATCH_SECRET_KEY "
        "(after adding a new key)",
    )
    command("worker", worker, "run the dialer, the scheduler and webhook delivery (no web server)")
    command(
        "serve",
        serve,
        "seed the demo, serve console and API on PORT (HOST, default 127.0.0.1) and print the "
        "console URL and the demo login once it answers (what `make run` runs)",
    )
    return parser


def _banner(result: dict[str, Any], console: str | None = None) -> str:
    console = console or f"http://localhost:{os.environ.get('PORT', '3000')}/"
    return "\n".join(
        [
            "",
            f"  Console:  {console}",
            f"  API docs: {console}v1/docs",
            f"  Login:    {result['email']} / {result['password']}",
            f"API key: {result['api_key']}",
            "",
        ]
    )


def _database_problem(error: SQLAlchemyError) -> str:
    where = _redacted(get_settings().database_url)
    reason = str(getattr(error, "orig", None) or error).strip().splitlines()
    first = reason[0] if reason else type(error).__name__
    if is_unreachable(error):
        return f"the database {where} cannot be reached: {first}"
    return f"the database {where} refused the command: {first}"


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        result = args.handler(args)
    except DomainError as error:
        print(f"error: {error.message}", file=sys.stderr)
        for item in error.details or []:
            print(f"  {'.'.join(map(str, item['loc']))}: {item['message']}", file=sys.stderr)
        return 1
    except SecretKeyMissing as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except SQLAlchemyError as error:
        # An operator's typo in DATABASE_URL, or a server that is down, deserves one line that
        # says which database and why, not the driver's traceback.
        print(f"error: {_database_problem(error)}", file=sys.stderr)
        return 1
    if result is None:
        return 0
    if getattr(args, "banner", False):
        print(_banner(result))
    else:
        print(json.dumps(result, indent=2))
    return 0
