"""*Details*: anyone in the channel reads what stands behind a recommendation, only to themselves.

Driven from the outside: the recommendation is posted by the Slack sync to the Slack stand-in,
a person clicks *Details* there, and alignbot's own Bolt handlers answer over HTTP.
"""

from __future__ import annotations

import pytest
from slack_bolt.adapter.starlette.handler import SlackRequestHandler
from sqlmodel import func, select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Route

from bot.membership import TeamDirectory
from bot.slack_app import SlackDeps, build_slack_app
from bot.slack_sync import SlackSync
from sandbox.serving import BackgroundServer
from store.db import session_scope
from store.tables import DecisionRow, RecommendationRow
from tests.slack_ui._scenarios import MONDAY, SCENARIOS
from tests.slack_ui._store import drive, store_scenario, texts
from tests.support.builders import COORDINATORS, PLANNERS
from tests.support.sync_world import store_and_slack

TOKEN, SECRET = "xoxb-details-test", "secret-details-test"
PLANNING = "C0PLANNING"
NOT_A_PLANNER = COORDINATORS[0]  # in the channel, not in the team that decides


@pytest.fixture
def world(tmp_path):
    with store_and_slack(tmp_path, TOKEN, SECRET) as (engine, cfg, slack, client):
        deps = SlackDeps(cfg, engine, TeamDirectory(cfg, client), on_change=lambda: None)
        handler = SlackRequestHandler(build_slack_app(deps, client=client))

        async def events(request: Request):
            return await handler.handle(request)

        with BackgroundServer(Starlette(routes=[Route("/slack/events", events,
                                                      methods=["POST"])])) as server:
            slack.app_url = server.url + "/slack/events"
            yield engine, cfg, slack, client


def _post(engine, cfg, client, slack, state: str = "open"):
    drifts, rec = SCENARIOS["demand up"]()
    with session_scope(engine) as s:
        rec_id = store_scenario(s, drifts, rec, MONDAY, cfg)
    SlackSync(engine, client, cfg).run()
    if state != "open":
        with session_scope(engine) as s:
            drive(s, rec_id, state, MONDAY)
        SlackSync(engine, client, cfg).run()  # the message is edited from the rows
    with session_scope(engine) as s:
        row = s.get(RecommendationRow, rec_id)
        return rec_id, slack.message(row.slack_channel, row.slack_ts)


def _details_for(slack, user: str, count: int = 1):
    return slack.wait_for(lambda: (seen := slack.ephemeral_for(user, PLANNING))
                          and len(seen) >= count and seen[-1], timeout=10,
                          message=f"no Details answer for {user}")


def test_anyone_in_the_channel_reads_the_evidence_and_the_options_with_their_figures(world):
    engine, cfg, slack, client = world
    rec_id, message = _post(engine, cfg, client, slack)
    assert "Details" in str(message.blocks)

    delivery = slack.click(message, "Details", as_user=NOT_A_PLANNER)
    assert delivery.status == 200
    answer = _details_for(slack, NOT_A_PLANNER)
    shown = texts(answer.blocks)
    assert answer.text.startswith(f"Details of #{rec_id}: Set the forecast to the latest demand")
    # the evidence
    assert "• A at DC-A for 2026-11-30: plan 170 → latest 210 (+40)" in shown
    assert "• A at DC-A: 300 on hand, 30 units a day, projected low -120 against safety stock " \
           "100, 220 units below it in 6.7 days for 7.3 days" in shown
    # every option with its own figures, and why the others lost
    assert "*1. Update forecast + Transfer* — recommended" in shown
    assert "$220 in all ($220 actions + $0 shortage penalty) · leaves nothing at risk" in shown
    assert "*2. Update forecast + Re-source*\nSet the forecast to the latest demand (+80 units " \
           "over 2 periods); order 220 more units of A for DC-A, arriving by 2026-12-07\n" \
           "$224 in all ($220 actions + $4.17 shortage penalty) · leaves 10 units below safety " \
           "stock for 8 hours, $250 at risk\n_Why not:_ $4.17 more in all; leaves 10 units " \
           "below safety stock against none" in shown
    assert "*3. Do nothing*" in shown and "it changes nothing in either system" in shown
    # the reasoning, its money in the configured currency, and the routing
    assert "*Why this option*\nA at DC-A: 300 on hand, 30 a day of demand" in shown
    assert "Update forecast + Transfer is the cheapest way that acts: $220 in actions + $0 " \
           "shortage penalty = $220, against $2,017 doing nothing." in shown
    assert "Routed to planning by rule “default” · needs 1 approval from planning" in shown

    # only the person who asked sees it, and nothing was decided
    assert not slack.ephemeral_for(PLANNERS[0])
    with session_scope(engine) as s:
        assert s.exec(select(func.count()).select_from(DecisionRow)).one() == 0
        assert s.get(RecommendationRow, rec_id).state == "open"


def test_details_stay_behind_a_decided_message(world):
    engine, cfg, slack, client = world
    rec_id, message = _post(engine, cfg, client, slack, state="executed")
    assert not any(b["type"] == "actions" for b in message.blocks)  # nothing left to decide
    assert "Executed in Planning and Logistics" in texts(message.blocks)

    slack.click(message, "Details", as_user=PLANNERS[1])
    answer = _details_for(slack, PLANNERS[1])
    assert answer.text.startswith(f"Details of #{rec_id}: ")
    assert "*1. Update forecast + Transfer* — recommended" in texts(answer.blocks)
    assert "expires" not in texts(answer.blocks)  # decided: no deadline any more


def test_details_of_a_body_from_an_older_version_say_what_it_has(world):
    engine, cfg, slack, client = world
    rec_id, message = _post(engine, cfg, client, slack)
    with session_scope(engine) as s:
        row = s.get(RecommendationRow, rec_id)
        row.body, summary = {}, row.summary
    slack.click(message, "Details", as_user=NOT_A_PLANNER)
    answer = _details_for(slack, NOT_A_PLANNER)
    assert answer.text == f"Details of #{rec_id}: {summary}"
    assert "Routed to planning" in texts(answer.blocks)
