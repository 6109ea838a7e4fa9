"""Make Slack show what the store says: post new recommendations, edit changed ones, post notes.

The store is the truth and Slack a view of it. A recommendation row carries the version its
message shows (``slack_version``); whenever the row is ahead, the message is edited in place.
Each message goes through a list of stages (``message_stages``, ``note_stages``): throttle →
claim → adopt → render → send → record. No transaction stays open while Slack answers: a worker
claims the row with a short lease (compare-and-set), talks to Slack, then writes down the
result — so two replicas never post the same message, and a crashed worker's claim expires.
Every post carries metadata naming its row (a recommendation's id, a note's dedupe key): a claim
left behind by a dead worker means "this may be posted already", and the next worker looks in
the channel (or the thread) before posting again.

A 429 is not slept out in place: that method and channel wait out Slack's Retry-After while the
worker goes on with other channels, and the next pass (or tick) picks the deferred work up. The
state of a recommendation message comes first: due edits go before notes, and are looked for
again after every note posted.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from sqlalchemy import func, or_, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from bot.blocks import render_note, render_recommendation
from bot.config import AlignbotConfig
from bot.slack_client import without_rate_limit_retries
from bot.stages import Stage, run
from store.db import read_scope, session_scope
from store.tables import (
    ActionRow,
    DecisionRow,
    DriftRow,
    RecommendationRow,
    RecState,
    SlackNote,
)
from store.types import utcnow

log = logging.getLogger(__name__)
MAX_NOTE_ATTEMPTS = 5
CLAIM = timedelta(seconds=60)
POSTED_EVENT = "alignbot_recommendation"  # message metadata that names the recommendation
NOTE_EVENT = "alignbot_note"  # message metadata that names a note by its dedupe key
MAX_RETRY_AFTER = 60.0  # seconds; a missing, garbled or longer Retry-After is bounded
# A claim set this far in the past is free to take and says "a post may be out there".
_LEFT_BEHIND = timedelta(seconds=1)


class PutBack(Exception):
    """This piece of work cannot go on now; it goes back, unchanged, for a later pass."""


class RateLimited(PutBack):
    """Slack answered 429 for this method and channel; its Retry-After is being waited out."""


class SearchTooLong(PutBack):
    """A search for a message a dead worker may have posted ran past its share of the claim.

    Past the claim another worker may take the same row and post while this one still
    searches; so the search stops, nothing is posted, and the next worker searches again.
    """


class Throttle:
    """When each (method, channel) may be called again, from the Retry-After of its last 429."""

    def __init__(self, clock: Callable[[], float] = time.monotonic,
                 cap: float = MAX_RETRY_AFTER):
        self.clock = clock
        self.cap = cap
        self._until: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()

    def defer(self, method: str, channel: str | None, seconds: float) -> None:
        with self._lock:
            self._until[(method, channel or "")] = self.clock() + min(max(seconds, 0.0),
                                                                      self.cap)

    def blocked(self, method: str, channel: str | None) -> bool:
        return (channel or "") in self.channels(method)

    def channels(self, method: str) -> list[str]:
        """The channels ``method`` must not be called for yet."""
        now = self.clock()
        with self._lock:
            for key in [k for k, until in self._until.items() if until <= now]:
                del self._until[key]
            return sorted({channel for (m, channel) in self._until if m == method})


def retry_after(response: Any) -> float:
    """Seconds Slack asked us to wait (Retry-After), or 1 when it did not say."""
    headers = getattr(response, "headers", None) or {}
    value = headers.get("Retry-After", headers.get("retry-after"))
    if isinstance(value, list):
        value = value[0] if value else None
    try:
        return float(value)
    except (TypeError, ValueError):
        return 1.0


@dataclass
class Message:
    """One Slack message on its way through the stages: a recommendation's, or a note."""
    id: int
    channel: str | None
    ts: str | None = None  # the message's, once Slack has it
    claimed: bool = False  # this worker holds the row's claim: let go of it at the end
    unsure: bool = False  # Slack may hold this message though the row does not say so
    metadata: dict = field(default_factory=dict)  # names the row, for a later search
    thread_ts: str | None = None
    since: datetime | None = None
    key: str = ""  # a note's dedupe key
    version: int = 0
    text: str = ""
    blocks: list[dict] = field(default_factory=list)
    refused: str = ""  # Slack's error, when it refused the call


