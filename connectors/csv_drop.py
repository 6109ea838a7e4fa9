"""CSV drops: planning exports left in a directory (or served at one URL), read exactly once.

Each file is identified by its name and content hash, so a re-export under the same name is read
again and an unchanged file never is. A file is archived once the caller hands back the cursor
that recorded it (``archive_when="acknowledged"``, the default): if the bot crashes between the
read and saving the cursor, the file is still in the inbox and is read again, never lost.
Rows are parsed with the csv module, one at a time, so a bad row is quarantined with its line
number while the rest of the file is read. A file is read as a stream (``read_chunks``): one pass
for its hash and encoding, a block at a time, then a few thousand records at a time, so a 50 MB
export never has to fit in memory whole.
"""

from __future__ import annotations

import codecs
import csv
import fnmatch
import hashlib
import io
import json
import logging
import math
import re
import time
from array import array
from collections.abc import Callable, Iterable, Iterator
from datetime import date, datetime
from functools import partial
from pathlib import Path
from typing import Any, BinaryIO, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from canonical.model import Action, Quarantined, ReadResult, ShipmentLine
from connectors._archive import archive_read_files
from connectors._mapping import (
    MODELS,
    Entity,
    MappingError,
    build_record,
    describe,
    to_utc,
)
from connectors.base import ConnectorError, ExecuteResult, Health, collected
from connectors.http_retry import ONE_ATTEMPT, RetryPolicy, retrying_client

log = logging.getLogger(__name__)


class _Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FilePattern(_Settings):
    """Files whose name matches ``glob`` hold rows of ``entity``.

    Shipments come one row per line: shipment columns repeat, ``sku`` and ``qty`` vary.
    """

    glob: str = "*.csv"
    entity: Entity
    columns: dict[str, str] = Field(default_factory=dict)  # canonical field -> CSV header
    constants: dict[str, Any] = Field(default_factory=dict)


class CsvDropSettings(_Settings):
    path: str | None = None  # the inbox directory; relative paths are under base_path
    url: str | None = None  # or: one CSV file over HTTP, fetched with If-None-Match
    files: list[FilePattern] = Field(min_length=1)
    delimiter: str = ","
    encoding: str = "utf-8"
    decimal: str = "."
    thousands: str | None = None
    date_format: str | None = None  # strptime format, e.g. "%d.%m.%Y"; ISO 8601 when None
    datetime_format: str | None = None
    timezone: str = "UTC"  # for date-times written without a zone
    archive_dir: str | None = "archive"  # relative to the inbox; None leaves files in place
    archive_when: Literal["acknowledged", "read"] = "acknowledged"
    min_age_seconds: float = Field(default=0.0, ge=0)  # younger files may still be written
    max_file_bytes: int = Field(default=200_000_000, gt=0)
    timeout_seconds: float = Field(default=30.0, gt=0)

    @field_validator("delimiter", "decimal")
    @classmethod
    def _one_char(cls, value: str) -> str:
        if len(value) != 1:
            raise ValueError("must be a single character")
        return value

    @field_validator("encoding")
    @classmethod
    def _text_encoding(cls, value: str) -> str:
        try:
            "".encode(value)
            b"".decode(value)
        except LookupError:
            raise ValueError(f"{value!r} is not a text encoding (e.g. utf-8, cp1252, "
                             "latin-1)") from None
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}; use an IANA name") from None
        return value

    @model_validator(mode="after")
    def _one_source(self) -> CsvDropSettings:
        if (self.path is None) == (self.url is None):
            raise ValueError("set exactly one of path (a directory) or url (one CSV file)")
        if self.decimal == self.delimiter or (self.thousands and self.thousands == self.decimal):
            raise ValueError("delimiter, decimal and thousands separators must differ")
        return self


# --- parsing ----------------------------------------------------------------------------------


def _kinds() -> dict[str, str]:
    kinds: dict[str, str] = {}
    for model in (*MODELS.values(), ShipmentLine):
        for name, info in model.model_fields.items():
            text = str(info.annotation)
            if info.annotation is float:
                kinds[name] = "number"
            elif info.annotation is date:
                kinds[name] = "date"
            elif "datetime" in text:
                kinds[name] = "datetime"
    return kinds


