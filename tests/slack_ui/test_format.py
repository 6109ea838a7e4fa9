"""The small text rules every view relies on: numbers, team-local times, Slack-sized text."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from bot._format import (
    clip,
    clip_lines,
    duration,
    key_text,
    kind_label,
    local_time,
    money,
    num,
    plural,
    severity_word,
    span,
    units,
)
from tests.support.builders import config

CHICAGO = ZoneInfo("America/Chicago")


def test_numbers_as_a_planner_reads_them():
    assert num(75000.0) == "75,000"
    assert num(1250.5) == "1,250.5"
    assert num(0.333333) == "0.33"
    assert num(-800) == "-800"
    assert num("n/a") == "n/a"


def test_whole_units_where_units_are_whole_and_plurals_in_words():
    assert units(220.0) == "220 units" and units(12.5) == "12.5 units"
    assert units(1) == "1 unit" and units(1151) == "1,151 units"
    assert plural(1, "shipment") == "1 shipment" and plural(2, "shipment") == "2 shipments"
    assert span(7.3333) == "7.3 days" and span(1) == "1 day" and span(0.3333) == "8 hours"
    assert span(0.01) == "under an hour"


def test_money_with_its_symbol_and_no_decimals_from_one_hundred_up():
    assert money(5500) == "$5,500" and money(7.8125) == "$7.81" and money(40) == "$40"
    assert money(224.17) == "$224" and money(99.5) == "$99.50" and money(0) == "$0"
    assert money(1_234_567.4, "EUR") == "€1,234,567" and money(7.5, "GBP") == "£7.50"
    assert money(7.81, "JPY") == "¥8"  # no minor unit
    assert money(-40) == "-$40" and money(float("nan")) == "$0" and money(None) == "$0"
    assert money(12, "CHF") == "CHF 12"


def test_the_currency_is_configured_once_and_checked():
    assert config().currency == "USD"
    assert config(currency=" gbp ").currency == "GBP"
    with pytest.raises(ValidationError, match=r"unknown currency 'XYZ': use one of .*EUR.*USD"):
        config(currency="XYZ")


def test_kinds_and_severities_in_words():
    assert [kind_label(k) for k in ("stockout_risk", "demand_change", "disruption",
                                    "capacity_shift", "new_kind")] == [
        "Stock-out risk", "Demand change", "Late shipment", "Capacity change", "New kind"]
    assert severity_word("critical") == "Critical" and severity_word("") == "Unrated"


def test_times_in_the_team_zone_with_daylight_saving():
    winter = datetime(2026, 11, 18, 16, 42, tzinfo=UTC)
    summer = datetime(2026, 7, 1, 15, 42, tzinfo=UTC)
    assert local_time(winter, CHICAGO, winter) == "10:42 CST"
    assert local_time(winter, CHICAGO) == "Wed 18 Nov 10:42 CST"
    assert local_time(winter, CHICAGO, winter + timedelta(days=1)) == "Wed 18 Nov 10:42 CST"
    assert local_time(summer, CHICAGO, summer) == "10:42 CDT"
    assert local_time(winter, CHICAGO, datetime(2027, 1, 2, tzinfo=UTC)) == \
        "Wed 18 Nov 2026 10:42 CST"
    # 04:00 UTC is still the evening before in Chicago
    assert local_time(datetime(2026, 11, 18, 4, 0, tzinfo=UTC), CHICAGO) == "Tue 17 Nov 22:00 CST"
    # a zone whose abbreviation is only an offset says so
    assert local_time(winter, ZoneInfo("America/Sao_Paulo"), winter) == "13:42 UTC-03"


def test_durations():
    assert duration(timedelta(minutes=45)) == "45 min"
    assert duration(timedelta(hours=1, minutes=15)) == "1 h 15 min"
    assert duration(timedelta(hours=2)) == "2 h"
    assert duration(timedelta(days=3, hours=4, minutes=5)) == "3 d 4 h"


def test_clipping_says_how_much_was_left_out():
    assert clip("abcdef", 4) == "abc…"
    assert clip("abc", 4) == "abc"
    lines = [f"line {i:03d}" for i in range(1000)]
    text = clip_lines(lines, 3000, head="*Head*")
    assert len(text) <= 3000
    shown = text.count("\nline ")
    assert text.startswith("*Head*\nline 000\n")
    assert text.endswith(f"\n_+{1000 - shown} more_")
    assert clip_lines(["a", "b"], 100) == "a\nb"


def test_keys_in_a_stable_order_whatever_the_backend_kept():
    assert key_text({"period": "2026-11-23", "location": "DC-DAL", "sku": "SKU-1"}) == \
        "SKU-1 · DC-DAL · 2026-11-23"
