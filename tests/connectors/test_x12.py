"""X12 004010: hand-checked 214/856 readings, damaged envelopes, and 204 tenders that round-trip."""

from __future__ import annotations

import os
import time
from datetime import date, datetime
from pathlib import Path

import pytest

from canonical.model import UTC, Action, ShipmentEvent, ShipmentLine, ShipmentRecord
from connectors.x12 import (
    Envelope,
    LoadTender,
    X12Connector,
    X12Settings,
    parse_x12,
    parse_x12_datetime,
    tender_file_name,
    write_204,
)
from connectors.x12_syntax import Separators, read_interchanges, separators_from_isa

FIXTURES = Path("/work/shared/fixtures/x12")
CHICAGO = "America/Chicago"


def _parse(name: str, **options: object):
    return parse_x12((FIXTURES / name).read_bytes(), name, default_zone=CHICAGO, **options)


def test_214_batch_hand_checked() -> None:
    parsed = _parse("214_status_batch.edi")
    assert parsed.quarantined == []
    events = [r for r in parsed.records if isinstance(r, ShipmentEvent)]
    assert [(e.shipment_id, e.status, e.status_code, e.reason_code) for e in events] == [
        ("SHP-40021", "departed", "AF", "NS"),
        ("SHP-40021", "delayed", "SD", "AO"),
        ("SHP-40021", "eta_changed", "AG", "AO"),
        ("SHP-40022", "arrived", "X1", "NS"),
        ("SHP-40022", "delivered", "D1", "NS"),
    ]
    departed, delayed, eta, arrived, delivered = events
    # 2026-11-17 16:30 CT (CST, -6) = 22:30 UTC
    assert departed.event_time == datetime(2026, 11, 17, 22, 30, tzinfo=UTC)
    assert departed.location == "CHICAGO, IL, US" and departed.carrier == "RDWY"
    assert departed.reference["equipment"] == "TRL5521"
    assert departed.reference["L11:BM"] == "BOL-88121"
    assert departed.reference["N1:CN"] == "DC-DAL"
    assert delayed.event_time == datetime(2026, 11, 18, 13, 45, tzinfo=UTC)
    assert delayed.location == "SPRINGFIELD, MO, US"
    # new ETA 2026-11-20 14:00 Central → 20:00 UTC
    assert eta.eta == datetime(2026, 11, 20, 20, 0, tzinfo=UTC)
    assert eta.reference["weight"] == "38250 L" and eta.reference["lading_qty"] == "22"
    # ET in November is EST (-5): 06:05 → 11:05 UTC
    assert arrived.event_time == datetime(2026, 11, 18, 11, 5, tzinfo=UTC)
    assert delivered.location == "ATLANTA, GA, US"


def test_856_asn_hand_checked() -> None:
    parsed = _parse("856_asn.edi")
    assert parsed.quarantined == []
    (asn,) = parsed.records
    assert isinstance(asn, ShipmentRecord)
    assert asn.shipment_id == "ASN-2026-11-16-01"
    assert (asn.origin, asn.destination, asn.carrier, asn.mode) == (
        "PLANT-CHI", "DC-DAL", "RDWY", "TL")
    assert asn.lines == (ShipmentLine(sku="SKU-10042", qty=1200),
                         ShipmentLine(sku="SKU-10077", qty=840))
    assert asn.planned_ship == datetime(2026, 11, 17, 22, 30, tzinfo=UTC)
    assert asn.eta == datetime(2026, 11, 19, 16, 0, tzinfo=UTC)  # 10:00 CST
    assert asn.status == "in_transit"


def test_bol_key_joins_214_and_856_of_the_same_load() -> None:
    events = _parse("214_status_batch.edi", shipment_key="bol").records
    (asn,) = _parse("856_asn.edi", shipment_key="bol").records
    assert asn.shipment_id == "BOL-88121"
    assert {e.shipment_id for e in events} == {"BOL-88121", "BOL-88140"}
    assert events[0].reference["shipment_id"] == "SHP-40021"


def test_damaged_interchange_quarantines_one_transaction_and_reads_the_other() -> None:
    parsed = _parse("214_damaged.edi")
    assert [(r.shipment_id, r.status) for r in parsed.records] == [("SHP-40024", "departed")]
    by_position = {q.position: q.reason for q in parsed.quarantined}
    bad_tx = by_position["ISA 000004712 / GS 4712 / ST 0001, segment 4 (AT7)"]
    assert "'20261399' does not exist" in bad_tx
    assert "SE01 says 9 segments but the transaction set has 6" in bad_tx
    assert "GE01 transaction set count is '3' but there are 2" in by_position[
        "ISA 000004712 / GS 4712"]
    assert len(parsed.quarantined) == 2


