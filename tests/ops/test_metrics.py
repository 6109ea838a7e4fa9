"""/metrics on both backends: the numbers an operator alerts on, read from a real store."""

from __future__ import annotations

from datetime import timedelta

import httpx
from prometheus_client import CollectorRegistry
from sqlmodel import select
from starlette.applications import Starlette
from starlette.routing import Route

from bot.decisions import decide
from bot.lifecycle import apply_detection
from bot.metrics import Metrics
from sandbox.serving import BackgroundServer
from store.db import make_engine, session_scope
from store.tables import ActionRow, ConnectorHealth, ExecutionRow, RecommendationRow
from tests.ops._prom import by_label, parse, value
from tests.support.builders import NOW, PLANNERS, config, demand_drift, recommendation_for

SCRAPED_AT = NOW + timedelta(hours=3)


def _populate(engine) -> dict[str, int]:
    """Five demand_change recommendations, each at a different point of its life.

    A approved after 30 min (its 2 actions wait in the outbox), B rejected after 2 h,
    C open, D snoozed, E (75,000 at risk: planning and logistics) approved by planning only.
    """
    drifts = {name: demand_drift(sku=f"SKU-{name}", latest=4000 if name == "E" else 1400)
              for name in "ABCDE"}
    with session_scope(engine) as s:
        apply_detection(s, list(drifts.values()),
                        [recommendation_for(d) for d in drifts.values()], config(), NOW)
    with session_scope(engine) as s:
        ids = {row.body["affected"][0]["sku"].removeprefix("SKU-"): row.id
               for row in s.exec(select(RecommendationRow))}
    planning = {"planning"}
    steps = [
        (ids["A"], PLANNERS[0], planning, "approve", NOW + timedelta(minutes=30), {}),
        (ids["B"], PLANNERS[1], planning, "reject", NOW + timedelta(hours=2),
         {"reason": "the spike is a data error"}),
        (ids["D"], PLANNERS[0], planning, "snooze", NOW + timedelta(minutes=5),
         {"snooze_for": timedelta(days=1)}),
        (ids["E"], PLANNERS[0], planning, "approve", NOW + timedelta(minutes=10), {}),
    ]
    for rec_id, user, teams, verdict, at, kw in steps:
        with session_scope(engine) as s:
            assert decide(s, rec_id, user, teams, verdict, now=at, **kw).recorded
    return ids


def _scrape(engine, **kw) -> tuple[Metrics, dict]:
    metrics = Metrics(engine, clock=lambda: SCRAPED_AT, **kw)
    body, content_type = metrics.render()
    assert content_type.startswith("text/plain")
    return metrics, parse(body)


def test_store_metrics_count_the_backlog_and_the_decisions(db_url):
    engine = make_engine(db_url)
    _populate(engine)
    _, m = _scrape(engine)

    assert value(m, "alignbot_store_up") == 1
    assert by_label(m, "alignbot_open_drifts", "kind") == {"demand_change": 5}
    # C and E wait for planning; E also waits for logistics; D is snoozed, not waiting
    assert m["alignbot_open_recommendations"] == {
        (("kind", "demand_change"), ("team", "logistics")): 1,
        (("kind", "demand_change"), ("team", "planning")): 2,
    }
    states = by_label(m, "alignbot_recommendations", "state")
    assert {k: v for k, v in states.items() if v} == {
        "approved": 1, "rejected": 1, "open": 2, "snoozed": 1}
    assert set(states) >= {"executing", "executed", "failed", "expired", "superseded"}
    assert by_label(m, "alignbot_decisions_total", "verdict") == {
        "approve": 2, "reject": 1, "snooze": 1, "modify": 0}

    # decided: A after 1800 s, B after 7200 s (E is only part-approved, D only snoozed)
    assert value(m, "alignbot_time_to_decision_seconds_count") == 2
    assert value(m, "alignbot_time_to_decision_seconds_sum") == 9000
    buckets = by_label(m, "alignbot_time_to_decision_seconds_bucket", "le")
    assert buckets["60.0"] == 0 and buckets["900.0"] == 0
    assert buckets["1800.0"] == 1 and buckets["3600.0"] == 1
    assert buckets["7200.0"] == 2 and buckets["604800.0"] == 2 and buckets["+Inf"] == 2

    assert by_label(m, "alignbot_outbox_depth", "state") == {"pending": 2, "dead": 0}
    # A's actions were queued at its approval, NOW + 30 min; scraped at NOW + 3 h
    assert value(m, "alignbot_outbox_oldest_pending_age_seconds") == 9000
    assert set(by_label(m, "alignbot_executions_total", "status").values()) == {0}
    assert value(m, "alignbot_executions_running") == 0


