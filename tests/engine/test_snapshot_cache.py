"""The bot's picture of plan and execution: merged by business key, rebuilt only on change."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from bot.snapshot_cache import SnapshotCache
from detectors.model import DemandRecord, ShipmentEvent, ShipmentLine, ShipmentRecord

WEEK = date(2026, 11, 23)
NOON = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def _demand(latest: float) -> DemandRecord:
    return DemandRecord(sku="SKU-1", location="DC-DAL", period=WEEK, planned_qty=100,
                        latest_qty=latest)


def _shipment() -> ShipmentRecord:
    return ShipmentRecord(shipment_id="SH-1", origin="PLT-CHI", destination="DC-DAL",
                          carrier="NORTHLINE", planned_arrival=NOON, status="in_transit",
                          lines=(ShipmentLine(sku="SKU-1", qty=40),))


def test_a_record_replaces_its_predecessor_and_the_next_pass_sees_it():
    cache = SnapshotCache()
    assert cache.apply([_demand(100), _shipment()]) == 2
    before = cache.snapshot()
    assert before.demand["latest_qty"].to_list() == [100]

    assert cache.apply([_demand(100)]) == 0  # the same again: nothing changed
    assert cache.snapshot() is before  # not rebuilt

    assert cache.apply([_demand(180)]) == 1
    assert cache.snapshot().demand["latest_qty"].to_list() == [180]
    assert len(cache) == 2


def test_a_status_event_updates_its_shipment_in_the_next_pass():
    cache = SnapshotCache()
    cache.apply([_shipment()])
    assert cache.snapshot().shipments["status"].to_list() == ["in_transit"]
    late = NOON + timedelta(days=2)
    assert cache.apply([ShipmentEvent(shipment_id="SH-1", event_time=NOON - timedelta(hours=1),
                                      status="delayed", reason_code="WEATHER", eta=late)]) == 1
    shipments = cache.snapshot().shipments
    assert shipments["status"].to_list() == ["delayed"]
    assert shipments["eta"].to_list() == [late]