def _batch() -> str:
    return (FIXTURES / "214_status_batch.edi").read_text()


def test_separators_come_from_isa_not_assumptions() -> None:
    text = _batch().replace("*", "|").replace("~", "\n").replace(">", "^")
    assert separators_from_isa(text) == Separators("|", "^", "\n")
    parsed = parse_x12(text, "piped", default_zone=CHICAGO)
    assert parsed.quarantined == [] and len(parsed.records) == 5
    assert parsed.records[2].eta == datetime(2026, 11, 20, 20, 0, tzinfo=UTC)


def test_wrong_counts_and_controls_are_envelope_warnings_only() -> None:
    text = _batch().replace("GE*2*4711", "GE*5*4799").replace("IEA*1*000004711", "IEA*2*000000001")
    parsed = parse_x12(text, "f", default_zone=CHICAGO)
    assert len(parsed.records) == 5
    reasons = " | ".join(q.reason for q in parsed.quarantined)
    assert "GE01 transaction set count is '5' but there are 2" in reasons
    assert "GE02 control number '4799' does not match GS06 '4711'" in reasons
    assert "IEA01 group count is '2' but there are 1" in reasons
    assert "IEA02 control number '000000001' does not match ISA13 '000004711'" in reasons


def test_bad_segment_and_truncation_hit_only_their_transaction() -> None:
    text = _batch().replace("LX*2~", "lx bad*2~", 1)
    parsed = parse_x12(text, "f", default_zone=CHICAGO)
    assert {r.shipment_id for r in parsed.records} == {"SHP-40022"}
    assert "invalid id 'lx bad'" in parsed.quarantined[0].reason
    assert parsed.quarantined[0].position.endswith("segment 11 (lx bad)")

    cut = _batch()[: _batch().index("SE*13*0002")]
    parsed = parse_x12(cut, "f", default_zone=CHICAGO)
    assert {r.shipment_id for r in parsed.records} == {"SHP-40021"}
    reasons = " | ".join(q.reason for q in parsed.quarantined)
    assert "file ends inside the transaction set (no SE)" in reasons
    assert "file ends with no IEA" in reasons


@pytest.mark.parametrize("text,needle", [
    ("hello world", "no ISA segment"),
    ("ISA*00*short~", "no ISA segment"),
    ("ISA*00*          *00*          *02*RDWY*ZZ*ACMEFOODS      *261118*0912*U*00401*000004711"
     "*0*P*>~GS*QM~" + " " * 20, "ISA06 is 4 characters"),
])
def test_unusable_isa_is_one_quarantine(text: str, needle: str) -> None:
    parsed = parse_x12(text, "f")
    assert parsed.records == [] and len(parsed.quarantined) == 1
    assert needle in parsed.quarantined[0].reason


@pytest.mark.parametrize("code,expected_hour", [("CT", 20), ("CS", 20), ("CD", 19), ("ET", 19),
                                                ("PT", 22), ("UT", 14), ("", 20)])
def test_time_codes(code: str, expected_hour: int) -> None:
    when = parse_x12_datetime("20261120", "1400", code, CHICAGO)
    assert when == datetime(2026, 11, 20, expected_hour, 0, tzinfo=UTC)


def test_time_codes_follow_daylight_saving() -> None:
    assert parse_x12_datetime("20260701", "1400", "CT", "UTC").hour == 19  # CDT, -5


