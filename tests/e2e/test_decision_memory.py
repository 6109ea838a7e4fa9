"""A decided recommendation stays decided, and what it changed is changed once.

The sandbox systems here apply actions without checking their ``from_*`` values, as many real
systems do: only the business-level idempotency key keeps a change from being applied twice,
and only decision memory and reading back what was done keep it from being recommended again.
"""

from __future__ import annotations

import os

import httpx
import pytest
from sqlmodel import select

from bot.demo import DemoStack
from store.db import session_scope
from store.tables import ActionRow, ConnectorRun, RecommendationRow

WAIT = 45
APPROVER = {"planning": "U0PLAN1", "logistics": "U0LOG1"}


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def stack(request, tmp_path_factory):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('memory') / 'alignbot.db'}"
    else:
        url = request.getfixturevalue("postgres_server").create_database(f"memory_{os.getpid()}")
    with DemoStack(fast=True, database_url=url, checks_from=False) as demo:
        demo.step()  # a demand spike, delayed shipments and a carrier capacity cut
        yield demo


def _recs(stack) -> list[RecommendationRow]:
    with session_scope(stack.runtime.engine) as s:
        return list(s.exec(select(RecommendationRow).order_by(RecommendationRow.id)))


def _open_posted(stack, kind: str | None = None) -> RecommendationRow:
    """An open recommendation whose Slack message is posted, of ``kind`` when one exists."""
    def find():
        posted = [r for r in _recs(stack) if r.state == "open" and r.slack_ts
                  and r.id not in stack.__dict__.setdefault("_used", set())]
        return [r for r in posted if r.kind == kind] or (posted if kind is None else [])
    rec = stack.slack.wait_for(find, timeout=WAIT, message=f"no open {kind or ''} recommendation")[0]
    stack._used.add(rec.id)
    return rec


def _message(stack, rec: RecommendationRow):
    return next(m for m in stack.slack.messages(rec.slack_channel) if m.ts == rec.slack_ts)


def _state(stack, rec_id: int) -> str:
    with session_scope(stack.runtime.engine) as s:
        return s.get(RecommendationRow, rec_id).state


def _runs(stack) -> dict[str, int]:
    with session_scope(stack.runtime.engine) as s:
        names = s.exec(select(ConnectorRun.connector).where(ConnectorRun.ok)).all()
    return {c.name: names.count(c.name) for c in stack.config.connectors}


def _let_every_connector_poll(stack, times: int) -> None:
    """Wait until every connector has read (and detection has run after it) ``times`` more."""
    start = _runs(stack)
    stack.slack.wait_for(lambda: all(n >= start[c] + times + 1 for c, n in _runs(stack).items()),
                         timeout=WAIT, message=f"connectors did not poll {times} more times")


def _raised_again(stack, decided: RecommendationRow) -> list[RecommendationRow]:
    """Recommendations created after ``decided`` for its fingerprint or any of its drifts."""
    drifts = set(decided.body["drift_fingerprints"])
    return [r for r in _recs(stack) if r.id > decided.id and (
        r.fingerprint == decided.fingerprint or drifts & set(r.body["drift_fingerprints"]))]


def _business(params: dict) -> dict:
    return {k: v for k, v in params.items() if not k.startswith("from")}


def test_an_approved_recommendation_executes_once_and_is_not_raised_again(stack):
    rec = _open_posted(stack, "demand_change")  # update_forecast 215 → 479: the reported case
    for team in rec.approvals_required:
        stack.slack.click(_message(stack, rec), "Approve", as_user=APPROVER[team])
    stack.slack.wait_for(lambda: _state(stack, rec.id) in ("executed", "partially_executed", "failed"),
                         timeout=WAIT)
    assert _state(stack, rec.id) == "executed"

    _let_every_connector_poll(stack, 3)

    (decided,) = [r for r in _recs(stack) if r.id == rec.id]
    assert _raised_again(stack, decided) == []
    with session_scope(stack.runtime.engine) as s:
        actions = s.exec(select(ActionRow).where(ActionRow.recommendation_id == rec.id)).all()
    assert actions and all(a.status == "done" for a in actions)
    ledgers = {"planning": httpx.get(stack.planning.url + "/received", timeout=5).json(),
               "logistics": httpx.get(stack.tms.url + "/received", timeout=5).json()}
    for action in actions:
        same_change = [e for e in ledgers[action.system]["actions"]
                       if e["operation"] == action.operation
                       and _business(e["params"]) == _business(action.params)]
        assert sum(e["applied"] for e in same_change) == 1, action.params  # applied exactly once
        assert [e["idempotency_key"] for e in same_change] == [action.idempotency_key]


def test_a_rejected_recommendation_is_not_raised_again(stack):
    rec = _open_posted(stack)
    user = APPROVER[rec.teams[0]]
    stack.slack.click(_message(stack, rec), "Reject", as_user=user)
    modal = stack.slack.wait_for(lambda: stack.slack.modal(user), timeout=WAIT)
    stack.slack.submit(modal, values={"reason_input": "Customer order cancelled"}, as_user=user)
    stack.slack.wait_for(lambda: _state(stack, rec.id) == "rejected", timeout=WAIT)

    _let_every_connector_poll(stack, 3)

    (decided,) = [r for r in _recs(stack) if r.id == rec.id]
    assert _raised_again(stack, decided) == []
    assert decided.held_at is not None  # detection saw the drift again and held it back
    applied = sum(httpx.get(server.url + "/received", timeout=5).json()["applied"]
                  for server in (stack.planning, stack.tms))
    executed = sum(1 for r in _recs(stack) if r.state == "executed" for _ in r.body["actions"])
    assert applied <= executed  # nothing of the rejected recommendation reached a system
