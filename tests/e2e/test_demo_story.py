"""The story `make demo` tells: each beat is a drift the detectors really raise, routed as its
note says, and the demo posts a handful of recommendations, each after the narrator's note.

`alignbot demo --keep DIR` leaves a folder `alignbot drift` and `alignbot digest` work on.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot.cli import app
from bot.config import load_config
from bot.demo import NARRATOR, DemoStack, keep_folder
from bot.routing import route
from connectors.registry import build_connector
from detectors.pipeline import detect
from detectors.snapshot import snapshot_from_records
from sandbox.systems import STORY, start_sandboxes

EXAMPLE = Path(__file__).resolve().parents[2] / "alignbot.example.yml"
# what each beat adds to the open recommendations: (kind, teams)
RAISES = {
    "demand_spike": ("demand_change", ("planning",)),
    "late_shipment": ("disruption", ("logistics",)),
    "capacity_cut": ("capacity_shift", ("logistics",)),
    "big_demand_move": ("demand_change", ("planning", "logistics")),
    "delay": ("disruption", ("logistics",)),
}


def _recommendations(urls: dict[str, str], now: datetime) -> list[tuple[str, tuple[str, ...]]]:
    """(kind, teams) of every recommendation detection makes on the sandboxes at ``now``,
    read, detected and routed as the demo's bot does with alignbot.example.yml."""
    config = load_config(EXAMPLE)
    records = []
    for conn in config.connectors:
        settings = {**conn.settings, "base_url": urls[conn.system]}
        records += build_connector(conn.name, conn.kind, settings, {}, timeout=10).read().records
    result = detect(snapshot_from_records(records), config.detectors, now)
    return sorted((str(r.kind), route(r, config).teams) for r in result.recommendations)


@pytest.mark.parametrize("now", [
    datetime(2026, 12, 7, 0, 0, tzinfo=UTC),     # Monday, the week's first hour
    datetime(2026, 12, 9, 12, 0, tzinfo=UTC),    # mid-week
    datetime(2026, 12, 11, 18, 0, tzinfo=UTC),   # Friday evening
    datetime(2026, 12, 13, 23, 0, tzinfo=UTC),   # the week's last hour
], ids=["monday", "wednesday", "friday", "sunday-night"])
def test_each_beat_raises_one_recommendation_routed_as_the_story_says(now):
    planning, tms = start_sandboxes(story_seconds=1000, now=now)
    world = planning.world
    try:
        urls = {"planning": planning.url, "logistics": tms.url}
        assert _recommendations(urls, now) == [], "plan and execution agree before the story"
        expected: list[tuple[str, tuple[str, ...]]] = []
        assert world.start_story()
        for at, kind in STORY:
            world._story_started = time.monotonic() - at * 1000  # the story's clock, moved on
            world.catch_up()
            if kind == "back_on_time":
                expected.remove(RAISES["delay"])  # the delay went away: nothing to decide
            else:
                expected.append(RAISES[kind])
            assert _recommendations(urls, now) == sorted(expected), kind
    finally:
        planning.stop()
        tms.stop()


def test_the_story_in_slack_notes_first_then_a_handful_of_recommendations(tmp_path):
    url = keep_folder(tmp_path / "kept")
    with DemoStack(fast=True, database_url=url, story_seconds=3.0) as demo:
        slack = demo.slack
        assert slack.intro is not None and not slack.intro["started"]
        time.sleep(4)  # the bot has polled and detected by now
        assert slack.messages("C0PLANNING") == slack.messages("C0LOGISTICS") == [], \
            "nothing to decide before the story starts"
        assert slack.press_start() and not slack.press_start()  # a second Start changes nothing

        def story_told() -> bool:
            notes = [m for ch in ("C0PLANNING", "C0LOGISTICS") for m in slack.messages(ch)
                     if m.user == NARRATOR["id"] and "That was the story" in m.text]
            return len(notes) == 2
        slack.wait_for(story_told, 90, "the narrator's closing note in both channels")
        slack.wait_for(lambda: any("Resolved on its own" in str(m.blocks)
                                   for m in slack.messages("C0LOGISTICS")), 60,
                       "the delay that sorted itself out")

        recommendations = [m for ch in ("C0PLANNING", "C0LOGISTICS")
                           for m in slack.messages(ch) if m.metadata]
        assert len(recommendations) == 5, [m.text[:80] for m in recommendations]
        for channel in ("C0PLANNING", "C0LOGISTICS"):
            messages = slack.messages(channel)
            notes = [i for i, m in enumerate(messages) if m.user == NARRATOR["id"]]
            bots = [i for i, m in enumerate(messages) if m.metadata]
            assert notes[0] == 0, "the story starts with a note"
            # every recommendation follows a note that came after the one before it
            for before, index in zip([-1, *bots], bots, strict=False):
                assert any(before < n < index for n in notes), messages[index].text
            assert all(not m.bot_id for m in messages if m.user == NARRATOR["id"])

    # the kept folder: the CLI reads the demo's history through its alignbot.yml
    config = tmp_path / "kept" / "alignbot.yml"
    drift = CliRunner().invoke(app, ["drift", "--config", str(config)])
    assert drift.exit_code == 0, drift.output
    assert "Open drift (" in drift.output, drift.output  # the story left drift open
    digest = CliRunner().invoke(app, ["digest", "--team", "logistics", "--dry-run",
                                      "--config", str(config), "--out",
                                      str(tmp_path / "chart.png")])
    assert digest.exit_code == 0, digest.output
    assert "drifts detected" in digest.output


def test_keep_refuses_a_folder_with_an_earlier_demo(tmp_path):
    keep_folder(tmp_path)
    (tmp_path / "alignbot.db").write_bytes(b"")
    result = CliRunner().invoke(app, ["demo", "--keep", str(tmp_path), "--for", "0"])
    assert result.exit_code == 1
    assert "earlier demo" in result.output