KINDS = _kinds()
_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")
SHIPMENT_FIELDS = tuple(f for f in MODELS["shipments"].model_fields if f != "lines")


def _number(text: str, s: CsvDropSettings) -> float:
    value = text.replace(" ", "").replace("\u00a0", "")
    if s.thousands:
        value = value.replace(s.thousands, "")
    if s.decimal != ".":
        if "." in value:
            raise ValueError(f"{text!r} contains '.', but the decimal separator is "
                             f"{s.decimal!r} (set thousands='.' if it groups digits)")
        value = value.replace(s.decimal, ".")
    if not _NUMBER.fullmatch(value):
        raise ValueError(f"{text!r} is not a number")
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{text!r} is not a finite number")
    return number


def _date(text: str, s: CsvDropSettings) -> date:
    try:
        if s.date_format:
            return datetime.strptime(text, s.date_format).date()
        return date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a date ({s.date_format or 'YYYY-MM-DD'})") from None


def _datetime(text: str, s: CsvDropSettings) -> datetime:
    try:
        when = (datetime.strptime(text, s.datetime_format) if s.datetime_format
                else datetime.fromisoformat(text))
    except ValueError:
        raise ValueError(f"{text!r} is not a date-time "
                         f"({s.datetime_format or 'ISO 8601'})") from None
    return to_utc(when if when.tzinfo else when.replace(tzinfo=ZoneInfo(s.timezone)), text)


def _convert(field: str, text: str, s: CsvDropSettings) -> Any:
    kind = KINDS.get(field)
    if kind == "number":
        return _number(text, s)
    if kind == "date":
        return _date(text, s)
    if kind == "datetime":
        return _datetime(text, s)
    return text


CHUNK_ROWS = 5_000  # records per batch: a 50 MB export is read a few thousand rows at a time
_BLOCK = 1 << 20
_ABSENT = object()
# shipment columns with few distinct values (places, carriers, codes): one copy of each is kept
_FEW_VALUES = frozenset({"origin", "destination", "carrier", "mode", "status", "exception_code"})


def text_encoding(encoding: str) -> str:
    """The codec to read ``encoding`` with: UTF-8 as ``utf-8-sig``, as Excel writes a BOM."""
    return "utf-8-sig" if encoding.lower().replace("_", "-") in ("utf-8", "utf8") else encoding


def scan_bytes(blocks: Iterable[bytes], encoding: str) -> tuple[str, tuple[int, int] | None]:
    """sha256 of the bytes, and ``(byte offset, line)`` of the first byte that is not
    ``encoding`` text (None when all of it is), in one pass that holds one block at a time."""
    digest = hashlib.sha256()
    decoder = codecs.getincrementaldecoder(text_encoding(encoding))()
    fed = newlines = 0
    bad: tuple[int, int] | None = None
    for block in blocks:
        digest.update(block)
        if bad is None:
            pending = decoder.getstate()[0]  # bytes kept from the last block (a split character)
            try:
                decoder.decode(block)
            except UnicodeDecodeError as exc:
                at = fed - len(pending) + exc.start
                seen = (pending + block)[:exc.start]
                bad = (at, newlines - pending.count(b"\n") + seen.count(b"\n") + 1)
            newlines += block.count(b"\n")
        fed += len(block)
    if bad is None:
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError as exc:
            pending = exc.object
            bad = (fed - len(pending) + exc.start, newlines - pending.count(b"\n")
                   + pending[:exc.start].count(b"\n") + 1)
    return digest.hexdigest(), bad


def file_blocks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as handle:
        while block := handle.read(_BLOCK):
            yield block


def _columns(header: list[str], pattern: FilePattern) -> tuple[dict[str, int], str | None]:
    """Where each canonical field is in ``header``, or why the header does not fit."""
    model = MODELS[pattern.entity]
    fields = SHIPMENT_FIELDS + ("sku", "qty") if pattern.entity == "shipments" else tuple(
        model.model_fields)
    index: dict[str, int] = {}
    for name in fields:
        column = pattern.columns.get(name, name)
        if column in header:
            index[name] = header.index(column)
    if pattern.entity == "shipments":
        needed = [f for f in SHIPMENT_FIELDS if model.model_fields[f].is_required()]
        needed += ["sku", "qty"]
    else:
        needed = [f for f, info in model.model_fields.items() if info.is_required()]
    required = [f for f in needed if f not in index and f not in pattern.constants]
    if required:
        missing = ", ".join(repr(pattern.columns.get(f, f)) for f in required)
        return index, (f"missing column(s) {missing}; the header has {header!r:.300}; "
                       f"map them in files[].columns")
    return index, None


