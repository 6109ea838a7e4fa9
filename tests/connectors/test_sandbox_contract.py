"""Contract between the detectors and the sandbox systems: every action the detectors recommend
is one the sandbox planning system or TMS accepts, with the detectors' own parameter names,
applies once per idempotency key, and changes what the next poll reads.

The sandboxes stand in for the customer's systems, so an action they refuse here is an action
an approver would see fail in Slack.
"""

from __future__ import annotations

import ast
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from canonical.model import Action, DriftKind, Recommendation, action_key
from connectors.base import Connector
from connectors.registry import build_connector
from detectors.pipeline import DetectionResult, detect
from detectors.settings import DetectorSettings
from detectors.snapshot import snapshot_from_records
from sandbox.systems import planning as planning_module
from sandbox.systems import start_sandboxes
from sandbox.systems import tms as tms_module
from sandbox.systems._world import parse_ts, ts

RECOMMEND = Path(__file__).resolve().parents[2] / "detectors" / "recommend.py"
NOW = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
OPERATIONS = {"planning": planning_module.OPERATIONS, "logistics": tms_module.OPERATIONS}


class Systems:
    """Both sandboxes, read and driven the way the bot does: REST connectors, default mapping."""

    def __init__(self, seed: int, client: httpx.Client, now: datetime | None = None):
        self.planning, self.tms = start_sandboxes(seed=seed, now=now)
        self.fixed = now is not None
        self.world = self.planning.world
        self.client = client
        self.plan = build_connector("plan", "rest", {"base_url": self.planning.url, "demand": {},
                                                     "inventory": {}}, {}, timeout=15)
        self.log = build_connector("tms", "rest", {"base_url": self.tms.url, "shipments": {},
                                                   "capacity": {}, "lanes": {}}, {},
                                   timeout=15)

    def stop(self) -> None:
        self.planning.stop()
        self.tms.stop()

    def step(self) -> dict[str, Any]:
        response = self.client.post(self.tms.url + "/scenario/step")
        assert response.status_code == 200
        return response.json()

    def detect(self) -> DetectionResult:
        plan, log = self.plan.read(), self.log.read()
        assert plan.quarantined == [] and log.quarantined == []
        snapshot = snapshot_from_records(plan.records + log.records)
        # a world started at a fixed time is read at its scenario clock, else at the real time
        now = self.world.clock() if self.fixed else datetime.now(UTC)
        return detect(snapshot, DetectorSettings(), now=now)

    def connector(self, action: Action) -> Connector:
        return self.plan if action.system == "planning" else self.log

    def server_url(self, action: Action) -> str:
        return self.planning.url if action.system == "planning" else self.tms.url

    def received(self, url: str) -> dict[str, Any]:
        return self.client.get(url + "/received").json()

    def rows(self, url: str, path: str) -> list[dict[str, Any]]:
        """Every row of a collection, following its next links."""
        items, link, params = [], url + path, {"limit": 5000}
        while link:
            page = self.client.get(link, params=params).json()
            items += page["items"]
            link, params = page["next"], None
        return items


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=15) as c:
        yield c


@pytest.fixture
def systems(client) -> Iterator[Systems]:
    s = Systems(7, client)
    yield s
    s.stop()


@pytest.fixture
def fixed_systems(client, request) -> Iterator[Systems]:
    """Seed 7 at a fixed scenario time, so hand-made drifts meet the same calendar every run."""
    s = Systems(7, client, now=getattr(request, "param", NOW))
    yield s
    s.stop()


def execute_all(systems: Systems, recommendations: list[Recommendation], run: str
                ) -> list[tuple[Action, str]]:
    """Execute every action of every recommendation once; return (action, key) in order.

    A change already made under the same business key (recommended again in a later step of
    ``run``, before anything re-read the systems) is answered as a duplicate, not applied again.
    """
    done = []
    for rec in recommendations:
        for proposed in rec.actions:
            action = Action(system=proposed.system, operation=proposed.operation,
                            params=proposed.params, idempotency_key=action_key(proposed))
            result = systems.connector(action).execute(action)
            assert result.ok and result.status in ("done", "duplicate"), (
                f"{rec.kind.value} recommendation {rec.summary!r}: {action.system} refused "
                f"{action.operation} {action.params}: {result.detail}")
            done.append((action, action.idempotency_key))
    return done


