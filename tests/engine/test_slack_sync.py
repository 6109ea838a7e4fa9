"""The Slack sync under rate limits and after crashes, against the Slack stand-in.

A 429 defers that method and channel and the worker goes on with the rest, so one throttled
channel does not hold up another's message; the state of a message goes before thread notes; and
a note a dead worker had already posted is found in its thread (by its metadata), not reposted.
"""

from __future__ import annotations

import itertools
import threading
import time
from datetime import UTC, datetime

import pytest
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler
from sqlmodel import select

from bot.lifecycle import apply_detection
from bot.notes import add_note
from bot.slack_client import make_web_client
from bot.slack_sync import NOTE_EVENT, POSTED_EVENT, SlackSync
from sandbox.slack import RateLimits, SlackStandin
from store.db import make_engine, session_scope
from store.migrate import upgrade
from store.tables import RecommendationRow, RecState, SlackNote
from store.transitions import transition
from tests.support.builders import PLANNERS, config, demand_drift, recommendation_for
from tests.support.sync_world import Crash, DiesAfterPosting, store_and_slack

TOKEN = "xoxb-sync-test"
A, B = "C0PLANNING", "C0LOGISTICS"
_EXPIRED = datetime(2000, 1, 1, tzinfo=UTC)


def _a_note(post: dict) -> bool:
    """A thread note, not a recommendation's message."""
    return (post.get("metadata") or {}).get("event_type") != POSTED_EVENT


@pytest.fixture
def world(tmp_path):
    """A store with two recommendations whose messages are out: one in A, one in B."""
    with store_and_slack(tmp_path, TOKEN, "secret-sync-test") as (engine, cfg, slack, client):
        drifts = [demand_drift(sku="SKU-A"), demand_drift(sku="SKU-B")]
        with session_scope(engine) as s:
            ids = apply_detection(s, drifts, [recommendation_for(d) for d in drifts], cfg,
                                  datetime.now(UTC)).created
            s.get(RecommendationRow, ids[1]).slack_channel = B
        SlackSync(engine, client, cfg).run()
        with session_scope(engine) as s:
            assert [s.get(RecommendationRow, i).slack_channel for i in ids] == [A, B]
            assert all(s.get(RecommendationRow, i).slack_ts for i in ids)
        yield engine, cfg, slack, client, ids


def _queue_notes(engine, rec_id: int, n: int, prefix: str = "progress") -> list[str]:
    keys = [f"{prefix}:{rec_id}:{i}" for i in range(n)]
    with session_scope(engine) as s:
        for i, key in enumerate(keys):
            add_note(s, rec_id, key, f"{prefix} {i} of recommendation {rec_id}")
    return keys


def _thread(slack, engine, rec_id: int) -> list[str]:
    with session_scope(engine) as s:
        rec = s.get(RecommendationRow, rec_id)
    return [m.text for m in slack.thread(slack.message(rec.slack_channel, rec.slack_ts))]


def _note(engine, key: str) -> SlackNote:
    with session_scope(engine) as s:
        return s.exec(select(SlackNote).where(SlackNote.dedupe_key == key)).one()


def _approve(engine, rec_id: int) -> None:
    with session_scope(engine) as s:
        assert transition(s, rec_id, from_states=[RecState.OPEN], to_state=RecState.APPROVED,
                          actor="U0PLAN1", reason="approved in Slack")


# -- rate limits ----------------------------------------------------------------------------

def test_the_sync_gets_429s_back_instead_of_sleeping_them_out(world):
    engine, cfg, slack, client, (rec_a, _) = world
    sync = SlackSync(engine, client, cfg)
    assert any(isinstance(h, RateLimitErrorRetryHandler) for h in client.retry_handlers)
    assert not any(isinstance(h, RateLimitErrorRetryHandler) for h in sync.client.retry_handlers)

    slack.rate_limits = RateLimits().with_post_message(per_second=0.2, burst=1)  # Retry-After 5
    keys = _queue_notes(engine, rec_a, 3)
    started = time.monotonic()
    assert sync.run() == 1
    took = time.monotonic() - started
    print(f"\none sync pass with 3 notes for a channel allowing 1 message per 5 s: {took:.2f} s")
    assert took < 2.0, "the sync slept out a Retry-After instead of moving on"
    assert slack.ratelimited("chat.postMessage") == 1  # one 429, then the channel is left alone
    assert [_note(engine, k).state for k in keys] == ["posted", "pending", "pending"]
    assert [_note(engine, k).attempts for k in keys] == [0, 0, 0]  # a 429 is not a failure
    assert sync.run() == 0 and slack.ratelimited("chat.postMessage") == 1  # still waiting


