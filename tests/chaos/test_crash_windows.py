"""The crash windows the chaos run hits by chance, opened on purpose and in milliseconds.

SlackSync posts a recommendation (chat.postMessage) and records the message's ts in a later
transaction. A process that dies in between has posted a message the store does not know. The
chaos run saw it once in 1,000 (an executed recommendation whose message kept its Approve
button); here the crash is placed exactly there.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlmodel import select

from bot.lifecycle import apply_detection
from bot.slack_sync import SlackSync
from sandbox.slack import SlackStandin
from store.db import session_scope
from store.tables import RecommendationRow, RecState
from store.transitions import transition
from tests.support.builders import demand_drift, recommendation_for
from tests.support.sync_world import Crash, DiesAfterPosting, store_and_slack


@pytest.fixture
def setup(tmp_path):
    with store_and_slack(tmp_path, "xoxb-crash-window", "secret-crash-window") as world:
        engine, cfg, slack, client = world
        drift = demand_drift(planned=1000, latest=1100)
        with session_scope(engine) as s:
            rec_id = apply_detection(s, [drift], [recommendation_for(drift)], cfg,
                                     datetime.now(UTC)).created[0]
        yield engine, cfg, slack, client, rec_id


def _posts(slack: SlackStandin, rec_id: int) -> list:
    return [m for ch in ("C0PLANNING", "C0LOGISTICS") for m in slack.messages(ch)
            if m.metadata and m.metadata.get("event_payload", {}).get("id") == rec_id]


_EXPIRED = datetime(2000, 1, 1, tzinfo=UTC)


def _left_behind_expired_claim(engine, rec_id: int) -> None:
    """What SIGKILL leaves (the in-process Crash still ran the finally that clears the claim):
    the dead worker's claim on the row, now expired."""
    with session_scope(engine) as s:
        s.get(RecommendationRow, rec_id).slack_claim_until = _EXPIRED


def _crash_right_after_posting(engine, cfg, client) -> None:
    with pytest.raises(Crash):
        SlackSync(engine, DiesAfterPosting(client), cfg).run()


def test_crash_after_posting_does_not_post_twice(setup):
    engine, cfg, slack, client, rec_id = setup
    _crash_right_after_posting(engine, cfg, client)
    _left_behind_expired_claim(engine, rec_id)
    SlackSync(engine, client, cfg).run()  # the restarted bot
    posts = _posts(slack, rec_id)
    print(f"\ncrash after chat.postMessage, recommendation still open: posted {len(posts)} times")
    assert len(posts) == 1


def test_crash_after_posting_still_shows_the_decision(setup):
    engine, cfg, slack, client, rec_id = setup
    _crash_right_after_posting(engine, cfg, client)
    with session_scope(engine) as s:
        s.get(RecommendationRow, rec_id).slack_claim_until = _EXPIRED
        assert transition(s, rec_id, from_states=[RecState.OPEN], to_state=RecState.APPROVED,
                          actor="U0PLAN1", reason="approved in Slack")
    SlackSync(engine, client, cfg).run()
    (message,) = _posts(slack, rec_id)
    current = slack.message(message.channel, message.ts)
    buttons = [b for b in current.blocks if b.get("type") == "actions"]
    with session_scope(engine) as s:
        state = s.exec(select(RecommendationRow.state).where(
            RecommendationRow.id == rec_id)).one()
    print(f"\ncrash after chat.postMessage, then approved: state {state}, message still offers "
          f"buttons: {bool(buttons)}")
    assert not buttons, "the message must stop offering Approve once it is decided"


# -- the click: Slack is told "done" before the click is stored ----------------------------------

def test_slack_gets_its_200_only_once_the_click_is_stored(tmp_path):
    """Slack never resends a click it got a 200 for, so the 200 must wait for the click to be
    on disk (the inbox); the decision follows from the stored click. And on SQLite the ack does
    not wait for the bot's own write lock (the inbox has its own file)."""
    import sqlite3
    import threading
    import time

    from bot.demo import DemoStack

    with DemoStack(fast=True, database_url=f"sqlite:///{tmp_path / 'a.db'}") as stack:
        stack.step()

        def an_open_one():
            for m in stack.slack.messages("C0PLANNING") + stack.slack.messages("C0LOGISTICS"):
                if m.metadata and m.metadata.get("event_type") == "alignbot_recommendation":
                    with session_scope(stack.runtime.engine) as s:
                        rec = s.get(RecommendationRow, int(m.metadata["event_payload"]["id"]))
                    if rec.state == "open":
                        return m, rec
            return None
        message, rec = stack.slack.wait_for(an_open_one, timeout=60)
        user = "U0PLAN1" if "planning" in rec.approvals_required else "U0LOG1"

        def count(db: str, sql: str, *args) -> int:  # plain reads: WAL readers never wait
            with sqlite3.connect(tmp_path / db) as conn:
                return conn.execute(sql, args).fetchone()[0]

        def decisions() -> int:
            return count("a.db", "SELECT count(*) FROM decisions WHERE recommendation_id = ?",
                         rec.id)

        def clicks() -> int:
            return count("a.inbox.db", "SELECT count(*) FROM slack_inbox")

        # 1. The inbox cannot be written for a second (a slow disk): no 200 meanwhile.
        before = clicks()
        lock = sqlite3.connect(tmp_path / "a.inbox.db", timeout=30, isolation_level=None)
        lock.execute("BEGIN IMMEDIATE")
        answers: list = []
        clicking = threading.Thread(target=lambda: answers.append(
            stack.slack.click(message, "Approve", as_user=user)))
        try:
            clicking.start()
            time.sleep(1.0)
            answered_while_locked = bool(answers)
        finally:
            lock.execute("ROLLBACK")
            lock.close()
        clicking.join(10)
        delivery = answers[0]
        print(f"\nApprove answered HTTP {delivery.status} in {delivery.elapsed:.2f} s; "
              f"answered while the inbox was locked: {answered_while_locked}")
        assert not answered_while_locked, "Slack got its answer before the click was stored"
        assert delivery.status == 200 and clicks() == before + 1
        stack.slack.wait_for(lambda: decisions() == 1, timeout=30)

        # 2. The bot's own database is locked (a long write): a click is still acked at once
        #    (the inbox has its own file) — here an outsider's, refused once the lock is gone.
        lock = sqlite3.connect(tmp_path / "a.db", timeout=30, isolation_level=None)
        lock.execute("BEGIN IMMEDIATE")
        try:
            quick = stack.slack.click(message, "Approve", as_user="U0SALES")
        except LookupError:  # the decided message lost its buttons: click its last payload
            quick = stack.slack.retry(delivery)
        finally:
            time.sleep(0.5)
            lock.execute("ROLLBACK")
            lock.close()
        assert quick.status == 200 and quick.elapsed < 1.0, quick.elapsed
        assert decisions() == 1
