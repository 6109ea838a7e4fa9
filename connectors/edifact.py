"""UN/EDIFACT IFTSTA (international multimodal status report), the status message European
carriers send: one ``ShipmentEvent`` per STS segment.

Syntax: the separators come from UNA (component, element, decimal mark, release character,
segment terminator) or are the defaults without it (``:+.? '``); a release character before a
separator makes it text. The envelopes are checked: UNB/UNZ (UNZ01 counts the messages, or the
groups when UNG is used; UNZ02 repeats UNB's reference), UNG/UNE, UNH/UNT (UNT01 counts the
segments from UNH to UNT; UNT02 repeats UNH's reference). A message whose envelope is wrong,
or whose content cannot be read, is quarantined with the reason; an interchange-level problem
is quarantined as an envelope warning; the messages next to them are still read.

Meaning (IFTSTA D.96A .. D.01B and later share these segments):

* the consignment reference is the shipment id: CNI's document number (C503 1004), else the
  first RFF of the consignment (CU, BM, CN, AAS ...);
* STS: status (C555 4405, UN/ECE Recommendation 24 codes, ``connectors/edifact_codes.csv``,
  mapped to the canonical statuses as the X12 214's are; an unknown code is an informational
  event with a warning) and reason (C556 9013, kept as ``reason_code``);
* DTM after the STS: 334 (status change), 7, 178/186 (actual arrival/departure), 35 (actual
  delivery), 11 (despatch) give the event time, 132 and 17 (estimated arrival/delivery) the
  ETA; formats 101, 102, 201, 203, 204, 205 (±HHMM offset), 303/304 (zone code), a time
  without a zone in the configured local zone; a status without a date takes the message's
  DTM 137;
* LOC after the STS: where it happened; TDT's carrier (C040), for the STS or the consignment.

Read as a stream (``iter_parse_edifact``): a chunk of text at a time, one message at a time.
"""

from __future__ import annotations

import csv
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from functools import cache
from pathlib import Path
from typing import Any, BinaryIO, Literal, TextIO
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import ValidationError

from canonical.model import Quarantined, ShipmentEvent
from connectors import x12_codes
from connectors._mapping import to_utc
from connectors.x12_syntax import CHUNK_CHARS, _Text, text_chunks

log = logging.getLogger(__name__)

Item = tuple[Literal["record", "quarantined", "skipped", "warning"], Any]
_WS = "\r\n\t "
EVENT_DATES = ("334", "7", "178", "186", "35", "11")  # DTM qualifiers, first found wins
ETA_DATES = ("132", "17")
MESSAGE_DATE = "137"


@dataclass(frozen=True)
class Delimiters:
    component: str = ":"
    element: str = "+"
    decimal: str = "."
    release: str = "?"
    segment: str = "'"


@dataclass
class Segment:
    tag: str
    elements: list[list[str]]  # elements[i][j]: element i+1, component j+1
    index: int  # 1-based within its message (UNH = 1)

    def get(self, element: int, component: int = 1) -> str:
        """Element ``element`` (1-based, after the tag), component ``component``; ''."""
        if element > len(self.elements):
            return ""
        parts = self.elements[element - 1]
        return parts[component - 1].strip() if component <= len(parts) else ""

    def text(self, d: Delimiters) -> str:
        return d.element.join([self.tag, *(d.component.join(e) for e in self.elements)])


@dataclass
class Message:
    reference: str  # UNH 0062
    kind: str  # UNH S009: IFTSTA:D:96A:UN
    interchange: str
    segments: list[Segment] = field(default_factory=list)
    errors: list[tuple[int, str]] = field(default_factory=list)

    @property
    def position(self) -> str:
        return f"UNB {self.interchange or '?'} / UNH {self.reference or '?'}"

    def where(self) -> str:
        if not self.errors:
            return self.position
        index = min(i for i, _ in self.errors)
        seg = next((s for s in self.segments if s.index == index), None)
        return f"{self.position}, segment {index}" + (f" ({seg.tag})" if seg else "")

    def reason(self) -> str:
        return "; ".join(f"segment {i}: {r}" if i else r
                         for i, r in sorted(self.errors, key=lambda e: e[0]))


