"""Make Slack show what the store says: post new recommendations, edit changed ones, post notes.

The store is the truth and Slack a view of it. A recommendation row carries the version its
message shows (``slack_version``); whenever the row is ahead, the message is edited in place.
No transaction stays open while Slack answers (rate limits can make that seconds): a worker
first claims the row with a short lease (compare-and-set), talks to Slack, then writes down the
result — so two replicas never post the same message, and a crashed worker's claim expires.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from sqlalchemy import or_, update
from sqlalchemy.engine import Engine
from sqlmodel import select

from bot.blocks import render_note, render_recommendation
from bot.config import AlignbotConfig
from store.db import session_scope
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


class SlackSync:
    def __init__(self, engine: Engine, client: WebClient, config: AlignbotConfig, *,
                 clock: Callable[[], datetime] = utcnow):
        self.engine = engine
        self.client = client
        self.config = config
        self.clock = clock

    def run(self, limit: int = 50) -> int:
        """One sync pass; returns how many Slack writes it made."""
        rec = RecommendationRow
        with session_scope(self.engine) as s:
            due = s.exec(
                select(rec.id)
                .where(or_((rec.slack_ts.is_(None)) & ((rec.state == RecState.OPEN)
                                                       | rec.slack_claim_until.is_not(None)),
                           (rec.slack_ts.is_not(None)) & (rec.slack_version < rec.version)))
                .order_by(rec.id).limit(limit)).all()
        writes = sum(self._sync_recommendation(rec_id) for rec_id in due)
        return writes + self._post_notes(limit)

    # -- recommendation messages -----------------------------------------------------------

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
        try:
            with session_scope(self.engine) as s:
                row = s.get(RecommendationRow, rec_id)
                if row.slack_ts is None and recovering:
                    # A worker died between posting and writing the ts down: adopt its message
                    # rather than post a second one.
                    found = self._find_posted(row.slack_channel, rec_id, row.created_at)
                    if found:
                        row.slack_channel, row.slack_ts = found
                        s.add(row)
                if row.slack_ts and row.slack_version >= row.version:
                    return 0
                if row.slack_ts is None and row.state != RecState.OPEN:
                    return 0
                version, channel, ts = row.version, row.slack_channel, row.slack_ts
                text, blocks = self.render(s, row)
            try:
                if ts is None:
                    reply = self.client.chat_postMessage(
                        channel=channel, text=text, blocks=blocks, unfurl_links=False,
                        metadata={"event_type": POSTED_EVENT, "event_payload": {"id": rec_id}})
                    channel, ts = reply["channel"], reply["ts"]
                else:
                    self.client.chat_update(channel=channel, ts=ts, text=text, blocks=blocks)
            except SlackApiError as exc:
                log.warning("Slack sync of recommendation %s failed: %s", rec_id,
                            exc.response.get("error"))
                return 0
            with session_scope(self.engine) as s:
                s.execute(update(RecommendationRow).where(RecommendationRow.id == rec_id).values(
                    slack_channel=channel, slack_ts=ts, slack_version=version))
            return 1
        finally:
            with session_scope(self.engine) as s:
                s.execute(update(RecommendationRow).where(RecommendationRow.id == rec_id)
                          .values(slack_claim_until=None))

    def _find_posted(self, channel: str, rec_id: int, since: datetime,
                     max_pages: int = 5) -> tuple[str, str] | None:
        """(channel, ts) of the message alignbot posted for ``rec_id``, if Slack has one."""
        cursor = None
        for _ in range(max_pages):
            try:
                page = self.client.conversations_history(
                    channel=channel, oldest=f"{since.timestamp() - 60:.6f}", limit=200,
                    include_all_metadata=True, cursor=cursor)
            except SlackApiError as exc:
                log.warning("cannot look for recommendation %s in %s: %s", rec_id, channel,
                            exc.response.get("error"))
                return None
            for message in page.get("messages", []):
                meta = message.get("metadata") or {}
                if meta.get("event_type") == POSTED_EVENT and \
                        str(meta.get("event_payload", {}).get("id")) == str(rec_id):
                    return page.get("channel", channel), message["ts"]
            cursor = (page.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                return None
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

    def _post_notes(self, limit: int) -> int:
        with session_scope(self.engine) as s:
            ids = s.exec(select(SlackNote.id).where(SlackNote.state == "pending")
                         .order_by(SlackNote.id).limit(limit)).all()
        return sum(self._post_note(note_id) for note_id in ids)

    def _post_note(self, note_id: int) -> int:
        now = self.clock()
        with session_scope(self.engine) as s:
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
                    # for it, unless it never will be.
                    waiting = rec.state in (RecState.OPEN, RecState.SNOOZED) \
                        or rec.slack_claim_until is not None
                    note.state = "pending" if waiting else "dead"
                    note.claim_until = None
                    s.add(note)
                    return 0
                channel = channel or rec.slack_channel
                thread_ts = rec.slack_ts if note.in_thread else None
            text, blocks = note.text, note.blocks or render_note(note.text)
        try:
            reply = self.client.chat_postMessage(channel=channel, text=text, blocks=blocks,
                                                 thread_ts=thread_ts, unfurl_links=False)
        except SlackApiError as exc:
            log.warning("Slack note %s failed: %s", note_id, exc.response.get("error"))
            with session_scope(self.engine) as s:
                note = s.get(SlackNote, note_id)
                note.attempts += 1
                note.state = "dead" if note.attempts >= MAX_NOTE_ATTEMPTS else "pending"
                note.claim_until = None
                s.add(note)
            return 0
        with session_scope(self.engine) as s:
            note = s.get(SlackNote, note_id)
            note.state, note.ts, note.posted_at, note.claim_until = \
                "posted", reply["ts"], self.clock(), None
            s.add(note)
        return 1
