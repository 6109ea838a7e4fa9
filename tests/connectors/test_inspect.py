"""`alignbot inspect FILE`: driven through a real typer app, the way a user types it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from connectors.inspection import inspect_command

X12 = Path("/work/shared/fixtures/x12")
EPCIS = Path("/work/shared/fixtures/epcis")


@pytest.fixture()
def run():
    app = typer.Typer()
    app.command("inspect")(inspect_command)

    @app.command("version")
    def version() -> None:  # a second command, so `inspect` is a subcommand as in bot/cli.py
        """alignbot version."""

    runner = CliRunner()
    return lambda *args: runner.invoke(app, ["inspect", *map(str, args)])


def test_x12_batch_as_json_lines(run) -> None:
    result = run(X12 / "214_status_batch.edi", "--json")
    assert result.exit_code == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(r["kind"], r["shipment_id"], r["status"]) for r in lines][:3] == [
        ("ShipmentEvent", "SHP-40021", "departed"), ("ShipmentEvent", "SHP-40021", "delayed"),
        ("ShipmentEvent", "SHP-40021", "eta_changed")]
    assert lines[2]["eta"] == "2026-11-20T20:00:00Z"
    assert "5 records, 0 quarantined" in result.stderr


def test_damaged_x12_shows_good_rows_and_reasons_on_stderr(run) -> None:
    result = run(X12 / "214_damaged.edi")
    assert result.exit_code == 0
    assert "SHP-40024" in result.stdout and "SHP-40023" not in result.stdout
    assert "ST 0001, segment 4 (AT7)" in result.stderr
    assert "'20261399' does not exist" in result.stderr
    assert "GE01 transaction set count is '3'" in result.stderr


def test_asn_table_lists_lines(run) -> None:
    result = run(X12 / "856_asn.edi")
    assert result.exit_code == 0
    assert "ShipmentRecord (1)" in result.stdout
    assert "SKU-10042×1200" in result.stdout


def test_epcis_document_detected_by_content(run, tmp_path: Path) -> None:
    copy = tmp_path / "events.txt"  # no telling extension: detection reads the content
    copy.write_bytes((EPCIS / "Example_9.6.1-ObjectEvent.jsonld").read_bytes())
    result = run(copy, "--json")
    assert result.exit_code == 0
    assert [json.loads(line)["status"] for line in result.stdout.splitlines()] == [
        "departed", "arrived"]


def test_only_unusable_events_exit_1_with_reasons(run, tmp_path: Path) -> None:
    result = run(EPCIS / "SensorDataExample1.jsonld")
    assert result.exit_code == 1
    assert "skipped: event #1: bizStep 'inspecting'" in result.stderr
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"epcisBody": {"eventList": [{"type": "Nope"}]}}))
    result = run(bad)
    assert result.exit_code == 1
    assert "unknown event type 'Nope'" in result.stderr


def test_every_transaction_bad_exits_1(run, tmp_path: Path) -> None:
    text = (X12 / "214_damaged.edi").read_text().replace("AT7*AF*NS***20261118", "AT7*AF*NS***2026")
    path = tmp_path / "all_bad.edi"
    path.write_text(text)
    result = run(path)
    assert result.exit_code == 1 and "is not CCYYMMDD" in result.stderr


@pytest.mark.parametrize("content,name,needle", [
    ("just some words\n", "notes.txt", "cannot tell the format"),
    ('{"orders": []}', "orders.json", "JSON but not EPCIS"),
])
def test_unknown_format_exits_2(run, tmp_path: Path, content: str, name: str, needle: str) -> None:
    path = tmp_path / name
    path.write_text(content)
    result = run(path)
    assert result.exit_code == 2 and needle in result.stderr and result.stdout == ""


@pytest.mark.parametrize("content", ["[" * 100_000 + "]" * 100_000,
                                     '{"a":' * 5_000 + "1" + "}" * 5_000])
def test_json_nested_too_deeply_exits_2_without_a_traceback(run, tmp_path: Path,
                                                             content: str) -> None:
    path = tmp_path / "deep.json"
    path.write_text(content)
    result = run(path)
    assert result.exit_code == 2 and result.stdout == ""
    assert "deep.json is not readable: its JSON is nested too deeply" in result.stderr
    assert not isinstance(result.exception, RecursionError)
    assert "Traceback" not in result.output
    forced = run(path, "--format", "epcis")  # the EPCIS reader itself quarantines it
    assert forced.exit_code == 1
    assert "quarantined: document: JSON nested too deeply" in forced.stderr


def test_missing_file_and_bad_format_flag_exit_2(run, tmp_path: Path) -> None:
    result = run(tmp_path / "nope.edi")
    assert result.exit_code == 2 and "No such file" in result.stderr
    result = run(X12 / "856_asn.edi", "--format", "xml")
    assert result.exit_code == 2 and "not one of auto, csv, edifact, epcis, x12" in result.stderr


def test_forced_format_overrides_detection(run) -> None:
    result = run(X12 / "856_asn.edi", "--format", "epcis")
    assert result.exit_code == 1 and "not valid JSON" in result.stderr


def test_csv_is_read_as_the_table_its_header_fits(run, tmp_path: Path) -> None:
    pytest.importorskip("connectors.csv_drop")
    path = tmp_path / "stock.csv"
    path.write_text("sku;location;on_hand;safety_stock\nSKU-1;DC-DAL;120;40\nSKU-2;DC-DAL;abc;10\n")
    result = run(path, "--json")
    assert result.exit_code == 0
    (line,) = [json.loads(x) for x in result.stdout.splitlines()]
    assert line == {"kind": "InventoryRecord", "sku": "SKU-1", "location": "DC-DAL",
                    "on_hand": 120.0, "safety_stock": 40.0}
    assert "line 3" in result.stderr and "'abc' is not a number" in result.stderr
    other = tmp_path / "other.csv"
    other.write_text("a,b\n1,2\n")
    result = run(other)
    assert result.exit_code == 2 and "fits no canonical table" in result.stderr