def test_a_time_past_year_9999_in_utc_quarantines_its_transaction_and_the_rest_is_read() -> None:
    # 9999-12-31 23:59 is a real date, but Central time is UTC-6: in UTC it is year 10000
    text = _batch().replace("AT7*SD*AO***20261118*0745*CT", "AT7*SD*AO***99991231*2359*CT")
    parsed = parse_x12(text, "f", default_zone=CHICAGO)
    assert [(r.shipment_id, r.status) for r in parsed.records] == [
        ("SHP-40022", "arrived"), ("SHP-40022", "delivered")]
    (bad,) = parsed.quarantined
    assert bad.position == "ISA 000004711 / GS 4711 / ST 0001, segment 12 (AT7)"
    assert "'99991231 2359 CT' is out of range" in bad.reason
    assert "AT7*SD*AO***99991231*2359*CT" in bad.raw

    asn = (FIXTURES / "856_asn.edi").read_text().replace("DTM*017*20261119*1000",
                                                         "DTM*017*99991231*2330*PD")
    parsed = parse_x12(_batch() + asn, "f", default_zone=CHICAGO)
    assert len(parsed.records) == 5  # the 214 interchange before it
    (bad,) = parsed.quarantined
    assert "DTM '99991231 2330 PD' is out of range" in bad.reason
    with pytest.raises(ValueError, match="out of range"):
        parse_x12_datetime("99991231", "2359", "CT", CHICAGO)
    assert parse_x12_datetime("99991231", "2359", "UT", CHICAGO) == datetime(
        9999, 12, 31, 23, 59, tzinfo=UTC)


@pytest.mark.parametrize("old,new,needle", [
    ("SN1**1200*CA", "SN1**inf*CA", "SN1 quantity 'inf' is not a positive finite number"),
    ("SN1**1200*CA", "SN1**1e999*CA", "SN1 quantity '1e999' is not a positive finite number"),
    ("CTT*4", "CTT*" + "4" * 5000, "CTT01 says 44444444444444444444 HL levels but there are 4"),
])
def test_856_quantities_and_counts_out_of_range_are_quarantined(old: str, new: str,
                                                                 needle: str) -> None:
    asn = (FIXTURES / "856_asn.edi").read_text()
    assert old in asn
    parsed = parse_x12(asn.replace(old, new), "f", default_zone=CHICAGO)
    (bad,) = parsed.quarantined
    assert parsed.records == [] and needle in bad.reason


# --- 204 writer ---------------------------------------------------------------------------------


def _tender(**overrides: object) -> LoadTender:
    values: dict[str, object] = {
        "shipment_id": "SHP-40021", "carrier": "FXFE", "origin": "PLANT-CHI",
        "destination": "DC-DAL", "pickup": date(2026, 11, 18), "deliver_by": date(2026, 11, 20),
        "lines": [ShipmentLine(sku="SKU-10042", qty=1200), ShipmentLine(sku="SKU-10077", qty=840)],
        "reference": "alignbot-abc"}
    values.update(overrides)
    return LoadTender(**values)


def test_204_round_trips_with_a_valid_envelope() -> None:
    envelope = Envelope(sender_id="ACMEFOODS", receiver_id="FXFE")
    text = write_204(_tender(), envelope, 42, datetime(2026, 11, 18, 9, 0, tzinfo=UTC))
    document = read_interchanges(text)
    assert document.warnings == []
    (tx,) = document.transactions
    assert (tx.set_id, tx.errors, tx.interchange_control, tx.group_control) == (
        "204", [], "000000042", "42")
    assert text.startswith("ISA*00*          *00*          *ZZ*ACMEFOODS      *ZZ*FXFE")
    assert len(text.split("~")[0]) + 1 == 106
    (record,) = parse_x12(text, "out").records
    assert (record.shipment_id, record.carrier, record.origin, record.destination,
            record.status) == ("SHP-40021", "FXFE", "PLANT-CHI", "DC-DAL", "planned")
    assert record.lines == tuple(_tender().lines)
    assert record.planned_ship == datetime(2026, 11, 18, tzinfo=UTC)
    assert record.planned_arrival == datetime(2026, 11, 20, tzinfo=UTC)


def test_204_cancel_uses_b2a_purpose_01() -> None:
    text = write_204(_tender(purpose="cancel"), Envelope("ACME", "FXFE"), 7,
                     datetime(2026, 11, 18, tzinfo=UTC))
    assert "~B2A*01*LT~" in text
    (record,) = parse_x12(text, "out").records
    assert record.status == "cancelled"


def test_204_refuses_values_that_contain_separators_or_do_not_fit() -> None:
    with pytest.raises(ValueError, match="separator"):
        write_204(_tender(origin="DOCK*7"), Envelope("ACME", "FXFE"), 1, datetime.now(UTC))
    with pytest.raises(ValueError, match="longer than OID-03"):
        _tender(lines=[ShipmentLine(sku="S" * 31, qty=1)])
    with pytest.raises(ValueError, match="at most 30"):
        _tender(shipment_id="X" * 31)


