"""Only the owning team decides: someone outside it (Sam from sales) is told so, privately, and
nothing is recorded — whichever button or menu he uses, and however often."""

from __future__ import annotations

import time

from tests.security.conftest import WAIT, open_recommendations, recorded_for

OUTSIDER = "U0SALES"


def test_outsider_clicks_are_refused_and_record_nothing(stack):
    targets = stack.slack.wait_for(lambda: open_recommendations(stack), timeout=WAIT)
    checked = []
    for message, rec in targets[:3]:
        before = recorded_for(stack, rec.id)
        seen = len(stack.slack.ephemeral_for(OUTSIDER))
        deliveries = [stack.slack.click(message, label, as_user=OUTSIDER)
                      for label in ("Approve", "Reject", "Modify")]
        deliveries.append(stack.slack.choose(message, "rec_snooze", "1w", as_user=OUTSIDER))
        first = deliveries[0]
        deliveries.append(stack.slack.retry(first, retry_num=1))  # Slack's retry of the click
        assert [d.status for d in deliveries] == [200] * 5
        refusals = stack.slack.wait_for(
            lambda s=seen: (new := stack.slack.ephemeral_for(OUTSIDER)[s:]) and len(new) >= 4
            and new, timeout=WAIT, message="Sam was not told why nothing happened")
        time.sleep(0.5)
        after = recorded_for(stack, rec.id)
        checked.append((rec.id, rec.teams, len(refusals)))
        assert all("Only members of" in m.text for m in refusals), [m.text for m in refusals]
        assert after == before, f"an outsider's click changed #{rec.id}: {before} -> {after}"
        assert stack.slack.modal(OUTSIDER) is None, "no Reject/Modify dialog opens for him"
        current = stack.slack.message(message.channel, message.ts)
        assert any(b.get("type") == "actions" for b in current.blocks), "still open for the team"
    print(f"\noutsider refused on {len(checked)} recommendations (id, teams, refusals shown): "
          f"{checked}; decisions recorded: 0")
