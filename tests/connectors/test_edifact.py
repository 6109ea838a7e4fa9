"""EDIFACT IFTSTA: hand-written D.96A (with UNA) and D.01B (default separators) messages and
the events they hold; envelopes (UNB/UNH/UNT/UNZ) checked; read as a stream."""

from __future__ import annotations

import io
import json
from datetime import datetime
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from canonical.model import UTC
from connectors.edifact import (
    Delimiters,
    Interchange,
    Message,
    iter_edifact,
    iter_parse_edifact,
    parse_edifact,
    parse_edifact_datetime,
    status_codes,
)
from connectors.inspection import inspect_command

HERE = Path(__file__).parent / "fixtures" / "edifact"
BERLIN = "Europe/Berlin"


def _utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def _parse(name: str):
    return parse_edifact((HERE / name).read_bytes(), name, default_zone=BERLIN)


def test_d96a_with_una_hand_checked() -> None:
    parsed = _parse("iftsta_d96a.edi")
    assert parsed.quarantined == []
    got = [(e.shipment_id, e.status_code, e.reason_code, e.status) for e in parsed.records]
    assert got == [
        ("CONS-881", "13", "", "departed"),  # collection/pick-up completed
        ("CONS-881", "31", "", "in_transit"),  # en route
        ("CONS-882", "20", "5", "delayed"),  # delayed in the course of transport
        ("CONS-882", "21", "", "delivered"),
        ("CONS-883", "7", "", "cancelled"),  # booking cancelled
        ("ORDER-77", "99", "", "informational"),  # a carrier's own code: kept, with a warning
    ]
    picked, en_route, delayed, delivered, cancelled, unknown = parsed.records
    assert picked.event_time == _utc(2026, 11, 17, 8, 30)  # 09:30 CET, the local zone
    assert picked.location == "HAMBURG" and picked.reference["RFF:BM"] == "BOL-881"
    assert en_route.eta == _utc(2026, 11, 19, 13) and en_route.location == "HANNOVER"
    assert delayed.event_time == _utc(2026, 11, 18, 6)  # format 303, UTC
    assert delivered.event_time == _utc(2026, 11, 18, 14, 45)  # 205: 15:45 +01:00, '+' released
    assert cancelled.event_time == _utc(2026, 11, 15, 23)  # format 102, a day in Berlin
    # the consignment has no CNI document number: its RFF names it
    assert unknown.shipment_id == "ORDER-77"
    (warning,) = parsed.warnings
    assert warning.position == "UNB IC0001 / UNH 2, segment 9 (STS)"
    assert "STS status code '99' (code list agency 'ZZZ') is not a UN/ECE Recommendation 24" in (
        warning.reason)
    assert unknown.reference["warning"] == warning.reason


def test_d01b_without_una_uses_the_default_separators() -> None:
    parsed = _parse("iftsta_d01b_no_una.edi")
    assert parsed.quarantined == [] and parsed.warnings == []
    departed, arrived = parsed.records
    assert (departed.shipment_id, departed.status, departed.location, departed.carrier) == (
        "SHP-5001", "in_transit", "FRLIL", "GEODIS")
    assert departed.event_time == _utc(2026, 11, 17, 7)
    assert (arrived.status, arrived.status_code) == ("arrived", "45")
    assert arrived.event_time == _utc(2026, 11, 18, 6, 10)  # 07:10 CET (format 303)
    assert arrived.eta == _utc(2026, 11, 18, 13)  # DTM 17, estimated delivery


def test_envelope_errors_quarantine_with_clear_reasons() -> None:
    parsed = _parse("iftsta_envelope_errors.edi")
    assert [e.shipment_id for e in parsed.records] == ["SHP-6010"]
    reasons = {q.position: q.reason for q in parsed.quarantined}
    assert reasons == {
        "UNB 88 / UNH 11, segment 6 (UNT)":
            "segment 6: UNT01 says 9 segments but the message has 6 (UNH..UNT)",
        "UNB 88 / UNH 12, segment 6 (UNT)":
            "segment 6: UNT02 reference '99' does not match UNH01 '12'",
        "UNB 88 / UNH 13, segment 4 (STS)":
            "segment 4: STS has no date (DTM 334, 7, 178, 186, 35 or 11 after it, or the "
            "message's DTM 137)",
        "UNB 88": "envelope: UNZ02 reference '87' does not match UNB05 '88'",
    } | {k: v for k, v in reasons.items() if "UNZ01" in v}
    assert any(q.reason == "envelope: UNZ01 count is '3' but there are 4 messages"
               for q in parsed.quarantined)
    bad = next(q for q in parsed.quarantined if "UNH 11" in q.position)
    assert bad.raw.startswith("UNH+11+IFTSTA:D:01B:UN'BGM+77+ST-11+9'")


@pytest.mark.parametrize("text,needle", [
    ("hello", "no UNA or UNB segment"),
    ("UNA:+.", "UNA is shorter than its 9 characters"),
    ("UNA::::::UNB+x'", "does not give four distinct"),
    ("UNB+UNOC:3+A+B+261118:0912+5'UNH+1+IFTSTA:D:01B:UN'CNI+1+X'STS+1+21'", "no UNT"),
])
def test_unreadable_input_is_quarantined_never_raised(text: str, needle: str) -> None:
    parsed = parse_edifact(text, "f")
    assert parsed.records == []
    assert any(needle in q.reason for q in parsed.quarantined), parsed.quarantined


