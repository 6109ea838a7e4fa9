"""The sandbox planning system and TMS, driven over HTTP the way the bot and the demo use them."""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime

import httpx
import pytest

from canonical.model import (
    Action,
    CapacityRecord,
    DemandRecord,
    InventoryRecord,
    LaneRecord,
    ShipmentRecord,
)
from connectors.rest import EndpointSettings, RestConnector, RestSettings, RetrySettings
from sandbox.systems import CARRIERS, DCS, PLANTS, World, start_sandboxes

NOW = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
FAST = RetrySettings(max_attempts=2, timeout_seconds=5.0, backoff_base_seconds=0.01)


@pytest.fixture
def sandboxes():
    planning, tms = start_sandboxes(seed=3, now=NOW)
    yield planning, tms
    planning.stop()
    tms.stop()


@pytest.fixture
def client():
    with httpx.Client(timeout=10) as c:
        yield c


def planning_connector(url: str) -> RestConnector:
    settings = RestSettings(base_url=url, demand=EndpointSettings(), retry=FAST,
                            inventory=EndpointSettings(), capacity=EndpointSettings())
    return RestConnector("planning", settings, sleep=lambda s: None)


def tms_connector(url: str) -> RestConnector:
    settings = RestSettings(base_url=url, shipments=EndpointSettings(), retry=FAST,
                            capacity=EndpointSettings(), lanes=EndpointSettings())
    return RestConnector("tms", settings, sleep=lambda s: None)


def by_type(records: list) -> dict[type, list]:
    out: dict[type, list] = {}
    for r in records:
        out.setdefault(type(r), []).append(r)
    return out


def test_same_seed_same_world_other_seed_other_world():
    def content(world: World) -> dict:
        return {t: {k: {f: v for f, v in row.items() if f != "updated_at"}
                    for k, row in rows.items()} for t, rows in world.tables.items()}

    assert content(World(seed=5, now=NOW)) == content(World(seed=5, now=NOW))
    assert content(World(seed=5, now=NOW)) != content(World(seed=6, now=NOW))


def test_default_mapping_reads_every_entity_from_both_systems(sandboxes, client):
    planning, tms = sandboxes
    plan = planning_connector(planning.url).read()
    ship = tms_connector(tms.url).read()
    assert plan.quarantined == [] and ship.quarantined == []
    p, t = by_type(plan.records), by_type(ship.records)

    demand = p[DemandRecord]
    assert len(demand) == 300 * len(DCS) * 8
    assert {d.location for d in demand} == set(DCS)
    assert Counter(d.sku_class for d in demand if d.location == "DC-NJ"
                   and d.period == demand[0].period).keys() == {"A", "B", "C"}
    assert all(d.unit_value > 0 for d in demand)
    assert {i.location for i in p[InventoryRecord]} == set(DCS) | set(PLANTS)
    assert {c.resource_type for c in p[CapacityRecord]} == {"site"}

    shipments = t[ShipmentRecord]
    assert len(shipments) == 48 and all(s.lines for s in shipments)
    assert Counter(s.status for s in shipments) == {"in_transit": 40, "planned": 8}
    assert all(s.eta > NOW for s in shipments if s.status == "in_transit")
    capacity = t[CapacityRecord]
    assert {c.resource_id for c in capacity if c.resource_type == "carrier"} == set(CARRIERS)
    lane_ids = {c.resource_id for c in capacity if c.resource_type == "lane"}
    assert {f"{p}>{d}" for p in PLANTS for d in DCS} <= lane_ids
    assert Counter(c.resource_id for c in capacity) == {r: 8 for r in set(CARRIERS) | lane_ids}
    assert all(c.available_capacity >= c.planned_load for c in capacity)  # no drift yet
    lanes = t[LaneRecord]
    assert {(plant, dc) for plant in PLANTS for dc in DCS} <= {(ln.origin, ln.destination)
                                                              for ln in lanes}
    assert {ln.carrier for ln in lanes} == set(CARRIERS)


