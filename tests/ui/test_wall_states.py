"""The wall screen's shared state, filled from the real wall snapshot."""

from __future__ import annotations

import copy

import reflex as rx

from batch_dashboard.ui.states.wall_live import WallLive, apply_wall, wall_snapshot
from tests.conftest import make_tenant
from tests.worker.helpers import make_batch


def test_a_wall_snapshot_sends_only_what_changed(sqlite_url: str) -> None:
    """Every var assigned in a shared state goes to every wall screen of the workspace, equal
    or not. The poller refreshes each wall every second, and from one second to the next only
    the clock (and now and then a counter) moves: re-sending the chart's 60 minutes and every
    batch made each screen receive the whole wall every second."""
    tenant = make_tenant()
    make_batch(tenant, 3)
    root = rx.State(_reflex_internal_init=True)
    live = root.get_substate(WallLive.get_full_name().split("."))

    first = wall_snapshot(tenant.workspace_id)
    apply_wall(live, first)
    assert {"batches", "chart", "loaded", "updated_at"} <= live.dirty_vars
    assert live.loaded and len(live.batches) == 1 and len(live.chart) == 60
    live.dirty_vars.clear()

    same = copy.deepcopy(first)
    same["updated_at"] = "2030-01-01T00:00:01Z"
    apply_wall(live, same)
    assert live.dirty_vars == {"updated_at"}
    live.dirty_vars.clear()

    moved = copy.deepcopy(same)
    moved["batches"][0]["done"] += 1
    moved["placed"] += 1
    apply_wall(live, moved)
    assert live.dirty_vars == {"batches", "placed"}
    assert live.batches[0].done == first["batches"][0]["done"] + 1
