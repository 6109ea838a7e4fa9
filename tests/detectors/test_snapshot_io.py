"""Reading snapshot directories and building snapshots from connector records."""

from datetime import date

import polars as pl
import pytest
from conftest import NOW, ts

from detectors import detect, snapshot_from_records
from detectors.model import DemandRecord, InventoryRecord, ShipmentLine, ShipmentRecord
from detectors.snapshot_io import SnapshotError, read_snapshot


def test_parquet_wins_and_optional_tables_default_empty(tmp_path):
    pl.DataFrame({"sku": ["A"], "location": ["DC1"], "period": [date(2026, 11, 23)],
                  "planned_qty": [10.0], "latest_qty": [500.0]}).write_parquet(tmp_path / "demand.parquet")
    (tmp_path / "demand.csv").write_text("garbage\n")
    (tmp_path / "inventory.csv").write_text("sku,location,on_hand\nA,DC1,5\n")
    (tmp_path / "shipments.csv").write_text("shipment_id,origin,destination,sku,qty\n")
    snap = read_snapshot(tmp_path)
    assert snap.demand.get_column("unit_value").to_list() == [0.0]
    assert snap.inventory.get_column("safety_stock").to_list() == [0.0]
    assert snap.capacity.is_empty() and snap.lanes.is_empty()
    assert detect(snap, now=NOW).drifts[0].key == {"sku": "A", "location": "DC1", "period": "2026-11-23"}


def test_empty_required_value_is_named(tmp_path):
    (tmp_path / "demand.csv").write_text("sku,location,period,planned_qty,latest_qty\nA,,2026-11-23,1,2\n")
    (tmp_path / "inventory.csv").write_text("sku,location,on_hand\n")
    (tmp_path / "shipments.csv").write_text("shipment_id,origin,destination,sku,qty\n")
    with pytest.raises(SnapshotError, match=r"demand.csv: column 'location' is empty on data row 1"):
        read_snapshot(tmp_path)


def test_records_become_one_row_per_shipment_line():
    snap = snapshot_from_records([
        DemandRecord(sku="A", location="DC1", period=date(2026, 11, 23), planned_qty=1, latest_qty=2),
        InventoryRecord(sku="A", location="DC1", on_hand=3),
        ShipmentRecord(shipment_id="S1", origin="P", destination="DC1", carrier="ACME",
                       lines=(ShipmentLine(sku="A", qty=4), ShipmentLine(sku="B", qty=5)),
                       planned_arrival=ts(27), eta=ts(29), status="in_transit", last_event_at=ts(26)),
        "not a record",
    ])
    assert snap.shipments.select("shipment_id", "sku", "qty").rows() == [("S1", "A", 4.0), ("S1", "B", 5.0)]
    assert snap.shipments.get_column("eta").to_list()[0] == ts(29)
    assert snap.demand.height == 1 and snap.inventory.height == 1
