"""Make Slack show what the store says: post new recommendations, edit changed ones, post notes.

The store is the truth and Slack a view of it. A recommendation row carries the version its
message shows (``slack_version``); whenever the row is ahead, the message is edited in place.
Posting happens under the row's lock so two replicas cannot both post the same message.
"""

from __future__ import annotations

import logging
from datetime import datetime

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from sqlalchemy import or_
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from bot.blocks import render_note, render_recommendation
from bot.config import AlignbotConfig
from store.db import session_scope
from store.tables import ActionRow, DecisionRow, RecommendationRow, RecState, SlackNote
from store.types import utcnow

log = logging.getLogger(__name__)
MAX_NOTE_ATTEMPTS = 5


class SlackSync:
    def __init__(self, engine: Engine, client: WebClient, config: AlignbotConfig):
        self.engine = engine
        self.client = client
        self.config = config

    def run(self, limit: int = 50) -> int:
        """One sync pass; returns how many Slack writes it made."""
        writes = 0
        with session_scope(self.engine) as s:
            due = s.exec(
                select(RecommendationRow.id)
                .where(or_(
                    (RecommendationRow.slack_ts.is_(None))
                    & (RecommendationRow.state == RecState.OPEN),
                    (RecommendationRow.slack_ts.is_not(None))
                    & (RecommendationRow.slack_version < RecommendationRow.version)))
                .order_by(RecommendationRow.id).limit(limit)).all()
        for rec_id in due:
            writes += self._sync_recommendation(rec_id)
        writes += self._post_notes(limit)
        return writes

    def _sync_recommendation(self, rec_id: int) -> int:
        with session_scope(self.engine) as s:
            rec = s.exec(select(RecommendationRow).where(RecommendationRow.id == rec_id)
                         .with_for_update()).one()
            if rec.slack_ts and rec.slack_version >= rec.version:
                return 0  # another worker got here first
            text, blocks = self.render(s, rec)
            try:
                if rec.slack_ts is None:
                    reply = self.client.chat_postMessage(
                        channel=rec.slack_channel, text=text, blocks=blocks, unfurl_links=False,
                        metadata={"event_type": "alignbot_recommendation",
                                  "event_payload": {"id": rec.id}})
                    rec.slack_channel, rec.slack_ts = reply["channel"], reply["ts"]
                else:
                    self.client.chat_update(channel=rec.slack_channel, ts=rec.slack_ts,
                                            text=text, blocks=blocks)
            except SlackApiError as exc:
                log.warning("Slack sync of recommendation %s failed: %s", rec_id,
                            exc.response.get("error"))
                return 0
            rec.slack_version = rec.version
            s.add(rec)
            return 1

    def render(self, s: Session, rec: RecommendationRow) -> tuple[str, list[dict]]:
        actions = s.exec(select(ActionRow).where(ActionRow.recommendation_id == rec.id)
                         .order_by(ActionRow.position)).all()
        decisions = s.exec(select(DecisionRow).where(DecisionRow.recommendation_id == rec.id)
                           .order_by(DecisionRow.id)).all()
        return render_recommendation(rec, list(actions), list(decisions), self.config)

    def _post_notes(self, limit: int) -> int:
        writes = 0
        with session_scope(self.engine) as s:
            ids = s.exec(select(SlackNote.id).where(SlackNote.state == "pending")
                         .order_by(SlackNote.id).limit(limit)).all()
        for note_id in ids:
            writes += self._post_note(note_id)
        return writes

    def _post_note(self, note_id: int) -> int:
        with session_scope(self.engine) as s:
            note = s.exec(select(SlackNote).where(SlackNote.id == note_id)
                          .with_for_update()).one()
            if note.state != "pending":
                return 0
            channel, thread_ts = note.channel, None
            if note.recommendation_id is not None:
                rec = s.get(RecommendationRow, note.recommendation_id)
                if rec.slack_ts is None:
                    if rec.state in (RecState.OPEN, RecState.SNOOZED):
                        return 0  # its message is not out yet; post the note after it
                    note.state = "dead"  # never shown in Slack: nothing to thread under
                    s.add(note)
                    return 0
                channel = channel or rec.slack_channel
                thread_ts = rec.slack_ts if note.in_thread else None
            try:
                reply = self.client.chat_postMessage(
                    channel=channel, text=note.text, blocks=note.blocks or render_note(note.text),
                    thread_ts=thread_ts, unfurl_links=False)
            except SlackApiError as exc:
                note.attempts += 1
                if note.attempts >= MAX_NOTE_ATTEMPTS:
                    note.state = "dead"
                log.warning("Slack note %s failed: %s", note_id, exc.response.get("error"))
                s.add(note)
                return 0
            note.state, note.ts, note.posted_at = "posted", reply["ts"], _now()
            s.add(note)
            return 1


def _now() -> datetime:
    return utcnow()
