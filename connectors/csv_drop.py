"""CSV drops: planning exports left in a directory (or served at one URL), read exactly once.

Each file is identified by its name and content hash, so a re-export under the same name is read
again and an unchanged file never is. A file is archived once the caller hands back the cursor
that recorded it (``archive_when="acknowledged"``, the default): if the bot crashes between the
read and saving the cursor, the file is still in the inbox and is read again, never lost.
Rows are parsed with the csv module, one at a time, so a bad row is quarantined with its line
number while the rest of the file is read.
"""

from __future__ import annotations

import csv
import fnmatch
import hashlib
import io
import json
import logging
import math
import re
import time
from datetime import date, datetime
from pathlib import Path
from typing import Any, Literal
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

from connectors._archive import archive_read_files
from connectors._mapping import (
    MODELS,
    Entity,
    MappingError,
    build_record,
    describe,
    to_utc,
)
from connectors.base import ConnectorError, ExecuteResult, Health
from connectors.http_retry import RetryPolicy
from detectors.model import Action, Quarantined, ReadResult, ShipmentLine

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


def parse_csv(text: str, pattern: FilePattern, settings: CsvDropSettings,
              source: str) -> tuple[list[Any], list[Quarantined]]:
    """Canonical records from one CSV text, and the rows that could not be read (with why)."""
    records: list[Any] = []
    bad: list[Quarantined] = []

    def quarantine(line: int | str, reason: str, raw: str = "") -> None:
        where = f"line {line}" if isinstance(line, int) else line
        bad.append(Quarantined(source=source, position=where, reason=reason, raw=raw[:2000]))

    reader = csv.reader(io.StringIO(text, newline=""), delimiter=settings.delimiter)
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        quarantine(1, "file is empty; expected a header row")
        return records, bad
    except csv.Error as exc:
        quarantine(1, f"header row is not CSV: {exc}")
        return records, bad
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
        quarantine(1, f"missing column(s) {missing}; the header has {header!r:.300}; "
                      f"map them in files[].columns")
        return records, bad

    shipments: dict[str, dict[str, Any]] = {}
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            quarantine(reader.line_num, f"not valid CSV: {exc}")
            continue
        line = reader.line_num
        raw = settings.delimiter.join(row)
        if not any(cell.strip() for cell in row):
            continue  # blank lines are not data
        if len(row) != len(header):
            quarantine(line, f"expected {len(header)} fields, got {len(row)}", raw)
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
            quarantine(line, "; ".join(errors), raw)
            continue
        if pattern.entity != "shipments":
            try:
                records.append(build_record(pattern.entity, data, constants=pattern.constants))
            except MappingError as exc:
                quarantine(line, str(exc), raw)
            continue
        _add_shipment_line(shipments, data, line, raw, pattern, quarantine)

    for shipment_id, entry in shipments.items():
        try:
            records.append(build_record("shipments", {**entry["head"], "lines": entry["lines"]},
                                        constants=pattern.constants))
        except MappingError as exc:
            lines = ", ".join(str(n) for n in entry["line_numbers"])
            quarantine(f"lines {lines}", f"shipment {shipment_id}: {exc}", entry["raw"])
    return records, bad


def _add_shipment_line(shipments: dict[str, dict[str, Any]], data: dict[str, Any], line: int,
                       raw: str, pattern: FilePattern, quarantine: Any) -> None:
    """Group one-row-per-line shipments; a row whose line or header is inconsistent is
    quarantined alone."""
    try:
        item = ShipmentLine.model_validate({k: data[k] for k in ("sku", "qty") if k in data})
    except ValidationError as exc:
        quarantine(line, f"shipment line: {describe(exc)}", raw)
        return
    head = {k: v for k, v in data.items() if k not in ("sku", "qty")}
    shipment_id = str(head.get("shipment_id") or pattern.constants.get("shipment_id") or "")
    if not shipment_id:
        quarantine(line, "shipment_id is empty", raw)
        return
    entry = shipments.get(shipment_id)
    if entry is None:
        shipments[shipment_id] = {"head": head, "lines": [item.model_dump()],
                                  "line_numbers": [line], "raw": raw}
        return
    differs = sorted(k for k in set(head) | set(entry["head"]) if head.get(k) != entry["head"].get(k))
    if differs:
        quarantine(line, f"shipment {shipment_id}: {', '.join(differs)} differ from line "
                         f"{entry['line_numbers'][0]}", raw)
        return
    entry["lines"].append(item.model_dump())
    entry["line_numbers"].append(line)


# --- the connector ----------------------------------------------------------------------------