def by_kind(result: DetectionResult, kind: DriftKind) -> list:
    return [d for d in result.drifts if d.kind is kind]


# --- the vocabulary ---------------------------------------------------------------------------


def emitted_operations() -> set[tuple[str, str]]:
    """(system, operation) of every ``Action`` the recommender constructs, read from its source."""
    found = set()
    for node in ast.walk(ast.parse(RECOMMEND.read_text())):
        if not isinstance(node, ast.Call):
            continue
        name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(
            node.func, "id", "")
        owner = node.func.value.id if isinstance(node.func, ast.Attribute) and isinstance(
            node.func.value, ast.Name) else name
        if owner != "Action":
            continue
        kw = {k.arg: k.value for k in node.keywords}
        if isinstance(kw.get("system"), ast.Constant) and isinstance(kw.get("operation"),
                                                                     ast.Constant):
            found.add((kw["system"].value, kw["operation"].value))
    return found


def test_every_operation_the_detectors_emit_has_a_handler_in_its_system():
    emitted = emitted_operations()
    assert len(emitted) >= 11, emitted  # the parser still sees the recommender's actions
    missing = sorted((system, op) for system, op in emitted if op not in OPERATIONS[system])
    assert missing == [], f"the sandbox would answer 422 'does not support' for {missing}"


# --- the scenario, end to end -----------------------------------------------------------------


@pytest.mark.parametrize("seed", [7, 1, 2, 3, 4, 5])
def test_every_recommended_action_is_accepted_and_applied_once(seed, client):
    systems = Systems(seed, client)
    try:
        seen: Counter[str] = Counter()
        executed: list[tuple[Action, str]] = []
        for step in (1, 2, 3):
            systems.step()
            result = systems.detect()
            assert result.recommendations, f"step {step}: the scenario produced no drift"
            batch = execute_all(systems, result.recommendations, f"seed{seed}-step{step}")
            seen.update(a.operation for a, _ in batch)
            executed += batch

        # the executor retries after a lost answer: the same key is a duplicate, applied once
        for action, _key in executed:
            again = systems.connector(action).execute(action)
            assert (again.ok, again.status) == (True, "duplicate"), again.detail
        for url, system in ((systems.planning.url, "planning"), (systems.tms.url, "logistics")):
            mine = Counter(k for a, k in executed if a.system == system)
            ledger = {e["idempotency_key"]: e for e in systems.received(url)["actions"]}
            assert set(ledger) == set(mine)
            assert all((ledger[k]["attempts"], ledger[k]["applied"], ledger[k]["status"])
                       == (2 * sent, 1, "done") for k, sent in mine.items())
        # every step's drift kinds produced actions of each side
        assert {"update_forecast", "reschedule_receipt", "reassign_carrier"} <= set(seen)
    finally:
        systems.stop()