@dataclass
class Warning_:
    position: str
    reason: str


@dataclass
class Interchange:
    reference: str
    delimiters: Delimiters
    sender: str = ""
    recipient: str = ""


def _split(text: str, sep: str, release: str) -> list[str]:
    """``text`` split on ``sep`` where it is not released, releases removed."""
    if release not in text:
        return text.split(sep)
    out, cur, i, n = [], [], 0, len(text)
    while i < n:
        c = text[i]
        if c == release and i + 1 < n:
            cur.append(text[i + 1])
            i += 2
            continue
        if c == sep:
            out.append("".join(cur))
            cur = []
        else:
            cur.append(c)
        i += 1
    out.append("".join(cur))
    return out


def _elements(text: str, d: Delimiters) -> list[list[str]]:
    if d.release not in text:
        return [e.split(d.component) for e in text.split(d.element)]
    # split on unreleased element separators, keeping releases for the component split
    out, cur, i, n = [], [], 0, len(text)
    while i < n:
        c = text[i]
        if c == d.release and i + 1 < n:
            cur.append(text[i:i + 2])
            i += 2
            continue
        if c == d.element:
            out.append("".join(cur))
            cur = []
        else:
            cur.append(c)
        i += 1
    out.append("".join(cur))
    return [_split(e, d.component, d.release) for e in out]


def _next_segment(text: _Text, d: Delimiters) -> str | None:
    """The next segment's text up to an unreleased terminator (None at the end)."""
    start = search = text.pos
    while True:
        end = text.buf.find(d.segment, search)
        if end < 0:
            consumed = search - text.pos
            if not text.more():
                if text.pos >= len(text.buf):
                    return None
                rest = text.buf[text.pos:]
                text.pos = len(text.buf)
                return rest
            start, search = text.pos, text.pos + consumed
            continue
        releases = 0
        while end - 1 - releases >= start and text.buf[end - 1 - releases] == d.release:
            releases += 1
        if releases % 2:  # a released terminator is text
            search = end + 1
            continue
        seg = text.buf[text.pos:end]
        text.pos = end + len(d.segment)
        return seg


def iter_edifact(source: bytes | str | BinaryIO | TextIO, chunk_chars: int = CHUNK_CHARS
                 ) -> Iterator[Interchange | Message | Warning_]:
    """Interchanges (at UNB), complete messages (at UNT, or cut short) and envelope warnings,
    in file order; one message in memory at a time. Never raises on bad input."""
    text = _Text(text_chunks(source, chunk_chars))
    if text.ahead(1) == "\ufeff":
        text.pos += 1
    text.skip_space()
    if text.ahead(3) not in ("UNA", "UNB"):
        yield Warning_("start of file", "no UNA or UNB segment: not an EDIFACT interchange")
        return
    number = 0
    while True:
        number += 1
        d = Delimiters()
        if text.ahead(3) == "UNA":
            una = text.ahead(9)
            if len(una) < 9:
                yield Warning_(f"interchange #{number}", "UNA is shorter than its 9 characters")
                return
            d = Delimiters(component=una[3], element=una[4], decimal=una[5], release=una[6],
                           segment=una[8])
            if len({d.component, d.element, d.release, d.segment}) != 4 or any(
                    c.isalnum() for c in (d.component, d.element, d.segment)):
                yield Warning_(f"interchange #{number}", f"UNA {una!r} does not give four "
                                                         "distinct, non-alphanumeric separators")
                return
            text.pos += 9
            text.skip_space()
        if text.ahead(3) != "UNB":
            yield Warning_(f"interchange #{number}", "no UNB after UNA")
            return
        reader = _InterchangeReader(d)
        yield from reader.read(text)
        text.skip_space()
        if text.eof and text.pos >= len(text.buf):
            return
        if text.ahead(3) not in ("UNA", "UNB"):
            yield Warning_(f"after interchange {reader.reference}",
                           f"{text.count_rest()} characters after UNZ that are not another "
                           "interchange")
            return


