"""ANSI X12 syntax: separators from ISA, segments, and the ISA/GS/ST envelopes with their counts.

Transaction-neutral on purpose: ``connectors.x12`` maps 214/856/204 on top of this. The reader
never raises on bad input; a damaged transaction set carries its errors, a damaged envelope
becomes a warning, and the good transaction sets next to them are still returned.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

ISA_LENGTH = 106  # "ISA" + 16 fixed-width elements + their separators + the terminator
_ISA_WIDTHS = (2, 10, 2, 10, 2, 15, 2, 15, 6, 4, 1, 5, 9, 1, 1)  # ISA01..ISA15
_SEGMENT_ID = re.compile(r"^[A-Z][A-Z0-9]{1,2}$")


class X12SyntaxError(ValueError):
    """The text cannot be read as an X12 interchange at all (no usable ISA)."""


@dataclass(frozen=True)
class Separators:
    element: str
    component: str
    segment: str
    repetition: str | None = None  # ISA11 from version 00402 on; 00401 has 'U' there


@dataclass
class Segment:
    id: str
    elements: list[str]  # elements[0] is the segment id, so elements[1] is XXX01
    index: int  # 1-based position within its transaction set (ST = 1), or the interchange

    def get(self, position: int) -> str:
        """Element XXnn, stripped; '' when absent, as X12 treats trailing empties."""
        return self.elements[position].strip() if position < len(self.elements) else ""


@dataclass
class TransactionSet:
    set_id: str  # ST01: 214, 856, 204 ...
    control: str  # ST02
    interchange_control: str
    group_control: str
    segments: list[Segment] = field(default_factory=list)  # ST..SE inclusive
    errors: list[tuple[int, str]] = field(default_factory=list)  # (segment index, reason)
    functional_id: str = ""  # GS01: QM (214), SH (856), SM (204)
    group_date: str = ""  # GS04 CCYYMMDD
    group_time: str = ""  # GS05 HHMM

    @property
    def position(self) -> str:
        return (f"ISA {self.interchange_control or '?'} / GS {self.group_control or '?'} / "
                f"ST {self.control or '?'}")

    def error(self, segment: Segment | None, reason: str) -> None:
        self.errors.append((segment.index if segment else 0, reason))

    def where(self) -> str:
        """Position of the first error: transaction plus segment index and id."""
        if not self.errors:
            return self.position
        index = min(i for i, _ in self.errors)
        seg = next((s for s in self.segments if s.index == index), None)
        return f"{self.position}, segment {index}" + (f" ({seg.id})" if seg else "")

    def reason(self) -> str:
        ordered = sorted(self.errors, key=lambda item: item[0])
        return "; ".join(f"segment {i}: {reason}" if i else reason for i, reason in ordered)


@dataclass
class EnvelopeWarning:
    position: str
    reason: str


@dataclass
class Interchange:
    separators: Separators
    control: str  # ISA13
    sender: str  # ISA06, stripped
    receiver: str  # ISA08, stripped
    version: str  # ISA12
    transactions: list[TransactionSet] = field(default_factory=list)


@dataclass
class X12Document:
    interchanges: list[Interchange] = field(default_factory=list)
    warnings: list[EnvelopeWarning] = field(default_factory=list)

    @property
    def transactions(self) -> list[TransactionSet]:
        return [t for i in self.interchanges for t in i.transactions]


def separators_from_isa(text: str) -> Separators:
    """Read the separators from the fixed-width ISA segment at the start of ``text``."""
    if not text.startswith("ISA") or len(text) < ISA_LENGTH:
        raise X12SyntaxError("no ISA segment: an X12 interchange starts with a 106-character ISA")
    element = text[3]
    if element.isalnum() or element.isspace():
        raise X12SyntaxError(f"ISA element separator {element!r} is a letter, digit or space")
    fields = text.split(element, 16)
    if len(fields) != 17 or len(fields[16]) < 2:
        raise X12SyntaxError("ISA has fewer than 16 elements")
    for number, (width, value) in enumerate(zip(_ISA_WIDTHS, fields[1:16]), start=1):
        if len(value) != width:
            raise X12SyntaxError(f"ISA{number:02d} is {len(value)} characters, expected {width} "
                                 "(ISA fields are fixed-width, padded with spaces)")
    component, segment = fields[16][0], fields[16][1]
    if segment.isalnum() or component.isalnum():
        raise X12SyntaxError(f"separators from ISA ({component!r}, {segment!r}) are alphanumeric")
    if len({element, component, segment}) != 3:
        raise X12SyntaxError("ISA uses the same character for two different separators")
    repetition = None
    if fields[12] >= "00402" and not fields[11].isalnum() and fields[11] not in (
            element, component, segment):
        repetition = fields[11]
    return Separators(element=element, component=component, segment=segment,
                      repetition=repetition)


def _decode(data: bytes | str) -> str:
    if isinstance(data, str):
        return data
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")  # X12's extended character set; never fails


def _split_segments(text: str, seps: Separators) -> list[list[str]]:
    raw = text.split(seps.segment)
    out = []
    for chunk in raw:
        chunk = chunk.strip("\r\n\t ")  # line breaks after terminators are common
        if chunk:
            out.append(chunk.split(seps.element))
    return out


def read_interchanges(data: bytes | str) -> X12Document:
    """Tokenize and validate every interchange in ``data``; never raises."""
    text = _decode(data).lstrip("\ufeff\r\n\t ")
    doc = X12Document()
    if not text.startswith("ISA"):
        doc.warnings.append(EnvelopeWarning("start of file", "no ISA segment: not an X12 "
                                                             "interchange"))
        return doc
    while text:
        try:
            seps = separators_from_isa(text)
        except X12SyntaxError as exc:
            doc.warnings.append(EnvelopeWarning(f"interchange #{len(doc.interchanges) + 1}",
                                                str(exc)))
            return doc
        end = _interchange_end(text, seps)
        body, text = text[:end], text[end:].lstrip("\r\n\t ")
        doc.interchanges.append(_read_one(body, seps, doc.warnings))
        if text and not text.startswith("ISA"):
            doc.warnings.append(EnvelopeWarning(
                f"after interchange {doc.interchanges[-1].control}",
                f"{len(text)} characters after IEA that are not another interchange"))
            break
    return doc


def _interchange_end(text: str, seps: Separators) -> int:
    """Index just past this interchange's IEA terminator (or the end of the text)."""
    pattern = re.compile(re.escape(seps.segment) + r"[\r\n\t ]*IEA" + re.escape(seps.element))
    match = pattern.search(text)
    if not match:
        return len(text)
    close = text.find(seps.segment, match.end())
    return len(text) if close < 0 else close + 1


