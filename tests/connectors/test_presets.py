"""Connector presets for systems people run: SAP IBP's planning data API (OData V2) and project44's
truckload notifications — hand-written fixtures in the vendors' documented shapes, the sandbox
serving those shapes, and a detection pass over what was read."""

from __future__ import annotations

import json
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import typer
import yaml
from sqlmodel import select
from starlette.applications import Starlette
from starlette.routing import Route
from typer.testing import CliRunner

from bot.hooks import sign, webhook_endpoint
from bot.loop import DecisionLoop
from canonical.model import Action, DemandRecord
from connectors.presets import (
    PRESETS,
    PushSettings,
    connectors_app,
    expand,
    parse_push,
    push_payloads,
)
from connectors.registry import build_connector, validate_settings
from connectors.rest import RestConnector, RestSettings
from sandbox.serving import BackgroundServer
from sandbox.systems.vendors import (
    IBP_PASSWORD,
    IBP_SERVICE,
    IBP_USER,
    project44_notification,
)
from store.db import make_engine, session_scope
from store.tables import RecommendationRow
from tests.support.builders import config

FIXTURES = Path(__file__).parent / "fixtures"
SECRET = "whsec-presets-0123456789"


def _fixture(name: str):
    return json.loads((FIXTURES / name).read_text())


# --- the presets as configuration ---------------------------------------------------------------


def _alignbot(*args: str):
    """``alignbot connectors ...`` as bot/cli.py registers it (a sub-app)."""
    app = typer.Typer()
    app.add_typer(connectors_app, name="connectors")
    app.command("other")(lambda: None)
    return CliRunner().invoke(app, ["connectors", *args])


def test_presets_are_listed_and_each_block_is_a_valid_connector() -> None:
    listed = _alignbot("presets")
    assert listed.exit_code == 0, listed.output
    assert "sap_ibp" in listed.stdout and "project44" in listed.stdout
    as_json = json.loads(_alignbot("presets", "--json").stdout)
    assert {p["name"] for p in as_json} == set(PRESETS)
    assert all(p["docs"] and all(d.startswith("https://") for d in p["docs"]) for p in as_json)
    for name in PRESETS:
        block = _alignbot("presets", name)
        assert block.exit_code == 0 and "# docs: https://" in block.stdout
        (entry,) = yaml.safe_load(block.stdout)["connectors"]
        assert validate_settings(entry["kind"], entry["settings"],
                                 list(entry.get("secrets", {}))) == []
    assert _alignbot("presets", "nope").exit_code == 2


@pytest.mark.parametrize("kind,settings,secrets,expected", [
    ("rest", {"preset": "sap_ibp"}, [],
     ["settings.base_url: preset sap_ibp needs it", "settings.auth.username: preset sap_ibp",
      "settings.auth.password: preset sap_ibp"]),
    ("rest", {"preset": "sap_ibp", "base_url": "https://ibp.example.com",
              "auth": {"username": "U"}}, ["auth.password"], []),
    ("csv", {"preset": "sap_ibp"}, [], ["settings.preset: preset sap_ibp configures a rest "
                                        "connector; set kind: rest"]),
    ("rest", {"preset": "sap_ipb"}, [], ["settings.preset: unknown preset 'sap_ipb'"]),
    ("rest", {"preset": "project44", "push": {"payload": "fourkites"}}, [],
     ["settings.push.payload: Input should be 'canonical' or 'project44_tl'"]),
    ("rest", {"preset": "sap_ibp", "base_url": "https://ibp.example.com",
              "auth": {"username": "U"}, "demand": {"feilds": {}}}, ["auth.password"],
     ["settings.demand.feilds: Extra inputs are not permitted"]),
    ("rest", {"base_url": "ibp.example.com"}, [], ["settings.base_url: 'ibp.example.com' is not "
                                                   "an absolute http(s) URL"]),
])
def test_config_check_names_what_is_wrong_with_a_preset(kind, settings, secrets, expected):
    problems = validate_settings(kind, settings, secrets)
    assert len(problems) == len(expected), problems
    assert all(p.startswith(e) for p, e in zip(problems, expected)), problems


def test_own_settings_lie_over_the_preset_key_by_key() -> None:
    values = expand("rest", {"preset": "sap_ibp", "base_url": "https://h",
                             "demand": {"path": "/ZAREA", "fields": {"latest_qty": "ZSENSED"}}})
    assert values["demand"]["path"] == "/ZAREA"
    assert values["demand"]["fields"] == {**PRESETS["sap_ibp"].settings["demand"]["fields"],
                                          "latest_qty": "ZSENSED"}
    assert values["demand"]["records_path"] == "d.results"  # the rest of the preset stays
    assert "preset" not in values


