"""Impact arithmetic: units short/excess, value at risk (= units × unit value), service days, severity."""

from __future__ import annotations

from collections.abc import Iterable

from detectors._common import severity_of
from detectors.model import Drift, Impact, Severity, trusted
from detectors.settings import SeveritySettings

__all__ = ["residual", "severity_of", "total", "worst"]


def total(impacts: Iterable[Impact]) -> Impact:
    """Sum units and value; service days are the worst single exposure, not a sum."""
    short = excess = value = days = 0.0
    orders = 0
    for i in impacts:
        short += i.units_short
        excess += i.units_excess
        value += i.value_at_risk
        days = max(days, i.service_days_at_risk)
        orders += i.orders_at_risk
    return _rounded(short, excess, value, days, orders)


def residual(ignored: Impact, short_covered: float = 0.0, excess_covered: float = 0.0) -> Impact:
    """What is left once actions cover some units: value and service days shrink pro rata."""
    short_left = max(0.0, ignored.units_short - short_covered)
    excess_left = max(0.0, ignored.units_excess - excess_covered)
    at_risk = ignored.units_short + ignored.units_excess
    left = short_left + excess_left
    share = left / at_risk if at_risk > 0 else 0.0
    short_share = short_left / ignored.units_short if ignored.units_short > 0 else 0.0
    return _rounded(short_left, excess_left, ignored.value_at_risk * share,
                    ignored.service_days_at_risk * short_share, ignored.orders_at_risk)


def worst(drifts: Iterable[Drift], impact: Impact, settings: SeveritySettings) -> Severity:
    """A recommendation is as severe as its worst drift or its combined exposure."""
    ranks = [d.severity for d in drifts] + [severity_of(impact, settings)]
    return max(ranks, key=_RANK.__getitem__)


_RANK = {s: s.rank for s in Severity}


def _rounded(short: float, excess: float, value: float, days: float, orders: int) -> Impact:
    """One validated Impact of rounded figures (~2 000 per pass, so not two each)."""
    return trusted(Impact, {
        "units_short": round(float(short), 4),
        "units_excess": round(float(excess), 4),
        "value_at_risk": round(float(value), 2),
        "service_days_at_risk": round(float(days), 4),
        "orders_at_risk": int(orders),
    })
