"""The latest picture of plan and execution, merged from every connector's reads.

Connectors read incrementally, so the picture is kept between polls: records replace their
predecessors by business key, and status events update their shipment.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

from detectors.model import (
    CapacityRecord,
    DemandRecord,
    InventoryRecord,
    LaneRecord,
    ShipmentEvent,
    ShipmentRecord,
)
from detectors.snapshot import Snapshot, snapshot_from_records

_EVENT_STATUS = {"delayed": "delayed", "exception": "delayed", "departed": "in_transit",
                 "in_transit": "in_transit", "arrived": "delivered", "delivered": "delivered"}


def business_key(record: Any) -> tuple:
    match record:
        case DemandRecord():
            return ("demand", record.sku, record.location, record.period)
        case ShipmentRecord():
            return ("shipment", record.shipment_id)
        case CapacityRecord():
            return ("capacity", record.resource_type, record.resource_id, record.period)
        case InventoryRecord():
            return ("inventory", record.sku, record.location)
        case LaneRecord():
            return ("lane", record.origin, record.destination, record.carrier)
    raise TypeError(f"not a canonical record: {type(record).__name__}")


class SnapshotCache:
    """Records by business key, and the Snapshot built from them.

    Most polls change nothing, and building a Snapshot from every record is the costly part
    of a pass at scale, so the last one is kept until a record changes.
    """

    def __init__(self) -> None:
        self._records: dict[tuple, Any] = {}
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
                key = business_key(record)
                if self._records.get(key) != record:
                    self._records[key] = record
                    changed += 1
            self._generation += bool(changed)
        return changed

    def _apply_event(self, event: ShipmentEvent) -> int:
        key = ("shipment", event.shipment_id)
        shipment: ShipmentRecord | None = self._records.get(key)
        if shipment is None:
            return 0  # an event about a shipment we do not know yet; the next read brings it
        if shipment.last_event_at and event.event_time < shipment.last_event_at:
            return 0  # out of order: an older event must not undo a newer one
        update: dict[str, Any] = {"last_event_at": event.event_time}
        if event.eta is not None:
            update["eta"] = event.eta
        if event.status in _EVENT_STATUS:
            update["status"] = _EVENT_STATUS[event.status]
        if event.status in ("delayed", "exception"):
            update["exception_code"] = event.reason_code or event.status_code or event.status
        updated = shipment.model_copy(update=update)
        if updated == shipment:
            return 0
        self._records[key] = updated
        return 1

    def snapshot(self) -> Snapshot:
        with self._lock:
            if self._built is not None and self._built[0] == self._generation:
                return self._built[1]
            generation, records = self._generation, list(self._records.values())
        built = snapshot_from_records(records)
        with self._lock:
            if generation == self._generation:  # nothing applied while it was being built
                self._built = (generation, built)
        return built

    def __len__(self) -> int:
        return len(self._records)
