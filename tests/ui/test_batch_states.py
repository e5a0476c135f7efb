"""/batches/new and /batches/[id] handlers driven through their Reflex states, and the export."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from reflex_components_core.core._upload import UploadFile

from batch_dashboard.db import session_scope
from batch_dashboard.services import auth, batches
from batch_dashboard.services.errors import NotFound
from batch_dashboard.ui.states.base import AuthState
from batch_dashboard.ui.states.batches import BatchDetailState, BatchesState
from batch_dashboard.ui.states.new_batch import NewBatchState, UploadedRecipients, local_to_utc
from tests.conftest import Tenant, make_tenant
from tests.ui.test_admin_states import run, signed_in
from tests.worker.helpers import make_batch


@pytest.fixture
def tenant(sqlite_url: str) -> Tenant:
    return make_tenant()


def upload(text: str, name: str = "people.csv") -> list[UploadFile]:
    data = text.encode()
    return [UploadFile(file=io.BytesIO(data), size=len(data), path=Path(name))]


CSV = "phone,first_name,appointment_time\n+14155552671,Ada,3pm\n4155552672,Bob,4pm\n+14155552673,Cy,5pm\n"


def test_the_preview_marks_the_bad_row_and_drops_it(tenant):
    state = signed_in(NewBatchState, tenant.workspace_id)
    run(state.open())
    assert state.agent_id == tenant.agent_id  # the first agent that can call out
    unbound = next(o for o in state.agent_options if o.id == tenant.unbound_agent_id)
    assert not unbound.usable and unbound.why_not == "No caller number bound"
    run(state.handle_upload(upload(CSV)))
    assert (state.total_rows, state.invalid_count, state.valid_count) == (3, 1, 2)
    assert [p.row for p in state.problems] == ["Row 3"]
    assert state.problems[0].column == "phone" and "country code" in state.problems[0].reason
    assert state.preview[1].problem and not state.preview[0].problem
    run(state.drop_invalid_rows())
    assert (state.total_rows, state.invalid_count) == (2, 0)
    state.name = "From the console"
    events = run(state.submit())
    assert state.form_error == "" and state.field_errors == {}
    redirect = str(events[-1])
    batch_id = redirect.split("/batches/")[1].split('"')[0].split("'")[0]
    with session_scope() as session:
        detail = batches.batch_detail(session, workspace_id=tenant.workspace_id, batch_id=batch_id)
    assert detail["batch_call"]["total_recipients"] == 2


def test_a_file_with_invalid_rows_is_not_started(tenant):
    state = signed_in(NewBatchState, tenant.workspace_id)
    run(state.open())
    run(state.handle_upload(upload(CSV)))
    state.name = "Has a bad row"
    run(state.submit())
    assert "invalid" in state.form_error
    with session_scope() as session:
        assert batches.list_batches(session, workspace_id=tenant.workspace_id)["batch_calls"] == []


def test_a_binary_file_is_refused_with_a_clear_error(tenant):
    state = signed_in(NewBatchState, tenant.workspace_id)
    run(state.open())
    run(
        state.handle_upload(
            [UploadFile(file=io.BytesIO(b"\x89PNG\x00\x00"), size=6, path=Path("a.png"))]
        )
    )
    assert "binary data" in state.form_error and state.total_rows == 0


def test_rows_by_hand_use_the_agents_placeholders(tenant):
    state = signed_in(NewBatchState, tenant.workspace_id)
    run(state.open())
    run(state.set_mode("manual"))
    assert set(state.manual_rows[0]) == {"phone", "first_name", "appointment_time"}
    run(state.set_cell(0, "phone", "+1 415 555 2671"))
    run(state.set_cell(0, "first_name", "Ada"))
    run(state.set_cell(0, "appointment_time", "3pm"))
    run(state.add_row())
    run(state.set_cell(1, "phone", "+14155552672"))
    run(state.set_cell(1, "first_name", "Bob"))
    run(state.set_cell(1, "appointment_time", "4pm"))
    state.name = "By hand"
    run(state.submit())
    assert state.form_error == ""
    with session_scope() as session:
        [batch] = batches.list_batches(session, workspace_id=tenant.workspace_id)["batch_calls"]
    assert batch["total_recipients"] == 2 and batch["name"] == "By hand"


def test_schedule_rules_are_checked_before_submit(tenant):
    state = signed_in(NewBatchState, tenant.workspace_id)
    run(state.open())
    run(state.handle_upload(upload("phone\n+14155552671\n")))
    state.name = "Scheduled"
    for when, words in (
        ((datetime.now(UTC) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M"), "in the future"),
        ((datetime.now(UTC) + timedelta(days=31)).strftime("%Y-%m-%dT%H:%M"), "30 days"),
    ):
        state.schedule_local = when
        run(state.submit())
        assert words in state.field_errors["scheduled_at"]
    state.schedule_local = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    run(state.submit())
    assert state.field_errors == {} and state.form_error == ""
    with session_scope() as session:
        [batch] = batches.list_batches(session, workspace_id=tenant.workspace_id)["batch_calls"]
    assert batch["status"] == "scheduled"


def test_local_schedule_times_are_converted_with_the_browsers_zone():
    assert local_to_utc("2026-07-01T09:00", "Europe/Berlin") == datetime(
        2026, 7, 1, 7, 0, tzinfo=UTC
    )
    assert local_to_utc("2026-12-01T09:00", "America/New_York") == datetime(
        2026, 12, 1, 14, 0, tzinfo=UTC
    )
    assert local_to_utc("2026-12-01T09:00", "Not/AZone") == datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def test_the_sample_has_the_agents_columns(tenant):
    state = signed_in(NewBatchState, tenant.workspace_id)
    run(state.open())
    assert state.placeholders == ["first_name", "appointment_time"]
    [download] = run(state.download_sample())
    assert "sample.csv" in str(download)


def test_export_neutralises_formulas_and_keeps_e164(tenant):
    from batch_dashboard.services import recipients

    rows = recipients.from_json(
        [
            {"phone": "+14155552671", "note": '=HYPERLINK("http://x")', "who": "@admin"},
            {"phone": "+14155552672", "note": "-2+3", "who": "\tTab"},
        ],
        max_recipients=10,
    )
    batch, _ = batches.create_batch(
        workspace_id=tenant.workspace_id,
        fields={"name": "Export", "agent_id": tenant.agent_id},
        rows=rows,
    )
    with session_scope() as session:
        text = batches.export_results_csv(
            session, workspace_id=tenant.workspace_id, batch_id=batch["id"]
        )
    table = list(csv.reader(io.StringIO(text)))
    assert table[0][:3] == ["phone", "note", "who"]
    assert table[1][:3] == ["'+14155552671", '\'=HYPERLINK("http://x")', "'@admin"]
    assert table[2][:3] == ["'+14155552672", "'-2+3", "'\tTab"]
    assert table[1][table[0].index("status")] == "pending"


def test_another_workspace_cannot_export(tenant):
    batch = make_batch(tenant, 1)
    other = make_tenant("Other")
    with session_scope() as session, pytest.raises(NotFound):
        batches.export_results_csv(session, workspace_id=other.workspace_id, batch_id=batch["id"])


def test_calling_rules_from_the_form(tenant):
    state = signed_in(NewBatchState, tenant.workspace_id)
    run(state.open())
    run(state.handle_upload(upload("phone\n+14155552671\n")))
    state.name = "With rules"
    state.retry_attempts, state.retry_delay_minutes = "3", "10"
    state.window_on, state.window_zone = True, "Europe/Berlin"
    state.max_concurrency = "2"
    run(state.submit())
    assert state.form_error == "" and state.field_errors == {}
    with session_scope() as session:
        [batch] = batches.list_batches(session, workspace_id=tenant.workspace_id)["batch_calls"]
    assert batch["retry_policy"] == {
        "max_attempts": 3,
        "retry_on": ["no_answer", "busy"],
        "delay_seconds": 600,
    }
    assert batch["calling_window"]["timezone"] == "Europe/Berlin"
    assert batch["calling_window"]["days"] == ["mon", "tue", "wed", "thu", "fri"]
    assert batch["max_concurrency"] == 2


def test_do_not_call_page_adds_imports_and_removes(tenant):
    from batch_dashboard.ui.states.dnc import DoNotCallState

    state = signed_in(DoNotCallState, tenant.workspace_id)
    run(state.open())
    assert state.rows == [] and state.loaded
    run(state.add({"dnc_phone": "4155552671", "dnc_reason": "asked twice"}))
    assert state.add_error.startswith("This number is missing the country code")
    assert state.rows == [] and "phone" not in state.add_error
    # What was typed stays, to be corrected.
    assert (state.phone_typed, state.reason_typed) == ("4155552671", "asked twice")
    run(state.add({"dnc_phone": "+1 415 555 2671", "dnc_reason": "asked"}))
    assert [r.phone for r in state.rows] == ["+14155552671"] and state.rows[0].source == "console"
    assert (state.add_error, state.phone_typed, state.reason_typed) == ("", "", "")
    run(state.import_csv(upload("phone\n+14155552672\nnot a number\n+14155552671\n")))
    assert [r.phone for r in state.rows] == ["+14155552671", "+14155552672"]
    run(state.remove("+14155552671"))
    assert [r.phone for r in state.rows] == ["+14155552672"]


def test_the_forms_events_do_not_carry_the_parsed_csv() -> None:
    """With Redis, Reflex loads an event's state with all its children (its own
    `_get_required_state_classes`): the parsed rows live beside the form, not under it."""
    from redis.asyncio import Redis
    from reflex.istate.manager.redis import StateManagerRedis

    manager = StateManagerRedis(redis=Redis.from_url("redis://127.0.0.1:6379/15"))
    loaded = manager._get_required_state_classes(NewBatchState, subclasses=True)
    assert NewBatchState in loaded and UploadedRecipients not in loaded


def test_a_tab_whose_session_ended_is_sent_to_sign_in(tenant: Tenant) -> None:
    """Its heartbeat stops watching the live state and its handlers load nothing more."""
    detail = signed_in(BatchDetailState, tenant.workspace_id)
    root = detail
    while root.parent_state is not None:
        root = root.parent_state
    listing = root.get_substate(BatchesState.get_full_name().split("."))
    token = root.get_substate(AuthState.get_full_name().split(".")).session_token
    with session_scope(write=True) as session:
        auth.sign_out(session, token=token)  # e.g. "Sign out" in another tab
    for events in (
        run(listing.heartbeat()),
        run(detail.heartbeat()),
        run(detail.go_to_page(1)),
        run(detail.set_search("555")),
        run(detail.set_recipient_filter("failed")),
    ):
        assert "/login" in str(events[-1])
    assert detail.own_rows == []


def test_the_form_is_checked_by_the_services_own_parser(tenant):
    """Its messages, next to the field they are about, before anything is sent."""
    state = signed_in(NewBatchState, tenant.workspace_id)
    run(state.open())
    run(state.handle_upload(upload("phone\n+14155552671\n")))
    state.name, state.ringing_seconds, state.max_concurrency = "Checked", "81", "0"
    state.retry_attempts, state.retry_delay_minutes = "11", "10"
    state.window_on, state.window_start, state.window_end = True, "20:00", "09:00"
    run(state.submit())
    assert state.field_errors == {
        "ringing_timeout_ms": "Between 1 and 80 seconds.",
        "max_concurrency": "must be a whole number of calls from 1 to 10 (got 0)",
        "retry_policy": "Attempts per recipient: must be an integer from 1 to 10",
        "calling_window": "Until: must be later than start",
    }
    state.ringing_seconds, state.max_concurrency, state.retry_attempts = "80", "", "3"
    state.window_start, state.window_end, state.window_days = "09:00", "20:00", []
    run(state.submit())
    assert state.field_errors == {
        "calling_window": "Days: must be a non-empty list of: mon, tue, wed, thu, fri, sat, sun"
    }
    state.window_days, state.retry_on = ["sat", "mon"], []
    run(state.submit())
    assert state.field_errors == {"retry_policy": "Choose which outcomes to try again."}
    state.retry_on = ["busy"]
    run(state.submit())
    assert state.field_errors == {} and state.form_error == ""
    with session_scope() as session:
        [batch] = batches.list_batches(session, workspace_id=tenant.workspace_id)["batch_calls"]
    assert batch["calling_window"]["days"] == ["mon", "sat"]
    assert batch["ringing_timeout_ms"] == 80_000 and batch["retry_policy"]["max_attempts"] == 3


def test_an_outcome_is_coloured_by_what_happened():
    """A connected call whose evaluation failed or is unknown is not shown as a green success."""
    from batch_dashboard.ui.states.rows import _outcome_tone

    assert _outcome_tone("completed", "Connected") == "green"
    assert _outcome_tone("completed", "appointment_confirmed: success") == "green"
    assert _outcome_tone("completed", "appointment_confirmed: failure") == "orange"
    assert _outcome_tone("completed", "appointment_confirmed: unknown") == "gray"
    assert _outcome_tone("failed", "Busy") == "red"
    assert _outcome_tone("cancelled", "Cancelled") == "gray"


def test_a_snapshot_sends_the_first_page_only_when_it_changed() -> None:
    """Every var assigned in a shared state goes to every tab on the batch. A running batch's
    counters move at every poll while its first page (~17 kB) stays the same once its calls
    have ended: re-sending it made each tab receive it twice a second."""
    import reflex as rx

    from batch_dashboard.ui.states.live import BatchLive, apply_snapshot
    from batch_dashboard.ui.states.rows import BatchRow, RecipientRow, Snapshot

    root = rx.State(_reflex_internal_init=True)
    shared = root.get_substate(BatchLive.get_full_name().split("."))
    page = [
        RecipientRow(id=f"rcpt_{n}", phone=f"+1415555{n:04d}", status="completed")
        for n in range(50)
    ]
    apply_snapshot(shared, Snapshot(BatchRow(id="batch_1", completed=50), page, 10, 1))
    assert {"batch", "first_page"} <= shared.dirty_vars
    shared.dirty_vars.clear()

    apply_snapshot(shared, Snapshot(BatchRow(id="batch_1", completed=60), list(page), 12, 2))
    assert "batch" in shared.dirty_vars and "first_page" not in shared.dirty_vars
    assert shared.batch.completed == 60 and shared.version == 2
    shared.dirty_vars.clear()

    changed = [*page[:49], RecipientRow(id="rcpt_49", phone="+14155550049", status="failed")]
    apply_snapshot(shared, Snapshot(BatchRow(id="batch_1", completed=60), changed, 12, 3))
    assert "first_page" in shared.dirty_vars and shared.first_page[49].status == "failed"
