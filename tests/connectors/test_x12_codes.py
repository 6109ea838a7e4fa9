"""X12 status code lists (elements 1650/1651/1652, 004010 and 005010) and how 214s map onto
them: every canonical class, reason codes, estimates and appointments, unknown codes, several
LX loops, and 856 ASNs with item levels. The fixtures are hand-written (tests/connectors/
fixtures/x12)."""

from __future__ import annotations

import json
import logging
from datetime import datetime
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from canonical.model import UTC, ShipmentEvent, ShipmentLine, ShipmentRecord
from connectors import x12_codes
from connectors.inspection import inspect_command
from connectors.x12 import parse_x12

HERE = Path(__file__).parent / "fixtures" / "x12"
CHICAGO = "America/Chicago"


def _parse(name: str, **options: object):
    return parse_x12((HERE / name).read_bytes(), name, default_zone=CHICAGO, **options)


def _utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


# --- the table ----------------------------------------------------------------------------------


def _codes(element: str, version: str) -> set[str]:
    return {c.code for c in x12_codes.table().values()
            if c.element == element and version in c.versions}


def test_code_lists_are_the_standards_in_full() -> None:
    # 004010 element 1650 has 42 codes; 005010 keeps them all and adds 20
    assert len(_codes("1650", "004010")) == 42
    assert _codes("1650", "004010") < _codes("1650", "005010")
    assert len(_codes("1650", "005010")) == 62
    # reason codes: 86 in 004010; 005010 drops NA (normal appointment) and NS (normal status)
    assert len(_codes("1651", "004010")) == 86
    assert _codes("1651", "004010") - _codes("1651", "005010") == {"NA", "NS"}
    assert _codes("1652", "004010") == _codes("1652", "005010") == {
        "AA", "AB", "AC", "ED", "EP", "LD", "LP", "X9", "XA"}
    # the codes that were quarantined from a carrier's real file are there
    assert x12_codes.lookup("1650", "XB").description == "Shipment Acknowledged"
    assert x12_codes.lookup("1650", "AH").description == "Attempted Delivery"
    statuses = {c.canonical for c in x12_codes.table().values() if c.element != "1651"}
    assert statuses == set(x12_codes.CANONICAL)
    assert {c.canonical for c in x12_codes.table().values() if c.element == "1651"} == {
        "delayed", "exception", "informational"}


def test_estimate_and_appointment_codes_are_the_standards_deliveries() -> None:
    eta = {(c.element, c.code) for c in x12_codes.table().values() if c.eta}
    assert eta == {("1650", "AG"), ("1650", "X2"), ("1652", "AB"), ("1652", "AC"),
                   ("1652", "X9")}


def test_event_statuses_apply_to_a_shipment_as_the_snapshot_cache_knows_them() -> None:
    from bot.snapshot_cache import _EVENT_STATUS

    # planned and informational never change a shipment's status, nor does an ETA
    for canonical in ("planned", "informational"):
        assert x12_codes.event_status(canonical, False) not in _EVENT_STATUS
    assert x12_codes.event_status("informational", True) == "eta_changed" not in _EVENT_STATUS
    # picked up means in transit, as AF always did
    assert _EVENT_STATUS[x12_codes.event_status("picked_up", False)] == "in_transit"
    for canonical in ("in_transit", "delayed", "exception", "arrived", "delivered"):
        assert x12_codes.event_status(canonical, False) in _EVENT_STATUS


def test_a_late_acknowledgement_does_not_undo_a_departure() -> None:
    from bot.snapshot_cache import SnapshotCache

    cache = SnapshotCache()
    cache.apply([ShipmentRecord(shipment_id="SHP-9001", origin="PLANT-CHI",
                                destination="DC-DAL", status="in_transit",
                                lines=(ShipmentLine(sku="S", qty=1),))])
    (xb,) = [e for e in _parse("214_every_class.edi").records if e.status_code == "XB"]
    cache.apply([xb.model_copy(update={"event_time": _utc(2026, 11, 30)})])
    shipments = cache.snapshot().shipments
    assert shipments["status"].to_list() == ["in_transit"]
    assert shipments["last_event_at"].to_list() == [_utc(2026, 11, 30)]


# --- 214 ----------------------------------------------------------------------------------------


