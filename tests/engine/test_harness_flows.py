"""What people see in Slack, step by step, through the in-process harness: each click goes
through the real ingress (signed as Slack signs it) into the inbox, and the worker's jobs run
when the test says so, so nothing waits."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlmodel import func, select

from store.db import session_scope
from store.tables import ActionRow, DecisionRow, RecommendationRow
from tests.support.harness import BotHarness, Post

PLANNER, COORDINATOR, OUTSIDER = "U0PLAN1", "U0LOG1", "U0SALES"


@pytest.fixture
def bot() -> Iterator[BotHarness]:
    with BotHarness() as harness:
        harness.poll_and_detect()  # the world starts with a few late shipments
        harness.step()
        yield harness


def _recommendation(bot: BotHarness, post: Post) -> RecommendationRow:
    with session_scope(bot.runtime.engine) as s:
        return s.get(RecommendationRow, int(post.metadata["event_payload"]["id"]))


def _decisions(bot: BotHarness) -> int:
    with session_scope(bot.runtime.engine) as s:
        return s.exec(select(func.count()).select_from(DecisionRow)).one()


def test_a_demand_spike_becomes_a_message_in_plannings_channel_with_its_buttons(bot):
    assert bot.pop_posts("#planning") == []  # nothing for planning before the spike
    spike = next(d for d in bot.scenario_step()["injected"] if d["kind"] == "demand_spike")
    bot.poll_and_detect()
    bot.step()

    posts = bot.pop_posts("#planning")
    about_spike = [p for p in posts if any(sku in p.content for sku in spike["skus"])]
    assert about_spike and not any(p.edit for p in about_spike)
    for post in about_spike:
        assert post.buttons[:3] == ["Approve", "Reject", "Modify"]
        assert "<@U0PLAN1>" in post.content and "<@U0PLAN2>" in post.content  # the planners
        assert spike["location"] in post.content


def test_an_outsiders_approve_is_refused_and_nothing_is_recorded(bot):
    post = bot.pop_post("#logistics")
    bot.pop_posts()

    ack = bot.push_click(post, "Approve", as_user=OUTSIDER)
    assert (ack.status, ack.body) == (200, "")
    done = bot.step()

    assert (done.handled, done.executed, done.slack_writes) == (1, 0, 0)
    assert "Only members of logistics can decide" in bot.ephemerals(OUTSIDER)[-1].text
    assert bot.pop_posts() == []  # the message is as it was; nobody else is told
    assert _decisions(bot) == 0 and _recommendation(bot, post).state == "open"


def test_a_members_approve_executes_in_the_sandbox_once_and_the_message_says_executed(bot):
    post = bot.pop_post("#logistics")
    bot.pop_posts()
    applied_before = bot.applied()

    first = bot.push_click(post, "Approve", as_user=COORDINATOR)
    again = bot.push_click(post, "Approve", as_user=COORDINATOR)  # an impatient second click
    assert first.status == again.status == 200
    assert bot.step().handled == 2

    rec = _recommendation(bot, post)
    assert rec.state == "executed"
    with session_scope(bot.runtime.engine) as s:
        actions = s.exec(select(ActionRow).where(ActionRow.recommendation_id == rec.id)).all()
    assert actions and all(a.status == "done" for a in actions)
    applied = bot.applied()
    for system in applied:  # each action once in its system, the second click changed nothing
        assert applied[system] - applied_before[system] == sum(a.system == system
                                                               for a in actions)
    assert bot.ephemerals(COORDINATOR)[-1].text == "Already approved; nothing was changed."

    posts = bot.pop_posts("#logistics")
    edits = [p for p in posts if p.edit and p.ts == post.ts]
    assert edits and "executed" in edits[-1].content
    assert "Approve" not in edits[-1].buttons  # decided: the buttons are gone
    assert any(p.thread_ts == post.ts and "Executed" in p.text for p in posts)
    assert bot.step() == (0, 0, 0)  # nothing left over: it is not executed twice


def test_reject_opens_a_modal_that_insists_on_a_reason_then_records_it(bot):
    bot.scenario_step()
    bot.poll_and_detect()
    bot.step()
    post = bot.pop_post("#planning")
    bot.pop_posts()

    assert bot.push_click(post, "Reject", as_user=PLANNER).status == 200
    bot.step()
    assert len(bot.slack.calls("views.open")) == 1
    assert bot.modal(PLANNER)["callback_id"] == "reject_modal"

    blank = bot.push_submission({"reason_input": "  "}, as_user=PLANNER)
    assert blank.extra["errors"]["reason"]  # the ingress answers this itself; the modal stays
    assert bot.step().handled == 0 and bot.modal(PLANNER) is not None

    ok = bot.push_submission({"reason_input": "Promo was cancelled yesterday"}, as_user=PLANNER)
    assert (ok.status, ok.body) == (200, "") and bot.modal(PLANNER) is None
    bot.step()

    assert _recommendation(bot, post).state == "rejected"
    edit = bot.pop_post("#planning")
    assert edit.edit and edit.ts == post.ts
    assert "Promo was cancelled yesterday" in edit.content and "Approve" not in edit.buttons


def test_drift_answers_only_the_person_who_asked(bot):
    bot.pop_posts()
    ack = bot.push_command("/drift", as_user=COORDINATOR, channel="#logistics")
    assert (ack.status, ack.body) == (200, "")
    assert bot.ephemerals(COORDINATOR) == []  # the answer comes from the worker, not the ack

    assert bot.step().handled == 1
    answer = bot.ephemerals(COORDINATOR)[-1]
    assert answer.text == "Open drift" and "Late shipment" in str(answer.blocks)
    assert bot.ephemerals(PLANNER) == [] and bot.pop_posts() == []