def test_other_messages_are_quarantined_by_name() -> None:
    text = (HERE / "iftsta_d01b_no_una.edi").read_text().replace("IFTSTA:D:01B", "DESADV:D:01B")
    (bad,) = parse_edifact(text, "f").quarantined
    assert "message type 'DESADV' is not one alignbot reads (IFTSTA)" in bad.reason


@pytest.mark.parametrize("chunk", [1, 2, 9, 64])
def test_any_chunk_size_reads_the_same(chunk: int) -> None:
    text = "".join((HERE / n).read_text() for n in ("iftsta_d96a.edi",
                                                    "iftsta_d01b_no_una.edi",
                                                    "iftsta_envelope_errors.edi"))

    def shape(items: list) -> list:
        return [(type(i).__name__, getattr(i, "reference", getattr(i, "position", "")),
                 [s.tag for s in i.segments] if isinstance(i, Message) else None,
                 getattr(i, "errors", None)) for i in items]

    whole = shape(list(iter_edifact(text)))
    assert shape(list(iter_edifact(io.BytesIO(text.encode()), chunk_chars=chunk))) == whole
    interchanges = [i for i in iter_edifact(text) if isinstance(i, Interchange)]
    assert [i.delimiters for i in interchanges] == [Delimiters()] * 3


def test_released_characters_are_text() -> None:
    text = (HERE / "iftsta_d96a.edi").read_text()
    (msg, *_) = [i for i in iter_edifact(text) if isinstance(i, Message)]
    ftx = next(s for s in msg.segments if s.tag == "FTX")
    assert ftx.get(4) == "TRAFFIC JAM ON A7: ABOUT 2 HOURS'"


@pytest.mark.parametrize("value,fmt,expected", [
    ("20261118", "102", _utc(2026, 11, 17, 23)),
    ("261118", "101", _utc(2026, 11, 17, 23)),
    ("202611181200", "203", _utc(2026, 11, 18, 11)),
    ("20260718120030", "204", _utc(2026, 7, 18, 10, 0, 30)),  # CEST in July
    ("202611181200-0500", "205", _utc(2026, 11, 18, 17)),
    ("202611181200GMT", "303", _utc(2026, 11, 18, 12)),
])
def test_dtm_formats(value: str, fmt: str, expected: datetime) -> None:
    assert parse_edifact_datetime(value, fmt, BERLIN) == expected


@pytest.mark.parametrize("value,fmt,needle", [
    ("2026111", "102", "not in format 102"), ("20261399", "102", "not a real date"),
    ("202611181200XYZ", "303", "time zone 'XYZ'"), ("20261118", "718", "not one alignbot")])
def test_bad_dtm_values(value: str, fmt: str, needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        parse_edifact_datetime(value, fmt, BERLIN)


def test_status_code_table() -> None:
    codes = status_codes()
    assert len(codes) == 43
    assert {c.canonical for c in codes.values()} >= {
        "planned", "picked_up", "in_transit", "delayed", "exception", "arrived", "delivered",
        "cancelled", "informational"}
    assert codes["21"].description == "Delivery, completed"


def test_inspect_reads_edifact_detected_and_forced(tmp_path: Path) -> None:
    app = typer.Typer()
    app.command("inspect")(inspect_command)
    app.command("version")(lambda: None)
    runner = CliRunner()
    copy = tmp_path / "status.txt"
    copy.write_bytes((HERE / "iftsta_d96a.edi").read_bytes())
    result = runner.invoke(app, ["inspect", str(copy), "--json"])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [ln["status"] for ln in lines] == [
        "departed", "in_transit", "delayed", "delivered", "cancelled", "informational"]
    assert "edifact, 6 records, 0 quarantined, 1 warnings" in result.stderr
    forced = runner.invoke(app, ["inspect", str(HERE / "iftsta_envelope_errors.edi"),
                                 "--format", "edifact"])
    assert forced.exit_code == 0 and "SHP-6010" in forced.stdout
    assert "UNT01 says 9 segments" in forced.stderr
    nothing = tmp_path / "bad.edi"
    nothing.write_text("UNB+UNOC:3+A+B+261118:0912+5'UNZ+0+5'")
    assert runner.invoke(app, ["inspect", str(nothing)]).exit_code == 1


def test_a_file_streams() -> None:
    items = list(iter_parse_edifact(HERE / "iftsta_d96a.edi", "f", default_zone=BERLIN))
    assert [kind for kind, _ in items].count("record") == 6


def test_the_edifact_connector_reads_its_inbox_once(tmp_path: Path) -> None:
    from connectors.registry import build_connector

    connector = build_connector("carrier-eu", "edifact", {"local_timezone": BERLIN}, {},
                                base_path=tmp_path)
    (tmp_path / "inbox").mkdir()
    for name in ("iftsta_d96a.edi", "iftsta_envelope_errors.edi"):
        (tmp_path / "inbox" / name).write_bytes((HERE / name).read_bytes())
    (tmp_path / "inbox" / "notes.pdf").write_text("not edifact")
    first = connector.read()
    assert len(first.records) == 6 + 1 and len(first.quarantined) == 5
    assert all(q.source.startswith("carrier-eu:iftsta_envelope_errors.edi")
               for q in first.quarantined)
    second = connector.read(first.cursor)
    assert second.records == [] and sorted(p.name for p in (tmp_path / "archive").iterdir()) == [
        "iftsta_d96a.edi", "iftsta_envelope_errors.edi"]
    from canonical.model import Action

    refused = connector.execute(Action(system="logistics", operation="reassign_carrier",
                                       params={}, idempotency_key="k"))
    assert (refused.ok, refused.status) == (False, "rejected")