def test_one_214_per_canonical_class() -> None:
    parsed = _parse("214_every_class.edi")
    assert parsed.quarantined == [] and parsed.warnings == []
    got = [(e.shipment_id, e.status_code, e.reason_code, e.status) for e in parsed.records]
    assert got == [
        ("SHP-9001", "XB", "NS", "planned"),  # shipment acknowledged
        ("SHP-9002", "AF", "NS", "departed"),  # picked up
        ("SHP-9003", "X6", "NS", "in_transit"),
        ("SHP-9004", "SD", "AI", "delayed"),
        ("SHP-9005", "A9", "AK", "exception"),  # damaged
        ("SHP-9006", "X1", "NS", "arrived"),
        ("SHP-9007", "D1", "NS", "delivered"),
        ("SHP-9008", "CA", "BB", "cancelled"),
        ("SHP-9009", "B6", "NS", "informational"),  # estimated to arrive at a terminal
        ("SHP-9010", "P1", "AO", "delayed"),  # departed terminal, weather: a delay reason
        ("SHP-9011", "AH", "AQ", "delayed"),  # attempted delivery, recipient unavailable
    ]
    by_id = {e.shipment_id: e for e in parsed.records}
    assert by_id["SHP-9001"].event_time == _utc(2026, 11, 16, 14)  # 08:00 CST
    assert by_id["SHP-9001"].reference["status_description"] == "Shipment Acknowledged"
    assert by_id["SHP-9004"].reference["reason_description"] == "Mechanical Breakdown"
    assert by_id["SHP-9002"].reference["equipment"] == "TRL100"
    # an estimate's date is not when the message happened: the group's time is, 09:12 CST
    estimate = by_id["SHP-9009"]
    assert estimate.event_time == _utc(2026, 11, 18, 15, 12) and estimate.eta is None
    assert estimate.reference["estimate"] == "2026-11-19T10:00:00Z"


def test_estimates_and_appointments_set_the_eta_in_several_lx_loops() -> None:
    parsed = _parse("214_eta_and_appointments.edi")
    assert parsed.quarantined == [] and parsed.warnings == []
    events = parsed.records
    assert [(e.reference["lx"], e.status_code, e.status) for e in events] == [
        ("1", "AG", "eta_changed"), ("2", "X2", "eta_changed"), ("3", "AB", "eta_changed"),
        ("4", "AC", "eta_changed"), ("5", "X9", "eta_changed"), ("6", "AA", "planned"),
        ("7", "AF", "departed")]
    group_time = _utc(2026, 11, 18, 15, 12)
    assert [e.eta for e in events[:5]] == [
        _utc(2026, 11, 20, 20), _utc(2026, 11, 21, 14, 30),  # 14:00 CST; 09:30 EST
        _utc(2026, 11, 22, 14), _utc(2026, 11, 22, 16), _utc(2026, 11, 22, 17, 30)]
    assert all(e.event_time == group_time for e in events[:6])
    pickup = events[5]
    assert pickup.eta is None and pickup.reference["appointment"] == "2026-11-16T13:00:00Z"
    # L11 and AT8 inside an LX loop belong to that loop's events; the header's to all
    departed = events[6]
    assert departed.event_time == _utc(2026, 11, 16, 21, 30)
    assert departed.reference["L11:CN"] == "PRO-55" and departed.reference["weight"] == "12000 L"
    assert all("L11:CN" not in e.reference and "weight" not in e.reference for e in events[:6])
    assert all(e.reference["L11:BM"] == "BOL-9020" for e in events)


def test_unknown_codes_are_informational_events_with_a_warning(
        caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="connectors.x12"):
        parsed = _parse("214_unknown_codes.edi")
    assert parsed.quarantined == []
    unknown, odd_reason, delivered = parsed.records
    assert (unknown.status, unknown.status_code, unknown.reason_code) == (
        "informational", "ZZ", "NS")
    assert "AT7-01 code 'ZZ' is not in the X12 004010/005010 list of element 1650" in (
        unknown.reference["warning"])
    assert (odd_reason.status, odd_reason.reason_code) == ("in_transit", "Q9")
    assert "reason code 'Q9'" in odd_reason.reference["warning"]
    assert delivered.status == "delivered" and "warning" not in delivered.reference
    assert [w.position for w in parsed.warnings] == [
        "ISA 000005003 / GS 5003 / ST 0001, segment 4 (AT7)",
        "ISA 000005003 / GS 5003 / ST 0001, segment 7 (AT7)"]
    assert "AT7*ZZ*NS***20261117*0800*CT" == parsed.warnings[0].raw
    assert sum("'ZZ' is not in the X12" in r.getMessage() for r in caplog.records) == 1