def test_a_scenario_step_produces_all_three_drift_signals(sandboxes, client):
    planning, tms = sandboxes
    plan_conn, tms_conn = planning_connector(planning.url), tms_connector(tms.url)
    plan_cursor, tms_cursor = plan_conn.read().cursor, tms_conn.read().cursor

    step = client.post(tms.url + "/scenario/step").json()
    assert step["step"] == 1
    spike, delay, cut = step["injected"]
    assert [spike["kind"], delay["kind"], cut["kind"]] == [
        "demand_spike", "shipment_delay", "capacity_cut"]

    demand = by_type(plan_conn.read(plan_cursor).records)[DemandRecord]
    assert {d.sku for d in demand} == set(spike["skus"])
    assert all(d.location == spike["location"] and d.latest_qty >= 1.7 * d.planned_qty
               for d in demand)

    changed = by_type(tms_conn.read(tms_cursor).records)
    delayed = changed[ShipmentRecord]
    assert {s.shipment_id for s in delayed} == set(delay["shipments"]) and len(delayed) >= 2
    for s in delayed:
        assert s.status == "delayed" and s.exception_code == delay["exception_code"]
        assert s.eta > s.planned_arrival and (s.origin, s.carrier) == (delay["origin"],
                                                                       delay["carrier"])
    short = [c for c in changed[CapacityRecord] if c.resource_type == "carrier"]
    assert {c.resource_id for c in short} == {cut["carrier"]}
    assert {c.period.isoformat() for c in short} == set(cut["periods"])
    assert all(c.available_capacity < c.planned_load < c.planned_capacity for c in short)
    served = {f"{ln.origin}>{ln.destination}" for ln in changed[LaneRecord]}
    assert served and all(ln.carrier == cut["carrier"] for ln in changed[LaneRecord])
    lane_weeks = [c for c in changed[CapacityRecord] if c.resource_type == "lane"]
    assert {c.resource_id for c in lane_weeks} == served
    assert all(c.available_capacity < c.planned_capacity for c in lane_weeks)


def test_actions_change_what_the_next_poll_sees(sandboxes, client):
    planning, tms = sandboxes
    plan_conn, tms_conn = planning_connector(planning.url), tms_connector(tms.url)
    cursor = plan_conn.read().cursor
    spike = client.post(planning.url + "/scenario/step").json()["injected"][0]
    sku, period = spike["skus"][0], spike["periods"][0]
    spiked = next(d for d in by_type(plan_conn.read(cursor).records)[DemandRecord]
                  if (d.sku, d.period.isoformat()) == (sku, period))
    cursor = plan_conn.read(cursor).cursor
    result = plan_conn.execute(Action(
        system="planning", operation="update_forecast", idempotency_key="uf-1",
        params={"sku": sku, "location": spike["location"], "period": period,
                "qty": spiked.latest_qty}))
    assert result.status == "done"
    [replanned] = plan_conn.read(cursor).records
    assert replanned.planned_qty == replanned.latest_qty == spiked.latest_qty

    cut = client.post(tms.url + "/scenario/step").json()["injected"][2]
    week = cut["periods"][0]
    caps = {c.resource_id: c for c in by_type(tms_conn.read().records)[CapacityRecord]
            if c.period.isoformat() == week and c.resource_type == "carrier"}
    short = caps[cut["carrier"]]
    excess = short.planned_load - short.available_capacity
    helper = max((c for c in caps.values() if c.resource_id != cut["carrier"]),
                 key=lambda c: c.available_capacity - c.planned_load)
    move = Action(system="logistics", operation="reassign_carrier", idempotency_key="rc-1",
                  params={"from_carrier": cut["carrier"], "to_carrier": helper.resource_id,
                          "period": week, "qty": excess})
    assert tms_conn.execute(move).status == "done"
    after = {c.resource_id: c for c in by_type(tms_conn.read().records)[CapacityRecord]
             if c.period.isoformat() == week and c.resource_type == "carrier"}
    assert after[cut["carrier"]].planned_load == short.available_capacity
    assert after[helper.resource_id].planned_load == helper.planned_load + excess

    too_much = move.model_copy(update={"idempotency_key": "rc-2",
                                       "params": {**move.params, "qty": 1e9}})
    refused = tms_conn.execute(too_much)
    assert refused.status == "rejected" and "free" in refused.detail

    shipment = by_type(tms_conn.read().records)[ShipmentRecord][0]
    moved = plan_conn.execute(Action(system="planning", operation="reschedule_receipt",
                                     idempotency_key="rr-1",
                                     params={"shipment_id": shipment.shipment_id,
                                             "new_date": "2026-12-04"}))
    assert moved.status == "done"
    receipts = client.get(planning.url + "/receipts", params={"limit": 5000}).json()["items"]
    assert {r["expected_date"] for r in receipts
            if r["shipment_id"] == shipment.shipment_id} == {"2026-12-04"}


def test_an_idempotency_key_reused_for_another_action_is_refused(sandboxes, client):
    planning, _ = sandboxes
    body = {"operation": "update_safety_stock",
            "params": {"sku": "SKU-00001", "location": "DC-NJ", "safety_stock": 10}}
    first = client.post(planning.url + "/actions", json=body, headers={"Idempotency-Key": "s"})
    assert first.status_code == 200 and first.json()["duplicate"] is False
    again = client.post(planning.url + "/actions", json=body, headers={"Idempotency-Key": "s"})
    assert again.status_code == 200 and again.json()["duplicate"] is True
    other = {**body, "params": {**body["params"], "safety_stock": 99}}
    assert client.post(planning.url + "/actions", json=other,
                       headers={"Idempotency-Key": "s"}).status_code == 422
    assert client.post(planning.url + "/actions", json=body).status_code == 400  # no key
    received = client.get(planning.url + "/received").json()
    assert (received["attempts"], received["applied"]) == (3, 1)


