"""Large CSV and EPCIS files are read as streams: memory stays flat as files grow, and reading a
chunk at a time gives exactly what reading everything at once did."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from bench.ingest import generate_csv, generate_epcis
from connectors import streaming
from connectors.csv_drop import (
    CsvDropConnector,
    CsvDropSettings,
    FilePattern,
    iter_csv,
    parse_csv,
    scan_bytes,
)
from connectors.epcis import parse_document, scan_document, stream_document
from connectors.inspection import inspect_command

ROOT = Path(__file__).resolve().parents[2]
EPCIS = Path("/work/shared/fixtures/epcis")

# A fresh process runs one case and prints its own peak resident set (VmHWM, which starts
# afresh at exec), so nothing the test process holds is counted.
CHILD = r"""
import os, sys
case, file = sys.argv[1], sys.argv[2]
if case == "csv-connector":
    from pathlib import Path
    from connectors.csv_drop import CsvDropConnector, CsvDropSettings, FilePattern
    path = Path(file)
    connector = CsvDropConnector("t", CsvDropSettings(
        path=str(path.parent), archive_dir=None,
        files=[FilePattern(glob=path.name, entity="demand")]))
    records = sum(len(chunk.records) for chunk in connector.read_chunks())
    assert records > 10_000, records
else:
    import typer
    from connectors.inspection import inspect_command
    app = typer.Typer()
    app.command("inspect")(inspect_command)
    app.command("other")(lambda: None)
    out = sys.stdout
    sys.stdout = sys.stderr = open(os.devnull, "w")
    try:
        app(["inspect", file] + (["--json"] if case.endswith("json") else []),
            standalone_mode=False)
    finally:
        sys.stdout = out
for line in open("/proc/self/status"):
    if line.startswith("VmHWM:"):
        print(int(line.split()[1]) / 1024)
