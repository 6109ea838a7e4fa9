"""``alignbot inspect FILE``: show what alignbot would read from one X12, EDIFACT, EPCIS or CSV
file.

A partner's file is checked before it is wired in: canonical records go to stdout (JSON lines
with ``--json``, tables otherwise), quarantined records and their reasons go to stderr, and so
do warnings (records read, with something to say: an unknown status code kept as
informational, say).
Exit codes: 0 something parsed, 1 nothing usable (every record bad), 2 unreadable or unknown
format.

"""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import ijson
import typer
from pydantic import BaseModel
from rich.console import Console

from canonical.model import Quarantined
from connectors.epcis import (
    EVENT_TYPES,
    NestedTooDeeply,
    json_error,
    scan_document,
    stream_document,
)
from connectors.streaming import Flagged, Item, from_lists, show
from connectors.x12 import iter_parse_x12

FORMATS = ("auto", "csv", "edifact", "epcis", "x12")


@dataclass(frozen=True)
class Warned:
    """A record that was read, with something to say (X12/EDIFACT: an unknown status code kept
    as informational); shown on stderr like a quarantined one, and counted apart."""

    item: Quarantined


@dataclass
class Inspection:
    """What a file holds: lists, or ``stream`` — the items read lazily, a chunk at a time (CSV
    and EPCIS), so a large file is shown without being held whole."""

    format: str
    records: list[BaseModel] = field(default_factory=list)
    quarantined: list[Quarantined] = field(default_factory=list)
    skipped: list[Quarantined] = field(default_factory=list)
    stream: Iterable[Item] | None = None

    def items(self) -> Iterator[Item]:
        if self.stream is not None:
            return iter(self.stream)
        return from_lists(self.records, self.quarantined, self.skipped)


class UnknownFormat(ValueError):
    """The file is none of the formats alignbot reads (or the one asked for is unavailable)."""


_LEADING = b"\xef\xbb\xbf \t\r\n"  # a BOM and blank space before the content


def _head(path: Path) -> bytes:
    """The first three bytes after any BOM and blank space, read a block at a time."""
    rest = b""
    with path.open("rb") as handle:
        while len(rest) < 3 and (block := handle.read(65536)):
            rest = (rest + block).lstrip(_LEADING)
    return rest[:3]


def detect_format(path: Path, data: bytes | None = None) -> str:
    """x12 if it starts with ISA, edifact with UNA or UNB, epcis if it is EPCIS JSON, csv by
    extension. Reads ``path`` (JSON in one streaming pass) unless ``data`` holds its content."""
    head = _head(path) if data is None else data.lstrip(_LEADING)
    if head.startswith(b"ISA"):
        return "x12"
    if head.startswith((b"UNA", b"UNB")):
        return "edifact"
    if head[:1] in (b"{", b"["):
        try:
            with path.open("rb") if data is None else io.BytesIO(data) as handle:
                document = scan_document(handle)
        except ijson.JSONError as exc:
            raise UnknownFormat(f"{path.name} looks like JSON but does not parse: "
                                f"{json_error(exc)}") from None
        except (NestedTooDeeply, RecursionError):
            raise UnknownFormat(f"{path.name} is not readable: its JSON is nested too deeply "
                                "to parse") from None
        if _looks_like_epcis(document):
            return "epcis"
        raise UnknownFormat(f"{path.name} is JSON but not EPCIS (no @context, EPCISDocument "
                            "type, epcisBody or eventList)")
    if path.suffix.lower() == ".csv":
        return "csv"
    raise UnknownFormat(f"cannot tell the format of {path.name}: not X12 (no ISA segment), not "
                        "EDIFACT (no UNA/UNB), not EPCIS JSON, and not a .csv file; pass "
                        "--format csv|edifact|epcis|x12")


def _looks_like_epcis(document: Any) -> bool:
    if isinstance(document, list):
        return bool(document) and all(isinstance(e, dict) and e.get("type") in EVENT_TYPES
                                      for e in document[:5])
    if not isinstance(document, dict):
        return False
    return ("@context" in document or "epcisBody" in document or "eventList" in document
            or document.get("type") in ("EPCISDocument", "EPCISQueryDocument", *EVENT_TYPES))


def _parse_csv(path: Path) -> Inspection:
    """CSV through the CSV drop connector's parser, as whichever entity the header fits.

    The header decides: every entity (demand, shipments, capacity, inventory, lanes) whose
    required columns are all present is a candidate; the one yielding most records wins (when
    several fit, each is counted in a pass of its own first). Rows are then read a chunk at a
    time as they are shown.
    """
    try:
        from connectors._mapping import ENTITIES
        from connectors.csv_drop import CsvDropSettings, FilePattern, file_blocks, scan_bytes
    except ImportError:
        raise UnknownFormat("CSV inspection needs connectors.csv_drop, which this build "
                            "lacks") from None
    _, not_text = scan_bytes(file_blocks(path), "utf-8")
    if not_text is not None:
        raise UnknownFormat(f"{path.name} is not UTF-8 text: byte {not_text[0]} (line "
                            f"{not_text[1]}) is not UTF-8") from None
    with _csv_text(path) as text:
        first_line = text.readline()
    delimiter = max(",;\t|", key=first_line.count)
    fits, misses = [], []
    for entity in ENTITIES:
        settings = CsvDropSettings(path=".", delimiter=delimiter,
                                   files=[FilePattern(glob="*", entity=entity)])
        records, bad = _first_chunk(path, settings)
        if bad and bad[0].position == "line 1" and not records:
            misses.append(f"{entity}: {bad[0].reason.split(';')[0]}")
            continue
        fits.append((entity, settings))
    if not fits:
        raise UnknownFormat(f"{path.name}: the CSV header fits no canonical table ("
                            + "; ".join(misses) + ")")
    if len(fits) > 1:
        counted = [(sum(1 for item in _csv_items(path, s) if not isinstance(item, Flagged)), i)
                   for i, (_, s) in enumerate(fits)]
        fits = [fits[max(counted, key=lambda c: (c[0], -c[1]))[1]]]
    entity, settings = fits[0]
    return Inspection(f"csv ({entity})", stream=_csv_items(path, settings))


