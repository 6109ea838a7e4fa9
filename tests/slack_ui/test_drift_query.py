"""/drift: every way of asking, the usage on nonsense, searches, paging."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from bot.drift_query import DRIFT_USAGE, DriftQuery, Usage, drift_response, parse_drift_args
from canonical.model import Action, Drift, Impact, Recommendation, fingerprint
from store.db import make_engine, session_scope
from tests.slack_ui._store import assert_within_slack_limits, detect, texts
from tests.support.builders import NOW, config, demand_drift, recommendation_for


@pytest.mark.parametrize("typed, expected", [
    ("", DriftQuery("summary")),
    ("   ", DriftQuery("summary")),
    ("mine", DriftQuery("mine", text="mine")),
    ("MINE", DriftQuery("mine", text="mine")),
    ("held", DriftQuery("held", text="held")),
    ("SKU-10042", DriftQuery("search", text="SKU-10042", term="SKU-10042")),
    ("DC-DAL", DriftQuery("search", text="DC-DAL", term="DC-DAL")),
    ("XPO", DriftQuery("search", text="XPO", term="XPO")),
    ("DC-ATL>DC-DAL", DriftQuery("search", text="DC-ATL>DC-DAL", term="DC-ATL>DC-DAL")),
    ("DC-ATL -> DC-DAL", DriftQuery("search", text="DC-ATL>DC-DAL", term="DC-ATL>DC-DAL")),
    ("DC-ATL → DC-DAL", DriftQuery("search", text="DC-ATL>DC-DAL", term="DC-ATL>DC-DAL")),
    ("42", DriftQuery("recommendation", text="#42", rec_id=42)),
    ("#42", DriftQuery("recommendation", text="#42", rec_id=42)),
])
def test_parse_every_form(typed, expected):
    assert parse_drift_args(typed) == expected


def test_help_is_the_usage_without_a_complaint():
    assert parse_drift_args("help") == Usage()
    assert parse_drift_args("help").text == DRIFT_USAGE
    assert "`/drift mine`" in DRIFT_USAGE and "`/drift #42`" in DRIFT_USAGE


@pytest.mark.parametrize("typed, problem", [
    ("SKU-1 SKU-2", "`/drift` takes one search term, not 2"),
    ("#abc", "`#abc` is not a recommendation id; use a number like `#42`."),
    ("#0", "`#0` is not a recommendation id; they start at #1."),
    ("!!!", "`!!!` does not look like a SKU, location, lane, carrier or recommendation id"),
    ("drop table;", "`/drift` takes one search term, not 2"),
])
def test_garbage_gets_the_usage_saying_what_was_wrong(typed, problem):
    usage = parse_drift_args(typed)
    assert isinstance(usage, Usage)
    assert problem in usage.problem
    assert usage.text.startswith(":warning: ") and usage.text.endswith(DRIFT_USAGE)


def _carrier_drift():
    key = {"shipment_id": "SH-77"}
    drift = Drift(kind="disruption", fingerprint=fingerprint("disruption", key), key=key,
                  evidence={"planned_arrival": "2026-11-19", "eta": "2026-11-22"},
                  impact=Impact(units_short=120, value_at_risk=3000, service_days_at_risk=1.5),
                  severity="medium", cause={"carrier": "XPO", "origin": "DC-ATL"},
                  detected_at=NOW)
    rec = Recommendation(
        fingerprint=fingerprint("rec:disruption", drift.cause), kind="disruption",
        drift_fingerprints=[drift.fingerprint], summary="1 shipment from DC-ATL with XPO is late",
        actions=[Action(system="planning", operation="reschedule_receipt",
                        params={"shipment_id": "SH-77", "location": "DC-DAL",
                                "from_date": "2026-11-19", "to_date": "2026-11-22"})],
        impact_if_approved=Impact(), impact_if_ignored=drift.impact, severity="medium",
        cause=drift.cause, affected=[{"shipment_id": "SH-77", "destination": "DC-DAL"}])
    return drift, rec


def _populate(s):
    """12 demand drifts SKU-1..SKU-12 for planning (value 250·i) and one XPO delay."""
    ids = {}
    for i in range(1, 13):
        drift = demand_drift(sku=f"SKU-{i}", latest=1000 + 10 * i)
        ids[f"SKU-{i}"] = detect(s, drift, recommendation_for(drift), NOW)
    drift, rec = _carrier_drift()
    ids["XPO"] = detect(s, drift, rec, NOW)
    return ids


def test_summary_by_kind_and_team_worst_first_and_paged(db_url):
    engine = make_engine(db_url)
    later = NOW + timedelta(hours=2)  # 11:00 UTC = 05:00 in Chicago
    with session_scope(engine) as s:
        ids = _populate(s)
        page0 = drift_response(s, parse_drift_args(""), {"planning"}, config(), now=later)
        page1 = drift_response(s, parse_drift_args(""), {"planning"}, config(), page=1,
                               now=later)
    assert_within_slack_limits(page0)
    shown = texts(page0)
    summary = page0[1]["text"]["text"]
    assert summary.splitlines() == [
        "*Open drift by kind and team*",
        (":large_orange_circle: *Demand change* · planning — 12 open, worst medium, "
         "$19,500 at risk"),
        (":large_orange_circle: *Late shipment* · logistics — 1 open, worst medium, "
         "$3,000 at risk"),
    ]
    items = [b["text"]["text"] for b in page0 if b["type"] == "section"][1:]
    assert len(items) == 10
    # worst first: equal severity, so the highest value at risk leads
    assert items[0].startswith(f":large_orange_circle: *#{ids['SKU-12']}* · open · medium · "
                               "$3,000 at risk · planning · opened 03:00 CST (2 h ago) · "
                               "decide by 07:00 CST\nMove 120 units of SKU-12 to DC-DAL")
    assert "1–10 of 13 · page 1 of 2" in shown
    (paging,) = [b for b in page0 if b["type"] == "actions"]
    (button,) = paging["elements"]
    assert button["action_id"] == "drift_page" and button["text"]["text"] == "Next page"
    assert json.loads(button["value"]) == {"q": "", "page": 1}
    # the handler re-parses "q" for the next page: it must mean the same query
    for typed in ("", "mine", "DC-ATL -> DC-DAL", "42", "SKU-1"):
        query = parse_drift_args(typed)
        assert parse_drift_args(query.text) == query

    assert "11–13 of 13 · page 2 of 2" in texts(page1)
    assert not [b for b in page1 if b["type"] == "actions"]
    assert f"*#{ids['SKU-1']}*" in texts(page1)  # the smallest comes last


def test_search_by_sku_location_lane_carrier_and_id(db_url):
    engine = make_engine(db_url)
    with session_scope(engine) as s:
        ids = _populate(s)

        def ask(text, **kw):
            return texts(drift_response(s, parse_drift_args(text), {"planning"}, config(),
                                        now=NOW, **kw))

        sku = ask("sku-3")  # case does not matter, but SKU-3 is not SKU-30-something
        assert f"*#{ids['SKU-3']}*" in sku and "1–1 of 1" in sku
        assert "Drift about sku-3" in sku
        assert "1–10 of 13" in ask("DC-DAL")  # 12 demand recs + the delay's destination
        lane = ask("DC-ATL>DC-DAL")  # transfers DC-ATL → DC-DAL in every demand rec
        assert "of 12" in lane and f"*#{ids['XPO']}*" not in lane
        carrier = ask("XPO")
        assert f"*#{ids['XPO']}*" in carrier and "1–1 of 1" in carrier
        # logistics' time zone for its recommendation: 09:00 UTC is 10:00 CET
        assert "opened 10:00 CET" in carrier
        one = ask(f"#{ids['SKU-5']}")
        assert "Recommendation #" in one and f"*#{ids['SKU-5']}*" in one
        assert ask("#999") == ("No recommendation #999. `/drift mine` lists the open ones for "
                               "your teams.")
        assert "Nothing about `SKU-404`" in ask("SKU-404")


def test_mine_lists_only_the_callers_teams(db_url):
    engine = make_engine(db_url)
    with session_scope(engine) as s:
        ids = _populate(s)
        logistics = texts(drift_response(s, parse_drift_args("mine"), {"logistics"}, config(),
                                         now=NOW))
        nobody = texts(drift_response(s, parse_drift_args("mine"), set(), config(), now=NOW))
    assert "Open for logistics" in logistics
    assert f"*#{ids['XPO']}*" in logistics and "1–1 of 1" in logistics
    assert "not in any team alignbot knows" in nobody


def test_usage_renders_as_blocks(db_url):
    with session_scope(make_engine(db_url)) as s:
        blocks = drift_response(s, parse_drift_args("a b c"), set(), config(), now=NOW)
    assert blocks[0]["text"]["text"].startswith(":warning: `/drift` takes one search term, not 3")


def test_held_lists_decided_drift_that_is_still_there_and_what_brings_it_back(db_url):
    """A rejected drift that detection keeps seeing is not "not routed yet": /drift says it was
    decided, by whom and why, and when it would be raised again."""
    from bot.decisions import decide
    from bot.lifecycle import apply_detection

    engine = make_engine(db_url)
    drift = demand_drift(latest=1400)  # 10,000 value at risk
    with session_scope(engine) as s:
        rec_id = detect(s, drift, recommendation_for(drift), NOW)
        decide(s, rec_id, "U0PLAN1", {"planning"}, "reject", now=NOW,
               reason="Customer order cancelled")
    with session_scope(engine) as s:
        empty = texts(drift_response(s, parse_drift_args("held"), {"planning"}, config(), now=NOW))
        apply_detection(s, [drift], [recommendation_for(drift)], config(), NOW + timedelta(minutes=5))
    with session_scope(engine) as s:
        held = texts(drift_response(s, parse_drift_args("held"), {"planning"}, config(),
                                    now=NOW + timedelta(hours=1)))
        summary = texts(drift_response(s, parse_drift_args(""), {"planning"}, config(),
                                       now=NOW + timedelta(hours=1)))
    assert "Nothing is held back" in empty
    assert f"*#{rec_id}* · rejected by <@U0PLAN1> 03:00 CST — “Customer order cancelled”" in held
    assert "held back since 03:05 CST" in held
    assert ("Raised again if: value at risk above $12,500; severity above high; the drift goes "
            "away and comes back; after Wed 25 Nov 03:00 CST") in held
    assert "*Demand change* · held back (`/drift held`) — 1 open" in summary
    assert "not routed yet" not in summary


@pytest.mark.parametrize("typed", [
    "#100000000000000000000",  # past SQLite's 64-bit INTEGER: OverflowError there
    "#2147483648",  # past PostgreSQL's INTEGER: "integer out of range" there
    "#" + "9" * 5000,  # more digits than int() will read
])
def test_a_number_past_any_id_is_no_such_recommendation(db_url, typed):
    query = parse_drift_args(typed)
    assert query.kind == "recommendation"
    with session_scope(make_engine(db_url)) as s:
        _populate(s)
        answer = texts(drift_response(s, query, {"planning"}, config(), now=NOW))
    assert answer.startswith("No recommendation #" + typed[1:30])
    assert answer.endswith(" `/drift mine` lists the open ones for your teams.")
    assert len(answer) < 200


def test_ids_are_read_in_any_script_and_without_leading_zeros():
    assert parse_drift_args("#００４２") == DriftQuery("recommendation", text="#42", rec_id=42)
    assert parse_drift_args("#٤٢") == DriftQuery("recommendation", text="#42", rec_id=42)
    assert parse_drift_args("#2147483647").rec_id == 2147483647
    zeros = parse_drift_args("#" + "0" * 5000)
    assert zeros.problem.endswith("…` is not a recommendation id; they start at #1.")
    assert len(zeros.problem) < 200