def _read_one(body: str, seps: Separators, warnings: list[EnvelopeWarning]) -> Interchange:
    rows = _split_segments(body, seps)
    isa = rows[0]
    if len(isa) != 17:  # a separator character inside an ISA field
        warnings.append(EnvelopeWarning("ISA", f"ISA splits into {len(isa) - 1} elements, not "
                                               "16: a field contains a separator character"))
        return Interchange(separators=seps, control="", sender="", receiver="", version="")
    ic = Interchange(separators=seps, control=isa[13].strip(), sender=isa[6].strip(),
                     receiver=isa[8].strip(), version=isa[12].strip())
    where = f"ISA {ic.control}"
    if not ic.control.isdigit():
        warnings.append(EnvelopeWarning(where, f"ISA13 control number {ic.control!r} is not "
                                               "numeric"))
    groups = 0
    group: tuple[str, list[TransactionSet], str, str, str] | None = None
    tx: TransactionSet | None = None
    iea_seen = False

    def close_tx_without_se(reason: str) -> None:
        nonlocal tx
        if tx is not None:
            tx.error(tx.segments[-1], reason)
            ic.transactions.append(tx)
            tx = None

    for number, row in enumerate(rows[1:], start=2):
        seg_id = row[0].strip()
        if seg_id == "GS":
            close_tx_without_se("no SE before the next GS: transaction set is truncated")
            if group is not None:
                warnings.append(EnvelopeWarning(f"{where} / GS {group[0]}",
                                                "group has no GE before the next GS"))
            groups += 1
            gs = Segment("GS", row, number)
            group = (gs.get(6), [], gs.get(1), gs.get(4), gs.get(5))
        elif seg_id == "GE":
            close_tx_without_se("no SE before GE: transaction set is truncated")
            if group is None:
                warnings.append(EnvelopeWarning(where, f"GE at segment {number} without a GS"))
                continue
            _check_count(row, 1, len(group[1]), "GE01 transaction set count",
                         f"{where} / GS {group[0]}", warnings)
            _check_control(row, 2, group[0], "GE02", "GS06", f"{where} / GS {group[0]}",
                           warnings)
            group = None
        elif seg_id == "ST":
            close_tx_without_se("no SE before the next ST: transaction set is truncated")
            if group is None:
                warnings.append(EnvelopeWarning(where, f"ST at segment {number} outside a GS "
                                                       "group"))
            gctl, members, fid, gdate, gtime = group or ("", [], "", "", "")
            tx = TransactionSet(set_id=row[1].strip() if len(row) > 1 else "",
                                control=row[2].strip() if len(row) > 2 else "",
                                interchange_control=ic.control, group_control=gctl,
                                functional_id=fid, group_date=gdate, group_time=gtime)
            members.append(tx)
            tx.segments.append(Segment("ST", row, 1))
        elif seg_id == "SE":
            if tx is None:
                warnings.append(EnvelopeWarning(where, f"SE at segment {number} without an ST"))
                continue
            se = Segment("SE", row, len(tx.segments) + 1)
            tx.segments.append(se)
            declared = se.get(1)
            if not declared.isdigit():
                tx.error(se, f"SE01 segment count {declared!r} is not a number")
            elif int(declared) != len(tx.segments):
                tx.error(se, f"SE01 says {declared} segments but the transaction set has "
                             f"{len(tx.segments)} (ST..SE)")
            if se.get(2) != tx.control:
                tx.error(se, f"SE02 control number {se.get(2)!r} does not match ST02 "
                             f"{tx.control!r}")
            ic.transactions.append(tx)
            tx = None
        elif seg_id == "IEA":
            close_tx_without_se("no SE before IEA: transaction set is truncated")
            if group is not None:
                warnings.append(EnvelopeWarning(f"{where} / GS {group[0]}",
                                                "group has no GE before IEA"))
                group = None
            _check_count(row, 1, groups, "IEA01 group count", where, warnings)
            _check_control(row, 2, ic.control, "IEA02", "ISA13", where, warnings)
            iea_seen = True
        elif seg_id == "ISA":
            warnings.append(EnvelopeWarning(where, f"nested ISA at segment {number}"))
        elif tx is not None:
            seg = Segment(seg_id, row, len(tx.segments) + 1)
            tx.segments.append(seg)
            if not _SEGMENT_ID.match(seg_id):
                tx.error(seg, f"segment {seg.index} has an invalid id {seg_id[:20]!r}")
        else:
            warnings.append(EnvelopeWarning(where, f"segment {number} ({seg_id[:20]!r}) is "
                                                   "outside any transaction set"))
    close_tx_without_se("file ends inside the transaction set (no SE)")
    if group is not None:
        warnings.append(EnvelopeWarning(f"{where} / GS {group[0]}", "file ends with no GE"))
    if not iea_seen:
        warnings.append(EnvelopeWarning(where, "file ends with no IEA"))
    return ic