def test_a_throttled_channel_does_not_hold_up_another_channels_message(world):
    engine, cfg, slack, client, (rec_a, rec_b) = world
    slack.rate_limits = RateLimits().with_post_message(per_second=0.5, burst=1)  # Retry-After 2
    keys = _queue_notes(engine, rec_a, 4)
    sync = SlackSync(engine, client, cfg)
    stop = threading.Event()

    def scheduler():  # the sync job as the scheduler runs it: again and again
        while not stop.is_set():
            sync.run()
            stop.wait(0.1)

    worker = threading.Thread(target=scheduler, daemon=True)
    worker.start()
    try:
        slack.wait_for(lambda: slack.ratelimited("chat.postMessage") >= 1, timeout=10)
        with session_scope(engine) as s:
            b_ts = s.get(RecommendationRow, rec_b).slack_ts
        edits_before = len(slack.message(B, b_ts).edits)
        started = time.monotonic()
        _approve(engine, rec_b)
        _queue_notes(engine, rec_b, 1, prefix="approved")
        slack.wait_for(lambda: len(slack.message(B, b_ts).edits) > edits_before
                       and _note(engine, f"approved:{rec_b}:0").state == "posted", timeout=15)
        lag = time.monotonic() - started
        print(f"\nA throttled (1 message per 2 s, 4 notes queued): B's edit and note out in "
              f"{lag:.2f} s")
        assert lag < 1.5, "B waited for A's rate limit"
        slack.wait_for(lambda: all(_note(engine, k).state == "posted" for k in keys),
                       timeout=30)
    finally:
        stop.set()
        worker.join(timeout=30)
    assert _thread(slack, engine, rec_a) == [f"progress {i} of recommendation {rec_a}"
                                             for i in range(4)]  # each once, in order
    assert _thread(slack, engine, rec_b) == [f"approved 0 of recommendation {rec_b}"]


def test_a_due_edit_goes_before_notes_in_the_same_pass(world):
    engine, cfg, slack, client, (rec_a, _) = world
    _queue_notes(engine, rec_a, 2)
    _approve(engine, rec_a)
    calls_before = len(slack.calls())
    SlackSync(engine, client, cfg).run()
    made = [c.method for c in slack.calls()[calls_before:]]
    assert made == ["chat.update", "chat.postMessage", "chat.postMessage"]


def test_an_edit_that_comes_due_between_notes_goes_before_the_next_note(world):
    engine, cfg, slack, client, (rec_a, rec_b) = world
    _queue_notes(engine, rec_a, 3)

    class ApprovesBAfterTheFirstNote:
        def __init__(self, client):
            self.client, self.done = client, False

        def chat_postMessage(self, **kw):  # noqa: N802 — slack_sdk's name
            reply = self.client.chat_postMessage(**kw)
            if not self.done:
                self.done = True
                _approve(engine, rec_b)
            return reply

        def __getattr__(self, name):
            return getattr(self.client, name)

    calls_before = len(slack.calls())
    SlackSync(engine, ApprovesBAfterTheFirstNote(client), cfg).run()
    made = [(c.method, c.args.get("channel")) for c in slack.calls()[calls_before:]]
    assert made == [("chat.postMessage", A), ("chat.update", B),
                    ("chat.postMessage", A), ("chat.postMessage", A)]


# -- crash recovery of notes ----------------------------------------------------------------

def _crash_right_after_posting_a_note(engine, cfg, client) -> None:
    with pytest.raises(Crash):
        SlackSync(engine, DiesAfterPosting(client, only=_a_note), cfg).run()


def _left_behind_expired_claim(engine, key: str) -> None:
    """What SIGKILL leaves: the dead worker's claim on the note, now expired."""
    with session_scope(engine) as s:
        note = s.exec(select(SlackNote).where(SlackNote.dedupe_key == key)).one()
        assert note.state == "pending"
        note.claim_until = _EXPIRED


def test_a_note_a_dead_worker_had_posted_is_adopted_not_reposted(world):
    engine, cfg, slack, client, (rec_a, _) = world
    (key,) = _queue_notes(engine, rec_a, 1)
    _crash_right_after_posting_a_note(engine, cfg, client)
    _left_behind_expired_claim(engine, key)
    SlackSync(engine, client, cfg).run()  # the restarted bot
    thread = _thread(slack, engine, rec_a)
    print(f"\ncrash after posting a thread note: the thread shows it {len(thread)} times")
    assert thread == [f"progress 0 of recommendation {rec_a}"]
    note = _note(engine, key)
    with session_scope(engine) as s:
        rec = s.get(RecommendationRow, rec_a)
    (posted,) = slack.thread(slack.message(A, rec.slack_ts))
    assert (note.state, note.ts) == ("posted", posted.ts)
    assert posted.metadata == {"event_type": NOTE_EVENT, "event_payload": {"key": key}}
    assert [c.method for c in slack.calls("conversations.replies")] == ["conversations.replies"]


def test_a_channel_note_a_dead_worker_had_posted_is_adopted_not_reposted(world):
    engine, cfg, slack, client, _ids = world
    key = "digest:planning:2026-W48"
    with session_scope(engine) as s:
        add_note(s, None, key, "Drift this week", channel=A, in_thread=False)
    _crash_right_after_posting_a_note(engine, cfg, client)
    _left_behind_expired_claim(engine, key)
    SlackSync(engine, client, cfg).run()
    digests = [m for m in slack.messages(A) if m.text == "Drift this week"]
    assert len(digests) == 1
    assert _note(engine, key).ts == digests[0].ts


