"""The X12 status code lists alignbot reads, from ``x12_codes.csv`` (data, one row a code).

Elements: 1650 shipment status (AT7-01), 1651 shipment status or appointment reason (AT7-02,
AT7-04), 1652 shipment appointment status (AT7-03), of versions 004010 and 005010, each with
the standard's description and a canonical status:

planned, picked_up, in_transit, delayed, exception, arrived, delivered, cancelled, informational

``date`` says what AT7-05/06 mean for the code: ``event`` when the status happened; ``eta``
an estimated or appointed delivery (it becomes the event's ETA); ``estimate`` or
``appointment`` some other planned time (kept in the event's reference). For the last three
the event's own time is the functional group's (GS04/GS05): the message is news now, its
date lies ahead. A reason code's canonical status is ``delayed``, ``exception`` or
``informational``: a delay or exception reason on a movement status (picked_up, in_transit)
makes the event delayed or an exception.

``EVENT_STATUS`` turns a canonical status into the ``ShipmentEvent.status`` the rest of
alignbot understands (``bot.snapshot_cache`` applies departed, in_transit, delayed,
exception, arrived and delivered to the shipment; any other status leaves it as it is and
only moves its last event time, and its ETA when the event has one).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import cache
from pathlib import Path

CANONICAL = ("planned", "picked_up", "in_transit", "delayed", "exception", "arrived",
             "delivered", "cancelled", "informational")

# canonical status -> ShipmentEvent.status
EVENT_STATUS = {
    "planned": "planned",  # not applied to the shipment: a late XB must not undo a departure
    "picked_up": "departed",  # the carrier has it: in transit, as AF always was
    "in_transit": "in_transit",
    "delayed": "delayed",
    "exception": "exception",
    "arrived": "arrived",
    "delivered": "delivered",
    "cancelled": "cancelled",
    "informational": "informational",  # moves last_event_at only
}
ETA_STATUS = "eta_changed"  # an informational event that carries an ETA
MOVEMENT = frozenset({"picked_up", "in_transit"})  # statuses a delay/exception reason escalates

ELEMENTS = {"1650": "shipment status code (AT7-01)",
            "1651": "shipment status or appointment reason code (AT7-02/AT7-04)",
            "1652": "shipment appointment status code (AT7-03)"}


@dataclass(frozen=True)
class Code:
    element: str
    code: str
    description: str
    canonical: str
    date: str  # event, eta, estimate, appointment ('' for reason codes)
    versions: tuple[str, ...]
    note: str = ""

    @property
    def eta(self) -> bool:
        return self.date == "eta"


@cache
def table() -> dict[tuple[str, str], Code]:
    """(element, code) -> Code, read once from the CSV beside this module."""
    out: dict[tuple[str, str], Code] = {}
    with open(Path(__file__).with_name("x12_codes.csv"), encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            if row["canonical"] not in CANONICAL:
                raise ValueError(f"x12_codes.csv: {row['element']} {row['code']} has canonical "
                                 f"status {row['canonical']!r}, not one of {CANONICAL}")
            code = Code(element=row["element"], code=row["code"], description=row["description"],
                        canonical=row["canonical"], date=row["date"],
                        versions=tuple(row["versions"].split()), note=row["note"])
            out[(code.element, code.code)] = code
    return out


def lookup(element: str, code: str) -> Code | None:
    return table().get((element, code))


def event_status(canonical: str, has_eta: bool) -> str:
    if canonical == "informational" and has_eta:
        return ETA_STATUS
    return EVENT_STATUS[canonical]