"""


def _peak_mb(case: str, path: Path) -> float:
    proc = subprocess.run([sys.executable, "-c", CHILD, case, str(path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return float(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("case", ["csv-connector", "csv-inspect-json", "csv-inspect-table",
                                  "epcis-inspect-json"])
def test_peak_memory_does_not_grow_with_the_file(tmp_path: Path, case: str) -> None:
    """2 MB → 8 MB: reading everything at once took ~90 bytes of memory per byte of CSV (a
    50 MB export: 4.5 GB); streamed, the peak grows by less than a byte per extra byte, well
    under what merely holding the file would take."""
    kind = case.split("-")[0]
    generate = generate_csv if kind == "csv" else generate_epcis
    sizes, peaks = [], []
    for mb in (2, 8):
        path = tmp_path / f"{mb}" / ("demand.csv" if kind == "csv" else "events.json")
        path.parent.mkdir()
        generate(path, mb)
        sizes.append(path.stat().st_size / 2**20)
        peaks.append(_peak_mb(case, path))
    growth, more_input = peaks[1] - peaks[0], sizes[1] - sizes[0]
    assert growth < more_input, (f"{case}: peak {peaks[0]:.0f} → {peaks[1]:.0f} MB for "
                                 f"{sizes[0]:.1f} → {sizes[1]:.1f} MB of input")


# --- CSV ----------------------------------------------------------------------------------------

DEMAND = FilePattern(glob="demand_*.csv", entity="demand")
SETTINGS = CsvDropSettings(path="x", files=[DEMAND])
HEADER = "sku,location,period,planned_qty,latest_qty,unit_value\n"


def test_csv_in_chunks_reads_what_the_whole_text_does() -> None:
    rows = [f"SKU-{i},DC-1,2026-11-30,{i},{i + 1},1\n" if i % 7 else f"SKU-{i},DC-1,bad,1,1,1\n"
            for i in range(1, 60)]
    text = HEADER + "".join(rows) + "\n"
    whole = parse_csv(text, DEMAND, SETTINGS, "s")
    chunks = list(iter_csv(io.StringIO(text, newline=""), DEMAND, SETTINGS, "s", chunk_rows=5))
    assert all(len(records) <= 5 and len(bad) <= 5 for records, bad in chunks)
    assert [r for records, _ in chunks for r in records] == whole[0]
    assert [q for _, bad in chunks for q in bad] == whole[1]
    assert len(whole[0]) == 51 and [q.position for q in whole[1]][:2] == ["line 8", "line 15"]


def test_shipments_in_chunks_are_whole_shipments_in_first_line_order() -> None:
    pattern = FilePattern(glob="*", entity="shipments")
    lines = [f"S{i % 4},P1,DC{i % 4},{i % 3},TL,SKU-{i},{i + 1}\n" for i in range(12)]
    text = "shipment_id,origin,destination,carrier,mode,sku,qty\n" + "".join(lines)
    chunks = list(iter_csv(io.StringIO(text, newline=""), pattern, SETTINGS, "s", chunk_rows=1))
    records = [r for chunk, _ in chunks for r in chunk]
    assert [r.shipment_id for r in records] == ["S0", "S1", "S2", "S3"]
    assert all(len(chunk) <= 1 for chunk, _ in chunks)
    # carrier alternates within a shipment: the first line wins, the others are quarantined
    bad = [q for _, problems in chunks for q in problems]
    assert bad and all("carrier differ from line" in q.reason for q in bad)
    assert records == parse_csv(text, pattern, SETTINGS, "s")[0]


def test_the_connector_reads_in_chunks_and_the_last_carries_the_cursor(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "demand_1.csv").write_text(HEADER + "".join(
        f"SKU-{i},DC-1,2026-11-30,{i},{i},1\n" for i in range(12_000)))
    conn = CsvDropConnector("c", CsvDropSettings(path=str(inbox), files=[DEMAND]))
    chunks = list(conn.read_chunks())
    assert [len(c.records) for c in chunks] == [5_000, 5_000, 2_000, 0]
    assert [c.cursor is not None for c in chunks] == [False, False, False, True]
    assert conn.read(chunks[-1].cursor).records == []  # recorded as read


@pytest.mark.parametrize("encoding", ["utf-8", "cp1252", "utf-16"])
def test_the_encoding_check_sees_characters_and_bad_bytes_split_across_blocks(
        encoding: str) -> None:
    text = "line one\nZürich — Genève\n" + ("東京\n" if encoding != "cp1252" else "")
    data = (text * 3).encode(encoding)
    blocks = [data[i:i + 1] for i in range(len(data))]  # every character split
    digest, bad = scan_bytes(blocks, encoding)
    assert bad is None and digest == scan_bytes([data], encoding)[0]
    if encoding == "utf-8":
        broken = b"ok\nstill ok\nZ" + b"\xfc" + b"rich\n"
        assert scan_bytes([broken[i:i + 3] for i in range(0, len(broken), 3)], encoding)[1] == (
            13, 3)
        assert scan_bytes([b"ok\n\xe2\x80"], encoding)[1] == (3, 2)  # cut short at the end


# --- EPCIS --------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", sorted(EPCIS.iterdir()), ids=lambda p: p.name)
def test_epcis_event_by_event_reads_what_the_whole_document_does(path: Path) -> None:
    data = path.read_bytes()
    whole = parse_document(data, path.name)
    chunks = list(stream_document(io.BytesIO(data), path.name, chunk_events=1))
    assert [e for c in chunks for e in c.events] == whole.events
    assert [(q.position, q.reason) for c in chunks for q in c.quarantined] == [
        (q.position, q.reason) for q in whole.quarantined]
    assert [(q.position, q.reason) for c in chunks for q in c.skipped] == [
        (q.position, q.reason) for q in whole.skipped]


def test_a_long_event_list_is_read_again_one_event_at_a_time() -> None:
    events = [{"type": "ObjectEvent", "eventTime": "2026-11-20T08:00:00Z",
               "bizStep": "departing", "parentID": f"urn:epc:id:sscc:0614141.{i:010d}"}
              for i in range(40)]
    document = {"@context": [], "type": "EPCISDocument",
                "epcisBody": {"eventList": events}}
    data = b"\xef\xbb\xbf" + json.dumps(document).encode()  # with a BOM, as Windows tools write
    skeleton = scan_document(io.BytesIO(data))
    kept = skeleton["epcisBody"]["eventList"]
    assert len(kept) == 5 and kept.count == 40  # only the head is held by the scan
    chunks = list(stream_document(io.BytesIO(data), "d", chunk_events=8))
    assert [len(c.events) for c in chunks] == [8, 8, 8, 8, 8, 0]
    assert [e.shipment_id for c in chunks for e in c.events] == [e["parentID"] for e in events]


def test_json_broken_after_the_events_quarantines_the_document_and_nothing_else() -> None:
    data = json.dumps({"eventList": [{"type": "ObjectEvent", "eventTime": "2026-11-20T08:00:00Z",
                                      "bizStep": "departing", "parentID": "P"}] * 9}).encode()
    (chunk,) = stream_document(io.BytesIO(data[:-1]), "d")  # the last brace is missing
    assert chunk.events == [] and chunk.quarantined[0].position == "document"
    assert chunk.quarantined[0].reason.startswith("not valid JSON: ")


# --- output -------------------------------------------------------------------------------------


def test_a_long_table_is_shown_in_parts(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(streaming, "TABLE_ROWS", 4)
    path = tmp_path / "stock.csv"
    path.write_text("sku,location,on_hand\n" + "".join(f"SKU-{i},DC-1,{i}\n" for i in range(10)))
    app = typer.Typer()
    app.command("inspect")(inspect_command)
    app.command("other")(lambda: None)
    result = CliRunner().invoke(app, ["inspect", str(path)])
    assert result.exit_code == 0, result.output
    titles = [line.strip() for line in result.stdout.splitlines() if "InventoryRecord" in line]
    assert titles == ["InventoryRecord (rows 1–4)", "InventoryRecord (rows 5–8)",
                      "InventoryRecord (rows 9–10)"]
    assert "10 records, 0 quarantined" in result.stderr


def test_the_table_folds_cells_to_fit_and_keeps_every_character() -> None:
    text = streaming.render_table("T", ["a", "b"], [["x" * 150, "some words " * 12]], width=80)
    lines = text.splitlines()
    assert all(len(line) <= 80 for line in lines)
    body = "".join(line.split("│")[1].strip() for line in lines if line.startswith("│"))
    assert body == "x" * 150