def test_a_demand_spike_is_closed_by_executing_its_recommendation(systems):
    spike = systems.step()["injected"][0]
    assert spike["kind"] == "demand_spike"
    before = systems.detect()
    spiked = {(d.key["sku"], d.key["location"], d.key["period"])
              for d in by_kind(before, DriftKind.DEMAND_CHANGE)
              if d.key["sku"] in spike["skus"] and d.key["location"] == spike["location"]}
    assert spiked, "the spike must show up as demand_change drift"
    recs = [r for r in before.recommendations if r.kind is DriftKind.DEMAND_CHANGE
            and r.cause.get("location") == spike["location"]]
    executed = execute_all(systems, recs, "spike")

    after = systems.detect()
    still = {(d.key["sku"], d.key["location"], d.key["period"])
             for d in by_kind(after, DriftKind.DEMAND_CHANGE)}
    assert spiked & still == set()  # the plan now follows the demand
    demand = {(r["sku"], r["location"], r["period"]): r
              for r in systems.rows(systems.planning.url, "/demand")}
    assert all(demand[k]["planned_qty"] == demand[k]["latest_qty"] for k in spiked)

    # the transfers exist in the TMS as planned shipments and in the plan as receipts
    transfers = [a for a, _ in executed if a.operation == "create_transfer"]
    shipments = {s["shipment_id"]: s for s in systems.rows(systems.tms.url, "/shipments")}
    created = [s for sid, s in shipments.items() if sid.startswith("TRF-")]
    assert len(created) == len(transfers)
    assert Counter((s["origin"], s["destination"], s["lines"][0]["sku"], s["lines"][0]["qty"])
                   for s in created) == Counter(
        (a.params["from"], a.params["to"], a.params["sku"], a.params["qty"]) for a in transfers)
    receipts = {r["shipment_id"] for r in systems.rows(systems.planning.url, "/receipts")}
    assert {s["shipment_id"] for s in created} <= receipts
    now = datetime.now(UTC)
    assert all(parse_ts(s["planned_ship"], "ship") > now for s in created)  # none in the past


def test_a_capacity_cut_shrinks_once_its_recommendation_is_executed(systems):
    cut = systems.step()["injected"][2]
    before = systems.detect()
    cuts = [d for d in by_kind(before, DriftKind.CAPACITY_SHIFT) if d.cause["direction"] == "cut"]
    assert cuts
    recs = [r for r in before.recommendations if r.kind is DriftKind.CAPACITY_SHIFT]
    execute_all(systems, recs, "cut")
    after = systems.detect()
    left = [d for d in by_kind(after, DriftKind.CAPACITY_SHIFT) if d.cause["direction"] == "cut"]
    def overflow(drifts) -> float:
        return sum(d.evidence["overflow"] for d in drifts)

    assert overflow(left) < 0.5 * overflow(cuts)
    carrier_left = [d for d in left if d.key["resource_id"] == cut["carrier"]]
    assert overflow(carrier_left) < overflow(
        [d for d in cuts if d.key["resource_id"] == cut["carrier"]])


def _rarer_drifts(systems: Systems) -> dict[str, Any]:
    """Drifts the scenario clock does not inject: demand falling below inbound not yet shipped,
    capacity growing, and a long delay of a SKU no location can spare."""
    w = systems.world
    with w.lock:
        planned = [r for r in w.tables["shipments"].values() if r["status"] == "planned"]
        drop, line = next((r, ln) for r in sorted(planned, key=lambda r: r["shipment_id"])
                          for ln in r["lines"] if w.sku_class[ln["sku"]] == "A")
        for monday in w.weeks[:2]:
            key = (line["sku"], drop["destination"], monday.isoformat())
            w.tables["demand"][key]["latest_qty"] = float(round(
                w.tables["demand"][key]["planned_qty"] * 0.3))
            w.touch("demand", key)
        grow = ("carrier", "BLUEWAY", w.weeks[1].isoformat())
        w.tables["capacity"][grow]["available_capacity"] *= 1.8
        w.touch("capacity", grow)
        late = next(r for r in sorted(w.tables["shipments"].values(),
                                      key=lambda r: r["shipment_id"])
                    if r["status"] == "in_transit")
        late.update(eta=ts(parse_ts(late["eta"], "eta") + timedelta(days=6)), status="delayed",
                    exception_code="WEATHER")
        w.touch("shipments", (late["shipment_id"],))
        for (sku, loc), inv in w.tables["inventory"].items():
            if sku in {ln["sku"] for ln in late["lines"]}:
                inv["on_hand"] = 0.0
                w.touch("inventory", (sku, loc))
    return {"drop": drop["shipment_id"], "sku": line["sku"], "qty": line["qty"], "grow": grow,
            "late": late["shipment_id"], "eta": late["eta"]}


