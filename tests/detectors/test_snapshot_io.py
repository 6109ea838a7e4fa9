"""Reading snapshot directories and building snapshots from connector records."""

from datetime import UTC, date, datetime

import polars as pl
import pytest
from conftest import NOW, ts

from canonical.model import DemandRecord, InventoryRecord, ShipmentLine, ShipmentRecord
from detectors import detect, snapshot_from_records
from detectors.settings import DisruptionSettings
from detectors.snapshot_io import SNAPSHOT_COLUMNS_DOC, SnapshotError, read_snapshot, shipment_statuses


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
    with pytest.raises(SnapshotError, match=r"demand.csv: row 1 \(line 2\), column location: empty, but a value is "
                                            r"required$"):
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


# --- strict input (issue 20) ---------------------------------------------------------------------

SHIP_HEAD = "shipment_id,origin,destination,sku,qty,status,eta,exception_code\n"


def minimal(tmp_path, shipments: str = SHIP_HEAD, inventory: str = "sku,location,on_hand\nA,DC1,5\n"):
    (tmp_path / "demand.csv").write_text("sku,location,period,planned_qty,latest_qty\n")
    (tmp_path / "inventory.csv").write_text(inventory)
    (tmp_path / "shipments.csv").write_text(shipments)
    return tmp_path


def test_parquet_rows_count_from_one_without_a_line(tmp_path):
    minimal(tmp_path)
    pl.DataFrame({"sku": ["A", "B", "A"], "location": ["DC1", "DC1", "DC1"], "on_hand": [5.0, 1.0, 5.0]}
                 ).write_parquet(tmp_path / "inventory.parquet")
    with pytest.raises(SnapshotError) as err:
        read_snapshot(tmp_path)
    assert str(err.value) == (f"{tmp_path}/inventory.parquet: row 3, columns sku, location: duplicate key A / DC1 "
                              "(first at row 1)")


def test_parquet_times_without_a_zone_are_refused(tmp_path):
    minimal(tmp_path)
    pl.DataFrame({"shipment_id": ["S1"], "origin": ["P"], "destination": ["DC1"], "sku": ["A"], "qty": [1.0],
                  "eta": [datetime(2026, 11, 27, 8)]}).write_parquet(tmp_path / "shipments.parquet")
    with pytest.raises(SnapshotError, match=r"shipments.parquet: row 1, column eta: 2026-11-27T08:00:00 has no "
                                            r"time zone"):
        read_snapshot(tmp_path)


def test_offsets_convert_to_utc_and_date_only_or_garbage_times_are_refused(tmp_path):
    row = "S1,P,DC1,A,1,in_transit,{},\n"
    snap = read_snapshot(minimal(tmp_path, SHIP_HEAD + row.format("2026-11-27T10:00:00+02:00")))
    assert snap.shipments.get_column("eta").to_list() == [datetime(2026, 11, 27, 8, tzinfo=UTC)]
    minimal(tmp_path, SHIP_HEAD + row.format("2026-11-27"))
    with pytest.raises(SnapshotError, match=r"row 1 \(line 2\), column eta: 2026-11-27 has no time zone"):
        read_snapshot(tmp_path)
    minimal(tmp_path, SHIP_HEAD + row.format("soon"))
    with pytest.raises(SnapshotError, match=r"row 1 \(line 2\), column eta: cannot read 'soon'"):
        read_snapshot(tmp_path)


def test_a_line_without_the_exception_code_its_shipment_has_is_refused(tmp_path):
    minimal(tmp_path, SHIP_HEAD + "S1,P,DC1,A,1,delayed,,WX\nS2,P,DC1,A,1,planned,,\nS1,P,DC1,B,2,delayed,,\n")
    with pytest.raises(SnapshotError) as err:
        read_snapshot(tmp_path)
    assert str(err.value) == (f"{tmp_path}/shipments.csv: row 3 (line 4), column exception_code: shipment S1 has "
                              "(empty) here but WX at row 1; a shipment's lines must agree on its own columns")


def test_statuses_follow_the_disruption_settings(tmp_path):
    minimal(tmp_path, SHIP_HEAD + "S1,P,DC1,A,1,on_hold,,\n")
    with pytest.raises(SnapshotError, match="on_hold is not a known status"):
        read_snapshot(tmp_path)
    settings = DisruptionSettings(exception_statuses=["delayed", "exception", "on_hold"])
    assert read_snapshot(tmp_path, settings).shipments.get_column("status").to_list() == ["on_hold"]


def test_the_doc_lists_the_statuses_the_detectors_know():
    assert shipment_statuses(DisruptionSettings()) == (
        "planned", "in_transit", "departed", "delayed", "exception", "delivered", "arrived", "cancelled")
    doc = " ".join(SNAPSHOT_COLUMNS_DOC.split())
    assert ("shipments.status is planned or one of the statuses detectors.disruption knows: in_transit, "
            "departed, delayed, exception, delivered, arrived, cancelled by default") in doc


def test_negative_on_hand_is_a_backorder_not_an_error(tmp_path):
    snap = read_snapshot(minimal(tmp_path, inventory="sku,location,on_hand\nA,DC1,-40\n"))
    assert snap.inventory.get_column("on_hand").to_list() == [-40.0]