# --- the connector over folders ---------------------------------------------------------------


def _connector(tmp_path: Path, **settings: object) -> X12Connector:
    config = X12Settings(sender_id="ACMEFOODS", receiver_id="FXFE", local_timezone=CHICAGO,
                         **settings)
    return X12Connector("x12-test", config, tmp_path)


def _drop(tmp_path: Path, *names: str) -> None:
    (tmp_path / "inbox").mkdir(exist_ok=True)
    for name in names:
        (tmp_path / "inbox" / name).write_bytes((FIXTURES / name).read_bytes())


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_reads_inbox_files_once_and_archives_when_acknowledged(tmp_path: Path) -> None:
    connector = _connector(tmp_path)
    _drop(tmp_path, "214_status_batch.edi", "856_asn.edi", "214_damaged.edi")
    (tmp_path / "inbox" / "notes.txt").write_text("not edi")
    assert connector.health().ok
    first = connector.read()
    assert len(first.records) == 5 + 1 + 1
    assert len(first.quarantined) == 2
    assert all(q.source == "x12-test:214_damaged.edi" for q in first.quarantined)
    # a crash before the caller saves the cursor loses nothing: the files are still there
    assert _names(tmp_path / "archive") == []
    assert len(connector.read().records) == 7
    # handing the cursor back acknowledges: those files move to the archive, none re-read
    second = connector.read(first.cursor)
    assert second.records == [] and second.quarantined == []
    assert _names(tmp_path / "archive") == [
        "214_damaged.edi", "214_status_batch.edi", "856_asn.edi"]
    assert _names(tmp_path / "inbox") == ["notes.txt"]
    # the same name arriving again is a new file and must not overwrite the archived one
    _drop(tmp_path, "856_asn.edi")
    third = connector.read(second.cursor)
    assert len(third.records) == 1
    connector.acknowledge(third.cursor)
    assert "856_asn.1.edi" in _names(tmp_path / "archive")