@pytest.mark.parametrize("fixed_systems", [NOW, datetime(2026, 3, 2, 23, 0, tzinfo=UTC),
                                           datetime(2026, 6, 13, 14, 0, tzinfo=UTC)],
                         indirect=True, ids=["thu", "mon-night", "sat"])
def test_rarer_action_shapes_are_accepted_and_take_effect(fixed_systems):
    systems = fixed_systems
    made = _rarer_drifts(systems)
    before = systems.detect()
    executed = execute_all(systems, before.recommendations, "rare")
    ops = {a.operation: a for a, _ in executed}
    assert {"reduce_inbound", "update_capacity_plan", "confirm_capacity", "expedite_shipment",
            "update_replenishment_plan", "request_status"} <= set(ops)

    shipments = {s["shipment_id"]: s for s in systems.rows(systems.tms.url, "/shipments")}
    cut = ops["reduce_inbound"].params
    assert cut["shipment_id"] == made["drop"]
    [line] = [ln for ln in shipments[made["drop"]]["lines"] if ln["sku"] == made["sku"]]
    assert line["qty"] == made["qty"] - cut["reduce_by"]
    receipts = systems.rows(systems.planning.url, "/receipts")
    assert [r["qty"] for r in receipts if (r["shipment_id"], r["sku"])
            == (made["drop"], made["sku"])] == [line["qty"]]

    # expedited as the mode allows (a day sooner by default), not back to its planned arrival
    (fast,) = [a.params for a, _ in executed if a.operation == "expedite_shipment"
               and a.params["shipment_id"] == made["late"]]
    late = shipments[made["late"]]
    assert parse_ts(late["eta"], "eta") == parse_ts(fast["target_arrival"], "target") \
        == parse_ts(made["eta"], "eta") - timedelta(days=1)

    replenish = [a.params for a, _ in executed if a.operation == "update_replenishment_plan"]
    orders = {(r["sku"], r["location"], r["qty"], r["expected_date"]) for r in receipts
              if r["shipment_id"].startswith("REP-")}
    assert orders == {(p["sku"], p["location"], p["qty"], p["need_by"]) for p in replenish}

    messages = systems.received(systems.tms.url)["messages"]
    assert {m["kind"] for m in messages} >= {"status_request", "capacity_confirmation"}
    asked = {a.params["shipment_id"] for a, _ in executed if a.operation == "request_status"}
    assert asked <= {m["shipment_id"] for m in messages if m["kind"] == "status_request"}
    fresh = systems.world.clock() - timedelta(minutes=5)  # scenario time
    assert all(parse_ts(shipments[s]["last_event_at"], "e") > fresh for s in asked)

    after = systems.detect()
    _type, rid, period = made["grow"]
    assert not [d for d in by_kind(after, DriftKind.CAPACITY_SHIFT)
                if (d.key["resource_id"], d.key["period"]) == (rid, period)]
    (was,) = [d for d in by_kind(before, DriftKind.DISRUPTION) if d.key["shipment_id"] == made["late"]]
    (still,) = [d for d in by_kind(after, DriftKind.DISRUPTION) if d.key["shipment_id"] == made["late"]]
    assert still.evidence["slip_hours"] == pytest.approx(was.evidence["slip_hours"] - 24)  # a day made up
    assert not [d for d in by_kind(after, DriftKind.DISRUPTION)
                if d.key["shipment_id"] in asked and "stopped_reporting" in d.evidence["reasons"]]


# --- validation: refused with a reason, never half-applied -------------------------------------


def _post(systems: Systems, url: str, key: str, operation: str, params: dict) -> httpx.Response:
    return systems.client.post(url + "/actions", headers={"Idempotency-Key": key},
                               json={"operation": operation, "params": params})


