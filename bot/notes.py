"""Queue a Slack message that must be posted exactly once (see store.tables.SlackNote)."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from store.tables import SlackNote


def add_note(session: Session, recommendation_id: int | None, dedupe_key: str, text: str, *,
             channel: str | None = None, in_thread: bool = True,
             blocks: list | None = None) -> bool:
    """Queue a note unless one with the same key exists; True if this call queued it."""
    if session.exec(select(SlackNote.id).where(SlackNote.dedupe_key == dedupe_key)).first():
        return False
    try:
        with session.begin_nested():
            session.add(SlackNote(dedupe_key=dedupe_key, recommendation_id=recommendation_id,
                                  channel=channel, in_thread=in_thread, text=text,
                                  blocks=blocks or []))
    except IntegrityError:  # a concurrent writer queued it first
        return False
    return True
