"""Options evaluated, not described: each way to answer a drift is run on the projection.

A ``Plan`` is a set of actions and what they physically change (receipts added, moved or taken
away at positions of the projection) with what the actions cost. ``evaluate`` runs every plan
on the projection at once and prices it: action cost + the shortage penalty (a share of the
unit value for every unit and day left below safety stock, at every position the plan touches).
The recommended plan is the cheapest that acts; "do nothing" is priced the same way, so a
planner can see what acting buys.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from canonical.model import Action, Impact, Option, trusted
from detectors.projection import Figures, Projection, Receipts
from detectors.settings import DetectorSettings

Change = tuple[int, float, float, str]  # position, days from now, units (negative: leaving), reference


@dataclass
class Plan:
    name: str
    summary: str
    actions: list[Action] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)
    action_cost: float = 0.0
    acts: bool = True  # False only for "do nothing"
    excess: float = 0.0  # units it leaves beyond what demand needs (demand down)
    excess_unit_value: float = 0.0

    def __add__(self, other: Plan) -> Plan:
        return Plan(f"{self.name} + {other.name}", f"{self.summary}; {other.summary}",
                    self.actions + other.actions, self.changes + other.changes,
                    self.action_cost + other.action_cost, self.acts or other.acts)


@dataclass
class Evaluated:
    plan: Plan
    figures: _Impacts | Impact  # what is left at the positions of interest (read through ``impact``)
    shortage_cost: float
    holding_cost: float = 0.0
    index: int = 0

    @property
    def total(self) -> float:
        return self.plan.action_cost + self.shortage_cost + self.holding_cost

    @cached_property
    def impact(self) -> Impact:
        """What the plan leaves at its positions of interest (excess stock included)."""
        if isinstance(self.figures, Impact):
            return self.figures
        return self.figures.impact(self.index, self.plan.excess, self.plan.excess_unit_value)


def nothing(summary: str = "no change in either system") -> Plan:
    return Plan("Do nothing", summary, acts=False)


def evaluate(plans: list[Plan], interest: list[list[int]], projection: Projection,
             settings: DetectorSettings, relative: list[bool] | None = None) -> list[Evaluated]:
    """Each plan on the projection (all in one run): what it leaves at its positions of interest,
    and the shortage penalty at every position it touches. ``relative[i]``: plan i's figures are
    what it adds to the projection as it is (a capacity cut's slipped load), not the projection."""
    relative = relative or [False] * len(plans)
    variant_pos: list[int] = []
    starts: list[int] = []
    in_interest: list[bool] = []
    change_pos: list[int] = []
    change_t: list[float] = []
    change_qty: list[float] = []
    for plan, watched in zip(plans, interest, strict=True):
        touched = list(dict.fromkeys([*watched, *(c[0] for c in plan.changes)]))
        first = len(variant_pos)
        starts.append(first)
        where = {p: first + k for k, p in enumerate(touched)}
        variant_pos += touched
        watched_set = set(watched)
        in_interest += [p in watched_set for p in touched]
        change_pos += [where[c[0]] for c in plan.changes]
        change_t += [c[1] for c in plan.changes]
        change_qty += [c[2] for c in plan.changes]
    if not variant_pos:
        return [Evaluated(p, Impact(), 0.0) for p in plans]
    positions = np.asarray(variant_pos, np.int64)
    bounds = np.append(starts, len(variant_pos))
    plan_of = np.repeat(np.arange(len(plans)), np.diff(bounds))
    changes = Receipts(np.asarray(change_pos, np.int64), np.asarray(change_t, float), np.asarray(change_qty, float),
                       np.zeros(len(change_pos), dtype=object))
    figures = projection.what_if(positions, changes)
    if any(relative):
        figures = _minus_base(figures, projection.figures, positions, np.asarray(relative)[plan_of])
    rate = settings.recommend.shortage_cost_per_unit_day
    penalty = rate * projection.unit_value[positions] * figures.shortage_unit_days
    cost = np.bincount(plan_of, penalty, minlength=len(plans))
    impacts = _Impacts(figures, np.asarray(in_interest), plan_of, bounds, projection.unit_value[positions])
    holding = settings.recommend.holding_cost_per_unit_day * projection.horizon
    return [Evaluated(plan, impacts, round(float(cost[i]), 2), round(holding * plan.excess * plan.excess_unit_value, 2),
                      index=i)
            for i, plan in enumerate(plans)]


class _Impacts:
    """Per plan, over its watched rows: units and value summed, the longest time below a line.
    Kept as arrays; an ``Impact`` is made only for the plans a recommendation shows."""

    def __init__(self, figures: Figures, watched: np.ndarray, plan_of: np.ndarray, bounds: np.ndarray,
                 unit_value: np.ndarray) -> None:
        n = len(bounds) - 1

        def total(values: np.ndarray) -> np.ndarray:
            return np.bincount(plan_of, values * watched, minlength=n)

        def longest(values: np.ndarray) -> np.ndarray:
            peak = np.maximum.reduceat(values * watched, np.minimum(bounds[:-1], len(values) - 1))
            return np.where(np.diff(bounds) > 0, peak, 0.0)

        self.short, self.unserved = total(figures.below_safety), total(figures.unserved)
        self.value, self.unit_days = total(figures.below_safety * unit_value), total(figures.shortage_unit_days)
        self.days, self.out = longest(figures.days_below_safety), longest(figures.days_out_of_stock)

    def impact(self, i: int, excess: float = 0.0, excess_value: float = 0.0) -> Impact:
        return trusted(Impact, {
            "units_short": round(float(self.short[i]), 4), "units_unserved": round(float(self.unserved[i]), 4),
            "units_excess": round(excess, 4), "value_at_risk": round(float(self.value[i]) + excess * excess_value, 2),
            "service_days_at_risk": round(float(self.days[i]), 4), "days_out_of_stock": round(float(self.out[i]), 4),
            "shortage_unit_days": round(float(self.unit_days[i]), 4), "orders_at_risk": 0,
        })


def _minus_base(figures: Figures, base: Figures, positions: np.ndarray, rows: np.ndarray) -> Figures:
    """``figures`` with the projection as it is subtracted in ``rows`` (what a plan adds there)."""
    def less(name: str) -> np.ndarray:
        mine, was = getattr(figures, name), getattr(base, name)[positions]
        return np.where(rows, np.maximum(mine - was, 0.0), mine)

    return Figures(figures.min_level, figures.end_level, less("below_safety"), less("unserved"),
                   less("days_below_safety"), less("days_out_of_stock"), less("shortage_unit_days"),
                   figures.first_below_safety, figures.last_below_safety)


def as_option(e: Evaluated, recommended: bool, why_not: str = "") -> Option:
    return trusted(Option, {
        "name": e.plan.name, "summary": e.plan.summary, "action_cost": round(e.plan.action_cost, 2),
        "shortage_cost": e.shortage_cost, "holding_cost": e.holding_cost, "total_cost": round(e.total, 2),
        "impact": e.impact,
        "recommended": recommended, "why_not": why_not,
    })


def why_lost(loser: Evaluated, winner: Evaluated) -> str:
    """In a planner's words: what the option costs more, or what it leaves that the winner does not."""
    extra = loser.total - winner.total
    left, won = loser.impact, winner.impact
    reasons = []
    if left.units_short > won.units_short + 0.5:
        reasons.append(f"leaves {left.units_short:,.0f} units below safety stock "
                       f"({left.service_days_at_risk:.1f} days) against {won.units_short:,.0f}")
    if left.units_excess > won.units_excess + 0.5:
        reasons.append(f"leaves {left.units_excess:,.0f} units of excess stock against {won.units_excess:,.0f}")
    if loser.plan.action_cost > winner.plan.action_cost + 0.005:
        reasons.append(f"its actions cost {loser.plan.action_cost:,.2f} against {winner.plan.action_cost:,.2f}")
    if not reasons and not loser.plan.acts:
        return f"the same figures, but {loser.plan.summary}"
    if not reasons:
        reasons.append("the same outcome")
    return f"{extra:,.2f} more in all — " + "; ".join(reasons)