class _InterchangeReader:
    def __init__(self, d: Delimiters):
        self.d = d
        self.reference = ""

    def read(self, text: _Text) -> Iterator[Interchange | Message | Warning_]:
        d = self.d
        unb = Segment("UNB", _elements((_next_segment(text, d) or "").strip(_WS)[4:], d), 0)
        self.reference = unb.get(5)
        where = f"UNB {self.reference or '?'}"
        yield Interchange(self.reference, d, unb.get(2), unb.get(3))
        if not self.reference:
            yield Warning_(where, "UNB has no interchange control reference (UNB05)")
        messages = groups = 0
        group: str | None = None
        group_messages = 0
        msg: Message | None = None
        while (raw := _next_segment(text, d)) is not None:
            raw = raw.strip(_WS)
            if not raw:
                continue
            tag, _, rest = raw.partition(d.element)
            tag = tag.strip()
            seg = Segment(tag, _elements(rest, d) if rest else [], 0)
            if msg is not None and tag not in ("UNH", "UNT", "UNZ", "UNB", "UNG", "UNE"):
                seg.index = len(msg.segments) + 1
                msg.segments.append(seg)
                if not re.fullmatch(r"[A-Z][A-Z0-9]{2}", tag):
                    msg.errors.append((seg.index, f"segment {seg.index} has an invalid tag "
                                                  f"{tag[:20]!r}"))
                continue
            if tag == "UNH":
                if msg is not None:
                    msg.errors.append((len(msg.segments), "no UNT before the next UNH: the "
                                                          "message is truncated"))
                    yield msg
                messages += 1
                group_messages += 1
                seg.index = 1
                msg = Message(reference=seg.get(1), kind=":".join(
                    seg.elements[1]) if len(seg.elements) > 1 else "", interchange=self.reference,
                    segments=[seg])
            elif tag == "UNT":
                if msg is None:
                    yield Warning_(where, "UNT without a UNH")
                    continue
                seg.index = len(msg.segments) + 1
                msg.segments.append(seg)
                declared = seg.get(1)
                if not declared.isdigit():
                    msg.errors.append((seg.index, f"UNT01 segment count {declared!r} is not a "
                                                  "number"))
                elif declared.lstrip("0") != str(len(msg.segments)):
                    msg.errors.append((seg.index, f"UNT01 says {declared[:20]} segments but the "
                                                  f"message has {len(msg.segments)} (UNH..UNT)"))
                if seg.get(2) != msg.reference:
                    msg.errors.append((seg.index, f"UNT02 reference {seg.get(2)!r} does not "
                                                  f"match UNH01 {msg.reference!r}"))
                yield msg
                msg = None
            elif tag == "UNG":
                groups += 1
                group, group_messages = seg.get(5), 0
            elif tag == "UNE":
                if group is None:
                    yield Warning_(where, "UNE without a UNG")
                    continue
                if seg.get(1).lstrip("0") != str(group_messages).lstrip("0") or not seg.get(1):
                    yield Warning_(f"{where} / UNG {group}", f"UNE01 message count is "
                                                             f"{seg.get(1)!r} but there are "
                                                             f"{group_messages}")
                if seg.get(2) != group:
                    yield Warning_(f"{where} / UNG {group}", f"UNE02 reference {seg.get(2)!r} "
                                                             f"does not match UNG05 {group!r}")
                group = None
            elif tag == "UNZ":
                if msg is not None:
                    msg.errors.append((len(msg.segments), "no UNT before UNZ: the message is "
                                                          "truncated"))
                    yield msg
                expected = groups if groups else messages
                what = "groups" if groups else "messages"
                if seg.get(1).lstrip("0") != str(expected).lstrip("0") or not seg.get(1):
                    yield Warning_(where, f"UNZ01 count is {seg.get(1)!r} but there are "
                                          f"{expected} {what}")
                if seg.get(2) != self.reference:
                    yield Warning_(where, f"UNZ02 reference {seg.get(2)!r} does not match UNB05 "
                                          f"{self.reference!r}")
                return
            else:
                yield Warning_(where, f"segment {tag[:20]!r} is outside any message")
        if msg is not None:
            msg.errors.append((len(msg.segments), "file ends inside the message (no UNT)"))
            yield msg
        yield Warning_(where, "file ends with no UNZ")