# --- SAP IBP: OData V2 ----------------------------------------------------------------------------


def test_ibp_fixture_pages_by_skiptoken_and_maps_key_figures_to_demand() -> None:
    """The documented shape: d.results, __next with $skiptoken, /Date(ms)/ and decimal strings;
    a key figure IBP leaves null is quarantined, not read as 0."""
    pages = [_fixture("sap_ibp_planning_data_page1.json"),
             _fixture("sap_ibp_planning_data_page2.json")]
    seen: list[httpx.URL] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.url)
        assert request.headers["authorization"].startswith("Basic ")
        return httpx.Response(200, json=pages[len(seen) - 1])

    values = expand("rest", {"preset": "sap_ibp", "auth": {"username": "U", "password": "p"},
                             "base_url": f"https://my-ibp-api.example.com{IBP_SERVICE}"})
    today = lambda: datetime(2026, 11, 25, 9, 30, tzinfo=UTC)  # noqa: E731
    conn = RestConnector("ibp", RestSettings.model_validate(values), httpx.MockTransport(answer),
                         clock=today)
    result = conn.read()
    first = seen[0].params
    assert first["$select"] == "PRDID,LOCID,PERIODID4_TSTAMP,CONSENSUSDEMAND,DEMANDPLANNINGQTY"
    assert first["$filter"] == ("PERIODID4_TSTAMP ge datetime'2026-11-18T00:00:00' and "
                                "PERIODID4_TSTAMP lt datetime'2027-02-24T00:00:00'")
    assert first["$format"] == "json" and "limit" not in first
    assert seen[1].params["$skiptoken"] == "2"
    assert result.records == [
        DemandRecord(sku="SKU-10042", location="DC-DAL", period=date(2026, 11, 23),
                     planned_qty=1000, latest_qty=1450, source="sap_ibp"),
        DemandRecord(sku="SKU-10077", location="DC-DAL", period=date(2026, 11, 23),
                     planned_qty=240, latest_qty=236.5, source="sap_ibp")]
    (bad,) = result.quarantined
    assert bad.position == "page 1 item 1" and "latest_qty" in bad.reason
    refused = conn.execute(Action(system="planning", operation="update_forecast", params={},
                                  idempotency_key="k"))
    assert refused.status == "rejected" and "read-only" in refused.detail


def _ibp(planning, **settings):
    return {"name": "ibp", "kind": "rest", "system": "planning",
            "secrets": {"auth.password": "IBP_PASSWORD"},
            "settings": {"preset": "sap_ibp", "base_url": planning.url + IBP_SERVICE,
                         "auth": {"username": IBP_USER}, **settings}}