def header_problem(header: list[str], pattern: FilePattern) -> str | None:
    """Why rows under ``header`` cannot be read as ``pattern.entity`` (None: they can)."""
    return _columns(header, pattern)[1]


def parse_csv(text: str, pattern: FilePattern, settings: CsvDropSettings,
              source: str) -> tuple[list[Any], list[Quarantined]]:
    """Canonical records from one CSV text, and the rows that could not be read (with why)."""
    records: list[Any] = []
    bad: list[Quarantined] = []
    for chunk, problems in iter_csv(io.StringIO(text, newline=""), pattern, settings, source):
        records.extend(chunk)
        bad.extend(problems)
    return records, bad


def iter_csv(lines: Iterable[str], pattern: FilePattern, settings: CsvDropSettings, source: str,
             *, chunk_rows: int = CHUNK_ROWS) -> Iterator[tuple[list[Any], list[Quarantined]]]:
    """``parse_csv`` over a text stream (a file opened with ``newline=""``), a chunk of at most
    ``chunk_rows`` records at a time with the rows quarantined meanwhile.

    Only a chunk of records is held, so a file of any size reads in bounded memory; shipments
    (one row per line, lines of one shipment anywhere in the file) are kept as compact tuples
    until the end of the file and built then.
    """
    records: list[Any] = []
    bad: list[Quarantined] = []

    def quarantine(line: int | str, reason: str, raw: str = "") -> None:
        where = f"line {line}" if isinstance(line, int) else line
        bad.append(Quarantined(source=source, position=where, reason=reason, raw=raw[:2000]))

    reader = csv.reader(lines, delimiter=settings.delimiter)
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        quarantine(1, "file is empty; expected a header row")
        yield records, bad
        return
    except csv.Error as exc:
        quarantine(1, f"header row is not CSV: {exc}")
        yield records, bad
        return
    index, problem = _columns(header, pattern)
    if problem:
        quarantine(1, problem)
        yield records, bad
        return

    shipments = _Shipments(pattern, quarantine) if pattern.entity == "shipments" else None
    model = MODELS[pattern.entity]
    constants = {k: v for k, v in pattern.constants.items() if k in model.model_fields}
    while True:
        if len(records) >= chunk_rows or len(bad) >= chunk_rows:
            yield records, bad
            records, bad = [], []
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            quarantine(reader.line_num, f"not valid CSV: {exc}")
            continue
        line = reader.line_num
        if not (row and row[0].strip()) and not any(cell.strip() for cell in row):
            continue  # blank lines are not data
        if len(row) != len(header):
            quarantine(line, f"expected {len(header)} fields, got {len(row)}",
                       settings.delimiter.join(row))
            continue
        data: dict[str, Any] = {}
        errors = []
        for name, i in index.items():
            cell = row[i].strip()
            if not cell:
                continue
            try:
                data[name] = _convert(name, cell, settings)
            except ValueError as exc:
                errors.append(f"{name}: {exc}")
        if errors:
            quarantine(line, "; ".join(errors), settings.delimiter.join(row))
            continue
        if shipments is None:
            try:
                records.append(_build(model, pattern.entity, data, constants))
            except MappingError as exc:
                quarantine(line, str(exc), settings.delimiter.join(row))
            continue
        shipments.add(data, line, row, settings.delimiter)

    if shipments is not None:
        for record in shipments.build():
            records.append(record)
            if len(records) >= chunk_rows:
                yield records, bad
                records, bad = [], []
    yield records, bad


def _build(model: type[BaseModel], entity: str, data: dict[str, Any],
           constants: dict[str, Any]) -> Any:
    """``build_record`` for a row already keyed by canonical field (the cells of ``data`` are
    never empty), without its per-field path lookups; its reason when the row is bad."""
    try:
        return model.model_validate({**constants, **data} if constants else data)
    except (ValidationError, OverflowError):
        return build_record(entity, data, constants=constants)  # raises with the reason


