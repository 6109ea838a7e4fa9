"""Only the owning team decides: someone outside it (Sam from sales) is told so, privately, and
nothing is recorded — whichever button or menu he uses, and however often.

Through the in-process harness: once ``step()`` has handled his clicks, nothing is still on its
way, so "nothing recorded" needs no waiting."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.security.conftest import open_recommendations, recorded_for
from tests.support.harness import BotHarness

OUTSIDER = "U0SALES"


@pytest.fixture
def bot() -> Iterator[BotHarness]:
    with BotHarness() as harness:
        harness.scenario_step()  # a demand spike, delayed shipments and a carrier capacity cut
        harness.poll_and_detect()
        harness.step()
        yield harness


def test_outsider_clicks_are_refused_and_record_nothing(bot):
    targets = open_recommendations(bot)
    picked = [next(t for t in targets if t[1].teams[0] == team)
              for team in ("planning", "logistics")]  # one of each team's
    bot.pop_posts()
    checked = []
    for message, rec in picked:
        before = recorded_for(bot, rec.id)
        seen = len(bot.ephemerals(OUTSIDER))
        deliveries = [bot.push_click(message, label, as_user=OUTSIDER)
                      for label in ("Approve", "Reject", "Modify")]
        deliveries.append(bot.push_choice(message, "rec_snooze", "1w", as_user=OUTSIDER))
        deliveries.append(bot.slack.retry(deliveries[0], retry_num=1))  # Slack's retry
        assert [d.status for d in deliveries] == [200] * 5
        assert bot.step().handled == 4  # the retry is the same delivery: stored once

        refusals = bot.ephemerals(OUTSIDER)[seen:]
        checked.append((rec.id, rec.teams, len(refusals)))
        assert len(refusals) == 4, "Sam is told once per click, not once per delivery"
        named = "Only members of " + " or ".join(rec.teams)
        assert all(named in m.text for m in refusals), [m.text for m in refusals]
        after = recorded_for(bot, rec.id)
        assert after == before, f"an outsider's click changed #{rec.id}: {before} -> {after}"
        assert bot.modal(OUTSIDER) is None, "no Reject/Modify dialog opens for him"
        assert bot.pop_posts() == [], "the message stays as it was, still open for the team"
    print(f"\noutsider refused on {len(checked)} recommendations (id, teams, refusals shown): "
          f"{checked}; decisions recorded: 0")
