"""ANSI X12 004010/005010 over files: 214 status and 856 ASN in from an inbox, 204 tenders out.

Syntax (separators, envelopes, counts) lives in ``connectors.x12_syntax``, which reads a file
a chunk at a time and hands over one transaction set at a time; this module gives the
transaction sets their meaning:

* 214 → one ``ShipmentEvent`` per AT7, in every LX loop (B10-02 shipment id, B10-03 carrier,
  L11/N1 into the reference — an L11 or AT8 inside an LX loop only for that loop's events —
  MS1 location, MS2 carrier/equipment, AT8 weight/quantity). Status, appointment and reason
  codes are read through the X12 code lists (``connectors.x12_codes``, elements 1650/1651/
  1652 in full): estimated and appointed deliveries (AG, X2; AB, AC, X9) become
  ``eta_changed`` with the date as ``eta``; an unknown code is kept as an ``informational``
  event with a warning, never quarantined.
* 856 → one ``ShipmentRecord`` (BSN, HL S/O/P/I, TD5 carrier, TD3 equipment, REF BM bill of
  lading, DTM 011 shipped / 017 estimated delivery / 002 requested delivery, N1 SF/ST, PRF PO,
  LIN/SN1 lines at the item levels; one SKU packed in several levels is one line).
* 204 ← carrier actions (reassign_carrier, expedite_shipment, create_transfer; a cancel is
  B2A purpose 01); a 204 also reads back as a planned (or cancelled) ``ShipmentRecord``.

Times: X12 time codes (CT, ES, PD, UT ...) give the zone; "xT" codes follow daylight saving
through zoneinfo, "xS"/"xD" are fixed offsets. A time without a code uses
``X12Settings.local_timezone``. Any mapping error quarantines its whole transaction set.

``parse_x12`` reads bytes or text already in memory; ``iter_parse_x12`` streams a path or a
binary file (the connector's inbox read and ``alignbot inspect`` use it).
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import json
import logging
import math
import os
import re
import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from datetime import UTC as _UTC
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, BinaryIO, Literal, TextIO
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, Field, ValidationError, field_validator

from canonical.model import (
    Action,
    Quarantined,
    ReadResult,
    ShipmentEvent,
    ShipmentLine,
    ShipmentRecord,
)
from connectors import x12_codes
from connectors._archive import archive_read_files
from connectors._mapping import to_utc
from connectors.base import ExecuteResult, Health, collected
from connectors.x12_syntax import (
    EnvelopeWarning,
    Interchange,
    Segment,
    Separators,
    TransactionSet,
    isa_segment,
    iter_x12,
    segment,
)

log = logging.getLogger(__name__)

_FIXED = {"S": 0, "D": 1}
# X12 element 623 (time code): generic codes follow DST, S/D codes are fixed offsets
_ZONES = {
    "C": ("America/Chicago", -6), "E": ("America/New_York", -5),
    "M": ("America/Denver", -7), "P": ("America/Los_Angeles", -8),
    "A": ("America/Anchorage", -9), "H": ("Pacific/Honolulu", -10),
    "T": ("America/Halifax", -4), "N": ("America/St_Johns", -3.5),
}
TRANSPORT_MODES = {"M": "TL", "LT": "LTL", "A": "AIR", "AE": "AIR", "R": "RAIL", "S": "OCEAN",
                   "X": "INTERMODAL", "U": "PARCEL", "E": "EXPEDITED", "H": "TL"}
CARRIER_OPERATIONS = ("reassign_carrier", "expedite_shipment", "create_transfer",
                      "cancel_tender")


class X12MappingError(ValueError):
    def __init__(self, seg: Segment | None, reason: str):
        super().__init__(reason)
        self.segment = seg


def zone_for(code: str, default: str) -> Any:
    """tzinfo for an X12 time code; '' or LT means the configured local zone."""
    code = code.strip().upper()
    if code in ("", "LT"):
        return ZoneInfo(default)
    if code in ("UT", "GM", "UTC", "Z"):
        return _UTC
    if len(code) == 2 and code[0] in _ZONES and code[1] in "TSD":
        name, standard = _ZONES[code[0]]
        if code[1] == "T":
            return ZoneInfo(name)
        return timezone(timedelta(hours=standard + _FIXED[code[1]]))
    raise ValueError(f"unknown X12 time code {code!r} (expected e.g. CT, ES, PD, UT, LT)")


def parse_x12_datetime(day: str, clock: str, code: str, default_zone: str) -> datetime:
    """CCYYMMDD (or YYMMDD) + HHMM[SS[DD]] + time code → aware UTC datetime."""
    if re.fullmatch(r"\d{6}", day):
        day = "20" + day
    if not re.fullmatch(r"\d{8}", day):
        raise ValueError(f"date {day!r} is not CCYYMMDD")
    try:
        parsed_day = date(int(day[:4]), int(day[4:6]), int(day[6:]))
    except ValueError:
        raise ValueError(f"date {day!r} does not exist") from None
    clock = clock or "0000"
    if not re.fullmatch(r"\d{4}(\d{2}(\d{1,2})?)?", clock):
        raise ValueError(f"time {clock!r} is not HHMM[SS]")
    hour, minute = int(clock[:2]), int(clock[2:4])
    second = int(clock[4:6]) if len(clock) >= 6 else 0
    if hour > 23 or minute > 59 or second > 59:
        raise ValueError(f"time {clock!r} does not exist")
    local = datetime(parsed_day.year, parsed_day.month, parsed_day.day, hour, minute, second,
                     tzinfo=zone_for(code, default_zone))
    return to_utc(local, " ".join(v for v in (day, clock, code) if v))


def _time(seg: Segment, day_pos: int, time_pos: int, code_pos: int | None,
          default_zone: str) -> datetime:
    code = seg.get(code_pos) if code_pos else ""
    try:
        return parse_x12_datetime(seg.get(day_pos), seg.get(time_pos), code, default_zone)
    except ValueError as exc:
        raise X12MappingError(seg, f"{seg.id} {exc}") from None


# --- 214 -------------------------------------------------------------------------------------


def map_214(tx: TransactionSet, *, default_zone: str = "UTC",
            shipment_key: Literal["shipment_id", "bol"] = "shipment_id",
            warnings: list[tuple[Segment, str]] | None = None) -> list[ShipmentEvent]:
    """A 214 transaction set as events, one per AT7, in every LX loop.

    Status codes come from ``connectors.x12_codes`` (elements 1650/1651/1652 of 004010 and
    005010). A code outside those lists is kept as an ``informational`` event with its code,
    and a warning is appended to ``warnings`` (segment, text); a valid code never
    quarantines. L11/AT8 inside an LX loop belong to that loop's events; before the first LX
    they belong to all of them.
    """
    b10 = next((s for s in tx.segments if s.id == "B10"), None)
    if b10 is None:
        raise X12MappingError(None, "214 has no B10 (shipment identification)")
    shipment_id = b10.get(2) or b10.get(1)
    carrier = b10.get(3)
    header: dict[str, str] = {"x12": f"214 {tx.position}"}
    if b10.get(1):
        header["carrier_ref"] = b10.get(1)
    events: list[dict[str, Any]] = []
    current: dict[str, Any] | None = None
    loop: dict[str, str] = header  # where L11/AT8 go: the header until the first LX
    lx = ""
    for seg in tx.segments[1:-1]:
        sid = seg.id
        if sid == "AT7":
            current = {"at7": seg, "lx": lx, "loop": loop}
            events.append(current)
        elif sid == "LX":
            lx, current, loop = seg.get(1), None, {}
        elif sid == "MS1" and current is not None:
            current["location"] = ", ".join(v for v in (seg.get(1), seg.get(2), seg.get(3)) if v)
        elif sid == "MS2" and current is not None:
            if seg.get(1):
                current["carrier"] = seg.get(1)
            if seg.get(2):
                current["equipment"] = seg.get(2)
        elif sid == "L11" and seg.get(1):
            loop[_key("L11:", seg.get(2) or "untyped")] = seg.get(1)
        elif sid == "AT8":
            if seg.get(3):
                loop["weight"] = f"{seg.get(3)} {seg.get(2)}".strip()
            if seg.get(4):
                loop["lading_qty"] = seg.get(4)
        elif sid == "N1" and not lx:
            header[_key("N1:", seg.get(1))] = seg.get(4) or seg.get(2)
    if not events:
        raise X12MappingError(b10, "214 has no AT7 status segment")
    if shipment_key == "bol":
        header["shipment_id"] = b10.get(2)
        shipment_id = header.get("L11:BM", "") or shipment_id
    if not shipment_id:
        raise X12MappingError(b10, "B10 has neither a shipment id (B10-02) nor a reference "
                                   "(B10-01)")
    out = []
    group_time = _group_time(tx, default_zone)
    for item in events:
        at7: Segment = item["at7"]
        reference = dict(header)
        if item["loop"] is not header:
            reference.update(item["loop"])
        if item["lx"]:
            reference["lx"] = item["lx"]
        if "equipment" in item:
            reference["equipment"] = item["equipment"]
        status = _at7_status(at7, reference, warnings)
        when = _time(at7, 5, 6, 7, default_zone)
        kind = status.date
        if kind == "eta":
            event_time, eta = group_time or when, when
        elif kind in ("estimate", "appointment"):
            event_time, eta = group_time or when, None
            reference[kind] = when.isoformat().replace("+00:00", "Z")
        else:
            event_time, eta = when, None
        key = shipment_id
        if shipment_key == "bol" and item["loop"].get("L11:BM"):
            key = item["loop"]["L11:BM"]  # one 214 reporting several loads, one per LX
        try:
            out.append(ShipmentEvent(
                shipment_id=key, event_time=event_time,
                status=x12_codes.event_status(status.canonical, eta is not None),
                status_code=status.code, reason_code=status.reason,
                location=item.get("location", ""), eta=eta,
                carrier=item.get("carrier", carrier), reference=reference))
        except ValidationError as exc:
            raise X12MappingError(at7, f"AT7 does not make a valid event: "
                                       f"{exc.errors()[0]['msg']}") from None
    return out


@dataclass
class _Status:
    code: str
    reason: str
    canonical: str
    date: str


_KEYS: dict[str, str] = {}


def _key(prefix: str, qualifier: str) -> str:
    """'L11:BM' once per qualifier, not a new string per segment (a 50 MB file has millions)."""
    text = prefix + qualifier
    return _KEYS.setdefault(text, text) if len(_KEYS) < 10_000 else text


def _at7_status(at7: Segment, reference: dict[str, str],
                warnings: list[tuple[Segment, str]] | None) -> _Status:
    """The AT7's status (AT7-01, or the appointment status AT7-03) and reason, read through
    the X12 code lists; unknown codes become informational with a warning."""
    code, reason = at7.get(1), at7.get(2)
    element = "1650"
    if not code and at7.get(3):
        code, reason, element = at7.get(3), at7.get(4), "1652"
    if not code:
        raise X12MappingError(at7, "AT7 has neither a shipment status (AT7-01) nor an "
                                   "appointment status (AT7-03)")
    known = x12_codes.lookup(element, code)
    problems = []
    if known is None:
        canonical, date = "informational", "event"
        problems.append(f"{'AT7-01' if element == '1650' else 'AT7-03'} code {code[:10]!r} is "
                        f"not in the X12 004010/005010 list of element {element} "
                        f"({x12_codes.ELEMENTS[element]}); kept as an informational event")
    else:
        canonical, date = known.canonical, known.date
        if known.description:
            reference["status_description"] = known.description
    if reason:
        why = x12_codes.lookup("1651", reason)
        if why is None:
            problems.append(f"reason code {reason[:10]!r} is not in the X12 004010/005010 list "
                            "of element 1651; kept as given")
        else:
            if why.description:
                reference["reason_description"] = why.description
            if canonical in x12_codes.MOVEMENT and why.canonical in ("delayed", "exception"):
                canonical = why.canonical  # e.g. AF with AW (past cut-off time): departed late
    if problems:
        reference["warning"] = "; ".join(problems)
        if warnings is not None:
            warnings.extend((at7, problem) for problem in problems)
    return _Status(code=code, reason=reason, canonical=canonical, date=date)


def _group_time(tx: TransactionSet, default_zone: str) -> datetime | None:
    try:
        return parse_x12_datetime(tx.group_date, tx.group_time, "", default_zone)
    except ValueError:
        return None


# --- 856 -------------------------------------------------------------------------------------


def map_856(tx: TransactionSet, *, default_zone: str = "UTC",
            shipment_key: Literal["shipment_id", "bol"] = "shipment_id",
            sku_qualifiers: tuple[str, ...] = ("SK", "BP", "VP", "IN", "UP")) -> ShipmentRecord:
    """An 856 ASN as one shipment with its lines."""
    bsn = next((s for s in tx.segments if s.id == "BSN"), None)
    if bsn is None:
        raise X12MappingError(None, "856 has no BSN (beginning segment for ship notice)")
    fields: dict[str, Any] = {"shipment_id": bsn.get(2), "origin": "", "destination": "",
                              "status": "cancelled" if bsn.get(1) == "01" else "in_transit"}
    bol = ""
    levels: dict[str, str] = {}
    level = ""
    quantities: dict[str, float] = {}  # sku -> qty: one SKU packed in several HLs is one line
    sku = ""
    hl_count = 0
    for seg in tx.segments[1:-1]:
        if seg.id == "HL":
            hl_count += 1
            hl_id, parent, level = seg.get(1), seg.get(2), seg.get(3)
            if not hl_id or hl_id in levels:
                raise X12MappingError(seg, f"HL id {hl_id!r} is missing or repeated")
            if parent and parent not in levels:
                raise X12MappingError(seg, f"HL {hl_id} names parent {parent!r}, which does "
                                           "not come before it")
            if not parent and level != "S":
                raise X12MappingError(seg, f"HL {hl_id} level {level!r} has no parent; only "
                                           "the shipment (S) level may be the root")
            levels[hl_id] = level
            sku = ""
        elif seg.id == "TD5" and level == "S":
            fields["carrier"] = seg.get(3) or fields.get("carrier", "")
            if seg.get(4):
                fields["mode"] = TRANSPORT_MODES.get(seg.get(4), seg.get(4))
        elif seg.id == "REF" and seg.get(1) == "BM":
            bol = seg.get(2)
        elif seg.id == "DTM":
            qualifier = seg.get(1)
            target = {"011": "planned_ship", "017": "eta", "002": "planned_arrival"}.get(qualifier)
            if target:
                fields[target] = _time(seg, 2, 3, 4, default_zone)
        elif seg.id == "N1" and level == "S":
            party = seg.get(4) or seg.get(2)
            if seg.get(1) in ("SF", "SH"):
                fields["origin"] = party
            elif seg.get(1) in ("ST", "CN"):
                fields["destination"] = party
        elif seg.id == "LIN":
            pairs = {seg.get(i): seg.get(i + 1) for i in range(2, len(seg.elements) - 1, 2)}
            sku = next((pairs[q] for q in sku_qualifiers if pairs.get(q)), "")
            if not sku:
                raise X12MappingError(seg, "LIN has no item id with a qualifier among "
                                           f"{', '.join(sku_qualifiers)}")
        elif seg.id == "SN1":
            if not sku:
                if level != "I":
                    continue  # a pack or order level total; the item levels carry the lines
                raise X12MappingError(seg, "SN1 quantity without a LIN item before it")
            try:
                qty = float(seg.get(2))
            except ValueError:
                raise X12MappingError(seg, f"SN1 quantity {seg.get(2)!r} is not a number") from None
            if not (qty > 0 and math.isfinite(qty)):
                raise X12MappingError(seg, f"SN1 quantity {seg.get(2)!r} is not a positive "
                                           "finite number")
            try:
                ShipmentLine(sku=sku, qty=qty)
            except ValidationError as exc:
                raise X12MappingError(seg, f"SN1 line {sku!r} × {seg.get(2)!r}: "
                                           f"{exc.errors()[0]['msg']}") from None
            quantities[sku] = quantities.get(sku, 0.0) + qty
        # compared as text: int() refuses numbers of more than 4,300 digits
        elif (seg.id == "CTT" and re.fullmatch("[0-9]+", seg.get(1))
              and seg.get(1).lstrip("0") != str(hl_count).lstrip("0")):
            raise X12MappingError(seg, f"CTT01 says {seg.get(1)[:20]} HL levels but there are "
                                       f"{hl_count}")
    if bsn.get(3):
        # BSN05 is the hierarchical structure code (0001 ...), not a time code
        fields["last_event_at"] = _time(bsn, 3, 4, None, default_zone)
    if shipment_key == "bol" and bol:
        fields["shipment_id"] = bol
    if not fields["shipment_id"]:
        raise X12MappingError(bsn, "BSN02 shipment identification is empty")
    try:
        return ShipmentRecord(lines=tuple(ShipmentLine(sku=k, qty=v) for k, v in quantities.items()),
                              **fields)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise X12MappingError(bsn, f"856 does not make a valid shipment: "
                                   f"{'.'.join(map(str, first['loc']))} {first['msg']}") from None


# --- 204 -------------------------------------------------------------------------------------


class LoadTender(BaseModel):
    """What a 204 says: one load, two stops, its lines; purpose 'cancel' withdraws it."""

    shipment_id: str = Field(min_length=1, max_length=30)  # B2-04 is AN 1/30
    carrier: str = Field(min_length=2, max_length=4, description="SCAC of the carrier")
    origin: str = Field(min_length=1, max_length=80)  # N1-04 is AN 2/80
    destination: str = Field(min_length=1, max_length=80)
    lines: list[ShipmentLine] = Field(default_factory=list)
    pickup: date | None = None
    deliver_by: date | None = None
    expedite: bool = False
    purpose: Literal["original", "cancel"] = "original"
    reference: str = ""  # our idempotency key; its first 30 characters (L11-01 is AN 1/30)
    # go out in L11 so the carrier's 990 can cite it

    @field_validator("lines")
    @classmethod
    def _sku_fits(cls, lines: list[ShipmentLine]) -> list[ShipmentLine]:
        for line in lines:
            if len(line.sku) > 30:
                raise ValueError(f"sku {line.sku!r} is longer than OID-03 allows (30)")
        return lines


def map_204(tx: TransactionSet, *, default_zone: str = "UTC") -> ShipmentRecord:
    """A 204 read back as the planned (or cancelled) shipment it tenders."""
    b2 = next((s for s in tx.segments if s.id == "B2"), None)
    if b2 is None:
        raise X12MappingError(None, "204 has no B2 (beginning segment for load tender)")
    fields: dict[str, Any] = {"shipment_id": b2.get(4), "carrier": b2.get(2), "origin": "",
                              "destination": "", "status": "planned"}
    lines: list[ShipmentLine] = []
    stop_reason = ""
    for seg in tx.segments[1:-1]:
        if seg.id == "B2A" and seg.get(1) == "01":
            fields["status"] = "cancelled"
        elif seg.id == "S5":
            stop_reason = seg.get(2)
        elif seg.id == "G62" and seg.get(1) in ("10", "02"):
            key = "planned_ship" if seg.get(1) == "10" else "planned_arrival"
            fields[key] = _time(seg, 2, 4, 5, default_zone)
        elif seg.id == "N1" and seg.get(1) in ("SF", "ST"):
            fields["origin" if seg.get(1) == "SF" else "destination"] = seg.get(4) or seg.get(2)
        elif seg.id == "OID" and stop_reason in ("CL", "LD"):
            try:
                lines.append(ShipmentLine(sku=seg.get(3), qty=float(seg.get(5))))
            except (ValueError, ValidationError):
                raise X12MappingError(seg, f"OID item {seg.get(3)!r} × {seg.get(5)!r} is not "
                                           "a sku with a positive quantity") from None
    try:
        return ShipmentRecord(lines=tuple(lines), **fields)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise X12MappingError(b2, f"204 does not make a valid shipment: "
                                  f"{'.'.join(map(str, first['loc']))} {first['msg']}") from None


@dataclass(frozen=True)
class Envelope:
    """Who sends to whom, and the separators to write with."""

    sender_id: str
    receiver_id: str
    sender_qualifier: str = "ZZ"
    receiver_qualifier: str = "ZZ"
    usage: Literal["P", "T"] = "P"
    separators: Separators = field(default_factory=lambda: Separators("*", ">", "~"))


def write_204(tender: LoadTender, envelope: Envelope, control: int, now: datetime) -> str:
    """A complete interchange holding one 204, with matching counts and control numbers."""
    seps = envelope.separators

    def seg(*parts: str) -> str:
        return segment(seps, *parts)

    body = [
        seg("ST", "204", "0001"),
        seg("B2", "", tender.carrier, "", tender.shipment_id, "", "PP"),
        seg("B2A", "01" if tender.purpose == "cancel" else "00", "LT"),
    ]
    if tender.reference:
        body.append(seg("L11", tender.reference[:30], "CR"))
    if tender.expedite:
        body.append(seg("NTE", "GEN", "EXPEDITE"))
    total = sum(line.qty for line in tender.lines)
    body.append(seg("S5", "1", "CL", "", "", _qty(total) if total else "", "CA" if total else ""))
    if tender.pickup:
        body.append(seg("G62", "10", tender.pickup.strftime("%Y%m%d")))
    body.append(seg("N1", "SF", tender.origin[:60], "93", tender.origin[:80]))
    for line in tender.lines:
        body.append(seg("OID", tender.shipment_id, "", line.sku, "CA", _qty(line.qty)))
    body.append(seg("S5", "2", "CU"))
    if tender.deliver_by:
        body.append(seg("G62", "02", tender.deliver_by.strftime("%Y%m%d")))
    body.append(seg("N1", "ST", tender.destination[:60], "93", tender.destination[:80]))
    body.append(seg("SE", str(len(body) + 1), "0001"))
    stamp = now.astimezone(_UTC)
    return "".join([
        isa_segment(seps, sender_qualifier=envelope.sender_qualifier,
                    sender_id=envelope.sender_id, receiver_qualifier=envelope.receiver_qualifier,
                    receiver_id=envelope.receiver_id, date=stamp.strftime("%y%m%d"),
                    time=stamp.strftime("%H%M"), control=control, usage=envelope.usage),
        seg("GS", "SM", envelope.sender_id, envelope.receiver_id, stamp.strftime("%Y%m%d"),
            stamp.strftime("%H%M"), str(control), "X", "004010"),
        *body,
        seg("GE", "1", str(control)),
        seg("IEA", "1", f"{control:09d}"),
    ])


def _qty(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.3f}".rstrip("0")


# --- whole files -----------------------------------------------------------------------------


# replies a trading partner sends back (acknowledgments, tender responses): valid X12 that
# alignbot does not turn into records, so they are skipped rather than quarantined
SKIPPED_SETS = {"997": "functional acknowledgment", "999": "implementation acknowledgment",
                "990": "response to a load tender", "824": "application advice"}


@dataclass
class X12Parse:
    records: list[ShipmentRecord | ShipmentEvent] = field(default_factory=list)
    quarantined: list[Quarantined] = field(default_factory=list)
    skipped: list[Quarantined] = field(default_factory=list)  # valid, but not alignbot's
    warnings: list[Quarantined] = field(default_factory=list)  # read, with something to say


Item = tuple[Literal["record", "quarantined", "skipped", "warning"], Any]
_LOGGED_WARNINGS = 20  # per file; the rest are counted in one line


def parse_x12(data: bytes | str, source: str, *, default_zone: str = "UTC",
              shipment_key: Literal["shipment_id", "bol"] = "shipment_id",
              sku_qualifiers: tuple[str, ...] = ("SK", "BP", "VP", "IN", "UP")) -> X12Parse:
    """Every transaction set in every interchange; never raises on bad input."""
    result = X12Parse()
    lists = {"record": result.records, "quarantined": result.quarantined,
             "skipped": result.skipped, "warning": result.warnings}
    for kind, item in iter_parse_x12(data, source, default_zone=default_zone,
                                     shipment_key=shipment_key, sku_qualifiers=sku_qualifiers):
        lists[kind].append(item)
    return result


def iter_parse_x12(source: bytes | str | BinaryIO | TextIO | Path, name: str, *,
                   default_zone: str = "UTC",
                   shipment_key: Literal["shipment_id", "bol"] = "shipment_id",
                   sku_qualifiers: tuple[str, ...] = ("SK", "BP", "VP", "IN", "UP"),
                   ) -> Iterator[Item]:
    """``parse_x12`` as a stream: ("record", record), ("quarantined" | "skipped" | "warning",
    Quarantined) in file order, reading a file (a path or a binary file object) a chunk at a
    time and holding one transaction set at a time. Records come out as their transaction
    set is read, so a caller that writes or applies them as they come holds none of them."""
    try:
        ZoneInfo(default_zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"local time zone {default_zone!r} is not an IANA zone name") from None
    if isinstance(source, Path):
        with open(source, "rb") as handle:
            yield from iter_parse_x12(handle, name, default_zone=default_zone,
                                      shipment_key=shipment_key, sku_qualifiers=sku_qualifiers)
        return
    interchanges = quarantined = warned = 0
    for item in iter_x12(source):
        if isinstance(item, Interchange):
            interchanges += 1
            continue
        if isinstance(item, EnvelopeWarning):
            quarantined += 1
            yield "quarantined", Quarantined(source=name, position=item.position,
                                             reason=f"envelope: {item.reason}")
            continue
        tx = item
        mapped: list[ShipmentRecord | ShipmentEvent] = []
        notes: list[tuple[Segment, str]] = []
        try:
            if tx.set_id == "214":
                mapped = list(map_214(tx, default_zone=default_zone, shipment_key=shipment_key,
                                      warnings=notes))
            elif tx.set_id == "856":
                mapped = [map_856(tx, default_zone=default_zone, shipment_key=shipment_key,
                                  sku_qualifiers=sku_qualifiers)]
            elif tx.set_id == "204":
                mapped = [map_204(tx, default_zone=default_zone)]
            elif tx.set_id in SKIPPED_SETS and not tx.errors:
                yield "skipped", Quarantined(
                    source=name, position=tx.position,
                    reason=f"{tx.set_id} ({SKIPPED_SETS[tx.set_id]}) carries no shipment data")
                continue
            else:
                raise X12MappingError(tx.segments[0], f"transaction set {tx.set_id!r} is not "
                                                      "one alignbot reads (214, 856, 204)")
        except X12MappingError as exc:
            tx.error(exc.segment, str(exc))
        if tx.errors:  # syntax and meaning problems together, in segment order
            quarantined += 1
            yield "quarantined", Quarantined(source=name, position=tx.where(),
                                             reason=tx.reason(), raw=_raw(tx))
            continue
        for seg, text in notes:
            warned += 1
            where = f"{tx.position}, segment {seg.index} ({seg.id})"
            if warned <= _LOGGED_WARNINGS:
                log.warning("%s: %s: %s", name, where, text)
            yield "warning", Quarantined(source=name, position=where, reason=text,
                                         raw="*".join(seg.elements)[:200])
        for record in mapped:
            yield "record", record
    if warned > _LOGGED_WARNINGS:
        log.warning("%s: %d more warnings like those (see alignbot inspect)", name,
                    warned - _LOGGED_WARNINGS)
    if not interchanges and not quarantined:
        yield "quarantined", Quarantined(source=name, position="start of file",
                                         reason="no X12 interchange found")


def _raw(tx: TransactionSet) -> str:
    return "~".join("*".join(s.elements) for s in tx.segments)[:2000]


# --- the connector ---------------------------------------------------------------------------


class X12Settings(BaseModel):
    """Folders (relative to the connector's base path) and the trading-partner envelope."""

    inbox: str = "inbox"
    archive: str = "archive"
    outbox: str = "outbox"
    state: str = ".x12-state"
    archive_when: Literal["acknowledged", "read"] = "acknowledged"
    min_age_seconds: float = Field(default=0.0, ge=0)  # younger files may still be arriving
    max_file_bytes: int = Field(default=100_000_000, gt=0)
    sender_id: str = Field(default="ALIGNBOT", min_length=1, max_length=15)
    sender_qualifier: str = Field(default="ZZ", min_length=2, max_length=2)
    receiver_id: str = Field(default="CARRIER", min_length=1, max_length=15)
    receiver_qualifier: str = Field(default="ZZ", min_length=2, max_length=2)
    usage: Literal["P", "T"] = "P"
    local_timezone: str = "UTC"  # for X12 times sent without a time code
    shipment_key: Literal["shipment_id", "bol"] = "shipment_id"
    sku_qualifiers: tuple[str, ...] = ("SK", "BP", "VP", "IN", "UP")
    default_carrier: str = ""  # SCAC for create_transfer when the action names none


CHUNK_RECORDS = 5_000  # records per ReadResult of read_chunks
_SAFE = re.compile(r"[^A-Za-z0-9._-]")


def _load_cursor(cursor: str | None) -> dict[str, str]:
    """Cursor = {"v": 1, "read": {file name: sha256}}; anything else means nothing read yet."""
    if not cursor:
        return {}
    try:
        state = json.loads(cursor)
    except ValueError:
        return {}
    files = state.get("read") if isinstance(state, dict) else None
    return {str(k): str(v) for k, v in files.items()} if isinstance(files, dict) else {}


def _dump_cursor(files: dict[str, str]) -> str:
    return json.dumps({"v": 1, "read": files}, sort_keys=True)


def tender_file_name(idempotency_key: str) -> str:
    """A file name only this key maps to (readable prefix + hash of the whole key)."""
    digest = hashlib.sha256(idempotency_key.encode()).hexdigest()[:16]
    return f"204-{_SAFE.sub('_', idempotency_key)[:60]}-{digest}.edi"


def tender_from_action(action: Action, default_carrier: str = "") -> LoadTender:
    """Build the 204 content from an action's params; ValueError names what is missing."""
    op, p = action.operation, action.params
    if op not in CARRIER_OPERATIONS:
        raise ValueError(f"operation {op!r} is not a carrier action (X12 204 handles "
                         f"{', '.join(CARRIER_OPERATIONS)})")
    lines = p.get("lines") or ([{"sku": p["sku"], "qty": p.get("qty")}] if p.get("sku") else [])
    shipment_id = p.get("shipment_id") or (
        f"TR-{hashlib.sha256(action.idempotency_key.encode()).hexdigest()[:10].upper()}"
        if op == "create_transfer" else "")
    carrier = p.get("carrier") or p.get("new_carrier") or default_carrier
    try:
        return LoadTender(
            shipment_id=shipment_id, carrier=carrier, origin=p.get("origin", ""),
            destination=p.get("destination", ""), lines=lines,
            pickup=_day(p.get("pickup") or p.get("ship_date")),
            deliver_by=_day(p.get("deliver_by") or p.get("need_by")),
            expedite=op == "expedite_shipment" or bool(p.get("expedite")),
            purpose="cancel" if op == "cancel_tender" or p.get("cancel") else "original",
            reference=action.idempotency_key)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ValueError(f"{op} params do not make a load tender: {problems}") from None


def _day(value: Any) -> Any:
    """A date from a date, an aware datetime (its UTC day) or an ISO string; ValueError when
    the UTC day would fall outside the calendar."""
    if isinstance(value, str) and len(value) > 10 and value[10] in "T ":
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return value  # LoadTender's validation says what is wrong with it
    if isinstance(value, datetime):
        return to_utc(value, value.isoformat()).date() if value.tzinfo else value.date()
    return value


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


class _HashingReader(io.RawIOBase):
    """A binary file that hashes what is read through it."""

    def __init__(self, raw: BinaryIO):
        self._raw = raw
        self._digest = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._raw.read(len(buffer))
        self._digest.update(data)
        buffer[:len(data)] = data
        return len(data)

    def hexdigest(self) -> str:
        return self._digest.hexdigest()


class X12Connector:
    """Reads 214/856 files dropped in an inbox; writes 204 load tenders to an outbox."""

    SUFFIXES: tuple[str, ...] = (".edi", ".x12")  # the inbox files read (lower case)

    def _items(self, stream: BinaryIO, source: str) -> Iterator[Item]:
        """One file's items (``iter_parse_x12``'s kinds); the EDIFACT connector reads its own."""
        return iter_parse_x12(stream, source, default_zone=self.settings.local_timezone,
                              shipment_key=self.settings.shipment_key,
                              sku_qualifiers=self.settings.sku_qualifiers)

    def __init__(self, name: str, settings: X12Settings, base_path: Path):
        self.name = name
        self.settings = settings
        self.base_path = Path(base_path)
        self.inbox = self.base_path / settings.inbox
        self.archive = self.base_path / settings.archive
        self.outbox = self.base_path / settings.outbox
        # control numbers and the keys already tendered; outside the outbox, which a
        # transmitter may empty after sending
        self.state = self.base_path / settings.state
        zone_for("", settings.local_timezone)  # fail at start-up on a bad zone name

    def read(self, since: str | None = None) -> ReadResult:
        """Each new *.edi/*.x12 file once, in one result (``read_chunks`` collected). Files
        the cursor ``since`` recorded are archived first (the caller saved that cursor, so
        they are safely read); with ``archive_when="read"`` a file is archived as soon as it
        is parsed."""
        return collected(self.read_chunks(since), since)

    def read_chunks(self, since: str | None = None) -> Iterator[ReadResult]:
        """The read as results of at most ``CHUNK_RECORDS`` records each, so a large file is
        never held whole: each file is read a chunk of text at a time, one transaction set
        at a time. The last result (possibly empty) carries the new cursor; stop early and
        nothing is archived or recorded, the next read starts over. A file whose reading
        fails part-way keeps the chunks already handed over, and the failure is quarantined
        (a file that fails within its first chunk hands over nothing, as before)."""
        done = _load_cursor(since)
        if self.settings.archive_when == "acknowledged":
            gone = self._archive(done)
            done = {n: h for n, h in done.items() if n not in gone}
        if not self.inbox.is_dir():
            yield ReadResult(cursor=_dump_cursor(done))
            return
        now = time.time()
        candidates = []
        for path in self.inbox.iterdir():
            if (not path.is_file() or path.name.startswith(".")
                    or path.suffix.lower() not in self.SUFFIXES):
                continue
            stat = path.stat()
            if now - stat.st_mtime >= self.settings.min_age_seconds:
                candidates.append((stat.st_mtime, path.name, path, stat.st_size))
        fresh: dict[str, str] = {}
        for _, file_name, path, size in sorted(candidates, key=lambda c: (c[0], c[1])):
            source = f"{self.name}:{file_name}"
            if size > self.settings.max_file_bytes:
                fresh[file_name] = marker = f"too-large:{size}"
                if done.get(file_name) != marker:  # say so once, not on every poll
                    yield ReadResult(quarantined=[Quarantined(
                        source=source, position="file",
                        reason=f"{size} bytes exceeds max_file_bytes="
                               f"{self.settings.max_file_bytes}; raise it or split the file")])
                continue
            try:
                digest = _file_sha256(path)
            except OSError:
                continue  # still being written or vanished: the next poll sees it
            if done.get(file_name) == digest:
                fresh[file_name] = digest
                continue  # read before; waits for the caller to acknowledge
            parsed = yield from self._read_file(path, source, digest)
            if parsed is not None:
                fresh[file_name] = parsed
        if self.settings.archive_when == "read":
            self._archive(fresh)
            fresh = {}
        yield ReadResult(cursor=_dump_cursor(fresh))

    def _read_file(self, path: Path, source: str,
                   digest: str) -> Generator[ReadResult, None, str | None]:
        """One file's results, ``CHUNK_RECORDS`` at a time; returns the digest of the bytes
        parsed (None when the file vanished while being read)."""
        chunk = ReadResult()
        try:
            # read a chunk at a time, hashing what is read: the digest recorded is that of
            # the bytes parsed, even if the file changes meanwhile
            with open(path, "rb") as raw:
                hashing = _HashingReader(raw)
                for kind, item in self._items(io.BufferedReader(hashing), source):
                    if kind == "record":
                        chunk.records.append(item)
                        if len(chunk.records) >= CHUNK_RECORDS:
                            yield chunk
                            chunk = ReadResult()
                    elif kind == "quarantined":
                        chunk.quarantined.append(item)
                    elif kind == "skipped":
                        log.info("%s: %s %s", source, item.position, item.reason)
            if chunk.records or chunk.quarantined:
                yield chunk
            return hashing.hexdigest()
        except OSError:
            return None  # vanished while being read: the next poll sees it
        except Exception as exc:  # noqa: BLE001 — one file must not hold up those behind it
            # recorded in the cursor like any file read: archived, and not read again
            log.exception("%s: reading %s failed; quarantined, reading on", self.name,
                          path.name)
            yield ReadResult(quarantined=[*chunk.quarantined, Quarantined(
                source=source, position="file",
                reason=f"the file could not be read ({type(exc).__name__}: {exc})"[:500]
                       + "; it is archived with the files read: put it back in the inbox "
                         "to read it again")])
            return digest

    def acknowledge(self, cursor: str) -> None:
        """Archive the files ``cursor`` recorded as read (``read(cursor)`` does this too)."""
        self._archive(_load_cursor(cursor))

    def _archive(self, processed: dict[str, str]) -> set[str]:
        """Move read files (same name and content) to the archive; returns names moved or gone."""
        return archive_read_files(self.inbox, self.archive, processed, connector=self.name,
                                  unchecked_prefix="too-large:")

    def _next_control(self) -> int:
        """Interchange control numbers 1..999999999, kept under a file lock in the state dir."""
        self.state.mkdir(parents=True, exist_ok=True)
        with open(self.state / "control", "a+", encoding="ascii") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            handle.seek(0)
            text = handle.read().strip()
            number = int(text) % 999_999_999 + 1 if text.isdigit() else 1
            handle.seek(0)
            handle.truncate()
            handle.write(str(number))
            handle.flush()
            os.fsync(handle.fileno())
        return number

    def execute(self, action: Action) -> ExecuteResult:
        """Write one 204 named after the idempotency key; the same key never writes twice."""
        if not action.idempotency_key:
            return ExecuteResult(ok=False, status="rejected",
                                 detail="an X12 204 needs the action's idempotency key")
        name = tender_file_name(action.idempotency_key)
        target = self.outbox / name
        marker = self.state / "sent" / name
        if target.exists() or marker.exists():
            return ExecuteResult(ok=True, status="duplicate", external_id=name,
                                 detail=f"204 already written as {target}")
        try:
            tender = tender_from_action(action, self.settings.default_carrier)
        except ValueError as exc:
            return ExecuteResult(ok=False, status="rejected", detail=str(exc))
        envelope = Envelope(sender_id=self.settings.sender_id,
                            receiver_id=self.settings.receiver_id,
                            sender_qualifier=self.settings.sender_qualifier,
                            receiver_qualifier=self.settings.receiver_qualifier,
                            usage=self.settings.usage)
        try:
            control = self._next_control()
            text = write_204(tender, envelope, control, datetime.now(_UTC))
            self.outbox.mkdir(parents=True, exist_ok=True)
        except ValueError as exc:
            return ExecuteResult(ok=False, status="rejected", detail=f"cannot write 204: {exc}")
        except OSError as exc:
            return ExecuteResult(ok=False, status="error", retryable=True,
                                 detail=f"cannot use {self.state} or {self.outbox}: {exc}")
        temp = self.outbox / f".{name}.{os.getpid()}.tmp"
        try:
            with open(temp, "w", encoding="ascii") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            os.link(temp, target)  # atomic and never overwrites: a racing twin gets EEXIST
        except FileExistsError:
            return ExecuteResult(ok=True, status="duplicate", external_id=name,
                                 detail=f"204 already written as {target}")
        except OSError as exc:
            return ExecuteResult(ok=False, status="error", retryable=True,
                                 detail=f"cannot write {target}: {exc}")
        finally:
            temp.unlink(missing_ok=True)
        try:
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.touch()
        except OSError:
            pass  # the outbox file itself still guards against a second write until it is sent
        verb = "cancel" if tender.purpose == "cancel" else "tender"
        return ExecuteResult(ok=True, status="done", external_id=name,
                             detail=f"204 {verb} of {tender.shipment_id} to {tender.carrier} "
                                    f"written as {target} (ISA {control:09d})")

    def health(self) -> Health:
        problems = []
        if not self.inbox.is_dir():
            problems.append(f"inbox {self.inbox} does not exist")
        for folder in (self.outbox, self.archive):
            parent = folder if folder.exists() else folder.parent
            if not os.access(parent, os.W_OK):
                problems.append(f"{folder} is not writable")
        return Health(ok=not problems, detail="; ".join(problems) or
                      f"inbox {self.inbox}, outbox {self.outbox}")
