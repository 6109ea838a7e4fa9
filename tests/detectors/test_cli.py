"""`alignbot detect` on snapshot directories written by hand."""

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from detectors.cli import detect_command

app = typer.Typer()
app.command("detect")(detect_command)


@app.command("version")  # a second command keeps typer in multi-command mode, as in bot/cli.py
def _version() -> None:
    pass


DEMAND = """sku,location,period,planned_qty,latest_qty,unit_value
A,DC1,2026-11-23,700,1400,10
A,DC2,2026-11-23,700,700,10
"""
INVENTORY = """sku,location,on_hand,safety_stock
A,DC1,500,100
A,DC2,1000,200
"""
SHIPMENTS = """shipment_id,origin,destination,carrier,sku,qty,planned_ship,planned_arrival,status,eta,last_event_at
S1,PLANT,DC1,ACME,A,300,2026-11-24T00:00:00Z,2026-11-27T00:00:00Z,in_transit,2026-12-03T00:00:00Z,2026-11-26T06:00:00Z
"""
LANES = """origin,destination,carrier,cost_per_unit,capacity
DC2,DC1,FAST,0.5,1000
"""
CAPACITY = """resource_type,resource_id,period,available_capacity,planned_load
carrier,ACME,2026-11-23,40,30
lane,PLANT>DC1,2026-11-23,20,10
"""


def write(tmp: Path, **tables: str) -> Path:
    for name, body in tables.items():
        (tmp / f"{name}.csv").write_text(body)
    return tmp


def full(tmp: Path) -> Path:
    return write(tmp, demand=DEMAND, inventory=INVENTORY, shipments=SHIPMENTS, lanes=LANES)


def test_json_output_lists_drifts_and_recommendations(tmp_path):
    res = CliRunner().invoke(app, ["detect", "--snapshot", str(full(tmp_path)), "--json",
                                   "--at", "2026-11-26T08:00:00Z"])
    assert res.exit_code == 0, res.output
    body = json.loads(res.stdout)
    kinds = sorted(d["kind"] for d in body["drifts"])
    assert kinds == ["demand_change", "disruption", "stockout_risk"]
    demand = next(d for d in body["drifts"] if d["kind"] == "demand_change")
    assert demand["impact"]["units_short"] == 700 and demand["impact"]["value_at_risk"] == 7000
    ops = {a["operation"] for r in body["recommendations"] for a in r["actions"]}
    assert {"update_forecast", "create_transfer", "reschedule_receipt"} <= ops


def test_table_output(tmp_path):
    res = CliRunner().invoke(app, ["detect", "--snapshot", str(full(tmp_path)), "--at", "2026-11-26T08:00:00Z"])
    assert res.exit_code == 0, res.output
    assert "Drifts (3)" in res.stdout and "Recommendations" in res.stdout
    assert "options" in res.stdout and "→ Reschedule" in res.stdout  # the recommended option marked


def test_missing_column_exits_2_naming_file_and_column(tmp_path):
    full(tmp_path)
    write(tmp_path, inventory=INVENTORY.replace("on_hand", "onhand"))
    res = CliRunner().invoke(app, ["detect", "--snapshot", str(tmp_path), "--at", "2026-11-26T08:00:00Z"])
    assert res.exit_code == 2
    assert "inventory.csv" in res.output and "'on_hand'" in res.output


def test_missing_table_and_bad_value_exit_2(tmp_path):
    full(tmp_path)
    (tmp_path / "demand.csv").unlink()
    res = CliRunner().invoke(app, ["detect", "--snapshot", str(tmp_path)])
    assert res.exit_code == 2 and "demand" in res.output

    write(tmp_path, demand=DEMAND.replace("1400", "lots"))
    res = CliRunner().invoke(app, ["detect", "--snapshot", str(tmp_path)])
    assert res.exit_code == 2
    assert "demand.csv: row 1 (line 2), column latest_qty: cannot read 'lots'" in res.output


# --- strict input (issue 20): each rule exits 2 naming file, row (line) and column ---------------