def _refusals(systems: Systems) -> list[tuple[str, str, dict, str]]:
    w = systems.world
    sku, loc, period = next(iter(w.tables["demand"]))
    planned_qty = w.tables["demand"][(sku, loc, period)]["planned_qty"]
    in_transit = next(r for r in w.tables["shipments"].values() if r["status"] == "in_transit")
    planned = next(r for r in w.tables["shipments"].values() if r["status"] == "planned")
    p_line = planned["lines"][0]
    week = w.weeks[1].isoformat()
    carrier_week = w.tables["capacity"][("carrier", "BLUEWAY", week)]
    single = next((o, d, c) for (o, d, c) in w.tables["lanes"]
                  if sum(1 for k in w.tables["lanes"] if k[:2] == (o, d)) == 1)
    other = next(c for c in ("NORTHLINE", "BLUEWAY", "SWIFTCARGO", "REDROUTE") if c != single[2])
    P, T = systems.planning.url, systems.tms.url
    return [
        (P, "update_forecast", {"sku": sku, "location": loc, "period": period,
                                "from_qty": planned_qty + 50, "to_qty": 10}, "computed for"),
        (P, "update_forecast", {"sku": sku, "location": loc, "period": period,
                                "to_qty": 10, "qty": 11}, "disagree"),
        (P, "update_forecast", {"sku": sku, "location": "DC-NOWHERE", "period": period,
                                "to_qty": 10}, "no demand plan"),
        (P, "reschedule_receipt", {"shipment_id": in_transit["shipment_id"],
                                   "to_date": "unknown"}, "not an ISO date-time"),
        (P, "reschedule_receipt", {"shipment_id": in_transit["shipment_id"],
                                   "location": "DC-ELSEWHERE", "to_date": "2026-12-04"},
         "is received at"),
        (P, "update_replenishment_plan", {"sku": sku, "location": loc, "qty": 5,
                                          "need_by": "2020-01-01"}, "in the past"),
        (P, "update_replenishment_plan", {"sku": sku, "location": loc, "qty": 0,
                                          "need_by": w.weeks[2].isoformat()}, "more than 0"),
        (P, "update_capacity_plan", {"resource_type": "dock", "resource_id": "DOCK-9",
                                     "period": week, "to_capacity": 5}, "no capacity plan"),
        (P, "update_capacity_plan", {"resource_type": "carrier", "resource_id": "BLUEWAY",
                                     "period": week, "from_capacity": 1, "to_capacity": 5},
         "computed for"),
        (P, "rephase_plan", {"resource_type": "carrier", "resource_id": "BLUEWAY",
                             "from_period": week, "to_period": week, "qty": 5}, "same week"),
        (P, "rephase_plan", {"resource_type": "carrier", "resource_id": "BLUEWAY",
                             "from_period": week, "to_period": w.weeks[2].isoformat(),
                             "qty": carrier_week["planned_load"] + 100}, "only"),
        (P, "rephase_plan", {"resource_type": "truck", "resource_id": "X", "from_period": week,
                             "to_period": None, "qty": 5}, "unknown resource_type"),
        (T, "reduce_inbound", {"shipment_id": in_transit["shipment_id"],
                               "sku": in_transit["lines"][0]["sku"], "reduce_by": 1},
         "not yet shipped"),
        (T, "reduce_inbound", {"shipment_id": planned["shipment_id"], "sku": p_line["sku"],
                               "reduce_by": p_line["qty"] + 1}, "carries only"),
        (T, "reduce_inbound", {"shipment_id": planned["shipment_id"], "sku": p_line["sku"],
                               "reduce_by": 1, "from_qty": p_line["qty"] + 7}, "computed for"),
        (T, "expedite_shipment", {"shipment_id": in_transit["shipment_id"],
                                  "carrier": "NOBODY"}, "moves with"),
        (T, "expedite_shipment", {"shipment_id": "SHP-00000"}, "no shipment"),
        (T, "request_status", {"shipment_id": "SHP-00000", "carrier": "BLUEWAY"}, "no shipment"),
        (T, "create_transfer", {"sku": sku, "from": "PLT-DAL", "origin": "PLT-CHI", "to": loc,
                                "qty": 1}, "disagree"),
        (T, "create_transfer", {"sku": sku, "from": single[0], "to": single[1], "qty": 1e9},
         "on hand"),
        (T, "reassign_carrier", {"from_carrier": "", "to_carrier": other, "origin": single[0],
                                 "destination": single[1], "period": week, "qty": 10},
         "does not serve"),
        (T, "reassign_carrier", {"from_carrier": single[2], "to_carrier": single[2],
                                 "origin": single[0], "destination": single[1], "period": week,
                                 "qty": 10}, "nothing to move"),
        (T, "reassign_carrier", {"from_carrier": "", "to_carrier": single[2],
                                 "origin": single[0], "destination": single[1], "period": week,
                                 "qty": 1e7}, "capacity left"),
        (T, "confirm_capacity", {"resource_type": "carrier", "resource_id": "BLUEWAY",
                                 "period": week, "qty": carrier_week["available_capacity"] + 1},
         "spare"),
    ]


