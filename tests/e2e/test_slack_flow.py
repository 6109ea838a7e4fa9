"""The bot through the Slack stand-in over real HTTP, as people in a workspace use it.

Each test reads like a transcript: a drift shows up in the owning team's channel, someone
clicks, and the message, the thread and the sandbox systems show what happened.
"""

from __future__ import annotations

import time

import httpx
from sqlmodel import func, select

from sandbox.slack import Message
from store.db import session_scope
from store.tables import ActionRow, DecisionRow, RecommendationRow, SlackInboxRow

PLANNER, COORDINATOR, OUTSIDER = "U0PLAN1", "U0LOG1", "U0SALES"
WAIT = 30


def _open_messages(stack, channel: str, needs: str | None = None,
                   where=lambda rec: True) -> list[Message]:
    """Posted recommendations in a channel that still have decision buttons."""
    def find():
        found = []
        for m in stack.slack.messages(channel):
            if not any(b.get("type") == "actions" for b in m.blocks):
                continue
            with session_scope(stack.runtime.engine) as s:
                rec = s.exec(select(RecommendationRow).where(
                    RecommendationRow.slack_ts == m.ts)).first()
            if rec is None or rec.state != "open" or rec.id in stack.__dict__.setdefault(
                    "_used", set()):
                continue
            if needs is not None and set(rec.approvals_required) != {needs}:
                continue
            if not where(rec):
                continue
            found.append(m)
        return found
    return stack.slack.wait_for(find, timeout=WAIT, message=f"no open recommendation in {channel}")


def _take(stack, channel: str, needs: str | None = None,
          where=lambda rec: True) -> tuple[Message, RecommendationRow]:
    message = _open_messages(stack, channel, needs, where)[0]
    rec = _rec_for(stack, message)
    stack._used.add(rec.id)
    return message, rec


def _rec_for(stack, message: Message) -> RecommendationRow:
    with session_scope(stack.runtime.engine) as s:
        return s.exec(select(RecommendationRow).where(
            RecommendationRow.slack_ts == message.ts)).one()


def _state(stack, rec_id: int) -> str:
    with session_scope(stack.runtime.engine) as s:
        return s.get(RecommendationRow, rec_id).state


def _decisions(stack, rec_id: int) -> int:
    with session_scope(stack.runtime.engine) as s:
        return s.exec(select(func.count()).select_from(DecisionRow).where(
            DecisionRow.recommendation_id == rec_id)).one()


def _deciders_once_decided(stack, rec_id: int) -> list[str]:
    """Who has a decision recorded, once the recommendation has left ``open`` and any late
    duplicate delivery has had time to land."""
    stack.slack.wait_for(lambda: _state(stack, rec_id) != "open", timeout=WAIT)
    time.sleep(0.5)
    with session_scope(stack.runtime.engine) as s:
        return [d.user_id for d in s.exec(select(DecisionRow).where(
            DecisionRow.recommendation_id == rec_id).order_by(DecisionRow.id))]


def _clicks_after(stack, row_id: int) -> list[SlackInboxRow]:
    """The clicks stored in the inbox after row ``row_id``."""
    with session_scope(stack.runtime.inbox.engine) as s:
        return list(s.exec(select(SlackInboxRow).where(SlackInboxRow.id > row_id)))


def _text(message: Message) -> str:
    return message.text + "\n" + str(message.blocks)


def test_drift_appears_tagged_to_the_owning_team(stack):
    logistics = _open_messages(stack, "C0LOGISTICS")
    planning = _open_messages(stack, "C0PLANNING")
    assert any("<!subteam^S0LOGISTICS>" in _text(m) for m in logistics)
    assert any("<@U0PLAN1>" in _text(m) and "<@U0PLAN2>" in _text(m) for m in planning)
    for m in logistics + planning:
        labels = str(m.blocks)
        assert "Approve" in labels and "Reject" in labels and "Modify" in labels


