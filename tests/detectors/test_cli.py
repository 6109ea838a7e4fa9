"""`alignbot detect` on snapshot directories written by hand."""

import json
from pathlib import Path

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
    assert res.exit_code == 2 and "demand.csv" in res.output and "'latest_qty'" in res.output