class SlackSync:
    def __init__(self, engine: Engine, client: WebClient, config: AlignbotConfig, *,
                 clock: Callable[[], datetime] = utcnow,
                 monotonic: Callable[[], float] = time.monotonic,
                 search_budget: float = CLAIM.total_seconds() / 3):
        self.engine = engine
        # 429s come back to us (the throttle), instead of the client sleeping them out.
        self.client = without_rate_limit_retries(client)
        self.config = config
        self.clock = clock
        self.throttle = Throttle(monotonic)
        self.monotonic = monotonic
        # Seconds a recovery search may take: with a last page's own timeout and connection
        # retries, it must end well inside the claim it runs under.
        self.search_budget = search_budget
        self._failed: set[int] = set()  # recommendations whose sync failed in this run
        self.message_stages: list[Stage[Message]] = [
            self._throttled, self._claim_message, self._adopt_message, self._render_message,
            self._send, self._record_message]
        self.note_stages: list[Stage[Message]] = [
            self._throttled, self._claim_note, self._adopt_note, self._send, self._record_note]

    def run(self, limit: int = 50) -> int:
        """One sync pass; returns how many Slack writes it made."""
        self._failed = set()
        return self._sync_messages(limit) + self._post_notes(limit)

    def _sync_messages(self, limit: int) -> int:
        return sum(self._through(self.message_stages, Message(i, channel, ts),
                                 RecommendationRow.slack_claim_until)
                   for i, channel, ts in self._due_messages(limit))

    def _post_notes(self, limit: int) -> int:
        writes = 0
        for note_id, channel in self._pending_notes(limit):
            if self._through(self.note_stages, Message(note_id, channel), SlackNote.claim_until):
                # The state of a message goes before the rest of the notes.
                writes += 1 + self._sync_messages(limit)
        return writes

    def _through(self, stages: list[Stage[Message]], m: Message, claim: Any) -> int:
        """1 if ``m`` went through every stage (a Slack write), else 0. A claim still held is
        let go: none, or one already past that makes the next worker look first."""
        try:
            return int(run(stages, m) is not None)
        except PutBack:  # unsure stays as it was, so the next worker looks again
            return 0
        finally:
            if m.claimed:
                until = self.clock() - _LEFT_BEHIND if m.unsure else None
                with session_scope(self.engine) as s:
                    s.execute(update(claim.class_).where(claim.class_.id == m.id)
                              .values({claim.key: until}))

    def _call(self, method: str, channel: str | None, **kwargs: Any) -> Any:
        """Call a Web API method for a channel, unless its Retry-After is still running.

        Raises RateLimited rather than waiting: the caller puts the work back and moves on.
        """
        if self.throttle.blocked(method, channel):
            raise RateLimited(method)
        try:
            return getattr(self.client, method.replace(".", "_"))(channel=channel, **kwargs)
        except SlackApiError as exc:
            if getattr(exc.response, "status_code", None) != 429:
                raise
            wait = retry_after(exc.response)
            log.info("Slack rate-limited %s in %s: deferring it %.0f s", method, channel, wait)
            self.throttle.defer(method, channel, wait)
            raise RateLimited(method) from None

    def _messages(self, method: str, channel: str, what: str, max_pages: int = 5,
                  **kwargs: Any) -> Iterator[tuple[dict, dict]]:
        """(page, message) for up to ``max_pages`` pages of conversations.history/replies.

        A Slack error ends the search (the caller then posts: at least once); a 429 raises
        RateLimited, and running past ``search_budget`` SearchTooLong, so that nothing is
        posted before the search could run to its end.
        """
        cursor = None
        deadline = self.monotonic() + self.search_budget
        for _ in range(max_pages):
            if self.monotonic() > deadline:
                raise SearchTooLong(f"{what} in {channel}")
            try:
                page = self._call(method, channel, limit=200, include_all_metadata=True,
                                  cursor=cursor, **kwargs)
            except SlackApiError as exc:
                log.warning("cannot look for %s in %s: %s", what, channel,
                            exc.response.get("error"))
                return
            for message in page.get("messages", []):
                yield page, message
            cursor = (page.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                return

    def _find(self, m: Message) -> tuple[str, str] | None:
        """(channel, ts) of the message whose metadata names ``m``'s row, if Slack has one (in
        the thread it goes to, or the channel)."""
        if m.channel is None:
            return None
        if m.thread_ts:
            method, where = "conversations.replies", {"ts": m.thread_ts}
        else:
            method, where = "conversations.history", {"oldest": f"{m.since.timestamp() - 60:.6f}"}
        what = f"note {m.key}" if m.key else f"recommendation {m.id}"
        wanted = {k: str(v) for k, v in m.metadata["event_payload"].items()}
        for page, message in self._messages(method, m.channel, what, **where):
            meta = message.get("metadata") or {}
            if meta.get("event_type") == m.metadata["event_type"] and \
                    {k: str(v) for k, v in (meta.get("event_payload") or {}).items()} == wanted:
                return page.get("channel", m.channel), message["ts"]
        return None

    # -- for both kinds -------------------------------------------------------------------

    def _throttled(self, m: Message) -> Message | None:
        """Not while its method and channel wait out a Retry-After (the list may be older)."""
        method = "chat.update" if m.ts else "chat.postMessage"
        return None if self.throttle.blocked(method, m.channel) else m

    def _claimed(self, s: Session, m: Message, claim: Any, *where: Any) -> bool:
        """Compare-and-set a short claim on ``m``'s row; one left there by a dead worker makes
        ``m`` unsure (it may be posted already)."""
        now, table = self.clock(), claim.class_
        m.unsure = s.exec(select(claim).where(table.id == m.id)).first() is not None
        m.claimed = s.execute(
            update(table).where(table.id == m.id, claim.is_(None) | (claim < now), *where)
            .values({claim.key: now + CLAIM}).returning(table.id)).first() is not None
        return m.claimed

    def _send(self, m: Message) -> Message | None:
        """Post the message, or edit it in place; a 429 stops it here, nothing sent."""
        m.unsure = m.ts is None  # a post whose answer never came may be out there
        try:
            if m.ts is None:
                reply = self._call("chat.postMessage", m.channel, text=m.text, blocks=m.blocks,
                                   thread_ts=m.thread_ts, unfurl_links=False, metadata=m.metadata)
                m.channel, m.ts = reply["channel"], reply["ts"]
            else:
                self._call("chat.update", m.channel, ts=m.ts, text=m.text, blocks=m.blocks)
        except RateLimited:
            m.unsure = False  # refused: nothing went out; the next pass tries again
            return None
        except SlackApiError as exc:
            m.unsure, m.refused = False, str(exc.response.get("error"))
        return m

    # -- recommendation messages -----------------------------------------------------------

    def _due_messages(self, limit: int) -> list[tuple[int, str | None, str | None]]:
        """(id, channel, ts) of recommendations whose message is not out or behind the row."""
        rec = RecommendationRow
        query = (select(rec.id, rec.slack_channel, rec.slack_ts)
                 .where(or_((rec.slack_ts.is_(None))
                            & ((rec.state == RecState.OPEN) | rec.slack_claim_until.is_not(None)),
                            (rec.slack_ts.is_not(None)) & (rec.slack_version < rec.version))))
        channel = func.coalesce(rec.slack_channel, "")
        if held := self.throttle.channels("chat.postMessage"):
            query = query.where(~(rec.slack_ts.is_(None) & channel.in_(held)))
        if held := self.throttle.channels("chat.update"):
            query = query.where(~(rec.slack_ts.is_not(None) & channel.in_(held)))
        if self._failed:
            query = query.where(rec.id.not_in(sorted(self._failed)))
        with read_scope(self.engine) as s:
            return [tuple(row) for row in s.exec(query.order_by(rec.id).limit(limit)).all()]

    def _claim_message(self, m: Message) -> Message | None:
        with session_scope(self.engine) as s:
            if not self._claimed(s, m, RecommendationRow.slack_claim_until):
                return None  # another worker is on it
            row = s.get(RecommendationRow, m.id)
            m.channel, m.ts, m.since = row.slack_channel, row.slack_ts, row.created_at
        m.metadata = {"event_type": POSTED_EVENT, "event_payload": {"id": m.id}}
        return m

    def _adopt_message(self, m: Message) -> Message:
        """A worker that died between posting and writing the ts down left a message: adopt it
        rather than post a second one."""
        if m.ts is None and m.unsure and (found := self._find(m)):
            with session_scope(self.engine) as s:
                s.execute(update(RecommendationRow).where(RecommendationRow.id == m.id)
                          .values(slack_channel=found[0], slack_ts=found[1]))
        m.unsure = False
        return m

    def _render_message(self, m: Message) -> Message | None:
        # Reads only: rendering a storm's message takes a while, and on SQLite a write
        # session would hold the write lock (and a click's decision) for all of it.
        with read_scope(self.engine) as s:
            row = s.get(RecommendationRow, m.id)
            if row.slack_version >= row.version if row.slack_ts else row.state != RecState.OPEN:
                return None  # up to date, or decided before its message went out
            m.version, m.channel, m.ts = row.version, row.slack_channel, row.slack_ts
            m.text, m.blocks = self.render(s, row)
        return m

    def _record_message(self, m: Message) -> Message | None:
        if m.refused:
            self._failed.add(m.id)  # not again in this run
            log.warning("Slack sync of recommendation %s failed: %s", m.id, m.refused)
            return None
        with session_scope(self.engine) as s:
            s.execute(update(RecommendationRow).where(RecommendationRow.id == m.id).values(
                slack_channel=m.channel, slack_ts=m.ts, slack_version=m.version,
                slack_claim_until=None))
        m.claimed = False
        return m

    def render(self, s, rec: RecommendationRow) -> tuple[str, list[dict]]:  # type: ignore[no-untyped-def]
        actions = s.exec(select(ActionRow).where(ActionRow.recommendation_id == rec.id)
                         .order_by(ActionRow.position)).all()
        decisions = s.exec(select(DecisionRow).where(DecisionRow.recommendation_id == rec.id)
                           .order_by(DecisionRow.id)).all()
        fps = rec.body.get("drift_fingerprints", [])[:20]
        drifts = s.exec(select(DriftRow).where(DriftRow.fingerprint.in_(fps))).all() \
            if fps else []
        return render_recommendation(rec, list(actions), list(decisions), self.config,
                                     drifts=list(drifts), now=self.clock())

    # -- notes -----------------------------------------------------------------------------

    def _pending_notes(self, limit: int) -> list[tuple[int, str]]:
        """(id, channel it goes to) of pending notes, leaving out channels under a Retry-After."""
        rec = RecommendationRow
        channel = func.coalesce(SlackNote.channel, rec.slack_channel, "")
        query = (select(SlackNote.id, channel)
                 .join(rec, SlackNote.recommendation_id == rec.id, isouter=True)
                 .where(SlackNote.state == "pending"))
        if held := self.throttle.channels("chat.postMessage"):
            query = query.where(channel.not_in(held))
        with read_scope(self.engine) as s:
            return [(i, c) for i, c in s.exec(query.order_by(SlackNote.id).limit(limit)).all()]

    def _claim_note(self, m: Message) -> Message | None:
        """Claim the note, and read what it says and where it goes."""
        with session_scope(self.engine) as s:
            if not self._claimed(s, m, SlackNote.claim_until, SlackNote.state == "pending"):
                return None
            note = s.get(SlackNote, m.id)
            m.channel, m.thread_ts = note.channel, None
            if note.recommendation_id is not None:
                rec = s.get(RecommendationRow, note.recommendation_id)
                if rec.slack_ts is None:
                    # Its message is not out yet (or a crashed post is being recovered): wait
                    # for it, unless it never will be. (No note can have gone out before it.)
                    waiting = rec.state in (RecState.OPEN, RecState.SNOOZED) \
                        or rec.slack_claim_until is not None
                    note.state = "pending" if waiting else "dead"
                    note.claim_until, m.claimed = None, False
                    return None
                m.channel = m.channel or rec.slack_channel
                m.thread_ts = rec.slack_ts if note.in_thread else None
            m.text, m.blocks = note.text, note.blocks or render_note(note.text)
            m.key, m.since = note.dedupe_key, note.created_at
        m.metadata = {"event_type": NOTE_EVENT, "event_payload": {"key": m.key}}
        return m

    def _adopt_note(self, m: Message) -> Message | None:
        if m.unsure and (found := self._find(m)):
            log.info("note %s was posted by a worker that died: adopted", m.key)
            m.ts = found[1]
            self._record_note(m)
            return None
        return m

    def _record_note(self, m: Message) -> Message | None:
        with session_scope(self.engine) as s:
            note = s.get(SlackNote, m.id)
            if m.refused:
                log.warning("Slack note %s failed: %s", m.id, m.refused)
                note.attempts += 1
                note.state = "dead" if note.attempts >= MAX_NOTE_ATTEMPTS else "pending"
            else:
                note.state, note.ts, note.posted_at = "posted", m.ts, self.clock()
            note.claim_until = None
        m.claimed = False
        return None if m.refused else m