# --- IFTSTA --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Code:
    code: str
    description: str
    canonical: str


@cache
def status_codes() -> dict[str, Code]:
    """UN/ECE Recommendation 24 status codes (C555 4405) -> canonical status."""
    out = {}
    with open(Path(__file__).with_name("edifact_codes.csv"), encoding="utf-8",
              newline="") as handle:
        for row in csv.DictReader(handle):
            if row["canonical"] not in x12_codes.CANONICAL:
                raise ValueError(f"edifact_codes.csv: {row['code']} has canonical status "
                                 f"{row['canonical']!r}")
            out[row["code"]] = Code(row["code"], row["description"], row["canonical"])
    return out


class MappingError(ValueError):
    def __init__(self, seg: Segment | None, reason: str):
        super().__init__(reason)
        self.segment = seg


_ZONES = {"UTC": "UTC", "GMT": "UTC", "Z": "UTC", "CET": "Europe/Paris", "CEST": "Europe/Paris",
          "EET": "Europe/Helsinki", "WET": "Europe/Lisbon"}


def parse_edifact_datetime(value: str, fmt: str, default_zone: str) -> datetime:
    """A DTM value in format 101, 102, 201, 203, 204, 205, 303 or 304 -> aware UTC datetime."""
    value = value.strip()
    fmt = fmt.strip() or "102"
    shapes = {"101": r"\d{6}", "102": r"\d{8}", "201": r"\d{10}", "203": r"\d{12}",
              "204": r"\d{14}", "205": r"\d{12}[+-]\d{4}", "303": r"\d{12}[A-Z]{1,4}",
              "304": r"\d{14}[A-Z]{1,4}"}
    if fmt not in shapes:
        raise ValueError(f"date format {fmt!r} is not one alignbot reads "
                         f"({', '.join(shapes)})")
    if not re.fullmatch(shapes[fmt], value):
        raise ValueError(f"{value[:30]!r} is not in format {fmt}")
    digits = value if fmt in ("101", "102", "201", "203", "204") else re.match(r"\d+", value)[0]
    if fmt in ("101", "201"):
        digits = "20" + digits
    zone: Any = ZoneInfo(default_zone)
    if fmt == "205":
        sign = 1 if value[12] == "+" else -1
        zone = timezone(sign * timedelta(hours=int(value[13:15]), minutes=int(value[15:17])))
    elif fmt in ("303", "304"):
        name = value[len(digits):]
        if name not in _ZONES:
            raise ValueError(f"time zone {name!r} in {value!r} is not one alignbot knows "
                             f"({', '.join(_ZONES)})")
        zone = ZoneInfo(_ZONES[name])
    try:
        local = datetime(int(digits[:4]), int(digits[4:6]), int(digits[6:8]),
                         int(digits[8:10] or 0), int(digits[10:12] or 0),
                         int(digits[12:14] or 0), tzinfo=zone)
    except ValueError:
        raise ValueError(f"{value!r} (format {fmt}) is not a real date and time") from None
    return to_utc(local, value)


