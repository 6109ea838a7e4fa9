"""Detector thresholds: the ``detectors:`` section of the engine's configuration.

Every field has a default a planner would accept on day one, so an empty section works.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from canonical.limits import InputLimits


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DemandThresholds(_Section):
    """A demand change is a drift when it is large both relatively and in units."""

    relative_pct: float = Field(
        20.0, ge=0, description="Minimum |latest − planned| / planned, in percent, to open a drift."
    )
    absolute_units: float = Field(
        50.0, ge=0, description="Minimum |latest − planned| in units, so tiny SKUs don't page anyone."
    )


class DemandOverride(_Section):
    """Partial override; a field left empty falls back to the next level."""

    relative_pct: float | None = Field(None, ge=0, description="Override of relative_pct.")
    absolute_units: float | None = Field(None, ge=0, description="Override of absolute_units.")


class DemandSettings(_Section):
    default: DemandThresholds = Field(
        default_factory=DemandThresholds, description="Thresholds used when no override matches."
    )
    by_sku_class: dict[str, DemandOverride] = Field(
        default_factory=dict, description="Overrides by SKU class (e.g. A/B/C, perishable)."
    )
    by_location: dict[str, DemandOverride] = Field(
        default_factory=dict,
        description="Per-team overrides keyed by location; they win over SKU-class overrides.",
    )


class DisruptionSettings(_Section):
    eta_tolerance_hours: float = Field(
        12.0, ge=0, description="ETA may slip this many hours past planned arrival before it is a drift."
    )
    stale_report_hours: float = Field(
        24.0, gt=0, description="An in-transit shipment silent this long is a drift (stopped reporting)."
    )
    exception_statuses: list[str] = Field(
        default_factory=lambda: ["delayed", "exception"],
        description="Statuses that are a disruption by themselves.",
    )
    done_statuses: list[str] = Field(
        default_factory=lambda: ["delivered", "arrived", "cancelled"],
        description="Statuses of shipments that can no longer be disrupted.",
    )
    in_transit_statuses: list[str] = Field(
        default_factory=lambda: ["in_transit", "departed", "delayed", "exception"],
        description="Statuses that are expected to report events (for staleness).",
    )


class CapacitySettings(_Section):
    utilisation_threshold: float = Field(
        1.0, gt=0, description="Planned load / available capacity above this is a capacity cut."
    )
    well_above_utilisation: float = Field(
        0.5, ge=0, description="Utilisation below this, with capacity grown vs plan, is spare capacity."
    )
    default_unit_value: float = Field(
        0.0, ge=0, description="Value per capacity unit when the load's SKUs have no unit value."
    )


class StockoutSettings(_Section):
    horizon_days: float = Field(14.0, gt=0, description="How far ahead inventory is projected.")
    min_units_short: float = Field(
        1.0, ge=0, description="Ignore projected shortfalls against safety stock below this many units."
    )


class SeveritySettings(_Section):
    """Severity is the higher of the value band and the service-days band."""

    value_medium: float = Field(1_000.0, ge=0, description="Value at risk from which severity is medium.")
    value_high: float = Field(10_000.0, ge=0, description="Value at risk from which severity is high.")
    value_critical: float = Field(
        100_000.0, ge=0, description="Value at risk from which severity is critical."
    )
    service_days_medium: float = Field(0.5, ge=0, description="Service days at risk → medium.")
    service_days_high: float = Field(2.0, ge=0, description="Service days at risk → high.")
    service_days_critical: float = Field(5.0, ge=0, description="Service days at risk → critical.")
    service_days_min_units: float = Field(
        1.0, ge=0, description="Units below safety stock from which the days below it count toward severity "
                               "(a fraction of a unit for days is not a service problem).")

    @model_validator(mode="after")
    def _ordered(self) -> SeveritySettings:
        if not (self.value_medium <= self.value_high <= self.value_critical):
            raise ValueError("severity value bands must satisfy medium <= high <= critical")
        if not (self.service_days_medium <= self.service_days_high <= self.service_days_critical):
            raise ValueError("severity service-day bands must satisfy medium <= high <= critical")
        return self


def _default_group_by() -> dict[str, list[str]]:
    return {
        "demand_change": ["sku", "location", "direction"],
        "disruption": ["carrier", "origin", "day"],
        "capacity_shift": ["resource_type", "resource", "direction"],  # resource = carrier id for carriers
        "stockout_risk": ["location"],  # one message per site, listing its SKUs at risk
    }


class ExpediteMode(_Section):
    cost_per_unit: float = Field(2.0, ge=0, description="Premium per unit expedited.")
    days_faster: float = Field(1.0, gt=0, description="How much sooner an expedited shipment arrives.")


class RecommendSettings(_Section):
    max_sources_per_need: int = Field(
        5, ge=1, description="Candidate source locations per shortfall given to the transfer solver."
    )
    mip_max_variables: int = Field(
        5_000, ge=0, description="Solve in whole units up to this many variables (the LP "
        "relaxation first, kept when integral, else the MIP); above it, LP + floor."
    )
    unmet_penalty_per_unit: float = Field(
        1_000.0, gt=0, description="Solver cost of leaving one unit unmoved; must exceed any lane cost."
    )
    shortage_cost_per_unit_day: float = Field(
        0.1, ge=0, description="The shortage penalty options are costed with: this share of a unit's "
        "value for every unit and day it is projected below safety stock."
    )
    holding_cost_per_unit_day: float = Field(
        0.001, ge=0, description="What carrying a unit nobody needs costs, as a share of its value per day "
        "(0.001 ≈ 36 % a year): the price of excess stock when demand falls."
    )
    expedite: dict[str, ExpediteMode] = Field(
        default_factory=lambda: {"default": ExpediteMode()},
        description="Cost and speed of expediting, by transport mode; 'default' for the others.",
    )
    resource_lead_time_days: float = Field(
        7.0, ge=0, description="Days an extra replenishment from the SKU's source takes to arrive."
    )
    resource_cost_per_unit: float = Field(
        1.0, ge=0, description="Extra cost per unit of an unplanned replenishment (rush order, set-up)."
    )

    def expedite_mode(self, mode: str) -> ExpediteMode:
        return self.expedite.get(mode) or self.expedite.get("default") or ExpediteMode()


class DetectorSettings(_Section):
    """All detector thresholds. Embedded as ``detectors:`` in the engine configuration."""

    @model_validator(mode="after")
    def _known_zones(self) -> DetectorSettings:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        for where, zone in [("default_timezone", self.default_timezone),
                            *((f"timezones.{loc}", z) for loc, z in self.timezones.items())]:
            try:
                ZoneInfo(zone)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"{where}: unknown time zone {zone!r} (use an IANA name like "
                                 "America/Chicago)") from None
        return self

    planning_horizon_days: int = Field(
        56, gt=0, description="Only periods starting within this many days from now are checked."
    )
    period_days: int = Field(7, gt=0, description="Length of one plan period (bucket) in days.")
    hysteresis_band: float = Field(
        0.2, ge=0, lt=1,
        description="An open drift closes only below threshold × (1 − band), so it does not flap.",
    )
    demand: DemandSettings = Field(default_factory=DemandSettings, description="Demand change.")
    disruption: DisruptionSettings = Field(
        default_factory=DisruptionSettings, description="Shipment disruption."
    )
    capacity: CapacitySettings = Field(default_factory=CapacitySettings, description="Capacity shift.")
    stockout: StockoutSettings = Field(default_factory=StockoutSettings, description="Stockout risk.")
    severity: SeveritySettings = Field(default_factory=SeveritySettings, description="Severity bands.")
    group_by: dict[str, list[str]] = Field(
        default_factory=_default_group_by,
        description="Drifts of a kind sharing these cause fields become one recommendation.",
    )
    recommend: RecommendSettings = Field(
        default_factory=RecommendSettings, description="Transfer and reassignment solver settings."
    )
    default_timezone: str = Field("UTC", description="Time zone of locations not in 'timezones'.")
    timezones: dict[str, str] = Field(
        default_factory=dict, description="Location → IANA time zone: a shipment's day (for grouping) "
        "is the day it leaves in its origin's time zone."
    )
    limits: InputLimits = Field(
        default_factory=InputLimits, description="Values beyond these are quarantined as data errors."
    )