def test_approve_executes_in_the_sandbox_and_edits_the_message(stack):
    message, rec = _take(stack, "C0LOGISTICS", needs="logistics")
    before = {s: httpx.get(srv.url + "/received", timeout=5).json()["applied"]
              for s, srv in (("planning", stack.planning), ("logistics", stack.tms))}
    delivery = stack.slack.click(message, "Approve", as_user=COORDINATOR)
    assert delivery.status == 200 and delivery.elapsed < 3

    stack.slack.wait_for(lambda: _state(stack, rec.id) in ("executed", "partially_executed",
                                                             "failed"), timeout=WAIT)
    assert _state(stack, rec.id) == "executed"
    edited = stack.slack.wait_for(
        lambda: (m := stack.slack.message(message.channel, message.ts))
        and "xecuted" in _text(m) and m, timeout=WAIT)
    assert not any(b.get("type") == "actions" for b in edited.blocks)  # buttons gone
    assert COORDINATOR in _text(edited)  # who decided
    # The actions as executed: a detection pass between reading the message and the click may
    # have updated the recommendation (and its message) in place.
    with session_scope(stack.runtime.engine) as s:
        executed = s.exec(select(ActionRow).where(ActionRow.recommendation_id == rec.id)).all()
    assert executed and all(a.status == "done" for a in executed)
    per_system: dict[str, int] = {}
    for action in executed:
        per_system[action.system] = per_system.get(action.system, 0) + 1
    for system, server in (("planning", stack.planning), ("logistics", stack.tms)):
        applied = httpx.get(server.url + "/received", timeout=5).json()["applied"]
        assert applied - before[system] == per_system.get(system, 0)  # exactly once each
    # the thread tells the story: the approval first, then the execution
    stack.slack.wait_for(lambda: any("Executed" in r.text for r in stack.slack.thread(edited)),
                         timeout=WAIT)


def test_non_member_click_is_refused_and_nothing_recorded(stack):
    message, rec = _take(stack, "C0LOGISTICS", needs="logistics")
    delivery = stack.slack.click(message, "Approve", as_user=OUTSIDER)
    assert delivery.status == 200
    refusal = stack.slack.wait_for(lambda: stack.slack.ephemeral_for(OUTSIDER), timeout=WAIT)
    assert "Only members of logistics" in refusal[-1].text
    assert _decisions(stack, rec.id) == 0 and _state(stack, rec.id) == "open"


def test_reject_asks_for_a_reason_and_records_it(stack):
    message, rec = _take(stack, "C0PLANNING")
    stack.slack.click(message, "Reject", as_user=PLANNER)
    modal = stack.slack.wait_for(lambda: stack.slack.modal(PLANNER), timeout=WAIT)
    empty = stack.slack.submit(modal, values={"reason_input": "  "}, as_user=PLANNER)
    assert empty.extra.get("errors", {}).get("reason")
    stack.slack.submit(modal, values={"reason_input": "Promo was cancelled yesterday"},
                       as_user=PLANNER)
    stack.slack.wait_for(lambda: _state(stack, rec.id) == "rejected", timeout=WAIT)
    edited = stack.slack.wait_for(
        lambda: (m := stack.slack.message(message.channel, message.ts))
        and "Promo was cancelled" in _text(m) and m, timeout=WAIT)
    assert not any(b.get("type") == "actions" for b in edited.blocks)


def test_a_modal_slack_no_longer_allows_gets_a_note_not_silence(stack):
    message, rec = _take(stack, "C0PLANNING")
    last = max((row.id for row in _clicks_after(stack, 0)), default=0)
    workspace = stack.slack.workspace
    before, workspace.trigger_ttl = workspace.trigger_ttl, 0.0  # every trigger already expired
    try:
        stack.slack.click(message, "Reject", as_user=PLANNER)
        note = stack.slack.wait_for(lambda: [m for m in stack.slack.ephemeral_for(PLANNER)
                                             if "click the button again" in m.text], timeout=WAIT)
    finally:
        workspace.trigger_ttl = before
    assert note and stack.slack.modal(PLANNER) is None
    assert _decisions(stack, rec.id) == 0 and _state(stack, rec.id) == "open"
    # handled, so not retried: a retry could never open the form with the same trigger
    clicks = stack.slack.wait_for(lambda: [c.state for c in _clicks_after(stack, last)] == ["done"]
                                  and _clicks_after(stack, last), timeout=WAIT)
    assert clicks[0].attempts == 1


def test_modify_then_approve_executes_the_edited_quantity(stack):
    message, rec = _take(stack, "C0PLANNING", needs="planning", where=lambda rec: any(
        "qty" in a["params"] for a in rec.body["actions"]))
    stack.slack.click(message, "Modify", as_user=PLANNER)
    modal = stack.slack.wait_for(lambda: stack.slack.modal(PLANNER), timeout=WAIT)
    qty_blocks = [b["block_id"] for b in modal["blocks"]
                  if b.get("type") == "input" and b["block_id"].endswith((".qty", ".quantity"))]
    assert qty_blocks, "the modal must offer the quantities to edit"
    target = qty_blocks[0]
    stack.slack.submit(modal, values={target: "7"}, as_user=PLANNER)
    stack.slack.wait_for(lambda: _state(stack, rec.id) in ("executed", "partially_executed"),
                         timeout=WAIT)
    with session_scope(stack.runtime.engine) as s:
        body = s.get(RecommendationRow, rec.id).body
    position, param = target.split(".")
    assert float(body["actions"][int(position)]["params"][param]) == 7.0


