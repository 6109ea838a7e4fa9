"""``alignbot inspect FILE``: show what alignbot would read from one X12, EPCIS or CSV file.

A partner's file is checked before it is wired in: canonical records go to stdout (JSON lines
with ``--json``, tables otherwise), quarantined records and their reasons go to stderr.
Exit codes: 0 something parsed, 1 nothing usable (every record bad), 2 unreadable or unknown
format.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import BaseModel
from rich.console import Console
from rich.table import Table

from connectors.epcis import EVENT_TYPES, parse_document
from connectors.x12 import parse_x12
from detectors.model import Quarantined

FORMATS = ("auto", "csv", "epcis", "x12")


@dataclass
class Inspection:
    format: str
    records: list[BaseModel] = field(default_factory=list)
    quarantined: list[Quarantined] = field(default_factory=list)
    skipped: list[Quarantined] = field(default_factory=list)


class UnknownFormat(ValueError):
    """The file is none of the formats alignbot reads (or the one asked for is unavailable)."""


def detect_format(path: Path, data: bytes) -> str:
    """x12 if it starts with ISA, epcis if it is EPCIS JSON, csv by extension."""
    head = data.lstrip(b"\xef\xbb\xbf \t\r\n")
    if head.startswith(b"ISA"):
        return "x12"
    if head[:1] in (b"{", b"["):
        try:
            document = json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise UnknownFormat(f"{path.name} looks like JSON but does not parse: {exc}") from None
        except RecursionError:
            raise UnknownFormat(f"{path.name} is not readable: its JSON is nested too deeply "
                                "to parse") from None
        if _looks_like_epcis(document):
            return "epcis"
        raise UnknownFormat(f"{path.name} is JSON but not EPCIS (no @context, EPCISDocument "
                            "type, epcisBody or eventList)")
    if path.suffix.lower() == ".csv":
        return "csv"
    raise UnknownFormat(f"cannot tell the format of {path.name}: not X12 (no ISA segment), not "
                        "EPCIS JSON, and not a .csv file; pass --format csv|epcis|x12")


def _looks_like_epcis(document: Any) -> bool:
    if isinstance(document, list):
        return bool(document) and all(isinstance(e, dict) and e.get("type") in EVENT_TYPES
                                      for e in document[:5])
    if not isinstance(document, dict):
        return False
    return ("@context" in document or "epcisBody" in document or "eventList" in document
            or document.get("type") in ("EPCISDocument", "EPCISQueryDocument", *EVENT_TYPES))


def _parse_csv(path: Path, data: bytes) -> Inspection:
    """CSV through the CSV drop connector's parser, as whichever entity the header fits.

    The header decides: every entity (demand, shipments, capacity, inventory, lanes) whose
    required columns are all present is a candidate; the one yielding most records wins.
    """
    try:
        from connectors._mapping import ENTITIES
        from connectors.csv_drop import CsvDropSettings, FilePattern, parse_csv
    except ImportError:
        raise UnknownFormat("CSV inspection needs connectors.csv_drop, which this build "
                            "lacks") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UnknownFormat(f"{path.name} is not UTF-8 text: {exc}") from None
    first_line = text.split("\n", 1)[0]
    delimiter = max(",;\t|", key=first_line.count)
    best: Inspection | None = None
    misses = []
    for entity in ENTITIES:
        settings = CsvDropSettings(path=".", delimiter=delimiter,
                                   files=[FilePattern(glob="*", entity=entity)])
        records, bad = parse_csv(text, settings.files[0], settings, path.name)
        if bad and bad[0].position == "line 1" and not records:
            misses.append(f"{entity}: {bad[0].reason.split(';')[0]}")
            continue
        if best is None or len(records) > len(best.records):
            best = Inspection(f"csv ({entity})", records=records, quarantined=bad)
    if best is None:
        raise UnknownFormat(f"{path.name}: the CSV header fits no canonical table ("
                            + "; ".join(misses) + ")")
    return best


def inspect_file(path: Path, fmt: str = "auto") -> Inspection:
    """Parse one file with the matching connector's parser. Raises OSError / UnknownFormat."""
    if fmt not in FORMATS:
        raise UnknownFormat(f"--format {fmt!r} is not one of {', '.join(FORMATS)}")
    data = path.read_bytes()
    try:
        return _inspect(path, data, detect_format(path, data) if fmt == "auto" else fmt)
    except RecursionError:  # whichever parser walks the nesting, never a traceback
        raise UnknownFormat(f"{path.name} is not readable: it is nested too deeply") from None


def _inspect(path: Path, data: bytes, chosen: str) -> Inspection:
    if chosen == "x12":
        parsed = parse_x12(data, path.name)
        return Inspection("x12", records=list(parsed.records),
                          quarantined=parsed.quarantined, skipped=parsed.skipped)
    if chosen == "epcis":
        parsed_epcis = parse_document(data, path.name)
        return Inspection("epcis", records=list(parsed_epcis.events),
                          quarantined=parsed_epcis.quarantined, skipped=parsed_epcis.skipped)
    return _parse_csv(path, data)


def _table(kind: str, rows: list[BaseModel]) -> Table:
    columns = [name for name in type(rows[0]).model_fields if name != "reference"]
    table = Table(title=f"{kind} ({len(rows)})", show_lines=False)
    for name in columns:
        table.add_column(name, overflow="fold")
    for row in rows:
        values = row.model_dump(mode="json")
        table.add_row(*[_cell(values.get(name)) for name in columns])
    return table


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return ", ".join(f"{v['sku']}×{v['qty']:g}" if isinstance(v, dict) and "sku" in v
                         else str(v) for v in value)
    return str(value)


def inspect_command(
    file: Annotated[Path, typer.Argument(help="An X12 (.edi/.x12), EPCIS (.json/.jsonld) or "
                                              "CSV file")],
    format: Annotated[str, typer.Option("--format", help="auto, csv, epcis or x12")] = "auto",
    json_output: Annotated[bool, typer.Option("--json", help="JSON lines instead of tables")]
    = False,
) -> None:
    """Show the canonical records alignbot would read from FILE, and what it would quarantine."""
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    try:
        result = inspect_file(file, format)
    except (OSError, UnknownFormat) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        err.print(f"error: cannot inspect {file}: {reason}", markup=False)
        raise typer.Exit(2) from None

    if json_output:
        for record in result.records:
            line = {"kind": type(record).__name__, **record.model_dump(mode="json")}
            sys.stdout.write(json.dumps(line, sort_keys=False) + "\n")
        sys.stdout.flush()
    else:
        out = Console(highlight=False, width=200)
        by_kind: dict[str, list[BaseModel]] = {}
        for record in result.records:
            by_kind.setdefault(type(record).__name__, []).append(record)
        for kind, rows in by_kind.items():
            out.print(_table(kind, rows))
    for label, items in (("quarantined", result.quarantined), ("skipped", result.skipped)):
        for item in items:
            if json_output:
                sys.stderr.write(json.dumps({label: True, "source": item.source,
                                             "position": item.position,
                                             "reason": item.reason}) + "\n")
            else:
                err.print(f"{label}: {item.position}: {item.reason}", markup=False)
    summary = (f"{file.name}: {result.format}, {len(result.records)} records, "
               f"{len(result.quarantined)} quarantined"
               + (f", {len(result.skipped)} skipped (valid, no shipment data)"
                  if result.skipped else ""))
    if json_output:
        sys.stderr.flush()
    err.print(summary, markup=False)
    if not result.records:
        raise typer.Exit(1)
