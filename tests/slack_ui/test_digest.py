"""The weekly digest: numbers checked by hand against a store built through the engine."""

from __future__ import annotations

import struct
import textwrap
from datetime import timedelta

from typer.testing import CliRunner

from bot.cli import app
from bot.decisions import decide
from bot.digest import build_digest
from bot.lifecycle import apply_detection
from bot.sweeps import sweep
from canonical.model import Impact
from store.db import make_engine, session_scope
from store.transitions import transition
from tests.slack_ui._store import assert_within_slack_limits, detect, texts
from tests.support.builders import NOW, PLANNERS, config, demand_drift, recommendation_for

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
T0 = NOW - timedelta(days=3)  # Sun 15 Nov 09:00 UTC = 03:00 CST


def _week(engine):
    """Three decided recommendations, two still open, one from before the team's week."""
    cfg = config()
    ex_drift, rej_drift, exp_drift = (demand_drift(sku=f"SKU-{n}") for n in (1, 2, 3))
    with session_scope(engine) as s:
        executed = detect(s, ex_drift, recommendation_for(ex_drift).model_copy(
            update={"impact_if_approved": Impact(value_at_risk=1500)}), T0)
        rejected = detect(s, rej_drift, recommendation_for(rej_drift), T0)
        expired = detect(s, exp_drift, recommendation_for(exp_drift), T0)
        # executed: approved 30 min after it was posted, done 10 min later
        decide(s, executed, PLANNERS[0], {"planning"}, "approve", now=T0 + timedelta(minutes=30))
        transition(s, executed, from_states=["approved"], to_state="executing", actor="t",
                   now=T0 + timedelta(minutes=31))
        transition(s, executed, from_states=["executing"], to_state="executed", actor="t",
                   now=T0 + timedelta(minutes=40))
        # rejected after 2 h
        decide(s, rejected, PLANNERS[1], {"planning"}, "reject", now=T0 + timedelta(hours=2),
               reason="promo cancelled")
        # expired: nobody decided within its 4 h
        assert sweep(s, cfg, T0 + timedelta(hours=5)).expired == [expired]
        # the executed one's drift went away the next day
        apply_detection(s, [], [], cfg, T0 + timedelta(days=1), scope={ex_drift.fingerprint})

        # still open, the biggest first in the digest
        big, mid = demand_drift(sku="SKU-BIG", latest=4000), demand_drift(sku="SKU-MID",
                                                                          latest=1800)
        big_id = detect(s, big, recommendation_for(big), NOW - timedelta(hours=5))
        mid_id = detect(s, mid, recommendation_for(mid), NOW - timedelta(hours=5))
        # 11 Nov 22:00 in Chicago: inside the last 7×24 h but before the team's week began
        early = demand_drift(sku="SKU-EARLY")
        early_id = detect(s, early, recommendation_for(early), NOW - timedelta(days=6, hours=11))
        decide(s, early_id, PLANNERS[0], {"planning"}, "reject",
               now=NOW - timedelta(days=6, hours=11), reason="before the week")
    return {"executed": executed, "rejected": rejected, "expired": expired, "big": big_id,
            "mid": mid_id}


def test_digest_numbers_by_hand(db_url):
    engine = make_engine(db_url)
    ids = _week(engine)
    with session_scope(engine) as s:
        digest = build_digest(s, "planning", config(), NOW)
    st = digest.stats
    assert digest.team == "planning" and digest.channel == "C0PLANNING"
    assert st["days"][0] == "2026-11-12" and st["days"][-1] == "2026-11-18"  # Chicago days
    assert st["drifts_detected"] == 5  # SKU-1..3, BIG, MID; not SKU-EARLY
    assert st["drifts_closed"] == 1
    assert (st["approved"], st["rejected"], st["expired"], st["executed"]) == (1, 1, 1, 1)
    # people's decisions only: 30 min and 2 h → median 1 h 15 min (the expiry is no decision)
    assert st["median_time_to_decision_s"] == 75 * 60
    # 10,000 at risk if ignored − 1,500 left if approved
    assert st["value_protected"] == 8500
    assert [t["recommendation_id"] for t in st["top_open"]] == [ids["big"], ids["mid"]]
    assert [t["value_at_risk"] for t in st["top_open"]] == [75000, 20000]
    # opened per day in Chicago time: three on Sun 15 Nov, two on Wed 18 Nov (04:00 UTC = 22:00
    # CST on Tue 17 Nov!)
    assert st["opened_per_day"]["demand_change"] == [0, 0, 0, 3, 0, 2, 0]
    assert st["closed_per_day"]["demand_change"] == [0, 0, 0, 0, 1, 0, 0]

    assert digest.text == (
        "alignbot weekly digest for planning, Thu 12 Nov – Wed 18 Nov 2026 (America/Chicago): "
        "5 drifts detected, 1 approved, 1 rejected, 1 expired, 1 executed; median time to "
        "decision 1 h 15 min; value protected $8,500.")
    assert_within_slack_limits(digest.blocks)
    shown = texts(digest.blocks)
    assert "*Median time to decision*\n1 h 15 min" in shown
    assert "*Value protected*\n$8,500" in shown
    assert (f":red_circle: $75,000 at risk — Demand change SKU-BIG · DC-DAL · 2026-11-23 (#{ids['big']})"
            in shown)


def test_chart_is_a_real_png_of_readable_size(db_url):
    engine = make_engine(db_url)
    _week(engine)
    with session_scope(engine) as s:
        png = build_digest(s, "planning", config(), NOW).chart_png
    assert png.startswith(PNG_MAGIC)
    assert len(png) > 10_000
    width, height = struct.unpack(">II", png[16:24])  # IHDR
    assert (width, height) == (990, 495)


def test_empty_week_still_renders(db_url):
    with session_scope(make_engine(db_url)) as s:
        digest = build_digest(s, "logistics", config(), NOW)
    assert digest.stats["drifts_detected"] == 0
    assert digest.stats["median_time_to_decision_s"] is None
    assert "median time to decision no decisions yet" in digest.text
    assert ":white_check_mark: No open drift for this team right now." in texts(digest.blocks)
    assert digest.chart_png.startswith(PNG_MAGIC)


CONFIG_YAML = textwrap.dedent("""
    teams:
      - name: planning
        channel: C0PLANNING
        members: [U0PLAN1, U0PLAN2]
        timezone: America/Chicago
    routing:
      default_team: planning
""")


def test_digest_command_prints_and_writes_the_chart(db_url, tmp_path):
    engine = make_engine(db_url)
    _week(engine)
    path = tmp_path / "alignbot.yml"
    path.write_text(CONFIG_YAML)
    out = tmp_path / "chart.png"
    result = CliRunner().invoke(app, ["digest", "--team", "planning", "--dry-run",
                                      "--config", str(path), "--database-url", db_url,
                                      "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "alignbot weekly digest for planning" in result.output
    assert "value protected" in result.output
    assert f"chart written to {out}" in result.output.replace("\n", "")
    assert out.read_bytes().startswith(PNG_MAGIC)

    bad = CliRunner().invoke(app, ["digest", "--team", "sales", "--config", str(path),
                                   "--database-url", db_url])
    assert bad.exit_code == 2
    assert "no team 'sales'" in bad.output
