"""App Home: what waits for me, what is snoozed, what came of the rest."""

from __future__ import annotations

from datetime import timedelta

from bot.decisions import decide
from bot.home import render_home
from store.db import make_engine, session_scope
from store.tables import RecommendationRow
from tests.slack_ui._store import assert_within_slack_limits, detect, texts
from tests.support.builders import (
    COORDINATORS,
    NOW,
    PLANNERS,
    config,
    demand_drift,
    recommendation_for,
)


def _rec(s, sku, latest=1400, at=NOW):
    drift = demand_drift(sku=sku, latest=latest)
    return detect(s, drift, recommendation_for(drift), at)


def test_home_with_open_snoozed_and_recent_decisions(db_url):
    engine = make_engine(db_url)
    later = NOW + timedelta(hours=1)  # 10:00 UTC = 04:00 CST
    with session_scope(engine) as s:
        small = _rec(s, "SKU-1")  # planning alone, deadline 4 h → 07:00 CST
        both = _rec(s, "SKU-2", latest=4000)  # planning + logistics, deadline 2 h → 05:00 CST
        snoozed = _rec(s, "SKU-3")
        rejected = _rec(s, "SKU-4")
        old = _rec(s, "SKU-5", at=NOW - timedelta(days=10))
        decide(s, both, PLANNERS[0], {"planning"}, "approve", now=NOW)
        decide(s, snoozed, PLANNERS[1], {"planning"}, "snooze", now=NOW,
               snooze_for=timedelta(days=1))
        decide(s, rejected, PLANNERS[1], {"planning"}, "reject", now=NOW,
               reason="duplicate of the promo order")
        decide(s, old, PLANNERS[1], {"planning"}, "reject", now=NOW - timedelta(days=10),
               reason="too old to show")
    with session_scope(engine) as s:
        mine = render_home(s, PLANNERS[1], {"planning"}, config(), later)
        approver = render_home(s, PLANNERS[0], {"planning"}, config(), later)
        logistics = render_home(s, COORDINATORS[0], {"logistics"}, config(), later)

    assert mine["type"] == "home"
    assert_within_slack_limits(mine["blocks"], max_blocks=100)
    shown = texts(mine["blocks"])
    assert "*Open decisions* (2)" in shown
    assert (f"*#{small}* Demand change · $10,000 at risk\nMove 400 units of SKU-1 to "
            "DC-DAL\n*needs your approval* · decide by 07:00 CST") in shown
    assert (f"*#{both}* Demand change · $75,000 at risk\nMove 3000 units of SKU-2 to "
            "DC-DAL\nwaiting for 1 from logistics · decide by 05:00 CST") in shown
    # the most urgent deadline first
    assert shown.index(f"*#{both}*") < shown.index(f"*#{small}*")
    assert "*Snoozed* (1)" in shown
    assert f"*#{snoozed}*" in shown and ":zzz: back for a decision Thu 19 Nov 03:00 CST" in shown
    assert "*Outcomes, last 7 days* (1)" in shown
    assert (f"*#{rejected}* Demand change · $10,000 at risk\nMove 400 units of SKU-4 to "
            "DC-DAL\nrejected by <@U0PLAN2> at 03:00 CST: duplicate of the promo order") in shown
    assert "too old to show" not in shown

    assert "you approved · waiting for 1 from logistics" in texts(approver["blocks"])
    shown_log = texts(logistics["blocks"])
    assert "*Open decisions* (1)" in shown_log
    # logistics sees it in the owning rec's first team's zone, and it needs them
    assert f"*#{both}*" in shown_log and "*needs your approval* · decide by 05:00 CST" \
        in shown_log


def test_requester_who_may_not_approve_is_told_so(db_url):
    engine = make_engine(db_url)
    with session_scope(engine) as s:
        rec_id = _rec(s, "SKU-1")
        rec = s.get(RecommendationRow, rec_id)
        rec.requester, rec.requester_may_approve = PLANNERS[0], False
        s.add(rec)
    with session_scope(engine) as s:
        shown = texts(render_home(s, PLANNERS[0], {"planning"}, config(), NOW)["blocks"])
        other = texts(render_home(s, PLANNERS[1], {"planning"}, config(), NOW)["blocks"])
    assert "you asked for it, so someone else approves · waiting for 1 from planning" in shown
    assert "*needs your approval*" in other


def test_home_with_nothing_open_says_so(db_url):
    with session_scope(make_engine(db_url)) as s:
        view = render_home(s, PLANNERS[0], {"planning"}, config(), NOW)
    shown = texts(view["blocks"])
    assert "*Open decisions* (0)" in shown
    assert ":tada: Nothing waits for your teams." in shown
    assert "_Nothing snoozed._" in shown
    assert "_No decisions came to an end in the last 7 days._" in shown


def test_home_for_someone_in_no_team_explains_how_to_join(db_url):
    with session_scope(make_engine(db_url)) as s:
        _rec(s, "SKU-1")
        view = render_home(s, "U0SALES", set(), config(), NOW)
    shown = texts(view["blocks"])
    assert "not in any team alignbot routes decisions to" in shown
    assert "`members`" in shown and "alignbot.yml" in shown
    assert "SKU-1" not in shown


def test_home_stays_under_the_view_block_limit(db_url):
    with session_scope(make_engine(db_url)) as s:
        for i in range(60):
            _rec(s, f"SKU-{i}")
        view = render_home(s, PLANNERS[0], {"planning"}, config(), NOW)
    assert_within_slack_limits(view["blocks"], max_blocks=100)
    shown = texts(view["blocks"])
    assert "*Open decisions* (60)" in shown
    assert "+35 more — use `/drift mine` for the rest" in shown
