"""Form errors on the row and the cell people see, in their words, never an API path."""

from __future__ import annotations

import pytest

from batch_dashboard.db import session_scope
from batch_dashboard.services import batches
from batch_dashboard.ui.states.new_batch import NewBatchState
from tests.conftest import Tenant, make_tenant
from tests.ui.test_admin_states import run, signed_in
from tests.ui.test_batch_states import upload


@pytest.fixture
def tenant(sqlite_url: str) -> Tenant:
    return make_tenant()


def _manual(tenant: Tenant) -> NewBatchState:
    state = signed_in(NewBatchState, tenant.workspace_id)
    run(state.open())
    run(state.set_mode("manual"))
    state.name = "By hand"
    return state


def test_a_bad_row_by_hand_is_named_as_people_count_it_and_keeps_what_was_typed(tenant):
    state = _manual(tenant)
    run(state.add_row())  # row 1 stays blank: skipped, and must not shift the numbering
    run(state.add_row())
    run(state.set_cell(1, "phone", "+14155552671"))
    run(state.set_cell(1, "first_name", "Ada"))
    run(state.set_cell(1, "appointment_time", "3pm"))
    run(state.set_cell(2, "phone", "4155552672"))
    run(state.set_cell(2, "first_name", "Bob"))
    run(state.set_cell(2, "appointment_time", "4pm"))
    run(state.submit())
    assert "recipients." not in state.form_error and "Row 3" in state.form_error
    assert state.manual_errors[2].startswith('phone "4155552672" is missing the country code')
    assert state.manual_errors[:2] == ["", ""]
    assert state.manual_bad_cells == ["2:phone"]
    assert state.manual_rows[2]["phone"] == "4155552672"  # what was typed stays
    run(state.set_cell(2, "phone", "+14155552672"))
    assert state.manual_bad_cells == []
    run(state.submit())
    assert state.form_error == ""
    with session_scope() as session:
        [batch] = batches.list_batches(session, workspace_id=tenant.workspace_id)["batch_calls"]
    assert batch["total_recipients"] == 2


def test_a_variable_the_prompt_uses_left_empty_is_flagged_before_starting(tenant):
    state = _manual(tenant)
    run(state.set_cell(0, "phone", "+14155552671"))
    run(state.set_cell(0, "first_name", "Ada"))
    run(state.submit())
    assert "Row 1: appointment_time is empty" in state.form_error
    assert "{{appointment_time}}" in state.manual_errors[0]
    assert state.manual_bad_cells == ["0:appointment_time"]
    with session_scope() as session:
        assert batches.list_batches(session, workspace_id=tenant.workspace_id)["batch_calls"] == []


def test_the_preview_keeps_the_bad_cell_as_written(tenant):
    state = signed_in(NewBatchState, tenant.workspace_id)
    run(state.open())
    run(state.handle_upload(upload("phone,first_name\n+14155552671,Ada\n(415) 555-CALL,Bob\n")))
    bad = state.preview[1]
    assert bad.row == "Row 3" and bad.phone == "(415) 555-CALL" and bad.problem
    assert state.problems[0].row == "Row 3" and state.problems[0].column == "phone"
