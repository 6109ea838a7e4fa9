"""The canonical model: the one vocabulary connectors, detectors, store and bot share.

Connectors turn what a planning or logistics system says into these records; detectors read
them as polars tables (the ``*_SCHEMA`` dicts below) and answer with ``Drift`` and
``Recommendation``; the store persists those; the bot shows them. Nothing here does I/O.
"""

from __future__ import annotations

import hashlib
import json
import math
from datetime import date, datetime, timezone
from enum import StrEnum
from typing import Annotated, Any, Literal, TypeVar

import polars as pl
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from canonical.limits import InputLimits

UTC = timezone.utc

# What no real plan or shipment holds; set from the configuration at start (``set_input_limits``).
_limits = InputLimits()


def set_input_limits(limits: InputLimits) -> None:
    """Use ``limits`` (the ``detectors.limits`` configuration) for every record read from now on."""
    global _limits
    _limits = limits


def input_limits() -> InputLimits:
    return _limits


def _within(value: float, bound: float, what: str, setting: str) -> float:
    if not math.isfinite(value):
        raise ValueError(f"{value} is not a finite number")
    if abs(value) > bound:
        raise ValueError(f"{value:g} is beyond any real {what} (limit {bound:g}, "
                         f"detectors.limits.{setting})")
    return value


def _units(value: float) -> float:
    return _within(value, _limits.max_units, "quantity", "max_units")


def _money(value: float) -> float:
    return _within(value, _limits.max_unit_value, "value per unit", "max_unit_value")


def _days(value: float) -> float:
    return _within(value, _limits.max_days, "number of days", "max_days")


def _in_calendar(value: date) -> date:
    """A date outside the configured years is a data error (9999-12-31 placeholders)."""
    day = value.date() if isinstance(value, datetime) else value
    if not _limits.earliest <= day <= _limits.latest:
        raise ValueError(f"{value.isoformat()} is outside {_limits.earliest.isoformat()} .. "
                         f"{_limits.latest.isoformat()} (detectors.limits.earliest/latest)")
    return value


Units = Annotated[float, AfterValidator(_units)]
Money = Annotated[float, AfterValidator(_money)]
Days = Annotated[float, AfterValidator(_days)]
Day = Annotated[date, AfterValidator(_in_calendar)]


def _aware_utc(value: datetime | None) -> datetime | None:
    """Refuse naive datetimes (a time without a zone is a bug waiting for DST) and times no
    real shipment has (``9999-12-31T23:59:59-12:00`` is past the last representable UTC time)."""
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError("datetime must carry a time zone (e.g. 2026-11-20T14:00:00Z)")
    try:
        utc = value.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"{value.isoformat()} is out of range once converted to UTC") from None
    return _in_calendar(utc)


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True,
                              allow_inf_nan=False)


# --- records a connector reads --------------------------------------------------------------


class DemandRecord(_Record):
    """Demand for one sku × location × period: what the plan assumed vs the latest signal."""

    sku: str = Field(min_length=1)
    location: str = Field(min_length=1)
    period: Day
    planned_qty: Units = Field(ge=0)
    latest_qty: Units = Field(ge=0)
    unit_value: Money = Field(default=0.0, ge=0)
    sku_class: str = "default"
    source: str = "forecast"  # orders, pos, forecast version ...


class ShipmentLine(_Record):
    sku: str = Field(min_length=1)
    qty: Units = Field(gt=0)


class ShipmentRecord(_Record):
    """One shipment as logistics sees it now."""

    shipment_id: str = Field(min_length=1)
    origin: str
    destination: str
    carrier: str = ""
    mode: str = "TL"
    lines: tuple[ShipmentLine, ...] = ()
    planned_ship: datetime | None = None
    planned_arrival: datetime | None = None
    status: str = "planned"  # planned, in_transit, delayed, delivered, cancelled
    eta: datetime | None = None
    last_event_at: datetime | None = None
    exception_code: str | None = None

    _utc = field_validator("planned_ship", "planned_arrival", "eta", "last_event_at")(
        classmethod(lambda cls, v: _aware_utc(v))
    )

    @property
    def lane(self) -> str:
        return lane_id(self.origin, self.destination)


class ShipmentEvent(_Record):
    """A status message about a shipment (X12 214, EPCIS event, a webhook push)."""

    shipment_id: str = Field(min_length=1)
    event_time: datetime
    status: str  # canonical: departed, in_transit, delayed, eta_changed, arrived, delivered, exception
    status_code: str = ""  # the source's own code, e.g. X12 AT7 'SD' or an EPCIS bizStep
    reason_code: str = ""
    location: str = ""
    eta: datetime | None = None
    carrier: str = ""
    reference: dict[str, str] = Field(default_factory=dict)

    _utc = field_validator("event_time", "eta")(classmethod(lambda cls, v: _aware_utc(v)))


class CapacityRecord(_Record):
    """Capacity of one resource in one period: assumed by the plan vs available now."""

    resource_type: Literal["lane", "carrier", "site", "dock"]
    resource_id: str = Field(min_length=1)
    period: Day
    planned_capacity: Units = Field(ge=0)
    available_capacity: Units = Field(ge=0)
    planned_load: Units = Field(ge=0)
    unit: str = "pallets"