def refused(tmp: Path, **tables: str) -> str:
    """Write the clean snapshot with ``tables`` replaced; assert detect refuses it; its message."""
    write(full(tmp), capacity=CAPACITY)
    write(tmp, **tables)
    res = CliRunner().invoke(app, ["detect", "--snapshot", str(tmp), "--at", "2026-11-26T08:00:00Z"])
    assert res.exit_code == 2, res.output
    assert res.output.count("error:") == 1, res.output
    return res.output.removeprefix("error: ").strip()


def test_clean_snapshot_with_every_table_still_exits_0(tmp_path):
    write(full(tmp_path), capacity=CAPACITY,
          inventory=INVENTORY + "B,DC1,-20,0\n",  # a backorder: negative on hand is allowed
          shipments=SHIPMENTS + "S1,PLANT,DC1,ACME,B,50,2026-11-24T00:00:00Z,2026-11-27T00:00:00Z,in_transit,"
                                "2026-12-03T01:00:00+01:00,2026-11-26T06:00:00Z\n")
    res = CliRunner().invoke(app, ["detect", "--snapshot", str(tmp_path), "--json", "--at", "2026-11-26T08:00:00Z"])
    assert res.exit_code == 0, res.output


def test_duplicate_inventory_row_is_refused_not_summed(tmp_path):
    # a second row for A × DC1 would double on hand to 1000 and hide the stock-out
    msg = refused(tmp_path, inventory=INVENTORY + "A,DC1,500,100\n")
    assert msg == f"{tmp_path}/inventory.csv: row 3 (line 4), columns sku, location: duplicate key A / DC1 " \
                  "(first at row 1)"


def test_duplicate_demand_key(tmp_path):
    msg = refused(tmp_path, demand=DEMAND + "A,DC1,2026-11-23,700,0,10\n")
    assert msg == f"{tmp_path}/demand.csv: row 3 (line 4), columns sku, location, period: duplicate key " \
                  "A / DC1 / 2026-11-23 (first at row 1)"


def test_duplicate_shipment_line(tmp_path):
    line = SHIPMENTS.splitlines()[1]
    msg = refused(tmp_path, shipments=SHIPMENTS + line.replace(",300,", ",10,") + "\n")
    assert msg == f"{tmp_path}/shipments.csv: row 2 (line 3), columns shipment_id, sku: duplicate key " \
                  "S1 / A (first at row 1)"


def test_shipment_lines_disagreeing_on_the_header(tmp_path):
    line = SHIPMENTS.splitlines()[1].replace(",A,300,", ",B,50,").replace("2026-12-03T00", "2026-11-27T00")
    msg = refused(tmp_path, shipments=SHIPMENTS + line + "\n")
    assert msg == f"{tmp_path}/shipments.csv: row 2 (line 3), column eta: shipment S1 has 2026-11-27T00:00:00Z " \
                  "here but 2026-12-03T00:00:00Z at row 1; a shipment's lines must agree on its own columns"


def test_duplicate_capacity_key(tmp_path):
    msg = refused(tmp_path, capacity=CAPACITY + "carrier,ACME,2026-11-23,40,5\n")
    assert msg == f"{tmp_path}/capacity.csv: row 3 (line 4), columns resource_type, resource_id, period: " \
                  "duplicate key carrier / ACME / 2026-11-23 (first at row 1)"


def test_duplicate_lane(tmp_path):
    msg = refused(tmp_path, lanes=LANES + "DC2,DC1,SLOW,0.2,50\nDC2,DC1,FAST,0.1,5000\n")
    assert msg == f"{tmp_path}/lanes.csv: row 3 (line 4), columns origin, destination, carrier: duplicate key " \
                  "DC2 / DC1 / FAST (first at row 1)"


def test_timestamp_without_zone(tmp_path):
    msg = refused(tmp_path, shipments=SHIPMENTS.replace("2026-11-26T06:00:00Z", "2026-11-26T08:00:00"))
    assert msg == f"{tmp_path}/shipments.csv: row 1 (line 2), column last_event_at: 2026-11-26T08:00:00 has no " \
                  "time zone; add Z or an offset (e.g. 2026-11-26T08:00:00Z)"


