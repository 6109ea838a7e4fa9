"""Real recommendations of every kind, from small snapshots run through the detectors.

Messages are tested on what the detectors actually say (summaries, options, figures), not on
hand-made bodies, so a change in either shows up here.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import polars as pl

from canonical.model import SNAPSHOT_SCHEMAS, Drift, Recommendation
from detectors import DetectorSettings, Snapshot, detect
from detectors.snapshot import OPTIONAL_DEFAULTS

MONDAY = datetime(2026, 11, 30, tzinfo=UTC)
WEEKS = [date(2026, 11, 30), date(2026, 12, 7)]
_SETTINGS = DetectorSettings.model_validate({"demand": {"default": {"absolute_units": 30}}})


def table(name: str, rows: list[dict]) -> pl.DataFrame:
    schema = SNAPSHOT_SCHEMAS[name]
    defaults = OPTIONAL_DEFAULTS[name]
    full = [{c: r.get(c, defaults.get(c)) for c in schema} for r in rows]
    frame = pl.DataFrame(full, schema=schema) if full else pl.DataFrame(schema=schema)
    if name == "capacity":
        frame = frame.with_columns(pl.col("planned_capacity").fill_null(pl.col("available_capacity")))
    return frame


def _demand(sku: str, location: str, planned: float, latest: float, value: float = 25.0):
    return [{"sku": sku, "location": location, "period": w, "planned_qty": planned,
             "latest_qty": latest, "unit_value": value} for w in WEEKS]


def demand_up() -> Snapshot:
    """DC-A sells 30 a day where the plan said 170 a week: 220 below safety stock; DC-C has
    stock two days away (a transfer, and the forecast raised: planning and logistics)."""
    return Snapshot(
        demand=table("demand", _demand("A", "DC-A", 170, 210) + _demand("A", "DC-C", 100, 100)),
        inventory=table("inventory", [
            {"sku": "A", "location": "DC-A", "on_hand": 300, "safety_stock": 100},
            {"sku": "A", "location": "DC-C", "on_hand": 2000, "safety_stock": 100}]),
        lanes=table("lanes", [{"origin": "DC-C", "destination": "DC-A", "carrier": "CARR-Z",
                               "cost_per_unit": 1, "capacity": 500, "transit_days": 2}]))


def demand_down() -> Snapshot:
    """Demand fell 90 a week: lower the forecast and cut a planned inbound shipment."""
    return Snapshot(
        demand=table("demand", _demand("A", "DC-A", 210, 120)),
        inventory=table("inventory", [
            {"sku": "A", "location": "DC-A", "on_hand": 300, "safety_stock": 100}]),
        shipments=table("shipments", [{
            "shipment_id": "P1", "origin": "PLANT", "destination": "DC-A", "carrier": "ACME",
            "sku": "A", "qty": 400, "planned_ship": MONDAY + timedelta(days=5),
            "planned_arrival": MONDAY + timedelta(days=7), "status": "planned"}]))


def late_shipment() -> Snapshot:
    """200 units due at DC-D in 2 days arrive 30 hours late: 12.5 below safety stock."""
    return Snapshot(
        demand=table("demand", [{"sku": "A", "location": "DC-D", "period": w, "planned_qty": 70,
                                 "latest_qty": 70, "unit_value": 10} for w in WEEKS]),
        inventory=table("inventory", [
            {"sku": "A", "location": "DC-D", "on_hand": 40, "safety_stock": 20}]),
        shipments=table("shipments", [{
            "shipment_id": "S1", "origin": "PLANT", "destination": "DC-D", "carrier": "ACME",
            "sku": "A", "qty": 200, "planned_ship": MONDAY - timedelta(days=1),
            "planned_arrival": MONDAY + timedelta(days=2),
            "eta": MONDAY + timedelta(days=2, hours=30), "status": "in_transit",
            "last_event_at": MONDAY - timedelta(hours=2)}]))


def stockout() -> Snapshot:
    """B at DC-B: 50 on hand, 10 a day, safety stock 30, nothing inbound."""
    return Snapshot(
        demand=table("demand", [{"sku": "B", "location": "DC-B", "period": w, "planned_qty": 70,
                                 "latest_qty": 70, "unit_value": 40} for w in WEEKS]),
        inventory=table("inventory", [
            {"sku": "B", "location": "DC-B", "on_hand": 50, "safety_stock": 30}]))


def capacity() -> Snapshot:
    """Carrier ACME cut from 100 to 60 with 90 planned; carrier FAST grew to 200 for 40."""
    week = WEEKS[0]

    def cap(rid, period, planned, available, load):
        return {"resource_type": "carrier", "resource_id": rid, "period": period,
                "planned_capacity": planned, "available_capacity": available,
                "planned_load": load}

    return Snapshot(
        capacity=table("capacity", [
            cap("ACME", week, 100, 60, 90), cap("ACME", WEEKS[1], 100, 100, 95),
            cap("ACME", date(2026, 12, 14), 100, 100, 0), cap("FAST", week, 50, 200, 40)]),
        shipments=table("shipments", [
            {"shipment_id": "S1", "origin": "PLANT", "destination": "DC1", "carrier": "ACME",
             "sku": "A", "qty": 60, "planned_ship": MONDAY + timedelta(days=1, hours=8),
             "planned_arrival": MONDAY + timedelta(days=3, hours=8)},
            {"shipment_id": "S2", "origin": "PLANT", "destination": "DC2", "carrier": "ACME",
             "sku": "B", "qty": 30, "planned_ship": MONDAY + timedelta(days=2, hours=8),
             "planned_arrival": MONDAY + timedelta(days=4, hours=8)}]),
        lanes=table("lanes", [
            {"origin": "PLANT", "destination": "DC1", "carrier": "OTHER", "cost_per_unit": 2.0,
             "capacity": 15},
            {"origin": "PLANT", "destination": "DC1", "carrier": "CHEAP", "cost_per_unit": 1.0,
             "capacity": 5}]),
        demand=table("demand", [
            {"sku": "A", "location": "DC1", "period": week, "planned_qty": 1, "latest_qty": 1,
             "unit_value": 10},
            {"sku": "B", "location": "DC2", "period": week, "planned_qty": 1, "latest_qty": 1,
             "unit_value": 40}]))


def _pick(snapshot: Snapshot, kind: str, settings: DetectorSettings = _SETTINGS,
          direction: str | None = None) -> tuple[list[Drift], Recommendation]:
    result = detect(snapshot, settings, MONDAY)
    (rec,) = [r for r in result.recommendations if r.kind.value == kind
              and (direction is None or r.cause.get("direction") == direction)]
    drifts = [d for d in result.drifts if d.fingerprint in rec.drift_fingerprints]
    return drifts, rec


# name → (drifts, recommendation): every message kind the detectors produce
SCENARIOS = {
    "demand up": lambda: _pick(demand_up(), "demand_change"),
    "demand down": lambda: _pick(demand_down(), "demand_change"),
    "late shipment": lambda: _pick(late_shipment(), "disruption", DetectorSettings()),
    "stock-out": lambda: _pick(stockout(), "stockout_risk", DetectorSettings()),
    "capacity cut": lambda: _pick(capacity(), "capacity_shift", DetectorSettings(), "cut"),
    "capacity spare": lambda: _pick(capacity(), "capacity_shift", DetectorSettings(), "spare"),
}