class _Shipments:
    """One-row-per-line shipments grouped by id; a row whose line or header is inconsistent is
    quarantined alone. Each shipment is a few tuples (its head once, ``(sku, qty)`` per line)
    with repeated text shared, so a file of many shipments stays small until it is built."""

    def __init__(self, pattern: FilePattern, quarantine: Any):
        self.pattern = pattern
        self.quarantine = quarantine
        # shipment id -> [head values in SHIPMENT_FIELDS order, lines, line numbers, first raw]
        self.entries: dict[str, list[Any]] = {}
        self._shared: dict[Any, Any] = {}

    def _share(self, value: Any) -> Any:
        return self._shared.setdefault(value, value)

    def add(self, data: dict[str, Any], line: int, row: list[str], delimiter: str) -> None:
        try:
            item = ShipmentLine.model_validate({k: data[k] for k in ("sku", "qty") if k in data})
        except ValidationError as exc:
            self.quarantine(line, f"shipment line: {describe(exc)}", delimiter.join(row))
            return
        head = tuple(self._share(v) if k in _FEW_VALUES and isinstance(v, str) else v
                     for k in SHIPMENT_FIELDS for v in (data.get(k, _ABSENT),))
        shipment_id = str(data.get("shipment_id") or self.pattern.constants.get("shipment_id")
                          or "")
        if not shipment_id:
            self.quarantine(line, "shipment_id is empty", delimiter.join(row))
            return
        entry = self.entries.get(shipment_id)
        if entry is None:
            self.entries[shipment_id] = [head, [(self._share(item.sku), item.qty)],
                                         array("L", [line]), delimiter.join(row)[:2000]]
            return
        if head != entry[0]:
            differs = [k for k, mine, first in zip(SHIPMENT_FIELDS, head, entry[0])
                       if mine != first]
            self.quarantine(line, f"shipment {shipment_id}: {', '.join(sorted(differs))} differ "
                                  f"from line {entry[2][0]}", delimiter.join(row))
            return
        entry[1].append((self._share(item.sku), item.qty))
        entry[2].append(line)

    def build(self) -> Iterator[Any]:
        """The shipment records, in the order their first line came; emptied as it goes."""
        while self.entries:
            shipment_id = next(iter(self.entries))
            head, lines, numbers, raw = self.entries.pop(shipment_id)
            data = {k: v for k, v in zip(SHIPMENT_FIELDS, head) if v is not _ABSENT}
            data["lines"] = [{"sku": sku, "qty": qty} for sku, qty in lines]
            try:
                yield build_record("shipments", data, constants=self.pattern.constants)
            except MappingError as exc:
                shown = ", ".join(str(n) for n in numbers)
                self.quarantine(f"lines {shown}", f"shipment {shipment_id}: {exc}", raw)


# --- the connector ----------------------------------------------------------------------------