def _csv_text(path: Path) -> io.TextIOWrapper:
    return open(path, encoding="utf-8-sig", newline="")  # the caller closes it


def _first_chunk(path: Path, settings: Any) -> tuple[list[Any], list[Quarantined]]:
    from connectors.csv_drop import iter_csv

    with _csv_text(path) as text:
        return next(iter_csv(text, settings.files[0], settings, path.name, chunk_rows=1))


def _csv_items(path: Path, settings: Any) -> Iterator[Item]:
    from connectors.csv_drop import iter_csv

    with _csv_text(path) as text:
        for records, bad in iter_csv(text, settings.files[0], settings, path.name):
            yield from records
            for item in bad:
                yield Flagged("quarantined", item)


def _epcis_items(path: Path) -> Iterator[Item]:
    with path.open("rb") as handle:
        for chunk in stream_document(handle, path.name):
            yield from chunk.events
            for item in chunk.quarantined:
                yield Flagged("quarantined", item)
            for item in chunk.skipped:
                yield Flagged("skipped", item)


def _edi_items(path: Path, chosen: str) -> Iterator[Item | Warned]:
    """X12 or EDIFACT read a chunk at a time, one transaction set / message held at once."""
    if chosen == "x12":
        items = iter_parse_x12(path, path.name)
    else:
        from connectors.edifact import iter_parse_edifact

        items = iter_parse_edifact(path, path.name)
    for kind, item in items:
        if kind == "record":
            yield item
        elif kind == "warning":
            yield Warned(item)
        else:
            yield Flagged(kind, item)


def inspect_file(path: Path, fmt: str = "auto") -> Inspection:
    """Parse one file with the matching connector's parser. Raises OSError / UnknownFormat."""
    if fmt not in FORMATS:
        raise UnknownFormat(f"--format {fmt!r} is not one of {', '.join(FORMATS)}")
    try:
        return _inspect(path, detect_format(path) if fmt == "auto" else fmt)
    except RecursionError:  # whichever parser walks the nesting, never a traceback
        raise UnknownFormat(f"{path.name} is not readable: it is nested too deeply") from None


def _inspect(path: Path, chosen: str) -> Inspection:
    if chosen in ("x12", "edifact"):
        path.stat()  # a missing file is an error now, not once the output has begun
        return Inspection(chosen, stream=_edi_items(path, chosen))
    if chosen == "epcis":
        path.stat()  # a missing file is an error now, not once the output has begun
        return Inspection("epcis", stream=_epcis_items(path))
    return _parse_csv(path)


def inspect_command(
    file: Annotated[Path, typer.Argument(help="An X12 (.edi/.x12), EDIFACT, EPCIS "
                                              "(.json/.jsonld) or CSV file")],
    format: Annotated[str, typer.Option("--format", help="auto, csv, edifact, epcis or x12")]
    = "auto",
    json_output: Annotated[bool, typer.Option("--json", help="JSON lines instead of tables")]
    = False,
) -> None:
    """Show the canonical records alignbot would read from FILE, and what it would quarantine.

    Records go to stdout; quarantined records and warnings go to stderr with their position and reason.

    Exit codes: 0 records read (some may be quarantined), 1 no record read, 2 not readable.
    """
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    try:
        result = inspect_file(file, format)
    except (OSError, UnknownFormat) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        err.print(f"error: cannot inspect {file}: {reason}", markup=False)
        raise typer.Exit(2) from None
    warned = [0]
    counts = show(_warnings_to(err, result.items(), json_output, warned),
                  json_output=json_output, err=err)
    summary = (f"{file.name}: {result.format}, {counts.records} records, "
               f"{counts.quarantined} quarantined"
               + (f", {warned[0]} warnings" if warned[0] else "")
               + (f", {counts.skipped} skipped (valid, no shipment data)"
                  if counts.skipped else ""))
    err.print(summary, markup=False)
    if not counts.records:
        raise typer.Exit(1)


def _warnings_to(err: Console, items: Iterable[Item | Warned], json_output: bool,
                 warned: list[int]) -> Iterator[Item]:
    """The items, less the warnings: those are written to stderr as they come, and counted."""
    for item in items:
        if not isinstance(item, Warned):
            yield item
            continue
        warned[0] += 1
        q = item.item
        if json_output:
            sys.stderr.write(json.dumps({"warning": True, "source": q.source,
                                         "position": q.position, "reason": q.reason}) + "\n")
        else:
            err.print(f"warning: {q.position}: {q.reason}", markup=False)
