"""The Slack inbox's queries: store a click once, hand out abandoned ones, mark them done.

Core statements rather than ORM sessions: the inbox sits on the path of every click's ack, and
a batch of clicks is written in one transaction (group commit).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path

from sqlalchemy import and_, bindparam, delete, select, update
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.sql.elements import ColumnElement

from store.db import make_engine
from store.migrate import upgrade_inbox_file
from store.tables import SlackInboxRow

INBOX = SlackInboxRow.__table__


def open_inbox(database_url: str, main: Engine) -> Engine:
    """Where clicks are stored.

    On PostgreSQL, the bot's database (row locks: a click's insert waits for nobody), through
    connections that skip the pre-ping. On a SQLite file, a file of its own beside it
    (``alignbot.db`` → ``alignbot.inbox.db``), created or upgraded here (its own migrations):
    SQLite has one write lock per file, and a click's ack must not wait for a detection pass
    writing thousands of drifts."""
    if make_url(str(main.url)).get_backend_name() == "postgresql":
        return make_engine(database_url, pre_ping=False)  # a round trip less per batch
    own_file = inbox_url(database_url)
    if own_file == database_url:  # an in-memory database: nothing beside it
        return main
    upgrade_inbox_file(own_file)
    # an acked click exists nowhere else: every commit synced; checkpoints by ``recover``
    return make_engine(own_file, synced_commits=True, manual_checkpoints=True)


def inbox_url(database_url: str) -> str:
    """The inbox's database URL for the bot's ``database_url`` (see ``open_inbox``)."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return database_url
    path = Path(url.database)
    return str(url.set(database=str(path.with_name(f"{path.stem}.inbox{path.suffix or '.db'}"))))


@dataclass(frozen=True)
class InboxItem:
    """One verified request as Slack sent it."""

    delivery_key: str
    content_type: str
    body: str


@dataclass(frozen=True)
class Outcome:
    id: int
    state: str  # done | failed
    error: str | None = None


def record(engine: Engine, items: list[InboxItem], *, now: datetime,
           hold: timedelta) -> list[int | None]:
    """Store the items in one transaction; per item its new row id, or None if stored before.

    The receiving process owns a new row until ``now + hold``; after that any process may
    take it over (see ``claim_abandoned``). One statement per batch, whatever its size, on
    the driver's own cursor: each statement lets other threads take the interpreter, and on
    the ack path every hand-back can cost a scheduler slice; SQLAlchemy's per-row parameter
    handling cost a fifty-click batch 2–3 ms more of the interpreter's time, all of it spent
    while the clicks wait for their ack.
    """
    if not items:
        return []
    fixed = {"state": "pending", "attempts": 1,
             "claim_until": _bound(engine, INBOX.c.claim_until, now + hold),
             "received_at": _bound(engine, INBOX.c.received_at, now)}
    store = _record_postgres if engine.dialect.name == "postgresql" else _record_sqlite
    stored = store(engine, items, fixed)
    # the same body twice in one batch is stored (and handled) once
    return [stored.pop(item.delivery_key, None) for item in items]


# One statement whatever the batch size: the batch's columns as arrays, unnested.
_POSTGRES_INSERT = f"""
INSERT INTO {INBOX.name} (delivery_key, content_type, body, state, attempts, claim_until,
                          received_at)
SELECT key, type, body, %(state)s, %(attempts)s, %(claim_until)s, %(received_at)s
FROM unnest(%(keys)b::text[], %(types)b::text[], %(bodies)b::text[]) AS batch(key, type, body)
ON CONFLICT (delivery_key) DO NOTHING
RETURNING delivery_key, id"""


def _record_postgres(engine: Engine, items: list[InboxItem],
                     fixed: dict[str, object]) -> dict[str, int]:
    """``record`` on PostgreSQL in one round trip: one statement, committed on its own, that
    returns the ids it stored (by delivery key).

    A transaction around several statements cost three more round trips per batch (BEGIN, the
    select of the ids, COMMIT). Measured in the bot during bursts of 50 clicks, alternating:
    a batch took 6–9 ms (1.5–1.9 ms of CPU) against 10–12 ms (3.4–5.1 ms of CPU) before. The
    arrays go in binary (``%b``): psycopg's text format quotes each 9 KB body with a regex,
    0.2 ms apiece.
    """
    params = {**fixed, "keys": [item.delivery_key for item in items],
              "types": [item.content_type for item in items],
              "bodies": [item.body for item in items]}
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        return dict(conn.exec_driver_sql(_POSTGRES_INSERT, params).all())