def test_bad_actions_are_refused_with_a_reason_and_change_nothing(systems):
    def content() -> dict:
        return {t: {k: {f: v for f, v in row.items() if f != "updated_at"}
                    for k, row in rows.items()} for t, rows in systems.world.tables.items()}

    before = content()
    for n, (url, operation, params, reason) in enumerate(_refusals(systems)):
        response = _post(systems, url, f"bad-{n}", operation, params)
        assert response.status_code == 422, (operation, params, response.text)
        assert reason in response.json()["error"], (operation, params, response.json())
    assert content() == before


def test_detector_and_legacy_parameter_names_do_the_same(systems):
    w = systems.world
    sku, loc, period = next(iter(w.tables["demand"]))
    P, T = systems.planning.url, systems.tms.url
    assert _post(systems, P, "a", "update_forecast",
                 {"sku": sku, "location": loc, "period": period, "qty": 111}).status_code == 200
    assert _post(systems, P, "b", "update_forecast",
                 {"sku": sku, "location": loc, "period": period, "from_qty": 111,
                  "to_qty": 222}).status_code == 200
    assert w.tables["demand"][(sku, loc, period)]["planned_qty"] == 222

    origin, dest, _ = next(k for k in w.tables["lanes"] if k[0].startswith("PLT"))
    item = next(s for s in w.sku_class if (s, origin) in w.tables["inventory"])
    old = _post(systems, T, "c", "create_transfer",
                {"origin": origin, "destination": dest, "sku": item, "qty": 5}).json()
    new = _post(systems, T, "d", "create_transfer",
                {"from": origin, "to": dest, "sku": item, "qty": 5, "ship_date": "2020-01-01",
                 "arrive_by": "2099-01-01"}).json()
    assert old["carrier"] == new["carrier"] and new["on_time"] is True
    assert new["planned_ship"] >= old["planned_ship"]  # a date in the past ships now

    shipment = next(r for r in w.tables["shipments"].values() if r["status"] == "in_transit")
    line = shipment["lines"][0]
    expedite = _post(systems, T, "e", "expedite_shipment",
                     {"shipment_id": shipment["shipment_id"], "carrier": shipment["carrier"],
                      "sku": line["sku"], "qty": line["qty"]})
    assert expedite.status_code == 200
    assert expedite.json()["eta"] < expedite.json()["previous_eta"]

    moved = _post(systems, P, "f", "reschedule_receipt",
                  {"shipment_id": shipment["shipment_id"], "new_date": "2026-12-04"})
    assert moved.status_code == 200
    deferred = _post(systems, P, "g", "rephase_plan",
                     {"resource_type": "site", "resource_id": "PLT-DAL",
                      "from_period": w.weeks[0].isoformat(), "to_period": None, "qty": 10,
                      "note": "no capacity found within the planning horizon"})
    assert deferred.status_code == 200 and deferred.json()["to_period"] is None
    notes = systems.received(P)["messages"]
    assert [(m["kind"], m["resource_id"], m["qty"]) for m in notes] == [
        ("deferred_load", "PLT-DAL", 10)]
