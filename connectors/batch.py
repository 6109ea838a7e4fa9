"""Duplicates within one read batch.

Two records with the same business key in one batch leave the picture undefined: the snapshot
holds one row per key, so one of them silently replaces the other, and a second inventory row
can hide a stock-out. The bot keeps the first and quarantines the rest with a reason, as it does
with any record it cannot use, so the source's owner sees them. The keys are those of the
snapshot tables (``detectors.snapshot_io.KEYS``), a shipment being one record with its lines;
a ``ShipmentEvent`` is a message about a shipment, and several in a batch are normal.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from canonical.model import (
    CapacityRecord,
    DemandRecord,
    InventoryRecord,
    LaneRecord,
    Quarantined,
    ShipmentRecord,
)

# record type → (its table, the fields of its business key)
KEYS: dict[type, tuple[str, tuple[str, ...]]] = {
    DemandRecord: ("demand", ("sku", "location", "period")),
    InventoryRecord: ("inventory", ("sku", "location")),
    ShipmentRecord: ("shipment", ("shipment_id",)),
    CapacityRecord: ("capacity", ("resource_type", "resource_id", "period")),
    LaneRecord: ("lane", ("origin", "destination", "carrier")),
}


def record_key(record: Any) -> tuple[Any, ...] | None:
    """The record's table and business key; None for a record without one (an event)."""
    table, fields = KEYS.get(type(record), (None, ()))
    return None if table is None else (table, *(getattr(record, f) for f in fields))


def split_duplicates(records: Sequence[Any], source: str = "",
                     positions: Sequence[str] | None = None) -> tuple[list[Any], list[Quarantined]]:
    """``(kept, quarantined)``: every record whose key an earlier one in ``records`` already
    has is quarantined, naming the key and where the first is; the first is kept.

    ``positions[i]`` says where ``records[i]`` came from (default ``record #i``, its place in
    the batch); ``source`` goes into each quarantined record. Records of other types (events)
    are always kept, in their order.
    """
    kept: list[Any] = []
    quarantined: list[Quarantined] = []
    first_at: dict[tuple[Any, ...], str] = {}
    for i, record in enumerate(records):
        where = positions[i] if positions is not None else f"record #{i}"
        key = record_key(record)
        if key is None:
            kept.append(record)
            continue
        table, fields = KEYS[type(record)]
        first = first_at.get(key)
        if first is None:
            first_at[key] = where
            kept.append(record)
            continue
        shown = ", ".join(f"{f}={getattr(record, f)}" for f in fields)
        quarantined.append(Quarantined(
            source=source, position=where,
            reason=f"duplicate {table} key {shown} in one batch; the first, at {first}, is used",
            raw=record.model_dump_json()[:2000]))
    return kept, quarantined