class InventoryRecord(_Record):
    sku: str = Field(min_length=1)
    location: str = Field(min_length=1)
    on_hand: Units
    safety_stock: Units = Field(default=0.0, ge=0)


class LaneRecord(_Record):
    """A transport lane a transfer or reassignment may use."""

    origin: str
    destination: str
    carrier: str = ""
    cost_per_unit: Money = Field(ge=0)
    capacity: Units = Field(ge=0)  # units per period still free on this lane
    transit_days: Days = Field(default=1.0, ge=0)


CanonicalRecord = (
    DemandRecord | ShipmentRecord | ShipmentEvent | CapacityRecord | InventoryRecord | LaneRecord
)


class Quarantined(BaseModel):
    """A record that could not be read; kept with where it came from and why."""

    source: str
    position: str  # line 12, segment 40, event #3, page 2 item 7 ...
    reason: str
    raw: str = ""


class ReadResult(BaseModel):
    """What one ``Connector.read`` returns: good records, bad ones, and where to resume."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    records: list[Any] = Field(default_factory=list)
    quarantined: list[Quarantined] = Field(default_factory=list)
    cursor: str | None = None


# --- snapshot tables (polars) ---------------------------------------------------------------

_TS = pl.Datetime("us", "UTC")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def epoch_micros(value: datetime) -> int:
    """An aware datetime as the snapshot tables store it: microseconds since the epoch, exactly."""
    since = value - _EPOCH
    return (since.days * 86_400 + since.seconds) * 1_000_000 + since.microseconds


DEMAND_SCHEMA: dict[str, pl.DataType] = {
    "sku": pl.Utf8,
    "location": pl.Utf8,
    "period": pl.Date,
    "planned_qty": pl.Float64,
    "latest_qty": pl.Float64,
    "unit_value": pl.Float64,
    "sku_class": pl.Utf8,
}
# one row per shipment line; shipment-level columns repeat
SHIPMENT_SCHEMA: dict[str, pl.DataType] = {
    "shipment_id": pl.Utf8,
    "origin": pl.Utf8,
    "destination": pl.Utf8,
    "carrier": pl.Utf8,
    "mode": pl.Utf8,
    "sku": pl.Utf8,
    "qty": pl.Float64,
    "planned_ship": _TS,
    "planned_arrival": _TS,
    "status": pl.Utf8,
    "eta": _TS,
    "last_event_at": _TS,
    "exception_code": pl.Utf8,
}
CAPACITY_SCHEMA: dict[str, pl.DataType] = {
    "resource_type": pl.Utf8,
    "resource_id": pl.Utf8,
    "period": pl.Date,
    "planned_capacity": pl.Float64,
    "available_capacity": pl.Float64,
    "planned_load": pl.Float64,
}
INVENTORY_SCHEMA: dict[str, pl.DataType] = {
    "sku": pl.Utf8,
    "location": pl.Utf8,
    "on_hand": pl.Float64,
    "safety_stock": pl.Float64,
}
LANE_SCHEMA: dict[str, pl.DataType] = {
    "origin": pl.Utf8,
    "destination": pl.Utf8,
    "carrier": pl.Utf8,
    "cost_per_unit": pl.Float64,
    "capacity": pl.Float64,
    "transit_days": pl.Float64,
}
SNAPSHOT_SCHEMAS: dict[str, dict[str, pl.DataType]] = {
    "demand": DEMAND_SCHEMA,
    "shipments": SHIPMENT_SCHEMA,
    "capacity": CAPACITY_SCHEMA,
    "inventory": INVENTORY_SCHEMA,
    "lanes": LANE_SCHEMA,
}


def lane_id(origin: str, destination: str) -> str:
    return f"{origin}>{destination}"


# --- what detectors answer ------------------------------------------------------------------


class DriftKind(StrEnum):
    DEMAND_CHANGE = "demand_change"
    DISRUPTION = "disruption"
    CAPACITY_SHIFT = "capacity_shift"
    STOCKOUT_RISK = "stockout_risk"


class Severity(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return ["low", "medium", "high", "critical"].index(self.value)


class Impact(BaseModel):
    """What a drift puts at risk, read off the projection (``detectors.projection``).

    ``units_short``: units below safety stock at the lowest point; ``units_unserved``: of those,
    units below zero (demand that cannot be served on time); ``service_days_at_risk``: days below
    safety stock; ``days_out_of_stock``: days at zero; ``value_at_risk``: units short × unit value;
    ``shortage_unit_days``: units × days below safety stock (what the shortage penalty costs);
    ``units_excess``: units beyond what the plan needs (demand down, spare capacity).
    """

    units_short: float = 0.0
    units_unserved: float = 0.0
    units_excess: float = 0.0
    value_at_risk: float = 0.0
    service_days_at_risk: float = 0.0
    days_out_of_stock: float = 0.0
    shortage_unit_days: float = 0.0
    orders_at_risk: int = 0


class Drift(BaseModel):
    """Plan and execution disagree about one business key, by this much, costing this."""

    kind: DriftKind
    fingerprint: str
    key: dict[str, str]  # the business key: sku/location/period, shipment, resource ...
    evidence: dict[str, Any]  # plan vs actual numbers a planner can check
    impact: Impact
    severity: Severity
    cause: dict[str, str] = Field(default_factory=dict)  # lane/carrier/origin/day, for grouping
    detected_at: datetime

    _utc = field_validator("detected_at")(classmethod(lambda cls, v: _aware_utc(v)))


System = Literal["planning", "logistics"]


class Action(BaseModel):
    """One change in one system, executed at most once thanks to its idempotency key."""

    system: System
    connector: str = ""  # filled by the engine from config when empty
    operation: str  # update_forecast, reschedule_receipt, expedite_shipment, create_transfer ...
    params: dict[str, Any]
    idempotency_key: str = ""

    @classmethod
    def unchecked(cls, *, system: System, operation: str, params: dict[str, Any]) -> Action:
        """``Action(system=..., operation=..., params=...)`` without validation, for a recommender
        that builds thousands per pass from values it made itself (tests compare the two)."""
        return trusted(cls, {"system": system, "connector": "", "operation": operation, "params": params,
                             "idempotency_key": ""}, _ACTION_GIVEN)


_ACTION_GIVEN = frozenset({"system", "operation", "params"})


class Option(BaseModel):
    """One way to answer a drift, evaluated on the projection: what it costs, what it leaves."""

    name: str  # do nothing, transfer, expedite, re-source, reassign carrier, rephase ...
    summary: str  # the actions in one line
    action_cost: float = 0.0  # transport, expediting, extra supply
    shortage_cost: float = 0.0  # the shortage penalty on what it leaves below safety stock
    holding_cost: float = 0.0  # carrying the stock it leaves beyond what demand needs
    total_cost: float = 0.0
    impact: Impact = Field(default_factory=Impact)  # what is left if this option is taken
    recommended: bool = False
    why_not: str = ""  # for the others: why it lost


class Recommendation(BaseModel):
    """One coordinated adjustment answering one drift or a group sharing a cause."""

    fingerprint: str
    kind: DriftKind
    drift_fingerprints: list[str]
    summary: str
    actions: list[Action]
    impact_if_approved: Impact
    impact_if_ignored: Impact
    severity: Severity
    cost: float = 0.0  # of the recommended actions
    decide_by: datetime | None = None  # after this the recommended actions no longer do all they say
    rationale: str = ""
    options: list[Option] = Field(default_factory=list)  # the recommended one first, then the rest by cost
    alternatives: list[str] = Field(default_factory=list)  # one line each: option — why not
    affected: list[dict[str, Any]] = Field(default_factory=list)
    cause: dict[str, str] = Field(default_factory=dict)


_M = TypeVar("_M", bound=BaseModel)


def trusted(cls: type[_M], fields: dict[str, Any], given: frozenset[str] | None = None) -> _M:
    """An instance of ``cls`` from values already of its field types, without validation.

    For the thousands of drifts, actions and recommendations a detection pass builds (validation
    was a third of their cost). ``fields`` holds every field, as validated construction leaves
    them; ``given``: the fields a caller would have passed (default: all). Tests compare the two.
    """
    obj = _new(cls)
    _set_dict(obj, fields)
    _set_fields_set(obj, set(fields if given is None else given))
    _set_extra(obj, None)
    _set_private(obj, None)
    return obj


# BaseModel's own slot setters: what ``object.__setattr__`` would reach, without the lookup
_new = object.__new__
_set_dict = BaseModel.__dict__["__dict__"].__set__
_set_fields_set = BaseModel.__dict__["__pydantic_fields_set__"].__set__
_set_extra = BaseModel.__dict__["__pydantic_extra__"].__set__
_set_private = BaseModel.__dict__["__pydantic_private__"].__set__


def fingerprint(kind: str, key: dict[str, Any]) -> str:
    """Stable id of a business key: same key, same fingerprint, whatever the row order."""
    canonical = json.dumps({"kind": kind, **{k: str(v) for k, v in key.items()}}, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()[:24]


# Parameters that describe a change without being part of it.
_DESCRIPTIVE_PARAMS = frozenset({"note"})


def action_key(action: Action) -> str:
    """Idempotency key of a business change: system, operation, target and from → to values.

    The same change gets the same key whichever recommendation carries it, so a system that
    de-duplicates by key applies it once even when it is recommended again under a new id.
    """
    params = {k: _plain_number(v) for k, v in action.params.items() if k not in _DESCRIPTIVE_PARAMS}
    body = json.dumps([action.system, action.operation, params], sort_keys=True, default=str)
    return "alignbot-" + hashlib.sha256(body.encode()).hexdigest()[:32]


def _plain_number(value: Any) -> Any:
    """479 and 479.0 are one quantity: whole floats compare as integers in the key."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, list):
        return [_plain_number(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain_number(v) for k, v in value.items()}
    return value
