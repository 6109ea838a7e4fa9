"""Approved actions execute exactly once at real sandbox systems, even across a kill -9."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import timedelta

import httpx
from sqlmodel import select

from bot.decisions import decide
from bot.executor import Executor, RetryPolicy
from bot.lifecycle import apply_detection
from canonical.model import Action
from connectors.registry import build_connector
from store.db import make_engine, session_scope
from store.tables import ActionRow, ExecutionRow, RecommendationRow, SlackNote
from tests.support.builders import NOW, PLANNERS, config, demand_drift, recommendation_for

ROOT = __import__("pathlib").Path(__file__).resolve().parents[2]


def _connectors(planning, tms, attempts: int = 4):
    retry = {"max_attempts": attempts, "backoff_base_seconds": 0.01, "timeout_seconds": 2}
    return {
        "plan": build_connector("plan", "rest", {"base_url": planning.url, "retry": retry}, {}),
        "tms": build_connector("tms", "rest", {"base_url": tms.url, "retry": retry}, {}),
    }


def _approved(engine, planning) -> int:
    """An approved recommendation whose two actions the sandboxes accept."""
    world = planning.world
    sku, location, period = next(iter(world.tables["demand"]))
    origin = next(o for (o, d, _c) in world.tables["lanes"] if d == location)
    drift = demand_drift(sku=sku, location=location)
    rec = recommendation_for(drift)
    rec.actions = [
        Action(system="logistics", operation="create_transfer",
               params={"sku": sku, "origin": origin, "destination": location, "qty": 120}),
        Action(system="planning", operation="update_forecast",
               params={"sku": sku, "location": location, "period": period, "qty": 1400}),
    ]
    with session_scope(engine) as s:
        rec_id = apply_detection(s, [drift], [rec], config(), NOW).created[0]
    with session_scope(engine) as s:
        assert decide(s, rec_id, PLANNERS[0], {"planning"}, "approve", now=NOW).state == "approved"
    return rec_id


def _received(server) -> dict:
    return httpx.get(server.url + "/received", timeout=5).json()


def _rec(engine, rec_id):
    with session_scope(engine) as s:
        rec = s.get(RecommendationRow, rec_id)
        actions = s.exec(select(ActionRow).where(ActionRow.recommendation_id == rec_id)
                         .order_by(ActionRow.position)).all()
        notes = s.exec(select(SlackNote).where(SlackNote.recommendation_id == rec_id)).all()
    return rec, actions, notes


def test_approval_executes_each_action_once_in_both_systems(db_url, sandboxes):
    planning, tms = sandboxes
    engine = make_engine(db_url)
    rec_id = _approved(engine, planning)
    executor = Executor(engine, _connectors(planning, tms))
    assert executor.drain() == 2
    assert executor.drain() == 0  # nothing left, nothing repeated

    rec, actions, notes = _rec(engine, rec_id)
    assert rec.state == "executed"
    assert [a.status for a in actions] == ["done", "done"]
    for server, operation in ((tms, "create_transfer"), (planning, "update_forecast")):
        got = _received(server)
        assert got["applied"] == 1 and got["actions"][0]["operation"] == operation
    sku, location, period = actions[1].params["sku"], actions[1].params["location"], \
        actions[1].params["period"]
    assert planning.world.tables["demand"][(sku, location, period)]["planned_qty"] == 1400
    assert any("Executed in Planning and Logistics" in n.text for n in notes)


def test_kill_between_call_and_bookkeeping_still_applies_once(db_url, sandboxes):
    planning, tms = sandboxes
    engine = make_engine(db_url)
    rec_id = _approved(engine, planning)
    args = [sys.executable, "-m", "tests.support.executor_proc", db_url, planning.url, tms.url]

    crashed = subprocess.run(args + ["--die-after-call"], cwd=ROOT, timeout=60)
    assert crashed.returncode == -9
    assert _received(tms)["applied"] == 1  # the change reached the TMS ...
    rec, actions, _ = _rec(engine, rec_id)
    assert actions[0].status == "pending"  # ... but the executor never wrote that down

    time.sleep(1.2)  # the dead worker's lease runs out
    resumed = subprocess.run(args, cwd=ROOT, timeout=60)
    assert resumed.returncode == 0

    rec, actions, _ = _rec(engine, rec_id)
    assert rec.state == "executed"
    tms_log, planning_log = _received(tms), _received(planning)
    assert (tms_log["applied"], tms_log["attempts"]) == (1, 2)  # retried, de-duplicated
    assert (planning_log["applied"], planning_log["attempts"]) == (1, 1)
    with session_scope(engine) as s:
        runs = s.exec(select(ExecutionRow).where(ExecutionRow.action_id == actions[0].id)
                      .order_by(ExecutionRow.attempt)).all()
    assert [(r.attempt, r.finished_at is None, r.status) for r in runs] == [
        (1, True, ""), (2, False, "duplicate")]


def test_bounded_retries_then_partially_executed(db_url, sandboxes):
    planning, tms = sandboxes
    engine = make_engine(db_url)
    rec_id = _approved(engine, planning)
    httpx.post(planning.url + "/scenario/faults", json={"error_rate": 1.0}, timeout=5)
    clock = [NOW + timedelta(minutes=1)]
    executor = Executor(engine, _connectors(planning, tms, attempts=2), clock=lambda: clock[0],
                        retry=RetryPolicy(max_attempts=3, base=timedelta(seconds=10)))
    for _ in range(6):
        executor.drain()
        clock[0] += timedelta(minutes=5)  # past any backoff

    rec, actions, notes = _rec(engine, rec_id)
    assert rec.state == "partially_executed"
    assert [a.status for a in actions] == ["done", "failed"]
    with session_scope(engine) as s:
        attempts = s.exec(select(ExecutionRow).where(ExecutionRow.action_id == actions[1].id)
                          ).all()
    assert len(attempts) == 3  # the bound, not more
    assert _received(planning)["applied"] == 0
    finished = next(n for n in notes if n.dedupe_key == f"finished:{rec_id}")
    assert "Partially executed" in finished.text and "update_forecast" in finished.text
    assert "failed" in finished.text


def test_changed_situation_is_not_executed(db_url, sandboxes):
    planning, tms = sandboxes
    engine = make_engine(db_url)
    rec_id = _approved(engine, planning)
    executor = Executor(engine, _connectors(planning, tms),
                        revalidate=lambda rec: "value at risk went from 10,000 to 90,000")
    executor.drain()
    rec, actions, notes = _rec(engine, rec_id)
    assert rec.state == "superseded"
    assert [a.status for a in actions] == ["skipped", "skipped"]
    assert _received(tms)["attempts"] == 0 and _received(planning)["attempts"] == 0
    assert any("Not executed" in n.text for n in notes)


def test_the_same_business_change_reaches_a_system_once_under_any_recommendation(db_url):
    """Two recommendations carrying the same change (system, operation, target, from → to) send
    it with the same idempotency key, so a receiver that does not check ``from_qty`` applies it
    once; the second one is reported as already done, not as a failure."""
    from sandbox.systems import start_sandboxes

    planning, tms = start_sandboxes(seed=7, checks_from=False)
    try:
        engine = make_engine(db_url)
        first = _approved(engine, planning)
        executor = Executor(engine, _connectors(planning, tms))
        assert executor.drain() == 2
        from sqlalchemy import update
        with session_scope(engine) as s:  # the drift closed; the same change is recommended again
            s.exec(update(RecommendationRow).values(fingerprint="an-earlier-episode"))
        second = _approved(engine, planning)
        assert executor.drain() == 2
        (rec1, actions1, _), (rec2, actions2, _) = _rec(engine, first), _rec(engine, second)
        assert [a.idempotency_key for a in actions1] == [a.idempotency_key for a in actions2]
        assert (rec1.state, rec2.state) == ("executed", "executed")
        with session_scope(engine) as s:
            statuses = [e.status for e in s.exec(select(ExecutionRow).order_by(ExecutionRow.id))]
        assert statuses == ["done", "done", "duplicate", "duplicate"]
        for server in (planning, tms):
            got = _received(server)
            assert got["applied"] == 1 and got["attempts"] == 2
    finally:
        planning.stop()
        tms.stop()


def test_a_modified_quantity_is_a_different_change_with_its_own_key():
    from canonical.model import action_key

    base = Action(system="planning", operation="update_forecast",
                  params={"sku": "A", "location": "L", "period": "2026-12-07", "from_qty": 215.0,
                          "to_qty": 479.0})
    same = base.model_copy(update={"params": {**base.params, "to_qty": 479}})
    other = base.model_copy(update={"params": {**base.params, "to_qty": 500.0}})
    noted = base.model_copy(update={"params": {**base.params, "note": "see thread"}})
    elsewhere = base.model_copy(update={"system": "logistics"})
    assert action_key(base) == action_key(same) == action_key(noted)
    assert len({action_key(base), action_key(other), action_key(elsewhere)}) == 3