def test_execution_outcomes_and_connector_health(db_url):
    engine = make_engine(db_url)
    _populate(engine)
    with session_scope(engine) as s:
        action_ids = [a.id for a in s.exec(select(ActionRow).order_by(ActionRow.id))]
        s.add_all([
            ExecutionRow(action_id=action_ids[0], attempt=1, ok=True, status="done",
                         started_at=NOW, finished_at=NOW),
            ExecutionRow(action_id=action_ids[1], attempt=1, ok=False, status="error",
                         started_at=NOW, finished_at=NOW),
            ExecutionRow(action_id=action_ids[1], attempt=2, ok=False, status="error",
                         started_at=NOW, finished_at=NOW),
            ExecutionRow(action_id=action_ids[1], attempt=3, started_at=NOW),  # in flight
            ConnectorHealth(connector="tms", stale=True, consecutive_failures=4,
                            last_success_at=NOW - timedelta(hours=1)),
            ConnectorHealth(connector="plan", stale=False, last_success_at=NOW),
        ])
    _, m = _scrape(engine)
    assert by_label(m, "alignbot_executions_total", "status") == {
        "done": 1, "error": 2, "duplicate": 0, "rejected": 0}
    assert value(m, "alignbot_executions_running") == 1  # a gauge: it drops when one finishes
    assert by_label(m, "alignbot_connector_stale", "connector") == {"tms": 1, "plan": 0}
    assert by_label(m, "alignbot_connector_last_success_timestamp_seconds", "connector") == {
        "tms": (NOW - timedelta(hours=1)).timestamp(), "plan": NOW.timestamp()}


def test_an_empty_store_reports_zeros_not_nothing(db_url):
    _, m = _scrape(make_engine(db_url))
    assert value(m, "alignbot_store_up") == 1
    assert value(m, "alignbot_time_to_decision_seconds_count") == 0
    assert value(m, "alignbot_time_to_decision_seconds_sum") == 0
    assert by_label(m, "alignbot_time_to_decision_seconds_bucket", "le")["+Inf"] == 0
    assert by_label(m, "alignbot_outbox_depth", "state") == {"pending": 0, "dead": 0}
    assert value(m, "alignbot_outbox_oldest_pending_age_seconds") == 0
    assert set(by_label(m, "alignbot_decisions_total", "verdict").values()) == {0}


def test_a_broken_store_still_answers_the_scrape(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'not-migrated.db'}")  # no tables at all
    metrics = Metrics(engine, connectors=["plan"])
    metrics.observe_poll("plan", 0.2, ok=True)
    m = parse(metrics.render()[0])
    assert value(m, "alignbot_store_up") == 0
    assert "alignbot_recommendations" not in m  # absent, never a misleading zero
    assert value(m, "alignbot_connector_poll_seconds_count", connector="plan") == 1


def test_process_instruments_and_isolated_registries():
    first, second = Metrics(None, connectors=["plan", "tms"]), Metrics(None)
    first.observe_poll("plan", 0.3, ok=True)
    first.observe_poll("plan", 7.0, ok=False)
    first.observe_poll("tms", 0.01, ok=True)
    first.set_leader(True)
    second.set_leader(False)
    first.count_slack_call("chat.postMessage")

    a, b = parse(first.render()[0]), parse(second.render()[0])
    assert value(a, "alignbot_connector_poll_seconds_count", connector="plan") == 2
    assert value(a, "alignbot_connector_poll_seconds_sum", connector="plan") == 7.3
    assert value(a, "alignbot_connector_poll_seconds_bucket", connector="plan", le="0.5") == 1
    assert value(a, "alignbot_connector_poll_seconds_bucket", connector="plan", le="10.0") == 2
    assert by_label(a, "alignbot_connector_poll_errors_total", "connector") == {
        "plan": 1, "tms": 0}
    assert value(a, "alignbot_leader") == 1 and value(b, "alignbot_leader") == 0
    assert value(a, "alignbot_slack_api_calls_total", method="chat.postMessage") == 1
    assert "alignbot_slack_api_calls_total" not in b  # nothing leaked between runtimes
    assert "process_resident_memory_bytes" in a

    registry = CollectorRegistry()
    Metrics(None, registry=registry).set_leader(True)
    assert registry.get_sample_value("alignbot_leader") == 1


def test_metrics_endpoint_serves_text_and_openmetrics(db_url):
    engine = make_engine(db_url)
    _populate(engine)
    metrics = Metrics(engine, clock=lambda: SCRAPED_AT)
    app = Starlette(routes=[Route("/metrics", metrics.starlette_endpoint(), methods=["GET"])])
    with BackgroundServer(app) as server, httpx.Client(base_url=server.url) as http:
        plain = http.get("/metrics")
        assert plain.status_code == 200
        assert plain.headers["content-type"].startswith("text/plain")
        assert value(parse(plain.text), "alignbot_decisions_total", verdict="approve") == 2

        om = http.get("/metrics", headers={"Accept": "application/openmetrics-text"})
        assert om.headers["content-type"].startswith("application/openmetrics-text")
        assert om.text.rstrip().endswith("# EOF")
        assert 'alignbot_decisions_total{verdict="approve"} 2.0' in om.text
        assert http.post("/metrics").status_code == 405
