"""The Slack inbox: every request the ingress acked, until a worker has handled it.

The ingress stores a batch of requests in one statement (group commit) and acks them; workers
claim rows under a lease exactly as the executor claims outbox rows (``FOR UPDATE SKIP LOCKED``
on PostgreSQL; SQLite's single writer makes the claim atomic). A worker that dies mid-request
leaves its row to be claimed again once the lease runs out.
"""

from __future__ import annotations

import fcntl
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path

from sqlalchemy import bindparam, delete, func, select, update
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.sql.elements import ColumnElement

from store.db import make_engine
from store.migrate import ensure_migrated, upgrade_inbox_file
from store.tables import SlackInboxRow

INBOX = SlackInboxRow.__table__
NOTIFY_CHANNEL = "alignbot_inbox"  # PostgreSQL: stored requests wake listening workers


def open_inbox(database_url: str, main: Engine | None = None) -> Engine:
    """Where Slack's requests are stored.

    On PostgreSQL, the bot's database (row locks: storing a request waits for nobody). On a
    SQLite file, a file of its own beside it (``alignbot.db`` → ``alignbot.inbox.db``), created
    or upgraded here (its own migrations): SQLite has one write lock per file, and an ack must not
    wait for a detection pass writing thousands of drifts. An in-memory database (tests) shares
    ``main``.
    """
    if make_url(database_url).get_backend_name() == "postgresql":
        engine = make_engine(database_url, pre_ping=False)  # a round trip less per batch
        ensure_migrated(engine)
        return engine
    own_file = inbox_url(database_url)
    if own_file == database_url:
        return main if main is not None else make_engine(database_url)
    with open(Path(make_url(own_file).database).with_suffix(".migrating"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # the ingress and the worker start together
        upgrade_inbox_file(own_file)
    return make_engine(own_file, synced_commits=True)  # an acked request exists nowhere else


def inbox_url(database_url: str) -> str:
    """The inbox's database URL for the bot's ``database_url`` (see ``open_inbox``)."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return database_url
    path = Path(url.database)
    return str(url.set(database=str(path.with_name(f"{path.stem}.inbox{path.suffix or '.db'}"))))


@dataclass(frozen=True)
class InboxItem:
    """One verified request as Slack sent it; higher ``priority`` is handled first."""

    delivery_key: str
    content_type: str
    body: str
    priority: int = 0


@dataclass(frozen=True)
class Outcome:
    id: int
    state: str  # done | failed
    error: str | None = None


def record(engine: Engine, items: list[InboxItem], *, now: datetime) -> list[int | None]:
    """Store the items in one statement; per item its new row id, or None if stored before.

    A retried delivery resends the same body, so its key finds the row already there.
    """
    if not items:
        return []
    fixed = {"state": "pending", "attempts": 0,
             "claim_until": _bound(engine, INBOX.c.claim_until, now),
             "received_at": _bound(engine, INBOX.c.received_at, now)}
    store = _record_postgres if engine.dialect.name == "postgresql" else _record_sqlite
    stored = store(engine, items, fixed)
    # the same body twice in one batch is stored (and handled) once
    return [stored.pop(item.delivery_key, None) for item in items]


# One statement whatever the batch size: the batch's columns as arrays, unnested; it wakes
# the listening workers when it stores anything.
_POSTGRES_INSERT = f"""
WITH stored AS (
    INSERT INTO {INBOX.name} (delivery_key, content_type, body, priority, state, attempts,
                              claim_until, received_at)
    SELECT key, type, body, priority, %(state)s, %(attempts)s, %(claim_until)s, %(received_at)s
    FROM unnest(%(keys)b::text[], %(types)b::text[], %(bodies)b::text[], %(priorities)s::int[])
        AS batch(key, type, body, priority)
    ON CONFLICT (delivery_key) DO NOTHING
    RETURNING delivery_key, id)
SELECT delivery_key, id, pg_notify('{NOTIFY_CHANNEL}', '') FROM stored"""


def _record_postgres(engine: Engine, items: list[InboxItem],
                     fixed: dict[str, object]) -> dict[str, int]:
    params = {**fixed, "keys": [item.delivery_key for item in items],
              "types": [item.content_type for item in items],
              "bodies": [item.body for item in items],
              "priorities": [item.priority for item in items]}
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        return {key: row_id for key, row_id, _ in conn.exec_driver_sql(_POSTGRES_INSERT, params)}


def _record_sqlite(engine: Engine, items: list[InboxItem],
                   fixed: dict[str, object]) -> dict[str, int]:
    row = (fixed["state"], fixed["attempts"], fixed["claim_until"], fixed["received_at"])
    stored: dict[str, int] = {}
    with engine.begin() as conn:
        driver = conn.connection.driver_connection
        # each row takes eight of the statement's parameters, whose limit depends on the build
        per_insert = max(1, driver.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // 8)
        cursor = driver.cursor()
        try:
            for start in range(0, len(items), per_insert):
                chunk = items[start:start + per_insert]
                params = [value for item in chunk for value in (
                    item.delivery_key, item.content_type, item.body, item.priority, *row)]
                stored.update(cursor.execute(_sqlite_insert(len(chunk)), params).fetchall())
        finally:
            cursor.close()
    return stored


@cache
def _sqlite_insert(rows: int) -> str:
    return (f"INSERT INTO {INBOX.name} (delivery_key, content_type, body, priority, state, "
            "attempts, claim_until, received_at) VALUES "
            + ", ".join(["(?, ?, ?, ?, ?, ?, ?, ?)"] * rows)
            + " ON CONFLICT (delivery_key) DO NOTHING RETURNING delivery_key, id")


def _bound(engine: Engine, column: ColumnElement, value: object) -> object:
    """``value`` as SQLAlchemy would hand it to the driver for ``column`` (e.g. SQLite's text)."""
    processor = column.type.dialect_impl(engine.dialect).bind_processor(engine.dialect)
    return processor(value) if processor else value


@dataclass(frozen=True)
class Claimed:
    id: int
    attempts: int
    item: InboxItem


def claim(engine: Engine, *, now: datetime, lease: timedelta, limit: int = 1) -> list[Claimed]:
    """Take the most urgent requests waiting (the oldest first among equals) until
    ``now + lease``: new ones, and those whose worker died or failed before finishing."""
    ready = (select(INBOX.c.id)
             .where(INBOX.c.state == "pending", INBOX.c.claim_until <= now)
             .order_by(INBOX.c.priority.desc(), INBOX.c.id).limit(limit)
             .with_for_update(skip_locked=True))
    stmt = (update(INBOX).where(INBOX.c.id.in_(ready.scalar_subquery()))
            .values(claim_until=now + lease, attempts=INBOX.c.attempts + 1)
            .returning(INBOX.c.id, INBOX.c.attempts, INBOX.c.delivery_key,
                       INBOX.c.content_type, INBOX.c.body, INBOX.c.priority))
    with engine.begin() as conn:
        rows = conn.execute(stmt).all()
    return sorted((Claimed(r.id, r.attempts, InboxItem(r.delivery_key, r.content_type, r.body,
                                                       r.priority)) for r in rows),
                  key=lambda c: (-c.item.priority, c.id))


def retry_at(engine: Engine, row_id: int, when: datetime) -> None:
    """Leave a request whose handling failed to be claimed again at ``when``."""
    with engine.begin() as conn:
        conn.execute(update(INBOX).where(INBOX.c.id == row_id, INBOX.c.state == "pending")
                     .values(claim_until=when))


def finish(engine: Engine, outcomes: list[Outcome], *, now: datetime) -> None:
    if not outcomes:
        return
    stmt = (update(INBOX).where(INBOX.c.id == bindparam("row_id"))
            .values(state=bindparam("new_state"), error=bindparam("why"), done_at=now))
    with engine.begin() as conn:
        conn.execute(stmt, [{"row_id": o.id, "new_state": o.state, "why": o.error}
                            for o in outcomes])


def waiting(engine: Engine) -> int:
    """How many stored requests no worker has finished yet."""
    with engine.connect() as conn:
        return conn.execute(select(func.count()).where(INBOX.c.state == "pending")).scalar_one()


def prune(engine: Engine, *, before: datetime) -> int:
    """Forget handled requests older than ``before`` (the decisions themselves are kept)."""
    with engine.begin() as conn:
        return conn.execute(delete(INBOX).where(INBOX.c.state != "pending",
                                                INBOX.c.done_at < before)).rowcount