def test_unknown_codes_show_in_inspect() -> None:
    app = typer.Typer()
    app.command("inspect")(inspect_command)
    app.command("version")(lambda: None)
    runner = CliRunner()
    result = runner.invoke(app, ["inspect", str(HERE / "214_unknown_codes.edi")])
    assert result.exit_code == 0, result.output
    assert "informational" in result.stdout and "ZZ" in result.stdout
    assert ("warning: ISA 000005003 / GS 5003 / ST 0001, segment 4 (AT7): AT7-01 code 'ZZ'"
            in result.stderr)
    assert "3 records, 0 quarantined, 2 warnings" in result.stderr
    result = runner.invoke(app, ["inspect", str(HERE / "214_unknown_codes.edi"), "--json"])
    warnings = [json.loads(line) for line in result.stderr.splitlines() if '"warning"' in line]
    assert len(warnings) == 2 and warnings[0]["position"].endswith("segment 4 (AT7)")


def test_a_carriers_005010_file_with_newline_terminators_reads_whole() -> None:
    """The shape that was 7 of 19 quarantined: XB and AH, newline segment terminators, time
    codes PT/MT/CS/ET across the end of daylight saving time (2026-11-01 02:00)."""
    parsed = _parse("214_carrier_005010_newlines.edi")
    assert parsed.quarantined == [] and parsed.warnings == []
    got = [(e.shipment_id, e.status_code, e.status, e.event_time) for e in parsed.records]
    assert got == [
        ("SHP-7001", "XB", "planned", _utc(2026, 10, 31, 21)),  # 14:00 PDT (-7)
        ("SHP-7001", "AF", "departed", _utc(2026, 11, 1, 6)),  # 23:00 PDT
        ("SHP-7001", "X6", "in_transit", _utc(2026, 11, 1, 17)),  # 10:00 MST (-7), after DST
        ("SHP-7001", "AH", "delayed", _utc(2026, 11, 3, 0, 9)),  # 17:09 MST
        ("SHP-7002", "X1", "arrived", _utc(2026, 11, 2, 21, 9)),  # CS is -6 all year
        ("SHP-7002", "D1", "delivered", _utc(2026, 11, 2, 22, 42)),
        ("SHP-7003", "XB", "planned", _utc(2026, 11, 1, 5, 30)),  # 01:30 EDT, first of two
        ("SHP-7003", "X3", "planned", _utc(2026, 11, 1, 5, 45)),
    ]
    ah = parsed.records[3]
    assert ah.reason_code == "B1" and ah.reference["reason_description"] == "Consignee Closed"
    assert ah.reference["weight"] == "21500 L" and ah.location == "DENVER, CO, US"
    assert parsed.records[0].reference["N1:ST"] == "DC-DEN"


def test_bol_key_per_lx_loop() -> None:
    text = (HERE / "214_eta_and_appointments.edi").read_text().replace(
        "L11*PRO-55*CN", "L11*BOL-9999*BM")
    events = parse_x12(text, "f", default_zone=CHICAGO, shipment_key="bol").records
    assert [e.shipment_id for e in events] == ["BOL-9020"] * 6 + ["BOL-9999"]


def test_an_at7_without_any_status_is_quarantined() -> None:
    text = (HERE / "214_unknown_codes.edi").read_text().replace("AT7*ZZ*NS", "AT7**")
    parsed = parse_x12(text, "f", default_zone=CHICAGO)
    (bad,) = parsed.quarantined
    assert "AT7 has neither a shipment status (AT7-01) nor an appointment status" in bad.reason


# --- 856 ----------------------------------------------------------------------------------------


def test_856_item_levels_under_orders_and_packs_become_lines() -> None:
    parsed = _parse("856_item_levels.edi")
    assert parsed.quarantined == []
    (asn,) = parsed.records
    assert isinstance(asn, ShipmentRecord) and not isinstance(asn, ShipmentEvent)
    assert (asn.shipment_id, asn.origin, asn.destination, asn.carrier) == (
        "ASN-331", "PLANT-CHI", "DC-DAL", "RDWY")
    # SKU-2001 packed on two pallets (HL 4 and HL 7) is one line of 120 + 80
    assert asn.lines == (ShipmentLine(sku="SKU-2001", qty=200), ShipmentLine(sku="SKU-2002", qty=48),
                         ShipmentLine(sku="012345678905", qty=10.5))
    assert asn.planned_ship == _utc(2026, 11, 17, 12)  # 06:00 CST
    assert asn.eta == _utc(2026, 11, 19, 16)
    # BSN05 is the hierarchical structure code (0001), not a time code
    assert asn.last_event_at == _utc(2026, 11, 17, 4)  # 2026-11-16 22:00 CST


def test_856_sn1_without_an_item_is_refused_at_item_level() -> None:
    text = (HERE / "856_item_levels.edi").read_text().replace("LIN*2*SK*SKU-2002~\n", "")
    text = text.replace("SE*32*0001", "SE*31*0001")
    (bad,) = parse_x12(text, "f", default_zone=CHICAGO).quarantined
    assert "SN1 quantity without a LIN item before it" in bad.reason
