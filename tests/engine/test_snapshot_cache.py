"""The bot's picture of plan and execution: merged by business key, rebuilt only on change."""

from __future__ import annotations

import gc
from datetime import UTC, date, datetime, timedelta

import polars as pl

from bot import snapshot_cache
from bot.snapshot_cache import SnapshotCache
from canonical.model import (
    CapacityRecord,
    DemandRecord,
    InventoryRecord,
    LaneRecord,
    ShipmentEvent,
    ShipmentLine,
    ShipmentRecord,
)
from detectors.snapshot import snapshot_from_records

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
    assert shipments["exception_code"].to_list() == ["WEATHER"]
    # an older event arriving late does not undo the newer one
    assert cache.apply([ShipmentEvent(shipment_id="SH-1", event_time=NOON - timedelta(hours=3),
                                      status="arrived")]) == 0
    assert cache.snapshot().shipments["status"].to_list() == ["delayed"]


def _network(n: int, latest: float = 100.0) -> list:
    demand = [DemandRecord(sku=f"SKU-{i % 97}", location=f"DC-{i // 97}", period=WEEK,
                           planned_qty=100, latest_qty=latest + i % 7, unit_value=2.5)
              for i in range(n)]
    shipments = [ShipmentRecord(shipment_id=f"SH-{i}", origin="PLT-CHI", destination=f"DC-{i % 5}",
                                carrier="NORTHLINE", planned_arrival=NOON, eta=NOON,
                                lines=tuple(ShipmentLine(sku=f"SKU-{j}", qty=10 + j)
                                            for j in range(1 + i % 3)))
                 for i in range(n // 10)]
    inventory = [InventoryRecord(sku=f"SKU-{i}", location="DC-0", on_hand=50, safety_stock=10)
                 for i in range(97)]
    capacity = [CapacityRecord(resource_type="carrier", resource_id="NORTHLINE", period=WEEK,
                               planned_capacity=10, available_capacity=8, planned_load=9)]
    lanes = [LaneRecord(origin="DC-0", destination="DC-1", cost_per_unit=1.5, capacity=400)]
    return demand + shipments + inventory + capacity + lanes


def test_the_snapshot_is_the_one_built_from_the_latest_record_of_every_key():
    cache = SnapshotCache()
    first, second = _network(500), _network(500, latest=130.0)
    cache.apply(first)
    cache.apply(second[:300])  # some keys get a newer record, in the middle of their table
    latest = second[:300] + first[300:]
    expected = snapshot_from_records(latest)
    got = cache.snapshot()
    for table in ("demand", "shipments", "capacity", "inventory", "lanes"):
        assert getattr(got, table).equals(getattr(expected, table)), table


def test_a_table_read_in_several_calls_is_the_same_single_table(monkeypatch):
    """Large tables are read from rows a slice at a time (each call holds the interpreter)."""
    monkeypatch.setattr(snapshot_cache, "ROWS_PER_CALL", 64)
    cache = SnapshotCache()
    records = _network(1_000)
    cache.apply(records)
    expected, got = snapshot_from_records(records), cache.snapshot()
    assert got.demand.height == 1_000 and got.shipments.height > 64
    for table in ("demand", "shipments", "inventory"):
        assert getattr(got, table).equals(getattr(expected, table)), table
        assert getattr(got, table).n_chunks() == 1, table  # contiguous, as the index expects


def test_a_change_the_snapshot_does_not_read_changes_nothing():
    cache = SnapshotCache()
    cache.apply([_demand(100)])
    before = cache.snapshot()
    assert cache.apply([_demand(100).model_copy(update={"source": "orders"})]) == 0
    assert cache.snapshot() is before


def test_kept_records_add_nothing_to_the_garbage_collectors_full_scans():
    """A full collection walks every object the collector watches while holding the
    interpreter (Slack acks wait); the picture must not add one object per record."""
    cache = SnapshotCache()
    gc.collect()
    watched = len(gc.get_objects())
    cache.apply(_network(20_000))  # the records themselves are not kept
    gc.collect()
    assert len(cache) > 20_000
    assert len(gc.get_objects()) - watched < 100


def test_only_the_tables_a_change_touched_are_rebuilt():
    cache = SnapshotCache()
    cache.apply(_network(2_000))
    before = cache.snapshot()
    late = NOON + timedelta(days=1)
    assert cache.apply([ShipmentEvent(shipment_id="SH-7", event_time=NOON, status="delayed",
                                      eta=late)]) == 1
    after = cache.snapshot()
    assert after.demand is before.demand and after.inventory is before.inventory
    assert after.shipments is not before.shipments
    assert after.shipments.filter(pl.col("shipment_id") == "SH-7")["eta"].to_list() == [late] * 2


def test_a_change_applied_while_a_table_is_built_is_not_hidden_behind_that_build(monkeypatch):
    cache = SnapshotCache()
    cache.apply([_demand(100)])
    build = snapshot_cache._frame

    def build_while_a_poll_lands(table, rows):
        if table == "demand":
            cache.apply([_demand(250)])  # another thread's poll, between the copy and the build
        return build(table, rows)

    monkeypatch.setattr(snapshot_cache, "_frame", build_while_a_poll_lands)
    assert cache.snapshot().demand["latest_qty"].to_list() == [100]  # what was copied
    monkeypatch.setattr(snapshot_cache, "_frame", build)
    assert cache.snapshot().demand["latest_qty"].to_list() == [250]