def _record_sqlite(engine: Engine, items: list[InboxItem],
                   fixed: dict[str, object]) -> dict[str, int]:
    """``record`` on SQLite: one multi-row insert that returns the ids it stored (one per
    chunk, for a batch larger than the build allows parameters in one statement).

    Through the driver's own cursor: building and compiling a select of the ids through
    SQLAlchemy held the interpreter longer than the insert itself. Measured in the bot during
    bursts of 50 clicks, alternating: a batch took 4.6–6.5 ms (1.8–2.7 ms of CPU) against
    6.9–9.0 ms (3.2–4.3 ms of CPU) with an executemany and a select.
    """
    row = (fixed["state"], fixed["attempts"], fixed["claim_until"], fixed["received_at"])
    stored: dict[str, int] = {}
    with engine.begin() as conn:
        driver = conn.connection.driver_connection
        # each row takes seven of the statement's parameters, whose limit depends on the build
        per_insert = max(1, driver.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // 7)
        cursor = driver.cursor()
        try:
            for start in range(0, len(items), per_insert):
                chunk = items[start:start + per_insert]
                params = [value for item in chunk
                          for value in (item.delivery_key, item.content_type, item.body, *row)]
                stored.update(cursor.execute(_sqlite_insert(len(chunk)), params).fetchall())
        finally:
            cursor.close()
    return stored


@cache
def _sqlite_insert(rows: int) -> str:
    """The insert for ``rows`` rows, built once per batch size."""
    return (f"INSERT INTO {INBOX.name} (delivery_key, content_type, body, state, attempts, "
            "claim_until, received_at) VALUES "
            + ", ".join(["(?, ?, ?, ?, ?, ?, ?)"] * rows)
            + " ON CONFLICT (delivery_key) DO NOTHING RETURNING delivery_key, id")


def _bound(engine: Engine, column: ColumnElement, value: object) -> object:
    """``value`` as SQLAlchemy would hand it to the driver for ``column`` (e.g. SQLite's text)."""
    processor = column.type.dialect_impl(engine.dialect).bind_processor(engine.dialect)
    return processor(value) if processor else value


def finish(engine: Engine, outcomes: list[Outcome], *, now: datetime) -> None:
    if not outcomes:
        return
    stmt = (update(INBOX).where(INBOX.c.id == bindparam("row_id"))
            .values(state=bindparam("new_state"), error=bindparam("why"), done_at=now))
    with engine.begin() as conn:
        conn.execute(stmt, [{"row_id": o.id, "new_state": o.state, "why": o.error}
                            for o in outcomes])


def claim_abandoned(engine: Engine, *, now: datetime, hold: timedelta, max_attempts: int,
                    limit: int = 50) -> tuple[list[tuple[int, InboxItem]], list[int]]:
    """Take over pending rows whose owner's hold ran out (it crashed, or handling failed).

    Returns (claimed rows to handle again, ids given up after ``max_attempts``). Each claim is
    a compare-and-set on ``claim_until``, so two processes never take the same row.
    """
    with engine.connect() as conn:
        stale = conn.execute(
            select(INBOX.c.id, INBOX.c.claim_until, INBOX.c.attempts, INBOX.c.delivery_key,
                   INBOX.c.content_type, INBOX.c.body)
            .where(INBOX.c.state == "pending", INBOX.c.claim_until < now)
            .order_by(INBOX.c.id).limit(limit)).all()
    claimed, given_up = [], []
    for row in stale:
        exhausted = row.attempts >= max_attempts
        with engine.begin() as conn:
            changed = conn.execute(
                update(INBOX).where(and_(INBOX.c.id == row.id, INBOX.c.state == "pending",
                                         INBOX.c.claim_until == row.claim_until))
                .values(**({"state": "failed", "done_at": now,
                            "error": f"gave up after {row.attempts} attempts"} if exhausted
                           else {"claim_until": now + hold, "attempts": row.attempts + 1}))
            ).rowcount
        if changed != 1:
            continue  # another process took it first
        if exhausted:
            given_up.append(row.id)
        else:
            claimed.append((row.id, InboxItem(row.delivery_key, row.content_type, row.body)))
    return claimed, given_up


def prune(engine: Engine, *, before: datetime) -> int:
    """Forget handled clicks older than ``before`` (the decisions themselves are kept)."""
    with engine.begin() as conn:
        return conn.execute(delete(INBOX).where(INBOX.c.state != "pending",
                                                INBOX.c.done_at < before)).rowcount
