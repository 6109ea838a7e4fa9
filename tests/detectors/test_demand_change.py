"""Demand change: thresholds a planner sets, overrides, horizon, hysteresis."""

from datetime import timedelta

from conftest import NOW, WEEK, table

from detectors.demand_change import detect_demand_change
from detectors.settings import DetectorSettings


def demand(*rows):
    return table("demand", [
        {"sku": s, "location": loc, "period": p, "planned_qty": plan, "latest_qty": latest,
         "unit_value": uv, "sku_class": cls}
        for s, loc, p, plan, latest, uv, cls in rows
    ])


def test_change_over_both_thresholds_is_a_drift_with_value_at_risk():
    # +60 units on 100 planned = +60 %: over 20 % and over 50 units; 60 × 12.50 = 750 at risk
    out = detect_demand_change(
        demand(("A", "DC1", WEEK, 100, 160, 12.5, "default"),
               ("B", "DC1", WEEK, 1000, 1040, 1.0, "default"),   # 4 %: too small relatively
               ("C", "DC1", WEEK, 100, 140, 1.0, "default")),    # 40 %, but only 40 units
        DetectorSettings(), NOW,
    )
    assert out.get_column("sku").to_list() == ["A"]
    row = out.row(0, named=True)
    assert row["delta"] == 60 and row["change_pct"] == 60
    assert row["units_short"] == 60 and row["units_excess"] == 0
    assert row["value_at_risk"] == 750
    assert row["direction"] == "up"


def test_drop_is_excess_not_shortage():
    out = detect_demand_change(demand(("A", "DC1", WEEK, 500, 300, 2.0, "default")), DetectorSettings(), NOW)
    row = out.row(0, named=True)
    assert (row["direction"], row["units_short"], row["units_excess"], row["value_at_risk"]) == ("down", 0, 200, 400)


def test_location_override_beats_sku_class_beats_default():
    settings = DetectorSettings.model_validate({"demand": {
        "by_sku_class": {"A": {"relative_pct": 5, "absolute_units": 5}},
        "by_location": {"STORE9": {"relative_pct": 50}},
    }})
    rows = demand(
        ("X", "DC1", WEEK, 100, 110, 1, "A"),      # class A: 10 % ≥ 5 %, 10 ≥ 5 → drift
        ("Y", "DC1", WEEK, 100, 110, 1, "B"),      # default: 10 % < 20 % → none
        ("Z", "STORE9", WEEK, 100, 140, 1, "A"),   # STORE9: 40 % < 50 % (class A would say drift)
        ("W", "STORE9", WEEK, 100, 160, 1, "A"),   # 60 % ≥ 50 %, 60 ≥ 5 (units from class A)
    )
    out = detect_demand_change(rows, settings, NOW)
    assert sorted(out.get_column("sku").to_list()) == ["W", "X"]


def test_only_periods_in_the_planning_horizon_count():
    settings = DetectorSettings(planning_horizon_days=14)
    rows = demand(
        ("A", "DC1", WEEK - timedelta(days=7), 100, 300, 1, "default"),   # bucket already over
        ("A", "DC1", WEEK, 100, 300, 1, "default"),                       # current bucket
        ("A", "DC1", WEEK + timedelta(days=14), 100, 300, 1, "default"),  # Dec 7 < Nov 26 + 14 d
        ("A", "DC1", WEEK + timedelta(days=21), 100, 300, 1, "default"),  # Dec 14: beyond
    )
    out = detect_demand_change(rows, settings, NOW)
    assert [str(p) for p in out.get_column("period").to_list()] == ["2026-11-23", "2026-12-07"]


def test_hysteresis_keeps_an_open_drift_until_below_the_closing_threshold():
    settings = DetectorSettings(hysteresis_band=0.2)  # default 20 % opens, closes below 16 %
    opened = detect_demand_change(demand(("A", "DC1", WEEK, 1000, 1200, 1, "default")), settings, NOW)
    fp = opened.get_column("fingerprint").item()

    at_17 = demand(("A", "DC1", WEEK, 1000, 1170, 1, "default"))
    assert detect_demand_change(at_17, settings, NOW).is_empty()  # not open before: stays quiet
    still = detect_demand_change(at_17, settings, NOW, frozenset({fp}))
    assert still.get_column("fingerprint").to_list() == [fp]  # open: stays open at 17 %

    at_15 = demand(("A", "DC1", WEEK, 1000, 1150, 1, "default"))
    assert detect_demand_change(at_15, settings, NOW, frozenset({fp})).is_empty()  # closes


def test_new_demand_on_unplanned_sku_is_infinite_change():
    out = detect_demand_change(demand(("N", "DC1", WEEK, 0, 80, 1, "default")), DetectorSettings(), NOW)
    assert out.row(0, named=True)["units_short"] == 80