def test_a_file_the_reader_fails_on_is_quarantined_and_the_files_behind_it_are_read(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # a real failure: an SE01 count of 5,000 digits is past what int() converts
    # (connectors.x12_syntax), so parse_x12 raises ValueError for this file
    bad = _batch().replace("SE*13*0002", "SE*" + "1" * 5000 + "*0002")
    with pytest.raises(ValueError):
        parse_x12(bad, "f")
    _drop(tmp_path, "214_status_batch.edi")
    (tmp_path / "inbox" / "bad.edi").write_text(bad)
    _drop(tmp_path, "856_asn.edi")
    for age, name in enumerate(["856_asn.edi", "bad.edi", "214_status_batch.edi"], start=1):
        os.utime(tmp_path / "inbox" / name, (time.time() - 60 * age,) * 2)  # oldest first
    connector = _connector(tmp_path)
    first = connector.read()
    assert len(first.records) == 5 + 1  # the 214 batch before it and the ASN after it
    (quarantined,) = first.quarantined
    assert quarantined.source == "x12-test:bad.edi" and quarantined.position == "file"
    assert "could not be read (ValueError: Exceeds the limit" in quarantined.reason
    assert any(r.levelname == "ERROR" and "bad.edi" in r.getMessage() and r.exc_info
               for r in caplog.records)
    # handing the cursor back archives it with the others; it is not read again
    second = connector.read(first.cursor)
    assert second.records == [] and second.quarantined == []
    assert _names(tmp_path / "inbox") == []
    assert _names(tmp_path / "archive") == ["214_status_batch.edi", "856_asn.edi", "bad.edi"]
    assert connector.read(second.cursor).quarantined == []


def test_read_mode_archives_at_once_and_a_rewritten_file_is_read_again(tmp_path: Path) -> None:
    connector = _connector(tmp_path, archive_when="read")
    _drop(tmp_path, "214_status_batch.edi")
    assert len(connector.read().records) == 5
    assert _names(tmp_path / "inbox") == []
    assert connector.read().records == []

    eager = _connector(tmp_path)
    _drop(tmp_path, "856_asn.edi")
    cursor = eager.read().cursor
    text = (FIXTURES / "856_asn.edi").read_text().replace("SN1**1200*CA", "SN1**1100*CA")
    (tmp_path / "inbox" / "856_asn.edi").write_text(text)  # partner re-sends a correction
    corrected = eager.read(cursor)
    assert corrected.records[0].lines[0].qty == 1100


def _action(operation: str = "reassign_carrier", key: str = "alignbot-k1", **params: object):
    base = {"shipment_id": "SHP-40021", "carrier": "FXFE", "origin": "PLANT-CHI",
            "destination": "DC-DAL", "lines": [{"sku": "SKU-10042", "qty": 1200}],
            "deliver_by": "2026-11-20T14:00:00-06:00"}
    base.update(params)
    return Action(system="logistics", operation=operation, params=base, idempotency_key=key)


def test_execute_writes_one_204_per_idempotency_key(tmp_path: Path) -> None:
    connector = _connector(tmp_path)
    done = connector.execute(_action())
    assert (done.ok, done.status) == (True, "done")
    files = sorted((tmp_path / "outbox").glob("*.edi"))
    assert [f.name for f in files] == [tender_file_name("alignbot-k1")]
    again = connector.execute(_action())
    assert (again.ok, again.status) == (True, "duplicate")
    assert sorted((tmp_path / "outbox").glob("*.edi")) == files
    (record,) = parse_x12(files[0].read_text(), "out").records
    assert record.carrier == "FXFE" and record.planned_arrival == datetime(2026, 11, 20, tzinfo=UTC)

    # the transmitter takes the file away after sending; the key still must not tender again
    files[0].rename(tmp_path / "sent.edi")
    assert connector.execute(_action()).status == "duplicate"
    assert list((tmp_path / "outbox").glob("*.edi")) == []

    expedite = connector.execute(_action("expedite_shipment", "alignbot-k2"))
    text = (tmp_path / "outbox" / tender_file_name("alignbot-k2")).read_text()
    assert expedite.status == "done" and "NTE*GEN*EXPEDITE" in text
    assert "ISA*00*" in text and "*000000002*" in text  # control numbers advance
    cancel = connector.execute(_action("cancel_tender", "alignbot-k3"))
    assert cancel.status == "done"
    assert "B2A*01" in (tmp_path / "outbox" / tender_file_name("alignbot-k3")).read_text()


def test_execute_rejects_what_a_204_cannot_say(tmp_path: Path) -> None:
    connector = _connector(tmp_path)
    wrong = connector.execute(_action("update_forecast"))
    assert (wrong.ok, wrong.status) == (False, "rejected") and "not a carrier action" in wrong.detail
    missing = connector.execute(_action(carrier=""))
    assert missing.status == "rejected" and "carrier" in missing.detail
    nokey = connector.execute(_action(key=""))
    assert nokey.status == "rejected" and "idempotency key" in nokey.detail
    beyond = connector.execute(_action(deliver_by="9999-12-31T23:59:59-12:00"))
    assert beyond.status == "rejected" and "'9999-12-31T23:59:59-12:00' is out of range" in (
        beyond.detail)
    transfer = connector.execute(Action(
        system="logistics", operation="create_transfer", idempotency_key="alignbot-t1",
        params={"sku": "SKU-10042", "qty": 300, "origin": "DC-DAL", "destination": "DC-ATL",
                "carrier": "RDWY"}))
    assert transfer.status == "done"
    (record,) = parse_x12((tmp_path / "outbox" / tender_file_name("alignbot-t1")).read_text(),
                          "out").records
    assert record.shipment_id.startswith("TR-") and record.lines == (
        ShipmentLine(sku="SKU-10042", qty=300),)
    assert list((tmp_path / "outbox").glob("*.edi")) == [
        tmp_path / "outbox" / tender_file_name("alignbot-t1")]


def test_partner_acknowledgments_are_skipped_not_quarantined() -> None:
    text = (FIXTURES / "214_status_batch.edi").read_text()
    ack = "ST*997*0003~AK1*SM*42~AK9*A*1*1*1~SE*4*0003~"
    text = text.replace("GE*2*4711~", ack + "GE*3*4711~")
    parsed = parse_x12(text, "f", default_zone=CHICAGO)
    assert len(parsed.records) == 5 and parsed.quarantined == []
    (skipped,) = parsed.skipped
    assert skipped.position == "ISA 000004711 / GS 4711 / ST 0003"
    assert "functional acknowledgment" in skipped.reason
    unknown = text.replace("ST*997*0003", "ST*810*0003")
    (bad,) = parse_x12(unknown, "f", default_zone=CHICAGO).quarantined
    assert "transaction set '810' is not one alignbot reads" in bad.reason