def test_paging_styles_agree_and_a_row_changed_mid_read_is_not_lost(sandboxes, client):
    _, tms = sandboxes

    def follow(params: dict, mutate_after_first: bool = False) -> list[dict]:
        rows, url, query = [], tms.url + "/shipments", params
        while url:
            page = client.get(url, params=query).json()
            rows += page["items"]
            if mutate_after_first and len(rows) == len(page["items"]):
                client.post(tms.url + "/actions", headers={"Idempotency-Key": "mid-read"},
                            json={"operation": "expedite_shipment",
                                  "params": {"shipment_id": rows[0]["shipment_id"]}})
            url, query = page["next"], None
        return rows

    by_link = follow({"limit": 7})
    pages, page = [], 1
    while batch := client.get(tms.url + "/shipments",
                              params={"limit": 7, "page": page}).json()["items"]:
        pages += batch
        page += 1
    assert [r["shipment_id"] for r in pages] == [r["shipment_id"] for r in by_link]
    assert len(by_link) == 48

    during = follow({"limit": 7}, mutate_after_first=True)
    first = during[0]["shipment_id"]
    assert [r["shipment_id"] for r in during].count(first) == 2  # re-read with its new ETA
    assert during[-1]["eta"] < during[0]["eta"]


def test_a_row_changed_while_the_connector_pages_is_read_with_its_new_values(sandboxes, client):
    """The sandbox pages by update time, so a row changed mid-read comes again on a later page:
    the connector keeps that newer version (a demand spike landing during a read is not lost
    behind the cursor), and quarantines nothing."""
    _, tms = sandboxes
    first_page = client.get(tms.url + "/shipments", params={"limit": 7}).json()["items"]
    target = first_page[0]["shipment_id"]
    pages = 0

    def change_after_first_page(response: httpx.Response) -> None:
        nonlocal pages
        if response.request.url.path == "/shipments":
            pages += 1
            if pages == 1:
                client.post(tms.url + "/actions", headers={"Idempotency-Key": "mid-read-2"},
                            json={"operation": "expedite_shipment",
                                  "params": {"shipment_id": target}})

    settings = RestSettings(base_url=tms.url, retry=FAST,
                            shipments=EndpointSettings(pagination={"page_size": 7}))
    connector = RestConnector("tms", settings, sleep=lambda s: None)
    connector._client.event_hooks["response"].append(change_after_first_page)
    result = connector.read()
    shipments = [r for r in result.records if r.shipment_id == target]
    assert pages > 2 and result.quarantined == []
    assert len(shipments) == 1
    assert shipments[0].eta.isoformat().replace("+00:00", "Z")[:19] == \
        tms.world.tables["shipments"][(target,)]["eta"][:19]
    assert connector.read(result.cursor).records == []  # the cursor is past the change


def test_bad_query_parameters_are_explained(sandboxes, client):
    planning, _ = sandboxes
    naive = client.get(planning.url + "/demand", params={"updated_since": "2026-11-20T10:00"})
    assert naive.status_code == 400 and "zone" in naive.json()["error"]
    assert client.get(planning.url + "/demand", params={"limit": 0}).status_code == 400
    assert client.get(planning.url + "/demand", params={"after": "junk"}).status_code == 400


def test_fault_injection(sandboxes, client):
    planning, _ = sandboxes
    assert client.post(planning.url + "/scenario/faults",
                       json={"error_rate": 1.5}).status_code == 400
    client.post(planning.url + "/scenario/faults", json={"error_rate": 1.0})
    assert client.get(planning.url + "/demand").status_code == 500
    assert planning_connector(planning.url).health().ok is False
    client.post(planning.url + "/scenario/faults", json={"rate_limit_rate": 1.0,
                                                         "retry_after_seconds": 3})
    limited = client.get(planning.url + "/inventory")
    assert limited.status_code == 429 and limited.headers["Retry-After"] == "3"
    client.post(planning.url + "/scenario/faults", json={"error_rate": 0.3, "seed": 1})
    statuses = Counter(client.get(planning.url + "/health").status_code for _ in range(100))
    assert 15 <= statuses[500] <= 45 and statuses[200] == 100 - statuses[500]
    client.post(planning.url + "/scenario/faults", json={})
    assert planning_connector(planning.url).health().ok


def test_auto_step_advances_the_scenario_on_its_own(client):
    planning, tms = start_sandboxes(seed=1, auto_step_seconds=0.2, n_skus=30)
    try:
        time.sleep(0.5)
        state = client.get(tms.url + "/scenario").json()
        assert state["step"] >= 2
        assert {i["kind"] for i in state["injected"]} == {
            "demand_spike", "shipment_delay", "capacity_cut"}
    finally:
        planning.stop()
        tms.stop()