def test_snooze_hides_the_buttons_until_it_ends(stack):
    message, rec = _take(stack, "C0LOGISTICS", needs="logistics")
    assert stack.slack.choose(message, "rec_snooze", "4h", as_user=COORDINATOR).status == 200
    stack.slack.wait_for(lambda: _state(stack, rec.id) == "snoozed", timeout=WAIT)
    with session_scope(stack.runtime.engine) as s:
        until = s.get(RecommendationRow, rec.id).snoozed_until
    assert until is not None


def test_bad_signature_and_stale_timestamp_are_rejected_with_401(stack):
    message, rec = _take(stack, "C0LOGISTICS", needs="logistics")
    forged = stack.slack.click(message, "Approve", as_user=COORDINATOR,
                               signature="v0=" + "0" * 64)
    stale = stack.slack.click(message, "Approve", as_user=COORDINATOR,
                              timestamp=int(time.time()) - 6 * 60)
    assert (forged.status, stale.status) == (401, 401)
    time.sleep(0.5)
    assert _decisions(stack, rec.id) == 0 and _state(stack, rec.id) == "open"


def test_retried_delivery_and_double_click_record_one_decision(stack):
    message, rec = _take(stack, "C0LOGISTICS", needs="logistics")
    clicks = stack.slack.double_click(message, "Approve", as_user=COORDINATOR)  # both at once
    for retry_num, delivery in enumerate(clicks, start=1):  # and Slack redelivers each
        stack.slack.retry(delivery, retry_num=retry_num, reason="http_timeout")
    assert _deciders_once_decided(stack, rec.id) == [COORDINATOR]  # 4 deliveries, 1 decision


def test_drift_command_variants(stack):
    _open_messages(stack, "C0LOGISTICS")
    earlier = len(stack.slack.ephemeral_for(PLANNER, "C0PLANNING"))  # notes of other tests
    summary = stack.slack.command("/drift", as_user=PLANNER, channel="C0PLANNING")
    assert summary.status == 200
    reply = stack.slack.wait_for(
        lambda: stack.slack.ephemeral_for(PLANNER, "C0PLANNING")[earlier:], timeout=WAIT)[0]
    shown = _text(reply).lower()
    assert any(kind in shown for kind in ("late shipment", "demand change", "capacity change",
                                          "stock-out risk"))

    stack.slack.command("/drift help", as_user=PLANNER, channel="C0PLANNING")
    helped = stack.slack.wait_for(
        lambda: [m for m in stack.slack.ephemeral_for(PLANNER, "C0PLANNING")
                 if "/drift mine" in _text(m)], timeout=WAIT)
    assert helped

    stack.slack.command("/drift !!nonsense??", as_user=PLANNER, channel="C0PLANNING")
    usage = stack.slack.wait_for(
        lambda: [m for m in stack.slack.ephemeral_for(PLANNER, "C0PLANNING")
                 if "nonsense" in _text(m)], timeout=WAIT)
    assert "/drift help" in _text(usage[-1]) or "Usage" in _text(usage[-1])


def test_app_home_shows_my_teams_decisions(stack):
    _open_messages(stack, "C0LOGISTICS")
    assert stack.slack.open_home(as_user=COORDINATOR).status == 200
    home = stack.slack.wait_for(lambda: stack.slack.home(COORDINATOR), timeout=WAIT)
    assert home["type"] == "home"
    assert "logistics" in str(home["blocks"]).lower()


def test_weekly_digest_is_posted_with_its_chart(stack):
    stack.runtime.post_digest("logistics")
    files = stack.slack.wait_for(lambda: [f for f in stack.slack.files() if f.completed],
                                 timeout=WAIT)
    assert files[-1].data[:8] == b"\x89PNG\r\n\x1a\n"
    assert "C0LOGISTICS" in files[-1].channels
    posted = stack.slack.wait_for(
        lambda: [m for m in stack.slack.messages("C0LOGISTICS") if "igest" in _text(m)],
        timeout=WAIT)
    assert posted