@pytest.mark.parametrize(("table", "column"), [
    ("demand", "planned_qty"), ("demand", "latest_qty"), ("demand", "unit_value"),
    ("inventory", "safety_stock"), ("shipments", "qty"),
    ("capacity", "planned_capacity"), ("capacity", "available_capacity"), ("capacity", "planned_load"),
    ("lanes", "cost_per_unit"), ("lanes", "capacity"), ("lanes", "transit_days"),
])
def test_negative_quantity_cost_or_capacity(tmp_path, table, column):
    body = with_value(table, column, "-5")
    msg = refused(tmp_path, **{table: body})
    assert msg == f"{tmp_path}/{table}.csv: row 1 (line 2), column {column}: -5 is negative; quantities, " \
                  "costs and capacities are 0 or more"


def test_a_shipment_line_of_nothing_is_refused(tmp_path):
    msg = refused(tmp_path, shipments=with_value("shipments", "qty", "0"))
    assert msg == f"{tmp_path}/shipments.csv: row 1 (line 2), column qty: 0 is 0; a shipment line carries more than 0"


def with_value(table: str, column: str, value: str) -> str:
    """The clean ``table`` with ``column`` (added if absent) set to ``value`` on its first data row."""
    text = {"demand": DEMAND, "inventory": INVENTORY, "shipments": SHIPMENTS, "capacity": CAPACITY,
            "lanes": LANES}[table]
    header, first, *rest = text.splitlines()
    names, cells = header.split(","), first.split(",")
    if column not in names:
        names.append(column)
        cells.append(value)
        rest = [r + ",1" for r in rest]
    else:
        cells[names.index(column)] = value
    return "\n".join([",".join(names), ",".join(cells), *rest]) + "\n"


def test_unknown_resource_type(tmp_path):
    msg = refused(tmp_path, capacity=CAPACITY.replace("lane,PLANT", "truck,PLANT"))
    assert msg == f"{tmp_path}/capacity.csv: row 2 (line 3), column resource_type: truck is not a known " \
                  "resource_type; use one of lane, carrier, site, dock"


@pytest.mark.parametrize("status", ["landed", "In_Transit", "[lost]"])
def test_unknown_shipment_status(tmp_path, status):
    msg = refused(tmp_path, shipments=SHIPMENTS.replace(",in_transit,", f",{status},"))
    assert msg == f"{tmp_path}/shipments.csv: row 1 (line 2), column status: {status} is not a known status; " \
                  "use one of planned, in_transit, departed, delayed, exception, delivered, arrived, cancelled"


@pytest.mark.parametrize(("table", "column", "value", "shown"), [
    ("demand", "latest_qty", "NaN", "nan"), ("inventory", "on_hand", "inf", "inf"),
    ("lanes", "cost_per_unit", "-inf", "-inf"),
])
def test_number_not_finite(tmp_path, table, column, value, shown):
    msg = refused(tmp_path, **{table: with_value(table, column, value)})
    assert msg == f"{tmp_path}/{table}.csv: row 1 (line 2), column {column}: {shown} is not a finite number"


def test_number_beyond_input_limits(tmp_path):
    msg = refused(tmp_path, inventory=with_value("inventory", "on_hand", "-2e9"))
    assert msg == f"{tmp_path}/inventory.csv: row 1 (line 2), column on_hand: -2e+09 is beyond any real value " \
                  "(limit 1e+09, detectors.limits.max_units)"


@pytest.mark.parametrize(("table", "column", "value", "shown"), [
    ("demand", "period", "9999-12-31", "9999-12-31"),
    ("capacity", "period", "1900-01-01", "1900-01-01"),
    ("shipments", "eta", "2300-01-01T00:00:00+02:00", "2299-12-31T22:00:00Z"),
])
def test_date_outside_input_limits(tmp_path, table, column, value, shown):
    msg = refused(tmp_path, **{table: with_value(table, column, value)})
    assert msg == f"{tmp_path}/{table}.csv: row 1 (line 2), column {column}: {shown} is outside " \
                  "1990-01-01 .. 2199-12-31 (detectors.limits.earliest/latest)"
