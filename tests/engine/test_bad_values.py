"""One bad value cannot stop detection: whatever number or time a pushed record carries, in any
field of any record type, detection keeps answering for every other key.

The records go the way a push goes in the bot: ``/hooks`` parsing (validation at the door),
the picture the loop keeps, and the pass the loop runs (which isolates a key group it fails on).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.hooks import parse_records
from bot.snapshot_cache import SnapshotCache
from canonical.model import (
    CapacityRecord,
    DemandRecord,
    InventoryRecord,
    LaneRecord,
    ShipmentLine,
    ShipmentRecord,
)
from detectors.isolation import detect_isolating
from detectors.pipeline import detect
from detectors.settings import DetectorSettings

NOW = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)
WEEK = NOW.date() - timedelta(days=NOW.weekday())


def _base() -> list:
    """SKU-A at DC-1 runs short after a demand spike; SKU-B is what the pushes touch."""
    out: list = []
    for sku, planned, latest in (("SKU-A", 100, 400), ("SKU-B", 100, 100)):
        out += [DemandRecord(sku=sku, location="DC-1", period=WEEK + timedelta(weeks=w),
                             planned_qty=planned, latest_qty=latest, unit_value=20) for w in range(3)]
        out += [InventoryRecord(sku=sku, location="DC-1", on_hand=150, safety_stock=60),
                InventoryRecord(sku=sku, location="DC-2", on_hand=900, safety_stock=60)]
    out += [LaneRecord(origin="DC-2", destination="DC-1", carrier="CARR", cost_per_unit=1,
                       capacity=1000, transit_days=1),
            ShipmentRecord(shipment_id="SHP-B", origin="PLANT", destination="DC-1", carrier="CARR",
                           lines=(ShipmentLine(sku="SKU-B", qty=50),),
                           planned_arrival=NOW + timedelta(days=2), status="in_transit"),
            CapacityRecord(resource_type="carrier", resource_id="CARR-B", period=WEEK,
                           planned_capacity=100, available_capacity=100, planned_load=50)]
    return out


# a valid pushed record of each type, about SKU-B or its shipment and carrier
_VALID = {
    "demand": {"sku": "SKU-B", "location": "DC-1", "period": WEEK.isoformat(), "planned_qty": 100,
               "latest_qty": 120, "unit_value": 20},
    "inventory": {"sku": "SKU-B", "location": "DC-1", "on_hand": 150, "safety_stock": 60},
    "capacity": {"resource_type": "carrier", "resource_id": "CARR-B", "period": WEEK.isoformat(),
                 "planned_capacity": 100, "available_capacity": 80, "planned_load": 50},
    "shipment": {"shipment_id": "SHP-B2", "origin": "PLANT", "destination": "DC-1",
                 "carrier": "CARR", "lines": [{"sku": "SKU-B", "qty": 40}],
                 "planned_ship": NOW.isoformat(), "planned_arrival": (NOW + timedelta(days=3)).isoformat(),
                 "eta": (NOW + timedelta(days=3)).isoformat(), "last_event_at": NOW.isoformat()},
    "shipment_event": {"shipment_id": "SHP-B", "event_time": NOW.isoformat(), "status": "delayed",
                       "eta": (NOW + timedelta(days=4)).isoformat()},
}
_NUMBERS = {"demand": ["planned_qty", "latest_qty", "unit_value"], "inventory": ["on_hand", "safety_stock"],
            "capacity": ["planned_capacity", "available_capacity", "planned_load"],
            "shipment": ["lines.qty"], "shipment_event": []}
_TIMES = {"demand": ["period"], "capacity": ["period"], "inventory": [],
          "shipment": ["planned_ship", "planned_arrival", "eta", "last_event_at"],
          "shipment_event": ["event_time", "eta"]}

# JSON number text: what a sender can put on the wire (json.loads reads Infinity, NaN, 1e999)
numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(lambda x: json.dumps(x)),
    st.integers(min_value=-(10 ** 400), max_value=10 ** 400).map(str),
    st.sampled_from(["1e999", "-1e999", "1e308", "-1e308", "Infinity", "-Infinity", "NaN",
                     "0", "-0.0", "5e-324", "123456789012345678901234567890"]),
)
zones = st.integers(min_value=-(24 * 60 - 1), max_value=24 * 60 - 1).map(
    lambda m: timezone(timedelta(minutes=m)))
times = st.one_of(
    st.datetimes(timezones=zones).map(lambda t: json.dumps(t.isoformat())),
    st.datetimes().map(lambda t: json.dumps(t.isoformat())),  # no zone at all
    st.dates().map(lambda d: json.dumps(d.isoformat())),
    st.sampled_from(['"9999-12-31T23:59:59-12:00"', '"0001-01-01T00:00:00+14:00"',
                     '"9999-12-31"', '"0001-01-01"', '"2026-02-30"']),
)


def _payload(kind: str, field: str, value_json: str) -> dict:
    """``{"records": [...]}`` with one field of a valid record set to ``value_json``, parsed as
    a server parses the body (so 1e999 arrives as infinity, 10**400 as an int)."""
    record = json.loads(json.dumps({"type": kind, **_VALID[kind]}))
    placeholder = "__VALUE__"
    if field == "lines.qty":
        record["lines"][0]["qty"] = placeholder
    else:
        record[field] = placeholder
    return json.loads(json.dumps({"records": [record]}).replace(f'"{placeholder}"', value_json))


def _sku_a(result) -> list:
    return sorted((d.fingerprint, d.impact.value_at_risk) for d in result.drifts if d.key.get("sku") == "SKU-A")




def _pass(records) -> tuple:
    cache = SnapshotCache()
    cache.apply(_base())
    cache.apply(records)
    return detect_isolating(cache.snapshot(), lambda snap: detect(snap, DetectorSettings(), NOW))


@st.composite
def bad_pushes(draw):
    kind = draw(st.sampled_from(sorted(_VALID)))
    fields = [(f, numbers) for f in _NUMBERS[kind]] + [(f, times) for f in _TIMES[kind]]
    field, values = draw(st.sampled_from(fields))
    return kind, field, draw(values)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bad_pushes())
def test_any_number_or_time_in_any_field_leaves_detection_working_for_the_other_keys(push):
    kind, field, value = push
    baseline, _ = _pass([])
    records, quarantined = parse_records(_payload(kind, field, value), "webhook:tms")
    assert len(records) + len(quarantined) == 1
    for q in quarantined:
        assert q.reason and field.split(".")[-1] in q.reason  # says which field is wrong
    result, isolated = _pass(records)  # never raises
    assert _sku_a(result) == _sku_a(baseline) != []
    assert all(g.group != ("sku", "SKU-A") for g in isolated)


def test_the_values_seen_breaking_detection_are_quarantined_at_the_door():
    for kind, field, value in [("demand", "planned_qty", "Infinity"), ("demand", "planned_qty", "1e999"),
                               ("demand", "latest_qty", "1e308"), ("demand", "unit_value", "1e308"),
                               ("inventory", "on_hand", "-Infinity"), ("inventory", "on_hand", "-1e308"),
                               ("shipment_event", "eta", '"9999-12-31T23:59:59-12:00"')]:
        records, quarantined = parse_records(_payload(kind, field, value), "webhook:tms")
        assert records == [] and len(quarantined) == 1, (kind, field, value)
        assert field in quarantined[0].reason
