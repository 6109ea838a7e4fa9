"""Make Slack show what the store says: post new recommendations, edit changed ones, post notes.

The store is the truth and Slack a view of it. A recommendation row carries the version its
message shows (``slack_version``); whenever the row is ahead, the message is edited in place.
No transaction stays open while Slack answers (rate limits can make that seconds): a worker
first claims the row with a short lease (compare-and-set), talks to Slack, then writes down the
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
from datetime import datetime, timedelta
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from sqlalchemy import func, or_, update
from sqlalchemy.engine import Engine
from sqlmodel import select

from bot.blocks import render_note, render_recommendation
from bot.config import AlignbotConfig
from bot.slack_client import without_rate_limit_retries
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
        # Called between messages: the runtime makes it wait while the Slack door answers a
        # burst (a sync pass can run for seconds, rendering and posting one message after
        # another, and the door's event loop shares the interpreter with it).
        self.checkpoint: Callable[[], None] = lambda: None
        self._failed: set[int] = set()  # recommendations whose sync failed in this run

    def run(self, limit: int = 50) -> int:
        """One sync pass; returns how many Slack writes it made."""
        self._failed = set()
        return self._sync_recommendations(limit) + self._post_notes(limit)

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

    # -- recommendation messages -----------------------------------------------------------

    def _due_recommendations(self, limit: int) -> list[int]:
        rec = RecommendationRow
        query = (select(rec.id)
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
            return list(s.exec(query.order_by(rec.id).limit(limit)).all())

    def _sync_recommendations(self, limit: int) -> int:
        writes = 0
        for rec_id in self._due_recommendations(limit):
            self.checkpoint()
            writes += self._sync_recommendation(rec_id)
        return writes

    def _claim_recommendation(self, rec_id: int) -> tuple[bool, bool]:
        """(claimed, recovering): recovering when the last claim was left by a dead worker."""
        now = self.clock()
        rec = RecommendationRow
        with session_scope(self.engine) as s:
            left = s.exec(select(rec.slack_claim_until).where(rec.id == rec_id)).first()
            claimed = s.execute(
                update(rec).where(
                    rec.id == rec_id,
                    (rec.slack_claim_until.is_(None)) | (rec.slack_claim_until < now))
                .values(slack_claim_until=now + CLAIM).returning(rec.id)).first()
        return claimed is not None, left is not None

    def _sync_recommendation(self, rec_id: int) -> int:
        claimed, recovering = self._claim_recommendation(rec_id)
        if not claimed:
            return 0  # another worker is on it
        # True while Slack may hold a message for this row that the row does not name yet.
        unsure = recovering
        try:
            with read_scope(self.engine) as s:
                row = s.get(RecommendationRow, rec_id)
                channel, ts, since = row.slack_channel, row.slack_ts, row.created_at
            if ts is None and recovering:
                # A worker died between posting and writing the ts down: adopt its message
                # rather than post a second one.
                found = self._find_posted(channel, rec_id, since)
                if found:
                    with session_scope(self.engine) as s:
                        s.execute(update(RecommendationRow)
                                  .where(RecommendationRow.id == rec_id)
                                  .values(slack_channel=found[0], slack_ts=found[1]))
            unsure = False
            # Reads only: rendering a storm's message takes a while, and on SQLite a write
            # session would hold the write lock (and a click's decision) for all of it.
            with read_scope(self.engine) as s:
                row = s.get(RecommendationRow, rec_id)
                if row.slack_ts and row.slack_version >= row.version:
                    return 0
                if row.slack_ts is None and row.state != RecState.OPEN:
                    return 0
                version, channel, ts = row.version, row.slack_channel, row.slack_ts
                text, blocks = self.render(s, row)
            try:
                if ts is None:
                    unsure = True
                    reply = self._call(
                        "chat.postMessage", channel, text=text, blocks=blocks,
                        unfurl_links=False,
                        metadata={"event_type": POSTED_EVENT, "event_payload": {"id": rec_id}})
                    channel, ts = reply["channel"], reply["ts"]
                else:
                    self._call("chat.update", channel, ts=ts, text=text, blocks=blocks)
            except RateLimited:
                unsure = False  # refused: nothing went out; the next pass tries again
                return 0
            except SlackApiError as exc:
                unsure = False
                self._failed.add(rec_id)
                log.warning("Slack sync of recommendation %s failed: %s", rec_id,
                            exc.response.get("error"))
                return 0
            with session_scope(self.engine) as s:
                s.execute(update(RecommendationRow).where(RecommendationRow.id == rec_id).values(
                    slack_channel=channel, slack_ts=ts, slack_version=version))
            unsure = False
            return 1
        except PutBack:  # the search was refused or cut short: still unsure, so the next
            return 0     # worker looks again
        finally:
            with session_scope(self.engine) as s:
                s.execute(update(RecommendationRow).where(RecommendationRow.id == rec_id)
                          .values(slack_claim_until=self._released(unsure)))

    def _released(self, unsure: bool) -> datetime | None:
        """The claim to leave: none, or one already past that makes the next worker look first."""
        return self.clock() - _LEFT_BEHIND if unsure else None

    def _find_posted(self, channel: str, rec_id: int, since: datetime,
                     max_pages: int = 5) -> tuple[str, str] | None:
        """(channel, ts) of the message alignbot posted for ``rec_id``, if Slack has one."""
        for page, message in self._messages(
                "conversations.history", channel, f"recommendation {rec_id}", max_pages,
                oldest=f"{since.timestamp() - 60:.6f}"):
            meta = message.get("metadata") or {}
            if meta.get("event_type") == POSTED_EVENT and \
                    str(meta.get("event_payload", {}).get("id")) == str(rec_id):
                return page.get("channel", channel), message["ts"]
        return None

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

    def _post_notes(self, limit: int) -> int:
        writes = 0
        for note_id, channel in self._pending_notes(limit):
            if self.throttle.blocked("chat.postMessage", channel):
                continue  # throttled since the list was read
            self.checkpoint()
            if self._post_note(note_id):
                writes += 1
                # The state of a message goes before the rest of the notes.
                writes += self._sync_recommendations(limit)
        return writes

    def _post_note(self, note_id: int) -> int:
        now = self.clock()
        with session_scope(self.engine) as s:
            left = s.exec(select(SlackNote.claim_until).where(SlackNote.id == note_id)).first()
            claimed = s.execute(
                update(SlackNote).where(
                    SlackNote.id == note_id, SlackNote.state == "pending",
                    (SlackNote.claim_until.is_(None)) | (SlackNote.claim_until < now))
                .values(claim_until=now + CLAIM).returning(SlackNote.id)).first()
            if claimed is None:
                return 0
            note = s.get(SlackNote, note_id)
            channel, thread_ts = note.channel, None
            if note.recommendation_id is not None:
                rec = s.get(RecommendationRow, note.recommendation_id)
                if rec.slack_ts is None:
                    # Its message is not out yet (or a crashed post is being recovered): wait
                    # for it, unless it never will be. (No note can have gone out before it.)
                    waiting = rec.state in (RecState.OPEN, RecState.SNOOZED) \
                        or rec.slack_claim_until is not None
                    note.state = "pending" if waiting else "dead"
                    note.claim_until = None
                    s.add(note)
                    return 0
                channel = channel or rec.slack_channel
                thread_ts = rec.slack_ts if note.in_thread else None
            text, blocks = note.text, note.blocks or render_note(note.text)
            key, since = note.dedupe_key, note.created_at
        # True while Slack may hold this note without the row knowing: a dead worker's claim
        # (left is not None), or a post whose answer never came.
        unsure = left is not None
        try:
            if unsure:
                found = self._find_note(channel, thread_ts, key, since)
                if found:
                    log.info("note %s was posted by a worker that died: adopted", key)
                    self._note_done(note_id, found)
                    unsure = False
                    return 0
            unsure = True
            try:
                reply = self._call(
                    "chat.postMessage", channel, text=text, blocks=blocks, thread_ts=thread_ts,
                    unfurl_links=False,
                    metadata={"event_type": NOTE_EVENT, "event_payload": {"key": key}})
            except RateLimited:
                unsure = False  # refused: nothing went out; the next pass tries again
                raise
            except SlackApiError as exc:
                unsure = False
                log.warning("Slack note %s failed: %s", note_id, exc.response.get("error"))
                with session_scope(self.engine) as s:
                    note = s.get(SlackNote, note_id)
                    note.attempts += 1
                    note.state = "dead" if note.attempts >= MAX_NOTE_ATTEMPTS else "pending"
                    note.claim_until = None
                    s.add(note)
                return 0
            self._note_done(note_id, reply["ts"])
            unsure = False
            return 1
        except PutBack:
            self._release_note(note_id, unsure)
            return 0
        except BaseException:
            self._release_note(note_id, unsure)
            raise

    def _note_done(self, note_id: int, ts: str) -> None:
        with session_scope(self.engine) as s:
            note = s.get(SlackNote, note_id)
            note.state, note.ts, note.posted_at, note.claim_until = \
                "posted", ts, self.clock(), None
            s.add(note)

    def _release_note(self, note_id: int, unsure: bool) -> None:
        with session_scope(self.engine) as s:
            s.execute(update(SlackNote).where(SlackNote.id == note_id, SlackNote.state == "pending")
                      .values(claim_until=self._released(unsure)))

    def _find_note(self, channel: str | None, thread_ts: str | None, key: str,
                   since: datetime) -> str | None:
        """ts of the note posted under ``key``, if Slack has it (in its thread, or the channel)."""
        if channel is None:
            return None
        if thread_ts:
            found = self._messages("conversations.replies", channel, f"note {key}", ts=thread_ts)
        else:
            found = self._messages("conversations.history", channel, f"note {key}",
                                   oldest=f"{since.timestamp() - 60:.6f}")
        for _page, message in found:
            meta = message.get("metadata") or {}
            if meta.get("event_type") == NOTE_EVENT and \
                    (meta.get("event_payload") or {}).get("key") == key:
                return message["ts"]
        return None
