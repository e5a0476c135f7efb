"""The demo workspace that `make run` seeds: idempotent, real records, no fake activity."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from sqlmodel import Session, select

from batch_dashboard.models import ApiKey
from batch_dashboard.services import agents, auth, connections
from batch_dashboard.settings import get_settings

WORKSPACE_NAME = "Demo"
DEMO_EMAIL = "demo@example.com"
DEMO_PASSWORD = "demo-password"
DEMO_KEY_LABEL = "demo"
NUMBERS = (("+14155550100", "Main line"), ("+14155550101", "Support line"))
REMINDER_AGENT = {
    "name": "Appointment reminders",
    "first_message": "Hi {{first_name}}, this is Acme Dental calling about your appointment at "
    "{{appointment_time}}.",
    "prompt": "You are a friendly receptionist at Acme Dental. Remind {{first_name}} of their "
    "appointment at {{appointment_time}}, ask whether they will attend, and offer to reschedule.",
    "evaluation_criteria": [
        {"name": "appointment_confirmed", "description": "The callee confirmed the appointment."}
    ],
    "data_collection": [
        {"name": "will_attend", "type": "boolean", "description": "Will they attend?"},
        {"name": "reschedule_to", "type": "string", "description": "Preferred new time, if any."},
    ],
}
SURVEY_AGENT = {
    "name": "Customer survey",
    "first_message": "Hello! Do you have two minutes for a short survey about your last visit?",
    "prompt": "Ask three short questions about the caller's last visit and thank them.",
    "evaluation_criteria": [
        {"name": "survey_completed", "description": "All three questions were answered."}
    ],
    "data_collection": [
        {"name": "satisfaction", "type": "number", "description": "Satisfaction from 1 to 5."}
    ],
}


def _key_file(database_url: str) -> Path:
    # The demo key is kept beside the data so that `make run` prints the same working key on
    # every start; only its hash is in the database.
    tag = hashlib.sha256(database_url.encode()).hexdigest()[:10]
    return Path("data") / f"demo-api-key-{tag}"


def _demo_key(session: Session, workspace_id: str) -> str:
    path = _key_file(get_settings().database_url)
    if path.exists():
        api_key = path.read_text().strip()
        record = session.exec(
            select(ApiKey).where(ApiKey.key_hash == auth.hash_key(api_key))
        ).first()
        if record is not None and record.workspace_id == workspace_id and record.revoked_at is None:
            return api_key
    issued = auth.create_api_key(session, workspace_id=workspace_id, label=DEMO_KEY_LABEL)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(issued.api_key + "\n")
    os.chmod(path, 0o600)
    return issued.api_key


def _simulator_connection(session: Session, workspace_id: str) -> str:
    """The demo calls through the simulator, a connection like any other (no setup needed)."""
    listed = connections.list_connections(session, workspace_id=workspace_id)["connections"]
    for connection in listed:
        if connection["provider"] == "simulator":
            return connection["id"]
    made = connections.create_connection(
        session, workspace_id=workspace_id, fields={"provider": "simulator", "name": "Simulator"}
    )
    return made["id"]


def seed_demo(session: Session) -> dict[str, Any]:
    workspace = auth.find_workspace_by_name(session, name=WORKSPACE_NAME)
    if workspace is None:
        workspace = auth.create_workspace(session, name=WORKSPACE_NAME)
    simulator = _simulator_connection(session, workspace.id)
    numbers = {
        n.phone_number: n for n in agents.list_phone_numbers(session, workspace_id=workspace.id)
    }
    for number, label in NUMBERS:
        if number not in numbers:
            numbers[number] = agents.create_phone_number(
                session,
                workspace_id=workspace.id,
                number=number,
                label=label,
                connection_id=simulator,
            )
    existing = {a.name: a for a in agents.list_agents(session, workspace_id=workspace.id)}
    for spec, (number, _label) in zip((REMINDER_AGENT, SURVEY_AGENT), NUMBERS, strict=True):
        if spec["name"] not in existing:
            existing[spec["name"]], _secret = agents.create_agent(
                session, workspace_id=workspace.id, phone_number_id=numbers[number].id, **spec
            )
    if auth.find_user(session, email=DEMO_EMAIL) is None:
        auth.create_user(
            session, workspace_id=workspace.id, email=DEMO_EMAIL, password=DEMO_PASSWORD
        )
    return {
        "workspace_id": workspace.id,
        "email": DEMO_EMAIL,
        "password": DEMO_PASSWORD,
        "api_key": _demo_key(session, workspace.id),
        "phone_numbers": [agents.phone_number_public(n) for n in numbers.values()],
        "agents": [agents.agent_public(a) for a in existing.values()],
    }