class CsvDropConnector:
    """Reads planning exports dropped as CSV files; read-only (``execute`` refuses)."""

    def __init__(self, name: str, settings: CsvDropSettings, base_path: Path | None = None,
                 client: httpx.Client | None = None, *, retry: RetryPolicy | None = None):
        self.name = name
        self.settings = settings
        self._client = client
        self._policy = retry or RetryPolicy(timeout=settings.timeout_seconds)
        if settings.url is not None and client is None:
            raise ValueError(f"{name}: a CSV url needs an httpx.Client")
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

    def _decode(self, data: bytes, source: str) -> tuple[str | None, Quarantined | None]:
        encoding = self.settings.encoding
        if encoding.lower().replace("_", "-") in ("utf-8", "utf8"):
            encoding = "utf-8-sig"  # Excel writes a BOM
        try:
            return data.decode(encoding), None
        except UnicodeDecodeError as exc:
            line = data[:exc.start].count(b"\n") + 1
            return None, Quarantined(
                source=source, position=f"line {line}",
                reason=f"not {self.settings.encoding} text at byte {exc.start}; "
                       f"set the encoding (e.g. cp1252 or latin-1)")

    def _parse(self, data: bytes, pattern: FilePattern, file_name: str,
               result: ReadResult) -> None:
        """Parse one file into ``result``; a failure of the parser itself quarantines the file,
        which the caller still records as read, so the files behind it are read."""
        source = f"{self.name}:{file_name}"
        try:
            text, problem = self._decode(data, source)
            if problem is not None:
                result.quarantined.append(problem)
                return
            records, bad = parse_csv(text or "", pattern, self.settings, source)
        except Exception as exc:  # noqa: BLE001 — one file must not hold up those behind it
            log.exception("%s: reading %s failed; quarantined, reading on", self.name, file_name)
            after = ("it is archived with the files read: put it back in the inbox to read it "
                     "again" if self.archive is not None else
                     "it is not read again until its content changes")
            result.quarantined.append(Quarantined(
                source=source, position="file",
                reason=f"the file could not be read ({type(exc).__name__}: {exc})"[:500]
                       + f"; {after}"))
            return
        result.records.extend(records)
        result.quarantined.extend(bad)
        if bad:
            log.warning("%s: %s: quarantined %d rows", self.name, file_name, len(bad))

    # -- read

    def read(self, since: str | None = None) -> ReadResult:
        state = _load(since)
        if self.settings.url is not None:
            return self._read_url(state)
        return self._read_dir(state)

    def acknowledge(self, cursor: str) -> None:
        """Archive the files ``cursor`` recorded as read; ``read(cursor)`` does this too."""
        recorded = _load(cursor).get("processed")
        self._archive(recorded if isinstance(recorded, dict) else {})

    def _read_dir(self, state: dict[str, Any]) -> ReadResult:
        inbox = self.inbox
        assert inbox is not None
        if not inbox.is_dir():
            raise ConnectorError(f"{self.name}: drop directory {inbox} does not exist; create it "
                                 f"or fix csv path", retryable=True)
        recorded = state.get("processed")
        done: dict[str, str] = dict(recorded) if isinstance(recorded, dict) else {}
        if self.settings.archive_when == "acknowledged":
            done = {n: h for n, h in done.items() if n not in self._archive(done)}
        result = ReadResult()
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
                    result.quarantined.append(Quarantined(
                        source=f"{self.name}:{file_name}", position="file",
                        reason=f"{size} bytes exceeds max_file_bytes="
                               f"{self.settings.max_file_bytes}; raise it or split the export"))
                continue
            try:
                data = entry.read_bytes()
            except OSError as exc:
                log.warning("%s: cannot read %s (%s); will try again", self.name, file_name, exc)
                continue
            digest = hashlib.sha256(data).hexdigest()
            if done.get(file_name) == digest:
                fresh[file_name] = digest  # read before, not yet archived
                continue
            self._parse(data, pattern, file_name, result)
            fresh[file_name] = digest
        # keep only names still in the inbox: the cursor stays as small as the inbox
        result.cursor = json.dumps({"v": 1, "processed": fresh}, sort_keys=True)
        if self.settings.archive_when == "read":
            self._archive(fresh)
        return result

    def _archive(self, processed: dict[str, str]) -> set[str]:
        """Move processed files (same name and content) to the archive; names moved or gone."""
        if self.inbox is None or self.archive is None:
            return set()
        return archive_read_files(self.inbox, self.archive, processed, connector=self.name)

    def _read_url(self, state: dict[str, Any]) -> ReadResult:
        url = self.settings.url
        assert url is not None and self._client is not None
        file_name = urlsplit(url).path.rsplit("/", 1)[-1] or "export.csv"
        pattern = self._pattern(file_name) or (
            self.settings.files[0] if len(self.settings.files) == 1 else None)
        if pattern is None:
            raise ConnectorError(f"{self.name}: no files[] pattern matches {file_name!r}")
        headers = {"If-None-Match": state["etag"]} if state.get("etag") else {}
        try:
            resp = self._policy.send(self._client, "GET", url, headers=headers)
        except httpx.HTTPError as exc:
            raise ConnectorError(f"{self.name}: GET {url} failed after retries "
                                 f"({type(exc).__name__})", retryable=True) from None
        result = ReadResult(cursor=json.dumps(state, sort_keys=True) if state else None)
        if resp.status_code == 304:
            return result
        if resp.status_code != 200:
            raise ConnectorError(f"{self.name}: GET {url} answered {resp.status_code}",
                                 retryable=resp.status_code >= 500 or resp.status_code == 429)
        data = resp.content
        if len(data) > self.settings.max_file_bytes:
            raise ConnectorError(f"{self.name}: {url} exceeds max_file_bytes")
        digest = hashlib.sha256(data).hexdigest()
        new_state = {"v": 1, "sha256": digest, "etag": resp.headers.get("ETag")}
        result.cursor = json.dumps(new_state, sort_keys=True)
        if state.get("sha256") != digest:
            self._parse(data, pattern, file_name, result)
        return result

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
            resp = self._policy.with_attempts(1).send(self._client, "HEAD", self.settings.url)
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
