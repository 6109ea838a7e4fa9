"""The latest picture of plan and execution, merged from every connector's reads.

Connectors read incrementally, so the picture is kept between polls: records replace their
predecessors by business key, and status events update their shipment.

The picture is kept as rows of plain values (tuples of strings, numbers and dates), not as
the records connectors hand over. A record is a pydantic model: an object, its ``__dict__``
and its fields-set, all watched by Python's cyclic garbage collector, which walks every
watched object on each full collection while holding the interpreter, and every Slack ack
waiting meanwhile is that much later. Measured: the demo bot's full collections went from
30–50 ms to 20–30 ms (half the objects they walk were its ~11k records); with 110k records, a
full collection went from 188 ms to 35 ms. Tuples of plain values cannot form cycles and the
collector stops watching them after its first look, so the rows cost full collections nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from datetime import datetime
from operator import attrgetter
from typing import Any

import polars as pl

from canonical.model import (
    SNAPSHOT_SCHEMAS,
    CapacityRecord,
    DemandRecord,
    InventoryRecord,
    LaneRecord,
    ShipmentEvent,
    ShipmentRecord,
    epoch_micros,
)
from detectors.snapshot import Snapshot

_EVENT_STATUS = {"delayed": "delayed", "exception": "delayed", "departed": "in_transit",
                 "in_transit": "in_transit", "arrived": "delivered", "delivered": "delivered",
                 "cancelled": "cancelled"}

_TABLE = {DemandRecord: "demand", ShipmentRecord: "shipments", CapacityRecord: "capacity",
          InventoryRecord: "inventory", LaneRecord: "lanes"}
# the business key within its table: a record replaces the one with the same key
_KEY = {"demand": attrgetter("sku", "location", "period"), "shipments": attrgetter("shipment_id"),
        "capacity": attrgetter("resource_type", "resource_id", "period"),
        "inventory": attrgetter("sku", "location"),
        "lanes": attrgetter("origin", "destination", "carrier")}
_COLUMNS = {table: tuple(schema) for table, schema in SNAPSHOT_SCHEMAS.items()}
# A shipment is kept as one flat tuple: its own columns, then sku, qty, sku, qty... of its
# lines (flat, because the collector stops watching a tuple only once it has stopped watching
# every tuple inside it). The table has one row per line, the shipment's columns repeated and
# the line's in their place among them.
_LINE_COLUMNS = ("sku", "qty")
_HEAD = tuple(c for c in _COLUMNS["shipments"] if c not in _LINE_COLUMNS)
_LINE_AT = _COLUMNS["shipments"].index("sku")  # sku and qty sit together in the schema
_HEAD_AT = {name: i for i, name in enumerate(_HEAD)}
_N_HEAD = len(_HEAD)
_READ = {table: attrgetter(*(_HEAD if table == "shipments" else columns))
         for table, columns in _COLUMNS.items()}  # one C call per record, values as a tuple
# A shipment's times are kept as microseconds since the epoch, the table's own representation:
# polars turns 40k lines of aware datetimes into a table in ~240 ms, of integers in ~55 ms, and
# logistics changes by the hour. The conversion is paid once per changed record, at apply.
_TIMES = {name for name, dtype in SNAPSHOT_SCHEMAS["shipments"].items() if isinstance(dtype, pl.Datetime)}
_TIME_AT = [_HEAD_AT[name] for name in _TIMES]
_SHIPMENT_ROWS = {name: (pl.Int64 if name in _TIMES else dtype)
                  for name, dtype in SNAPSHOT_SCHEMAS["shipments"].items()}


def _groups_of(table: str, key: Any, row: tuple) -> list[tuple[str, str]]:
    """The key groups (``detectors.isolation``) a record belongs to."""
    if table == "shipments":
        return [("sku", sku) for sku in row[_N_HEAD::2]]
    if table == "capacity":
        return [("resource", f"{key[0]}:{key[1]}")]
    if table == "lanes":
        return [("lane", f"{key[0]}>{key[1]}:{key[2]}")]
    return [("sku", key[0])]  # demand and inventory keys start with the sku


def _micros(value: datetime | None) -> int | None:
    return None if value is None else epoch_micros(value)


def _row(table: str, record: Any) -> tuple:
    """What the snapshot reads of a record, as plain values."""
    if table == "shipments":
        head = list(_READ[table](record))
        for at in _TIME_AT:
            head[at] = _micros(head[at])
        return (*head, *(value for line in record.lines for value in (line.sku, line.qty)))
    return _READ[table](record)


class SnapshotCache:
    """Rows by business key, one table each, and the Snapshot built from them.

    Most polls change nothing, and building a table is the costly part of a pass at scale
    (~0.15 s for 100k demand rows and 20k shipment lines), so each table's last build is kept
    until one of its rows changes: a poll of logistics rebuilds the shipments, not the million
    demand rows. A record that differs only in what the snapshot does not read (a demand row's
    ``source``, say) changes nothing.
    """

    def __init__(self) -> None:
        self._rows: dict[str, dict[Any, tuple]] = {table: {} for table in _COLUMNS}
        self._lock = threading.Lock()
        self._generation = dict.fromkeys(_COLUMNS, 0)  # per table, bumped by every change
        self._built: dict[str, tuple[int, pl.DataFrame]] = {}  # per table: last build, its generation
        self._snapshot: tuple[tuple[int, ...], Snapshot] | None = None

    def apply(self, records: Iterable[Any]) -> int:
        """Merge records; returns how many changed the picture."""
        changed = 0
        with self._lock:
            for record in records:
                if isinstance(record, ShipmentEvent):
                    changed += self._apply_event(record)
                    continue
                table = _TABLE.get(type(record))
                if table is None:
                    raise TypeError(f"not a canonical record: {type(record).__name__}")
                rows, key, row = self._rows[table], _KEY[table](record), _row(table, record)
                if rows.get(key) != row:
                    rows[key] = row
                    self._generation[table] += 1
                    changed += 1
        return changed

    def _apply_event(self, event: ShipmentEvent) -> int:
        key = event.shipment_id
        shipments = self._rows["shipments"]
        if (kept := shipments.get(key)) is None:
            return 0  # an event about a shipment we do not know yet; the next read brings it
        last: int | None = kept[_HEAD_AT["last_event_at"]]
        at = _micros(event.event_time)
        if last and at < last:
            return 0  # out of order: an older event must not undo a newer one
        update: dict[str, Any] = {"last_event_at": at}
        if event.eta is not None:
            update["eta"] = _micros(event.eta)
        if event.status in _EVENT_STATUS:
            update["status"] = _EVENT_STATUS[event.status]
        if event.status in ("delayed", "exception"):
            update["exception_code"] = event.reason_code or event.status_code or event.status
        row = list(kept)
        for name, value in update.items():
            row[_HEAD_AT[name]] = value
        if tuple(row) == kept:
            return 0
        shipments[key] = tuple(row)
        self._generation["shipments"] += 1
        return 1

    def drop(self, groups: Iterable[tuple[str, str]]) -> dict[tuple[str, str], list[str]]:
        """Take the records of key groups (``detectors.isolation``) out of the picture until
        their source sends them again; returns what was taken per group, one line a record."""
        wanted = set(groups)
        taken: dict[tuple[str, str], list[str]] = {group: [] for group in wanted}
        with self._lock:
            for table, rows in self._rows.items():
                for key, row in list(rows.items()):
                    hits = wanted.intersection(_groups_of(table, key, row))
                    if hits:
                        rows.pop(key)
                        self._generation[table] += 1
                        for group in hits:
                            taken[group].append(f"{table} {key}: {row}")
        return taken

    def snapshot(self) -> Snapshot:
        with self._lock:
            generations = tuple(self._generation.values())
            if self._snapshot is not None and self._snapshot[0] == generations:
                return self._snapshot[1]
            stale = {table: (self._generation[table], list(by_key.values()))
                     for table, by_key in self._rows.items()
                     if self._built.get(table, (None,))[0] != self._generation[table]}
            tables = {table: built for table, (_, built) in self._built.items()}
        for table, (_, rows) in stale.items():
            tables[table] = _frame(table, rows)
        built = Snapshot(**tables)
        with self._lock:
            # kept with the generations they were built from: a change applied meanwhile has
            # bumped them, so the next call builds again
            for table, (generation, _) in stale.items():
                self._built[table] = (generation, tables[table])
            self._snapshot = (generations, built)
        return built

    def __len__(self) -> int:
        return sum(len(by_key) for by_key in self._rows.values())


# A table is read from the rows column by column, a slice of rows at a time. polars reading
# rows (``orient="row"``) holds the interpreter for the whole call: 100k demand rows took
# 150–180 ms in one call, and no Slack ack could go out meanwhile. A column of a slice is one
# short call, the interpreter changes hands between them (no other thread waited more than
# ~8 ms), and the table is built in 70–90 ms.
ROWS_PER_CALL = 10_000


def _frame(table: str, rows: list[tuple]) -> pl.DataFrame:
    if table != "shipments":
        return _from_rows(rows, SNAPSHOT_SCHEMAS[table])
    lines = [row[:_LINE_AT] + row[at:at + 2] + row[_LINE_AT:_N_HEAD]  # one row per line
             for row in rows for at in range(_N_HEAD, len(row), 2)]
    return _from_rows(lines, _SHIPMENT_ROWS).with_columns(
        pl.col(name).cast(SNAPSHOT_SCHEMAS["shipments"][name]) for name in _TIMES)


def _from_rows(rows: list[tuple], schema: dict[str, pl.DataType]) -> pl.DataFrame:
    """``pl.DataFrame(rows, schema=schema, orient="row")``, read as ``ROWS_PER_CALL`` explains."""
    parts = [
        pl.DataFrame([pl.Series(name, [row[i] for row in part], dtype=dtype)
                      for i, (name, dtype) in enumerate(schema.items())])
        for part in (rows[start:start + ROWS_PER_CALL] for start in range(0, len(rows), ROWS_PER_CALL))
    ]
    if not parts:
        return pl.DataFrame(schema=schema)
    return parts[0] if len(parts) == 1 else pl.concat(parts, rechunk=True)
