"""The small text rules every view relies on: numbers, team-local times, Slack-sized text."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from bot._format import clip, clip_lines, duration, key_text, local_time, num

CHICAGO = ZoneInfo("America/Chicago")


def test_numbers_as_a_planner_reads_them():
    assert num(75000.0) == "75,000"
    assert num(1250.5) == "1,250.5"
    assert num(0.333333) == "0.33"
    assert num(-800) == "-800"
    assert num("n/a") == "n/a"


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
