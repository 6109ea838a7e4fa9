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

from detectors.model import (
    SNAPSHOT_SCHEMAS,
    CapacityRecord,
    DemandRecord,
    InventoryRecord,
    LaneRecord,
    ShipmentEvent,
    ShipmentRecord,
)
from detectors.snapshot import Snapshot

_EVENT_STATUS = {"delayed": "delayed", "exception": "delayed", "departed": "in_transit",
                 "in_transit": "in_transit", "arrived": "delivered", "delivered": "delivered"}

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


def _row(table: str, record: Any) -> tuple:
    """What the snapshot reads of a record, as plain values."""
    if table == "shipments":
        return _READ[table](record) + tuple(
            value for line in record.lines for value in (line.sku, line.qty))
    return _READ[table](record)


class SnapshotCache:
    """Rows by business key, one table each, and the Snapshot built from them.

    Most polls change nothing, and building a Snapshot is the costly part of a pass at scale,
    so the last one is kept until a row changes. A record that differs only in what the
    snapshot does not read (a demand row's ``source``, say) changes nothing.
    """

    def __init__(self) -> None:
        self._rows: dict[str, dict[Any, tuple]] = {table: {} for table in _COLUMNS}
        self._lock = threading.Lock()
        self._generation = 0  # bumped by every change
        self._built: tuple[int, Snapshot] | None = None  # the last build and its generation

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
                    changed += 1
            self._generation += bool(changed)
        return changed

    def _apply_event(self, event: ShipmentEvent) -> int:
        key = event.shipment_id
        shipments = self._rows["shipments"]
        if (kept := shipments.get(key)) is None:
            return 0  # an event about a shipment we do not know yet; the next read brings it
        last: datetime | None = kept[_HEAD_AT["last_event_at"]]
        if last and event.event_time < last:
            return 0  # out of order: an older event must not undo a newer one
        update: dict[str, Any] = {"last_event_at": event.event_time}
        if event.eta is not None:
            update["eta"] = event.eta
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
        return 1

    def snapshot(self) -> Snapshot:
        with self._lock:
            if self._built is not None and self._built[0] == self._generation:
                return self._built[1]
            generation = self._generation
            rows = {table: list(by_key.values()) for table, by_key in self._rows.items()}
        built = _build(rows)
        with self._lock:
            if generation == self._generation:  # nothing applied while it was being built
                self._built = (generation, built)
        return built

    def __len__(self) -> int:
        return sum(len(by_key) for by_key in self._rows.values())


def _build(rows: dict[str, list[tuple]]) -> Snapshot:
    def frame(table: str, data: list[tuple]) -> pl.DataFrame:
        return pl.DataFrame(data, schema=SNAPSHOT_SCHEMAS[table], orient="row")

    lines = [row[:_LINE_AT] + row[at:at + 2] + row[_LINE_AT:_N_HEAD]
             for row in rows["shipments"] for at in range(_N_HEAD, len(row), 2)]
    return Snapshot(**{table: frame(table, lines if table == "shipments" else data)
                       for table, data in rows.items()})