def test_ibp_from_the_sandbox_into_a_detection_pass(db_url, sandboxes) -> None:
    """The sandbox serves the demand plan as IBP key figures (Basic auth, $select, $filter,
    500 rows a page); the preset reads all of it, and a demand spike in the plan becomes a
    demand_change recommendation."""
    planning, tms = sandboxes
    requests: list[httpx.Request] = []
    network = httpx.HTTPTransport()

    def recorded(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return network.handle_request(request)

    ibp = _ibp(planning, demand={"fields": {"unit_value": "SALESFCSTPRICE"}})
    cfg = config(connectors=[
        ibp,
        {"name": "stock", "kind": "rest", "system": "planning",
         "settings": {"base_url": planning.url, "inventory": {}}},
        {"name": "tms", "kind": "rest", "system": "logistics",
         "settings": {"base_url": tms.url, "shipments": {}, "capacity": {}, "lanes": {}}},
    ])
    connectors = {c.name: build_connector(c.name, c.kind, c.settings,
                                          {"auth.password": IBP_PASSWORD} if c.name == "ibp"
                                          else {}, timeout=10,
                                          transport=httpx.MockTransport(recorded)
                                          if c.name == "ibp" else None)
                  for c in cfg.connectors}
    result = connectors["ibp"].read()
    demand = planning.world.tables["demand"]
    assert result.quarantined == [] and len(result.records) == len(demand)
    assert {(r.sku, r.location, r.period.isoformat(), r.planned_qty, r.latest_qty, r.unit_value)
            for r in result.records} == {
        (d["sku"], d["location"], d["period"], d["planned_qty"], d["latest_qty"],
         d["unit_value"]) for d in demand.values()}
    pages = [r for r in requests if r.url.path.endswith("/SAPIBP1")]
    assert len(pages) == -(-len(demand) // 500)  # every page, by $skiptoken
    assert all("$skiptoken" in r.url.params for r in pages[1:])

    injected = httpx.post(planning.url + "/scenario/step", timeout=5).json()["injected"]
    spike = next(d for d in injected if d["kind"] == "demand_spike")
    loop = DecisionLoop(cfg, make_engine(db_url), connectors)
    for name in ("ibp", "stock", "tms"):
        assert loop.poll(name).ok
    loop.detect()
    with session_scope(loop.engine) as s:
        recs = s.exec(select(RecommendationRow).where(RecommendationRow.state == "open",
                                                      RecommendationRow.kind == "demand_change")
                      ).all()
    assert recs, "the spike read from IBP must be recommended on"
    text = " ".join(json.dumps(r.body) for r in recs)
    assert spike["location"] in text and any(sku in text for sku in spike["skus"])


def test_ibp_sandbox_refuses_what_the_service_refuses(sandboxes) -> None:
    planning, _ = sandboxes
    area = planning.url + IBP_SERVICE + "/SAPIBP1"
    auth = (IBP_USER, IBP_PASSWORD)
    assert httpx.get(area, params={"$format": "json", "$select": "PRDID"}).status_code == 401
    no_select = httpx.get(area, params={"$format": "json"}, auth=auth)
    assert no_select.status_code == 400 and "$select" in no_select.json()["error"]["message"][
        "value"]
    wrong = build_connector("ibp", "rest", _ibp(planning)["settings"],
                            {"auth.password": "wrong"}, timeout=5)
    with pytest.raises(Exception, match="401"):
        wrong.read()


# --- project44: truckload notifications pushed to /hooks ------------------------------------------


def test_project44_fixture_maps_to_a_late_shipment_event() -> None:
    push = PushSettings(payload="project44_tl")
    pushed = parse_push(push, _fixture("project44_tl_notification.json"), "webhook:p44")
    (event,) = pushed.records
    assert (event.shipment_id, event.status, event.status_code, event.carrier) == (
        "SHP-10003", "delayed", "IN_TRANSIT", "BLWY")
    assert event.event_time == datetime(2026, 11, 18, 11, 48, 2, tzinfo=UTC)
    # the window's end, a wall time at the stop: New York, EST (UTC-5)
    assert event.eta == datetime(2026, 11, 20, 21, 0, tzinfo=UTC)
    assert event.reason_code == "IN_MOTION" and event.reference["arrival_code"] == "LATE"
    early = parse_push(PushSettings(payload="project44_tl", eta="window_start"),
                       _fixture("project44_tl_notification.json"), "w").records[0]
    assert early.eta == datetime(2026, 11, 20, 19, 0, tzinfo=UTC)
    by_order = parse_push(PushSettings(payload="project44_tl", shipment_id_types=["ORDER"]),
                          _fixture("project44_tl_notification.json"), "w").records[0]
    assert by_order.shipment_id == "PO-77812"


@pytest.mark.parametrize("change,outcome", [
    ({"statusCode": "COMPLETED"}, ("record", "delivered")),
    ({"statusCode": "AT_STOP", "stopNumber": 2}, ("record", "arrived")),
    ({"statusCode": "AT_STOP", "stopNumber": 1}, ("record", "delayed")),  # at pickup, late
    ({"statusCode": "CANCELED"}, ("record", "exception")),
    ({"statusCode": "DISPATCHED"}, ("skipped", "says nothing about the shipment's movement")),
    ({"statusCode": "TELEPORTED"}, ("quarantined", "is not a truckload status")),
    ({"timestamp": "2026-11-18T06:48:02"}, ("quarantined", "has no zone")),
])
def test_project44_statuses(change, outcome) -> None:
    body = _fixture("project44_tl_notification.json")
    body["latestStatusUpdate"].update(change)
    pushed = parse_push(PushSettings(payload="project44_tl"), body, "w")
    kind, expected = outcome
    if kind == "record":
        assert pushed.records[0].status == expected
    else:
        (item,) = getattr(pushed, kind)
        assert expected in item.reason and item.position == "notification #0"


def test_project44_without_a_known_identifier_says_which_to_configure() -> None:
    body = _fixture("project44_tl_notification.json")
    body["shipment"]["shipmentIdentifiers"] = [{"type": "PRO", "value": "123"}]
    pushed = parse_push(PushSettings(payload="project44_tl", shipment_id_types=["ORDER"]),
                        [body, body], "w")
    assert [q.position for q in pushed.quarantined] == ["notification #0", "notification #1"]
    assert "no shipment identifier of type ORDER (it has PRO)" in pushed.quarantined[0].reason
    with pytest.raises(ValueError, match="not a project44 truckload notification"):
        parse_push(PushSettings(payload="project44_tl"), {"records": []}, "w")


def test_project44_push_from_the_sandbox_reaches_a_recommendation(db_url, sandboxes) -> None:
    """project44 predicts SHP-10003 three days late before the TMS knows: its native body,
    signed, at /hooks/p44 (a connector with the project44 preset) becomes a delayed shipment
    event, and the pass recommends on it at once."""
    planning, tms = sandboxes
    cfg = config(connectors=[
        {"name": "plan", "kind": "rest", "system": "planning",
         "settings": {"base_url": planning.url, "demand": {}, "inventory": {}}},
        {"name": "tms", "kind": "rest", "system": "logistics",
         "settings": {"base_url": tms.url, "shipments": {}, "capacity": {}, "lanes": {}}},
        {"name": "p44", "kind": "rest", "system": "logistics", "executes": False,
         "webhook_secret_env": "P44_HOOK", "settings": {"preset": "project44"}},
    ])
    connectors = {c.name: build_connector(c.name, c.kind, c.settings, {}, timeout=5)
                  for c in cfg.connectors}
    loop = DecisionLoop(cfg, make_engine(db_url), connectors)
    for name in ("plan", "tms", "p44"):  # what is late already is recommended on before the push
        assert loop.poll_and_detect(name).ok  # p44 reads nothing: the pushes are its data
    shipment = tms.world.tables["shipments"][("SHP-10003",)]
    late = datetime.fromisoformat(shipment["planned_arrival"].replace("Z", "+00:00")) \
        + timedelta(days=3)
    created: list[int] = []

    def accept(name, records, quarantined):
        report = loop.push(records)
        created.extend(report.created + [new for _old, new in report.superseded])

    payloads = push_payloads(cfg.connectors)
    assert set(payloads) == {"p44"}
    app = Starlette(routes=[Route("/hooks/{connector}", webhook_endpoint(
        {"p44": SECRET, "tms": SECRET}, accept, payloads=payloads), methods=["POST"])])
    body = json.dumps(project44_notification(tms.world, "SHP-10003", eta=late)).encode()
    dispatched = json.dumps(project44_notification(tms.world, "SHP-10003",
                                                   status_code="DISPATCHED")).encode()
    with BackgroundServer(app) as server:
        def post(connector: str, content: bytes) -> httpx.Response:
            ts = str(int(time.time()))
            return httpx.post(f"{server.url}/hooks/{connector}", content=content, timeout=10,
                              headers={"X-Alignbot-Timestamp": ts, "Content-Type":
                                       "application/json",
                                       "X-Alignbot-Signature": sign(SECRET, ts, content)})

        # the canonical hook of another connector does not read project44's shape
        assert post("tms", body).status_code == 400
        skipped = post("p44", dispatched)
        assert skipped.status_code == 202 and skipped.json()["accepted"] == 0
        assert "says nothing" in skipped.json()["skipped"][0]["reason"]
        answer = post("p44", body)
        assert answer.status_code == 202, answer.text
        assert answer.json() == {"accepted": 1, "quarantined": []}
        deadline = time.monotonic() + 15
        while not created and time.monotonic() < deadline:
            time.sleep(0.05)
    assert created, "the pushed delay must be recommended on at once"
    with session_scope(loop.engine) as s:
        recs = [s.get(RecommendationRow, rec_id) for rec_id in created]
    assert [r.kind for r in recs if "SHP-10003" in json.dumps(r.body)] == ["disruption"]


def test_a_canonical_push_setting_keeps_the_records_body() -> None:
    cfg = config(connectors=[
        {"name": "tms", "kind": "rest", "system": "logistics", "webhook_secret_env": "T",
         "settings": {"base_url": "http://127.0.0.1:1", "push": {"payload": "canonical"}}}])
    assert push_payloads(cfg.connectors) == {}
    build_connector("tms", "rest", cfg.connectors[0].settings, {})  # push is not a REST setting