def map_iftsta(msg: Message, *, default_zone: str = "UTC",
               warnings: list[tuple[Segment, str]] | None = None) -> list[ShipmentEvent]:
    """An IFTSTA message as events, one per STS, each under the consignment (CNI) before it."""
    if not msg.kind.startswith("IFTSTA"):
        raise MappingError(msg.segments[0], f"message type {msg.kind.split(':')[0]!r} is not "
                                            "one alignbot reads (IFTSTA)")
    header_time: datetime | None = None
    consignment: dict[str, Any] | None = None
    current: dict[str, Any] | None = None
    items: list[dict[str, Any]] = []
    for seg in msg.segments[1:-1]:
        tag = seg.tag
        if tag == "CNI":
            consignment = {"id": seg.get(2, 1), "refs": {}, "cni": seg}
            current = None
        elif tag == "STS":
            if consignment is None:
                raise MappingError(seg, "STS before any CNI: no consignment to report on")
            current = {"sts": seg, "consignment": consignment, "dates": {}, "location": "",
                       "refs": {}}
            items.append(current)
        elif tag == "RFF":
            target = current["refs"] if current is not None else (
                consignment["refs"] if consignment is not None else None)
            if target is not None and seg.get(1, 2):
                target.setdefault(seg.get(1, 1) or "untyped", seg.get(1, 2))
        elif tag == "DTM":
            qualifier, value, fmt = seg.get(1, 1), seg.get(1, 2), seg.get(1, 3)
            try:
                when = parse_edifact_datetime(value, fmt, default_zone)
            except ValueError as exc:
                if current is not None or qualifier == MESSAGE_DATE:
                    raise MappingError(seg, f"DTM {qualifier}: {exc}") from None
                continue
            if current is not None:
                current["dates"].setdefault(qualifier, when)
            elif qualifier == MESSAGE_DATE and consignment is None:
                header_time = when
        elif tag == "LOC" and current is not None and not current["location"]:
            current["location"] = seg.get(2, 4) or seg.get(2, 1)
        elif tag == "TDT" and seg.get(5, 1):  # C040 carrier, for the STS or the consignment
            (current if current is not None else consignment or {})["carrier"] = seg.get(5, 1)
    if not items:
        raise MappingError(None, "IFTSTA has no STS (status) segment")
    out = []
    for item in items:
        sts: Segment = item["sts"]
        cons = item["consignment"]
        shipment_id = cons["id"] or next(iter(cons["refs"].values()), "")
        if not shipment_id:
            raise MappingError(cons["cni"], "CNI has no consignment reference (C503 document "
                                            "number) and no RFF names the consignment")
        code, reason = sts.get(2, 1), sts.get(3, 1)
        reference = {"edifact": f"IFTSTA {msg.position}", **{f"RFF:{k}": v for k, v in
                                                              {**cons["refs"],
                                                               **item["refs"]}.items()}}
        known = status_codes().get(code) if sts.get(2, 3) in ("", "6") else None
        if not code:
            raise MappingError(sts, "STS has no status code (C555 4405)")
        if known is None:
            canonical = "informational"
            problem = (f"STS status code {code[:10]!r}"
                       + (f" (code list agency {sts.get(2, 3)!r})" if sts.get(2, 3) else "")
                       + " is not a UN/ECE Recommendation 24 code alignbot knows; kept as an "
                         "informational event")
            reference["warning"] = problem
            if warnings is not None:
                warnings.append((sts, problem))
        else:
            canonical = known.canonical
            reference["status_description"] = known.description
        dates = item["dates"]
        when = next((dates[q] for q in EVENT_DATES if q in dates), None) or header_time
        eta = next((dates[q] for q in ETA_DATES if q in dates), None)
        if when is None:
            if eta is None:
                raise MappingError(sts, "STS has no date (DTM 334, 7, 178, 186, 35 or 11 after "
                                        "it, or the message's DTM 137)")
            when = eta
        status = x12_codes.event_status(canonical, eta is not None)
        if eta is not None and canonical in ("planned", "informational"):
            status = x12_codes.ETA_STATUS
        try:
            out.append(ShipmentEvent(shipment_id=shipment_id, event_time=when, status=status,
                                     status_code=code, reason_code=reason,
                                     location=item["location"], eta=eta,
                                     carrier=item.get("carrier") or cons.get("carrier", ""),
                                     reference=reference))
        except ValidationError as exc:
            raise MappingError(sts, f"STS does not make a valid event: "
                                    f"{exc.errors()[0]['msg']}") from None
    return out