def test_a_note_a_dead_worker_never_posted_is_posted_once(world):
    engine, cfg, slack, client, (rec_a, _) = world
    (key,) = _queue_notes(engine, rec_a, 1)
    _left_behind_expired_claim(engine, key)  # died before posting it
    SlackSync(engine, client, cfg).run()
    assert _thread(slack, engine, rec_a) == [f"progress 0 of recommendation {rec_a}"]
    assert _note(engine, key).state == "posted"


def test_a_429_on_the_search_posts_nothing_until_the_search_can_run(world):
    engine, cfg, slack, client, (rec_a, _) = world
    (key,) = _queue_notes(engine, rec_a, 1)
    _crash_right_after_posting_a_note(engine, cfg, client)
    _left_behind_expired_claim(engine, key)
    slack.rate_limits = RateLimits().with_method("conversations.replies", per_minute=60, burst=1)
    with session_scope(engine) as s:
        rec = s.get(RecommendationRow, rec_a)
    client.conversations_replies(channel=A, ts=rec.slack_ts)  # spends the only token

    sync = SlackSync(engine, client, cfg)
    sync.run()
    assert slack.ratelimited("conversations.replies") == 1
    assert _note(engine, key).state == "pending"
    assert len(_thread(slack, engine, rec_a)) == 1  # not posted again meanwhile
    time.sleep(1.2)  # Retry-After: 1
    sync.run()
    assert _thread(slack, engine, rec_a) == [f"progress 0 of recommendation {rec_a}"]
    assert _note(engine, key).state == "posted"


def test_a_search_that_runs_past_its_budget_posts_nothing_and_is_searched_again(world):
    engine, cfg, slack, client, (rec_a, _) = world
    (key,) = _queue_notes(engine, rec_a, 1)
    _crash_right_after_posting_a_note(engine, cfg, client)
    _left_behind_expired_claim(engine, key)
    # Every look at the clock finds 25 s gone: Slack answering that slowly would run the
    # search past the claim, when another worker could take the note and post it again.
    slow = itertools.count(0, 25).__next__
    SlackSync(engine, client, cfg, monotonic=slow, search_budget=20).run()
    assert _note(engine, key).state == "pending"
    assert len(_thread(slack, engine, rec_a)) == 1  # not posted again
    SlackSync(engine, client, cfg).run()  # a worker whose search ends in time adopts it
    assert _thread(slack, engine, rec_a) == [f"progress 0 of recommendation {rec_a}"]
    assert _note(engine, key).state == "posted"


def test_a_429_on_the_search_for_a_message_posts_nothing_until_the_search_can_run(tmp_path):
    url = f"sqlite:///{tmp_path / 'alignbot.db'}"
    upgrade(url)
    engine = make_engine(url)
    cfg = config()
    limits = RateLimits.unlimited()
    with SlackStandin(TOKEN, "secret", channels=[A, B], users=PLANNERS,
                      rate_limits=limits) as slack:
        client = make_web_client(TOKEN, slack.api_url, timeout=5)
        drift = demand_drift()
        with session_scope(engine) as s:
            rec_id = apply_detection(s, [drift], [recommendation_for(drift)], cfg,
                                     datetime.now(UTC)).created[0]

        with pytest.raises(Crash):
            SlackSync(engine, DiesAfterPosting(client), cfg).run()
        with session_scope(engine) as s:
            s.get(RecommendationRow, rec_id).slack_claim_until = _EXPIRED
        slack.rate_limits = RateLimits().with_method("conversations.history", per_minute=60,
                                                     burst=1)
        client.conversations_history(channel=A)  # spends the only token
        sync = SlackSync(engine, client, cfg)
        sync.run()
        assert slack.ratelimited("conversations.history") == 1
        assert len(slack.messages(A)) == 1
        time.sleep(1.2)
        sync.run()
        (message,) = slack.messages(A)
        with session_scope(engine) as s:
            assert s.get(RecommendationRow, rec_id).slack_ts == message.ts


def test_retry_after_is_read_and_bounded():
    from types import SimpleNamespace

    from bot.slack_sync import MAX_RETRY_AFTER, Throttle, retry_after

    assert retry_after(SimpleNamespace(headers={"Retry-After": "7"})) == 7
    assert retry_after(SimpleNamespace(headers={"retry-after": ["3"]})) == 3
    assert retry_after(SimpleNamespace(headers={"Retry-After": "soon"})) == 1
    assert retry_after(SimpleNamespace(headers=None)) == 1
    now = [100.0]
    throttle = Throttle(clock=lambda: now[0])
    throttle.defer("chat.postMessage", A, 3600)
    throttle.defer("chat.update", B, 2)
    assert throttle.blocked("chat.postMessage", A) and not throttle.blocked("chat.postMessage", B)
    assert throttle.channels("chat.update") == [B]
    now[0] += 2
    assert throttle.channels("chat.update") == []
    now[0] += MAX_RETRY_AFTER - 2
    assert not throttle.blocked("chat.postMessage", A)  # a day-long Retry-After is capped