def _check_count(row: list[str], position: int, actual: int, label: str, where: str,
                 warnings: list[EnvelopeWarning]) -> None:
    declared = row[position].strip() if position < len(row) else ""
    if not declared.isdigit() or int(declared) != actual:
        warnings.append(EnvelopeWarning(where, f"{label} is {declared!r} but there are {actual}"))


def _check_control(row: list[str], position: int, expected: str, label: str, opener: str,
                   where: str, warnings: list[EnvelopeWarning]) -> None:
    declared = row[position].strip() if position < len(row) else ""
    if declared.lstrip("0") != expected.lstrip("0") or not declared:
        warnings.append(EnvelopeWarning(where, f"{label} control number {declared!r} does not "
                                               f"match {opener} {expected!r}"))


# --- writing ---------------------------------------------------------------------------------


def check_value(value: str, seps: Separators) -> str:
    """A value safe to place in one element: no separator characters, no line breaks."""
    bad = {seps.element, seps.component, seps.segment, "\r", "\n"}
    if seps.repetition:
        bad.add(seps.repetition)
    found = sorted(c for c in bad if c in value)
    if found:
        raise ValueError(f"value {value!r} contains X12 separator(s) {found}; remove them")
    return value


def segment(seps: Separators, seg_id: str, *elements: str) -> str:
    """One segment with trailing empty elements dropped, as X12 requires."""
    values = [check_value(str(e), seps) for e in elements]
    while values and values[-1] == "":
        values.pop()
    return seps.element.join([seg_id, *values]) + seps.segment


def isa_segment(seps: Separators, *, sender_qualifier: str, sender_id: str,
                receiver_qualifier: str, receiver_id: str, date: str, time: str,
                control: int, usage: str = "P", version: str = "00401") -> str:
    """The fixed-width ISA; refuses values that would break its widths."""
    repetition_or_standard = seps.repetition if version >= "00402" and seps.repetition else "U"
    fields = ["00", " " * 10, "00", " " * 10, sender_qualifier, sender_id.ljust(15),
              receiver_qualifier, receiver_id.ljust(15), date, time, repetition_or_standard,
              version, f"{control:09d}", "0", usage]
    for number, (width, value) in enumerate(zip(_ISA_WIDTHS, fields), start=1):
        if len(value) != width:
            raise ValueError(f"ISA{number:02d} {value!r} must be exactly {width} characters")
        check_value(value, seps)
    text = seps.element.join(["ISA", *fields, seps.component]) + seps.segment
    assert len(text) == ISA_LENGTH
    return text
