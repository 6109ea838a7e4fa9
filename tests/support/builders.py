"""Small builders for configs, drifts and recommendations, so tests state only what matters."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from bot.config import AlignbotConfig
from canonical.model import Action, Drift, Impact, Recommendation, fingerprint

NOW = datetime(2026, 11, 18, 9, 0, tzinfo=timezone.utc)

PLANNERS = ["U0PLAN1", "U0PLAN2"]
COORDINATORS = ["U0LOG1", "U0LOG2"]
OUTSIDER = "U0SALES"


def config(**overrides: Any) -> AlignbotConfig:
    raw: dict[str, Any] = {
        "teams": [
            {"name": "planning", "channel": "C0PLANNING", "members": PLANNERS,
             "timezone": "America/Chicago", "escalation": "U0HEADPLAN"},
            {"name": "logistics", "channel": "C0LOGISTICS", "usergroup_id": "S0LOGISTICS",
             "members": COORDINATORS, "timezone": "Europe/Berlin", "escalation": "S0LOGLEADS"},
        ],
        "routing": {
            "default_team": "planning",
            "regions": {"south": ["DC-DAL", "DC-ATL"]},
            "rules": [
                {"name": "big transfers need both", "match": {"kind": ["demand_change"],
                                                              "min_value": 50000},
                 "teams": ["planning", "logistics"],
                 "approvals": {"planning": 1, "logistics": 1}, "deadline": "2h"},
                {"name": "carrier issues", "match": {"kind": ["disruption", "capacity_shift"]},
                 "teams": ["logistics"], "deadline": "1h"},
            ],
        },
        "connectors": [
            {"name": "plan", "kind": "rest", "system": "planning",
             "settings": {"base_url": "http://127.0.0.1:1"}},
            {"name": "tms", "kind": "rest", "system": "logistics",
             "settings": {"base_url": "http://127.0.0.1:1"}},
        ],
    }
    raw.update(overrides)
    return AlignbotConfig.model_validate(raw)


def demand_drift(sku: str = "SKU-10042", location: str = "DC-DAL", planned: float = 1000,
                 latest: float = 1400, unit_value: float = 25.0) -> Drift:
    key = {"sku": sku, "location": location, "period": "2026-11-23"}
    short = latest - planned
    return Drift(
        kind="demand_change", fingerprint=fingerprint("demand_change", key), key=key,
        evidence={"planned_qty": planned, "latest_qty": latest},
        impact=Impact(units_short=short, value_at_risk=short * unit_value),
        severity="high" if short * unit_value >= 10000 else "medium", detected_at=NOW,
        cause={"location": location})


def recommendation_for(*drifts: Drift, qty: float | None = None,
                       value: float | None = None) -> Recommendation:
    first = drifts[0]
    units = qty if qty is not None else first.impact.units_short
    value_at_risk = value if value is not None else sum(d.impact.value_at_risk for d in drifts)
    return Recommendation(
        fingerprint=fingerprint("rec:" + first.kind, first.key), kind=first.kind,
        drift_fingerprints=[d.fingerprint for d in drifts],
        summary=f"Move {units:.0f} units of {first.key['sku']} to {first.key['location']}",
        actions=[
            Action(system="logistics", operation="create_transfer",
                   params={"sku": first.key["sku"], "from": "DC-ATL",
                           "to": first.key["location"], "qty": units}),
            Action(system="planning", operation="update_forecast",
                   params={"sku": first.key["sku"], "location": first.key["location"],
                           "period": first.key["period"], "qty": first.evidence["latest_qty"]}),
        ],
        impact_if_approved=Impact(), impact_if_ignored=Impact(
            units_short=units, value_at_risk=value_at_risk),
        severity=first.severity, cause=first.cause,
        affected=[{**d.key, "sku_class": "A"} for d in drifts])