class CsvDropConnector:
    """Reads planning exports dropped as CSV files; read-only (``execute`` refuses)."""

    def __init__(self, name: str, settings: CsvDropSettings, base_path: Path | None = None,
                 transport: httpx.BaseTransport | None = None, *,
                 sleep: Callable[[float], None] = time.sleep):
        self.name = name
        self.settings = settings
        self._client = (retrying_client(RetryPolicy(sleep=sleep), settings.timeout_seconds,
                                        transport) if settings.url is not None else None)
        self.inbox: Path | None = None
        if settings.path is not None:
            path = Path(settings.path)
            self.inbox = path if path.is_absolute() or base_path is None else base_path / path

    @property
    def archive(self) -> Path | None:
        if self.inbox is None or self.settings.archive_dir is None:
            return None
        path = Path(self.settings.archive_dir)
        return path if path.is_absolute() else self.inbox / path

    def _pattern(self, file_name: str) -> FilePattern | None:
        for pattern in self.settings.files:
            if fnmatch.fnmatchcase(file_name, pattern.glob):
                return pattern
        return None

    def _not_text(self, source: str, bad: tuple[int, int]) -> Quarantined:
        at, line = bad
        return Quarantined(source=source, position=f"line {line}",
                           reason=f"not {self.settings.encoding} text at byte {at}; "
                                  f"set the encoding (e.g. cp1252 or latin-1)")

    def _parse(self, open_bytes: Callable[[], BinaryIO], pattern: FilePattern,
               file_name: str) -> Iterator[ReadResult]:
        """Parse one file, a chunk of records at a time; a failure of the parser itself
        quarantines the file (records already read from it stand), which the caller still
        records as read, so the files behind it are read."""
        source = f"{self.name}:{file_name}"
        bad_rows = 0
        try:
            with open_bytes() as raw:
                text = io.TextIOWrapper(raw, encoding=text_encoding(self.settings.encoding),
                                        newline="")
                for records, bad in iter_csv(text, pattern, self.settings, source):
                    bad_rows += len(bad)
                    yield ReadResult(records=records, quarantined=bad)
        except Exception as exc:  # noqa: BLE001 — one file must not hold up those behind it
            log.exception("%s: reading %s failed; quarantined, reading on", self.name, file_name)
            after = ("it is archived with the files read: put it back in the inbox to read it "
                     "again" if self.archive is not None else
                     "it is not read again until its content changes")
            yield ReadResult(quarantined=[Quarantined(
                source=source, position="file",
                reason=f"the file could not be read ({type(exc).__name__}: {exc})"[:500]
                       + f"; {after}")])
            return
        if bad_rows:
            log.warning("%s: %s: quarantined %d rows", self.name, file_name, bad_rows)

    # -- read

    def read(self, since: str | None = None) -> ReadResult:
        """Everything new since the cursor in one result (``read_chunks`` collected)."""
        return collected(self.read_chunks(since), since)

    def read_chunks(self, since: str | None = None) -> Iterator[ReadResult]:
        """The read as a sequence of results of at most ``CHUNK_ROWS`` records each, so a large
        export is never held whole; the last one (possibly empty) carries the new cursor.
        Stop early and nothing is archived or recorded: the next read starts over."""
        state = _load(since)
        if self.settings.url is not None:
            return self._read_url(state)
        return self._read_dir(state)

    def acknowledge(self, cursor: str) -> None:
        """Archive the files ``cursor`` recorded as read; ``read(cursor)`` does this too."""
        recorded = _load(cursor).get("processed")
        self._archive(recorded if isinstance(recorded, dict) else {})

    def _read_dir(self, state: dict[str, Any]) -> Iterator[ReadResult]:
        inbox = self.inbox
        assert inbox is not None
        if not inbox.is_dir():
            raise ConnectorError(f"{self.name}: drop directory {inbox} does not exist; create it "
                                 f"or fix csv path", retryable=True)
        return self._read_inbox(inbox, state)

    def _read_inbox(self, inbox: Path, state: dict[str, Any]) -> Iterator[ReadResult]:
        recorded = state.get("processed")
        done: dict[str, str] = dict(recorded) if isinstance(recorded, dict) else {}
        if self.settings.archive_when == "acknowledged":
            done = {n: h for n, h in done.items() if n not in self._archive(done)}
        now = time.time()
        files = []
        for entry in inbox.iterdir():
            if not entry.is_file() or entry.name.startswith("."):
                continue
            pattern = self._pattern(entry.name)
            if pattern is None:
                continue
            stat = entry.stat()
            if now - stat.st_mtime < self.settings.min_age_seconds:
                continue
            files.append((stat.st_mtime, entry.name, entry, pattern, stat.st_size))
        fresh: dict[str, str] = {}
        for _, file_name, entry, pattern, size in sorted(files, key=lambda f: (f[0], f[1])):
            if size > self.settings.max_file_bytes:
                fresh[file_name] = marker = f"too-large:{size}"
                if done.get(file_name) != marker:  # say so once, not on every poll
                    yield ReadResult(quarantined=[Quarantined(
                        source=f"{self.name}:{file_name}", position="file",
                        reason=f"{size} bytes exceeds max_file_bytes="
                               f"{self.settings.max_file_bytes}; raise it or split the export")])
                continue
            try:  # first pass: the content hash and whether it is text at all, a block at a time
                digest, not_text = scan_bytes(file_blocks(entry), self.settings.encoding)
            except OSError as exc:
                log.warning("%s: cannot read %s (%s); will try again", self.name, file_name, exc)
                continue
            if done.get(file_name) == digest:
                fresh[file_name] = digest  # read before, not yet archived
                continue
            if not_text is not None:
                yield ReadResult(quarantined=[self._not_text(f"{self.name}:{file_name}",
                                                             not_text)])
            else:
                yield from self._parse(partial(entry.open, "rb"), pattern, file_name)
            fresh[file_name] = digest
        # keep only names still in the inbox: the cursor stays as small as the inbox
        cursor = json.dumps({"v": 1, "processed": fresh}, sort_keys=True)
        if self.settings.archive_when == "read":
            self._archive(fresh)
        yield ReadResult(cursor=cursor)

    def _archive(self, processed: dict[str, str]) -> set[str]:
        """Move processed files (same name and content) to the archive; names moved or gone."""
        if self.inbox is None or self.archive is None:
            return set()
        return archive_read_files(self.inbox, self.archive, processed, connector=self.name)

    def _read_url(self, state: dict[str, Any]) -> Iterator[ReadResult]:
        url = self.settings.url
        assert url is not None and self._client is not None
        file_name = urlsplit(url).path.rsplit("/", 1)[-1] or "export.csv"
        pattern = self._pattern(file_name) or (
            self.settings.files[0] if len(self.settings.files) == 1 else None)
        if pattern is None:
            raise ConnectorError(f"{self.name}: no files[] pattern matches {file_name!r}")
        headers = {"If-None-Match": state["etag"]} if state.get("etag") else {}
        try:
            resp = self._client.get(url, headers=headers)
        except httpx.HTTPError as exc:
            raise ConnectorError(f"{self.name}: GET {url} failed after retries "
                                 f"({type(exc).__name__})", retryable=True) from None
        if resp.status_code == 304:
            return iter([ReadResult(cursor=json.dumps(state, sort_keys=True) if state else None)])
        if resp.status_code != 200:
            raise ConnectorError(f"{self.name}: GET {url} answered {resp.status_code}",
                                 retryable=resp.status_code >= 500 or resp.status_code == 429)
        data = resp.content
        if len(data) > self.settings.max_file_bytes:
            raise ConnectorError(f"{self.name}: {url} exceeds max_file_bytes")
        return self._read_body(data, state, resp.headers.get("ETag"), pattern, file_name)

    def _read_body(self, data: bytes, state: dict[str, Any], etag: str | None,
                   pattern: FilePattern, file_name: str) -> Iterator[ReadResult]:
        digest, not_text = scan_bytes([data], self.settings.encoding)
        if state.get("sha256") != digest:
            if not_text is not None:
                yield ReadResult(quarantined=[self._not_text(f"{self.name}:{file_name}",
                                                             not_text)])
            else:
                yield from self._parse(lambda: io.BytesIO(data), pattern, file_name)
        yield ReadResult(cursor=json.dumps({"v": 1, "sha256": digest, "etag": etag},
                                           sort_keys=True))

    # -- the rest of the contract

    def execute(self, action: Action) -> ExecuteResult:
        return ExecuteResult(ok=False, status="rejected",
                             detail=f"{self.name} is a read-only CSV drop; route "
                                    f"{action.operation} to a connector that can write")

    def health(self) -> Health:
        if self.inbox is not None:
            ok = self.inbox.is_dir()
            return Health(ok=ok, detail=f"{self.name}: {self.inbox}"
                                        + ("" if ok else " does not exist"))
        assert self._client is not None and self.settings.url is not None
        try:
            resp = self._client.head(self.settings.url, extensions=ONE_ATTEMPT)
        except httpx.HTTPError as exc:
            return Health(ok=False, detail=f"{self.name}: {type(exc).__name__}")
        return Health(ok=resp.status_code < 400, detail=f"{self.name}: HTTP {resp.status_code}")


def _load(cursor: str | None) -> dict[str, Any]:
    if not cursor:
        return {}
    try:
        state = json.loads(cursor)
        return state if isinstance(state, dict) else {}
    except ValueError:
        log.warning("CSV cursor %.40r is not one this connector wrote; reading everything",
                    cursor)
        return {}
