"""The Grafana dashboard and the Prometheus alerts in deploy/: valid for the tools that load them,
firing when they should, and reading only metrics the bot really exports."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.routing import Route

from bot.metrics import Metrics
from sandbox.serving import BackgroundServer
from store.db import make_engine, session_scope
from store.migrate import upgrade
from store.tables import ConnectorHealth
from store.types import utcnow

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "alignbot.json"
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
ALERT_SCENARIOS = Path(__file__).with_name("alerts_test.yml")

# The sample names each metric type puts in an exposition, from its family's name.
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"),
            "summary": ("", "_count", "_sum"), "gauge": ("",), "info": ("_info",),
            "unknown": ("",), "stateset": ("",)}
PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and",
                "or", "unless", "offset", "inf", "nan"}


@pytest.fixture
def promtool() -> str:
    path = shutil.which("promtool")
    if path:
        return path
    if os.environ.get("ALIGNBOT_REQUIRE_PROMTOOL") == "1":
        pytest.fail("promtool is required (ALIGNBOT_REQUIRE_PROMTOOL=1) but missing: "
                    "apt-get install prometheus")
    pytest.skip("promtool is not installed (apt-get install prometheus): the alert rules "
                "are not checked")


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> set[str]:
    """Every sample name the worker's GET /metrics serves, scraped over HTTP from a real
    Metrics on a migrated store, with each kind of instrument used once."""
    url = f"sqlite:///{tmp_path_factory.mktemp('metrics') / 'alignbot.db'}"
    upgrade(url)
    engine = make_engine(url)
    with session_scope(engine) as s:
        s.add(ConnectorHealth(connector="tms", stale=True, last_success_at=utcnow()))
    metrics = Metrics(engine, connectors=["plan", "tms"])
    metrics.observe_poll("plan", 0.2, ok=True)
    metrics.observe_detection("ok", 0)
    metrics.count_slack_call("chat.postMessage")
    metrics.count_ratelimit("chat.postMessage")
    metrics.set_leader(True)
    app = Starlette(routes=[Route("/metrics", metrics.starlette_endpoint(), methods=["GET"])])
    with BackgroundServer(app) as server:
        page = httpx.get(server.url + "/metrics", timeout=10)
    page.raise_for_status()
    names: set[str] = set()
    for family in text_string_to_metric_families(page.text):
        names.update(family.name + suffix for suffix in SUFFIXES[family.type])
        names.update(sample.name for sample in family.samples)
    assert "alignbot_leader" in names and "alignbot_connector_stale" in names
    return names


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads: the identifiers left once strings, label
    matchers, ranges, label lists and Grafana variables are taken out, other than functions
    (followed by a parenthesis) and keywords."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    expr = re.sub(r"\$\{?\w+\}?", "", expr)
    expr = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", expr)
    expr = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", expr)
    found = re.findall(r"(?<![\w.:])([A-Za-z_:][\w:]*)\b(?!\s*\()", expr)
    return set(found) - PROMQL_WORDS


def dashboard_queries(dashboard: dict) -> dict[str, str]:
    """{panel title: PromQL} for every query of every panel, in rows or not."""
    queries = {}
    for panel in dashboard["panels"]:
        for inner in [panel, *panel.get("panels", [])]:
            for target in inner.get("targets", []):
                queries[f"{inner['title']} ({target['refId']})"] = target["expr"]
    return queries


def alert_expressions(rules: dict) -> dict[str, str]:
    return {rule["alert"]: rule["expr"] for group in rules["groups"] for rule in group["rules"]}


def unknown_metrics(queries: dict[str, str], exported: set[str]) -> dict[str, list[str]]:
    unknown = {where: sorted(metric_names(expr) - exported) for where, expr in queries.items()}
    return {where: names for where, names in unknown.items() if names}


def test_metric_names_come_out_of_promql_and_nothing_else():
    assert metric_names(
        'histogram_quantile(0.95, sum by (le, connector) (rate('
        'alignbot_connector_poll_seconds_bucket{connector=~"p.*", le!="1e3"}[$__rate_interval])))'
    ) == {"alignbot_connector_poll_seconds_bucket"}
    assert metric_names("time() - max by (connector) (a_seconds) > 7200 or absent(b) "
                        "unless on (x) group_left (y) c offset 5m") == {"a_seconds", "b", "c"}
    assert metric_names("sum(alignbot_leader) < 1 or absent(alignbot_leader)") == {
        "alignbot_leader"}


def test_the_dashboard_and_the_alerts_read_only_exported_metrics(exported):
    dashboard = json.loads(DASHBOARD.read_text())
    rules = yaml.safe_load(ALERTS.read_text())
    queries = {**dashboard_queries(dashboard),
               **{f"alert {k}": v for k, v in alert_expressions(rules).items()}}
    assert len(queries) > 20
    assert unknown_metrics(queries, exported) == {}
    # and every name the brief promises an operator is there
    used = set().union(*map(metric_names, queries.values()))
    assert {"alignbot_open_recommendations", "alignbot_time_to_decision_seconds_bucket",
            "alignbot_executions_total", "alignbot_outbox_oldest_pending_age_seconds",
            "alignbot_connector_stale", "alignbot_slack_api_ratelimited_total",
            "alignbot_leader"} <= used


def test_a_misspelt_metric_name_is_caught(exported):
    rules = yaml.safe_load(ALERTS.read_text())
    queries = alert_expressions(rules)
    queries["AlignbotNoLeader"] = queries["AlignbotNoLeader"].replace(
        "sum(alignbot_leader)", "sum(alignbot_leaders)")
    queries["AlignbotConnectorStale"] = "max by (connector) (alignbot_connector_stale_total) == 1"
    assert unknown_metrics(queries, exported) == {
        "AlignbotNoLeader": ["alignbot_leaders"],
        "AlignbotConnectorStale": ["alignbot_connector_stale_total"],  # a gauge has no _total
    }


def test_the_dashboard_is_one_grafana_can_import():
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] == "alignbot" and dashboard["schemaVersion"] >= 36
    (variable,) = dashboard["templating"]["list"]
    assert (variable["name"], variable["type"], variable["query"]) == (
        "datasource", "datasource", "prometheus")
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        box = panel["gridPos"]
        assert box["x"] + box["w"] <= 24, panel["title"]
        if panel["type"] != "row":
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
            assert panel["targets"] and panel["description"], panel["title"]
            assert all(t["datasource"] == panel["datasource"] for t in panel["targets"])


def test_the_dashboard_queries_are_valid_promql(promtool, tmp_path):
    """promtool has no query checker; as recording rules, the queries are parsed by it."""
    dashboard = json.loads(DASHBOARD.read_text())
    rules = [{"record": f"dashboard:query_{n}", "expr": expr.replace("$__rate_interval", "5m")}
             for n, expr in enumerate(dashboard_queries(dashboard).values())]
    path = tmp_path / "dashboard_queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    done = _run([promtool, "check", "rules", str(path)])
    assert done.returncode == 0, done.stdout + done.stderr


def test_promtool_accepts_the_alert_rules(promtool):
    done = _run([promtool, "check", "rules", str(ALERTS)])
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_each_alert_can_be_acted_on():
    rules = yaml.safe_load(ALERTS.read_text())["groups"][0]["rules"]
    names = {rule["alert"] for rule in rules}
    assert {"AlignbotConnectorStale", "AlignbotOutboxStuck", "AlignbotExecutionsFailing",
            "AlignbotNoLeader"} <= names
    for rule in rules:
        assert re.fullmatch(r"\d+[smh]", rule["for"]), rule["alert"]
        assert rule["labels"]["severity"] in {"critical", "warning"}, rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]
        assert len(rule["annotations"]["description"]) > 150, rule["alert"]  # what to check


def test_the_alerts_fire_when_they_should_and_only_then(promtool, tmp_path):
    """tests/ops/alerts_test.yml's scenarios against the real rules; the descriptions are left
    out (promtool compares annotations whole), the summaries are checked as rendered."""
    rules = yaml.safe_load(ALERTS.read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            del rule["annotations"]["description"]
    (tmp_path / "alerts.yml").write_text(yaml.safe_dump(rules))
    shutil.copy(ALERT_SCENARIOS, tmp_path / "alerts_test.yml")
    done = _run([promtool, "test", "rules", "alerts_test.yml"], cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    # every alert has a scenario
    scenarios = yaml.safe_load(ALERT_SCENARIOS.read_text())["tests"]
    tested = {case["alertname"] for s in scenarios for case in s["alert_rule_test"]}
    assert tested == set(alert_expressions(yaml.safe_load(ALERTS.read_text())))


def _run(args: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=60, cwd=cwd)
