"""ANSI X12 syntax: separators from ISA, segments, and the ISA/GS/ST envelopes with their counts.

Transaction-neutral on purpose: ``connectors.x12`` maps 214/856/204 on top of this. The reader
never raises on bad input; a damaged transaction set carries its errors, a damaged envelope
becomes a warning, and the good transaction sets next to them are still returned.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO, TextIO

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
    version: str = ""  # GS08: 004010, 005010 ...

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


CHUNK_CHARS = 1 << 20  # characters read at a time: memory is this plus one transaction set
_WS = "\r\n\t "


def text_chunks(source: bytes | str | BinaryIO | TextIO,
                chunk_chars: int = CHUNK_CHARS) -> Iterator[str]:
    """The text of ``source`` a chunk at a time.

    Bytes are UTF-8, or Latin-1 (X12's extended character set, never fails) where they are
    not: a file object is decoded a chunk at a time, and a chunk holding bytes that are not
    UTF-8 is read as Latin-1 as a whole (bytes given at once are decided as a whole).
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        source = _decode(bytes(source))
    if isinstance(source, str):
        for start in range(0, len(source), chunk_chars):
            yield source[start:start + chunk_chars]
        return
    if isinstance(source, io.TextIOBase):
        reader: Any = source
    else:
        reader = io.TextIOWrapper(source, encoding="utf-8", errors="surrogateescape", newline="")
    while True:
        chunk = reader.read(chunk_chars)
        if not chunk:
            return
        if _SURROGATE.search(chunk):
            chunk = chunk.encode("utf-8", "surrogateescape").decode("latin-1")
        yield chunk


_SURROGATE = re.compile("[\udc80-\udcff]")


class _Text:
    """A window on the chunks: what has been read and not yet consumed."""

    def __init__(self, chunks: Iterator[str]):
        self._chunks = chunks
        self.buf = ""
        self.pos = 0
        self.eof = False

    def more(self) -> bool:
        """Append the next chunk (dropping what was consumed); False at the end."""
        if self.eof:
            return False
        for chunk in self._chunks:
            if chunk:
                self.buf = self.buf[self.pos:] + chunk
                self.pos = 0
                return True
        self.eof = True
        return False

    def ahead(self, n: int) -> str:
        """Up to n characters from the current position, without consuming them."""
        while len(self.buf) - self.pos < n and self.more():
            pass
        return self.buf[self.pos:self.pos + n]

    def skip_space(self) -> None:
        while True:
            buf, pos, end = self.buf, self.pos, len(self.buf)
            while pos < end and buf[pos] in _WS:
                pos += 1
            self.pos = pos
            if pos < end or not self.more():
                return

    def segment(self, terminator: str) -> str | None:
        """The next segment's text (without its terminator); None at the end of the text."""
        while True:
            end = self.buf.find(terminator, self.pos)
            if end >= 0:
                text = self.buf[self.pos:end]
                self.pos = end + len(terminator)
                return text
            if not self.more():
                if self.pos >= len(self.buf):
                    return None
                text = self.buf[self.pos:]
                self.pos = len(self.buf)
                return text

    def count_rest(self) -> int:
        rest = len(self.buf) - self.pos
        while self.more():
            rest = len(self.buf) - self.pos
        return rest


def iter_x12(source: bytes | str | BinaryIO | TextIO,
             chunk_chars: int = CHUNK_CHARS) -> Iterator[Interchange | TransactionSet | EnvelopeWarning]:
    """Tokenize and validate X12 incrementally; never raises on bad input.

    Yields, in file order, each ``Interchange`` when its ISA is read (its ``transactions``
    stay empty), each ``TransactionSet`` once its SE is read (or it is cut short), and each
    ``EnvelopeWarning``. Only the transaction set being read is held in memory, whatever the
    size of the file or of one interchange.
    """
    text = _Text(text_chunks(source, chunk_chars))
    head = text.ahead(1)
    if head == "\ufeff":
        text.pos += 1
    text.skip_space()
    if not text.ahead(3) == "ISA":
        yield EnvelopeWarning("start of file", "no ISA segment: not an X12 interchange")
        return
    number = 0
    while True:
        number += 1
        try:
            seps = separators_from_isa(text.ahead(ISA_LENGTH + 64))
        except X12SyntaxError as exc:
            yield EnvelopeWarning(f"interchange #{number}", str(exc))
            return
        reader = _InterchangeReader(seps)
        yield from reader.read(text)
        text.skip_space()
        if text.eof and text.pos >= len(text.buf):
            return
        if text.ahead(3) != "ISA":
            yield EnvelopeWarning(f"after interchange {reader.ic.control}",
                                  f"{text.count_rest()} characters after IEA that are not "
                                  "another interchange")
            return


class _InterchangeReader:
    """One interchange, segment by segment: ISA .. IEA with its groups and their counts."""

    def __init__(self, seps: Separators):
        self.seps = seps
        self.ic = Interchange(separators=seps, control="", sender="", receiver="", version="")

    def read(self, text: _Text) -> Iterator[Interchange | TransactionSet | EnvelopeWarning]:
        seps = self.seps
        term, elem = seps.segment, seps.element
        first = text.segment(term) or ""
        isa = first.strip(_WS).split(elem)
        if len(isa) != 17:  # a separator character inside an ISA field
            yield EnvelopeWarning("ISA", f"ISA splits into {len(isa) - 1} elements, not 16: a "
                                         "field contains a separator character")
            yield self.ic
            while (raw := text.segment(term)) is not None:  # the rest of it is unreadable
                if raw.lstrip(_WS).startswith("IEA" + elem):
                    return
            return
        ic = self.ic
        ic.control, ic.sender = isa[13].strip(), isa[6].strip()
        ic.receiver, ic.version = isa[8].strip(), isa[12].strip()
        yield ic
        where = f"ISA {ic.control}"
        if not ic.control.isdigit():
            yield EnvelopeWarning(where, f"ISA13 control number {ic.control!r} is not numeric")
        groups = 0
        group: list[Any] | None = None  # [GS06, members, GS01, GS04, GS05, GS08]
        tx: TransactionSet | None = None
        number = 1
        segments: list[Segment] = []

        def close_tx(reason: str) -> TransactionSet | None:
            nonlocal tx
            done = tx
            if done is not None:
                done.error(done.segments[-1], reason)
                tx = None
            return done

        while True:
            raw = text.segment(term)
            if raw is None:
                break
            raw = raw.strip(_WS)
            if not raw:
                continue
            number += 1
            row = raw.split(elem)
            seg_id = row[0].strip()
            if tx is not None and seg_id not in _ENVELOPE:
                seg = Segment(seg_id, row, len(segments) + 1)
                segments.append(seg)
                if not _SEGMENT_ID.match(seg_id):
                    tx.error(seg, f"segment {seg.index} has an invalid id {seg_id[:20]!r}")
                continue
            if seg_id == "GS":
                if (done := close_tx("no SE before the next GS: transaction set is truncated")):
                    yield done
                if group is not None:
                    yield EnvelopeWarning(f"{where} / GS {group[0]}",
                                          "group has no GE before the next GS")
                groups += 1
                gs = Segment("GS", row, number)
                group = [gs.get(6), 0, gs.get(1), gs.get(4), gs.get(5), gs.get(8)]
            elif seg_id == "GE":
                if (done := close_tx("no SE before GE: transaction set is truncated")):
                    yield done
                if group is None:
                    yield EnvelopeWarning(where, f"GE at segment {number} without a GS")
                    continue
                yield from _check_count(row, 1, group[1], "GE01 transaction set count",
                                        f"{where} / GS {group[0]}")
                yield from _check_control(row, 2, group[0], "GE02", "GS06",
                                          f"{where} / GS {group[0]}")
                group = None
            elif seg_id == "ST":
                if (done := close_tx("no SE before the next ST: transaction set is truncated")):
                    yield done
                if group is None:
                    yield EnvelopeWarning(where, f"ST at segment {number} outside a GS group")
                gctl, _, fid, gdate, gtime, gversion = group or ("", 0, "", "", "", "")
                if group is not None:
                    group[1] += 1
                segments = [Segment("ST", row, 1)]
                tx = TransactionSet(set_id=row[1].strip() if len(row) > 1 else "",
                                    control=row[2].strip() if len(row) > 2 else "",
                                    interchange_control=ic.control, group_control=gctl,
                                    segments=segments, functional_id=fid, group_date=gdate,
                                    group_time=gtime, version=gversion)
            elif seg_id == "SE":
                if tx is None:
                    yield EnvelopeWarning(where, f"SE at segment {number} without an ST")
                    continue
                se = Segment("SE", row, len(segments) + 1)
                segments.append(se)
                declared = se.get(1)
                if not declared.isdigit():
                    tx.error(se, f"SE01 segment count {declared!r} is not a number")
                elif int(declared) != len(segments):
                    tx.error(se, f"SE01 says {declared} segments but the transaction set has "
                                 f"{len(segments)} (ST..SE)")
                if se.get(2) != tx.control:
                    tx.error(se, f"SE02 control number {se.get(2)!r} does not match ST02 "
                                 f"{tx.control!r}")
                yield tx
                tx = None
            elif seg_id == "IEA":
                if (done := close_tx("no SE before IEA: transaction set is truncated")):
                    yield done
                if group is not None:
                    yield EnvelopeWarning(f"{where} / GS {group[0]}", "group has no GE before IEA")
                    group = None
                yield from _check_count(row, 1, groups, "IEA01 group count", where)
                yield from _check_control(row, 2, ic.control, "IEA02", "ISA13", where)
                return
            elif seg_id == "ISA":
                yield EnvelopeWarning(where, f"nested ISA at segment {number}")
            else:
                yield EnvelopeWarning(where, f"segment {number} ({seg_id[:20]!r}) is outside "
                                             "any transaction set")
        if (done := close_tx("file ends inside the transaction set (no SE)")):
            yield done
        if group is not None:
            yield EnvelopeWarning(f"{where} / GS {group[0]}", "file ends with no GE")
        yield EnvelopeWarning(where, "file ends with no IEA")


_ENVELOPE = frozenset({"GS", "GE", "ST", "SE", "IEA", "ISA"})


def read_interchanges(data: bytes | str | BinaryIO | TextIO) -> X12Document:
    """Every interchange of ``data`` with its transaction sets, in memory; never raises.

    For large inputs use ``iter_x12``, which holds one transaction set at a time.
    """
    doc = X12Document()
    for item in iter_x12(data):
        if isinstance(item, TransactionSet):
            doc.interchanges[-1].transactions.append(item)
        elif isinstance(item, Interchange):
            doc.interchanges.append(item)
        else:
            doc.warnings.append(item)
    return doc


def _check_count(row: list[str], position: int, actual: int, label: str,
                 where: str) -> Iterator[EnvelopeWarning]:
    declared = row[position].strip() if position < len(row) else ""
    if not declared.isdigit() or int(declared) != actual:
        yield EnvelopeWarning(where, f"{label} is {declared!r} but there are {actual}")


def _check_control(row: list[str], position: int, expected: str, label: str, opener: str,
                   where: str) -> Iterator[EnvelopeWarning]:
    declared = row[position].strip() if position < len(row) else ""
    if declared.lstrip("0") != expected.lstrip("0") or not declared:
        yield EnvelopeWarning(where, f"{label} control number {declared!r} does not "
                                     f"match {opener} {expected!r}")


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