def iter_parse_edifact(source: bytes | str | BinaryIO | TextIO | Path, name: str, *,
                       default_zone: str = "UTC") -> Iterator[Item]:
    """("record", event) and ("quarantined" | "warning", Quarantined), in file order, a message
    at a time; never raises on bad input."""
    try:
        ZoneInfo(default_zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"local time zone {default_zone!r} is not an IANA zone name") from None
    if isinstance(source, Path):
        with open(source, "rb") as handle:
            yield from iter_parse_edifact(handle, name, default_zone=default_zone)
        return
    d = Delimiters()
    interchanges = quarantined = 0
    for item in iter_edifact(source):
        if isinstance(item, Interchange):
            interchanges += 1
            d = item.delimiters
            continue
        if isinstance(item, Warning_):
            quarantined += 1
            yield "quarantined", Quarantined(source=name, position=item.position,
                                             reason=f"envelope: {item.reason}")
            continue
        msg = item
        notes: list[tuple[Segment, str]] = []
        events: list[ShipmentEvent] = []
        if not msg.errors:
            try:
                events = map_iftsta(msg, default_zone=default_zone, warnings=notes)
            except MappingError as exc:
                msg.errors.append((exc.segment.index if exc.segment else 0, str(exc)))
        if msg.errors:
            quarantined += 1
            yield "quarantined", Quarantined(
                source=name, position=msg.where(), reason=msg.reason(),
                raw=d.segment.join(s.text(d) for s in msg.segments)[:2000])
            continue
        for seg, text in notes:
            log.warning("%s: %s, segment %d (%s): %s", name, msg.position, seg.index, seg.tag,
                        text)
            yield "warning", Quarantined(source=name, position=f"{msg.position}, segment "
                                                              f"{seg.index} ({seg.tag})",
                                         reason=text, raw=seg.text(d)[:200])
        for event in events:
            yield "record", event
    if not interchanges and not quarantined:
        yield "quarantined", Quarantined(source=name, position="start of file",
                                         reason="no EDIFACT interchange found")


@dataclass
class EdifactParse:
    records: list[ShipmentEvent] = field(default_factory=list)
    quarantined: list[Quarantined] = field(default_factory=list)
    warnings: list[Quarantined] = field(default_factory=list)


def parse_edifact(data: bytes | str, source: str, *, default_zone: str = "UTC") -> EdifactParse:
    """Every IFTSTA message of ``data``, in memory; never raises on bad input."""
    result = EdifactParse()
    lists = {"record": result.records, "quarantined": result.quarantined,
             "warning": result.warnings}
    for kind, item in iter_parse_edifact(data, source, default_zone=default_zone):
        lists[kind].append(item)
    return result


# --- the connector -------------------------------------------------------------------------


def _connector_classes() -> tuple[type, type]:
    """EdifactSettings/EdifactConnector: the X12 connector's inbox, archive and cursor, with
    IFTSTA files in it. Read only: there is no EDIFACT message alignbot writes."""
    from canonical.model import Action
    from connectors.base import ExecuteResult
    from connectors.x12 import X12Connector, X12Settings

    class EdifactSettings(X12Settings):
        """``inbox``, ``archive``, ``archive_when``, ``min_age_seconds``, ``max_file_bytes``,
        ``local_timezone`` as for X12 (the envelope and tender settings are not used)."""

    class EdifactConnector(X12Connector):
        """Reads IFTSTA status files (*.edi, *.edifact, *.txt) dropped in an inbox."""

        SUFFIXES = (".edi", ".edifact", ".txt")

        def _items(self, stream: BinaryIO, source: str) -> Iterator[Item]:
            return iter_parse_edifact(stream, source, default_zone=self.settings.local_timezone)

        def execute(self, action: Action) -> ExecuteResult:
            return ExecuteResult(ok=False, status="rejected",
                                 detail="the EDIFACT connector only reads (IFTSTA status files)")

    return EdifactSettings, EdifactConnector


EdifactSettings, EdifactConnector = _connector_classes()
