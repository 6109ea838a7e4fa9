"""The Slack inbox on SQLite and PostgreSQL: an acked request is kept until a worker has handled
it, exactly once, the most urgent first, however many workers claim at once."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event, select

from bot.inbox_worker import InboxWorker
from store import inbox
from store.db import make_engine, session_scope
from store.inbox import INBOX, InboxItem, Outcome, open_inbox
from store.migrate import upgrade
from store.types import utcnow
from tests.support.waiting import wait_until

FORM = "application/x-www-form-urlencoded"
LEASE = timedelta(seconds=30)


def _body(n: int) -> str:
    # Slack sends UTF-8 (a user's name, a note with an accent): it must come back as it was.
    return f'payload={{"type":"block_actions","n":{n},"name":"Zoë Ørsted"}}'


def _item(n: int, priority: int = 0) -> InboxItem:
    return InboxItem(f"key-{n}", FORM, _body(n), priority)


def _rows(engine) -> list:
    with engine.connect() as conn:
        return conn.execute(select(INBOX).order_by(INBOX.c.id)).all()


@pytest.fixture
def engine(db_url):
    opened = open_inbox(db_url, make_engine(db_url))
    yield opened
    opened.dispose()


class Counting:
    """A handler that counts what it was given and answers as told."""

    def __init__(self, answer: bool = True, fails_with: Exception | None = None):
        self.calls: Counter[str] = Counter()
        self.answer = answer
        self.fails_with = fails_with
        self.lock = threading.Lock()

    def __call__(self, body: str, content_type: str) -> bool:
        assert content_type == FORM
        with self.lock:
            self.calls[body] += 1
        if self.fails_with is not None:
            raise self.fails_with
        return self.answer


# -- record -----------------------------------------------------------------------------------

def test_record_gives_an_id_for_each_new_request_and_none_for_a_repeat(engine):
    now = datetime(2026, 11, 27, 9, 30, 15, 123456, tzinfo=UTC)
    first, second = _item(1), _item(2, priority=1)
    ids = inbox.record(engine, [first, second, first], now=now)
    assert ids[0] is not None and ids[1] is not None and ids[0] != ids[1]
    assert ids[2] is None  # the same delivery twice in one batch: stored and handled once
    again = inbox.record(engine, [second, _item(3)], now=now + timedelta(seconds=1))
    assert again[0] is None and again[1] is not None  # Slack's retry of a stored request: none
    assert inbox.record(engine, [], now=now) == []

    rows = {r.id: r for r in _rows(engine)}
    assert len(rows) == 3
    row = rows[ids[0]]
    assert row.body == _body(1) and row.content_type == FORM  # as it came (UTF-8)
    assert (row.state, row.attempts, row.priority) == ("pending", 0, 0)
    assert row.received_at == now and row.claim_until == now  # claimable at once
    assert rows[ids[1]].priority == 1
    assert rows[again[1]].received_at == now + timedelta(seconds=1)
    assert inbox.waiting(engine) == 3


def test_record_stores_a_burst_larger_than_one_statement_allows(tmp_path):
    """SQLite builds differ in how many parameters a statement takes; a burst is split to fit."""
    url = f"sqlite:///{tmp_path / 'alignbot.db'}"
    engine = open_inbox(url, make_engine(url))
    event.listen(engine, "connect", lambda dbapi, _: dbapi.setlimit(
        sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 70))  # eight rows' worth per statement
    stored = inbox.record(engine, [_item(n) for n in range(25)], now=utcnow())
    assert None not in stored and len(set(stored)) == 25
    assert [r.body for r in _rows(engine)] == [_body(n) for n in range(25)]


# -- claim ------------------------------------------------------------------------------------

def test_claim_hands_out_the_most_urgent_first_then_the_oldest(engine):
    now = utcnow()
    priorities = {0: 0, 1: 0, 2: 1, 3: 0, 4: 1, 5: 0}
    for n, priority in priorities.items():  # one at a time: ids in arrival order
        inbox.record(engine, [_item(n, priority)], now=now)
    order = [c.item.body for c in inbox.claim(engine, now=now, lease=LEASE, limit=3)]
    order += [c.item.body for c in inbox.claim(engine, now=now, lease=LEASE, limit=10)]
    assert order == [_body(n) for n in (2, 4, 0, 1, 3, 5)]
    assert inbox.claim(engine, now=now, lease=LEASE, limit=10) == []  # all taken


def test_a_worker_handles_the_clicks_that_open_a_modal_before_those_waiting_ahead(engine):
    now = utcnow()
    for n in range(10):
        inbox.record(engine, [_item(n, priority=1 if n in (5, 9) else 0)], now=now)
    seen: list[str] = []
    worker = InboxWorker(engine, lambda body, _: seen.append(body) or True, threads=1)
    try:
        while worker.step():
            pass
    finally:
        worker.stop()
    assert seen == [_body(n) for n in (5, 9, 0, 1, 2, 3, 4, 6, 7, 8)]


def test_claimers_at_once_never_get_the_same_row(engine, db_url):
    """Workers on two engines (two processes) with several threads each, all claiming at once."""
    other = open_inbox(db_url, make_engine(db_url))
    now = utcnow()
    ids = inbox.record(engine, [_item(n) for n in range(50)], now=now)
    claimers = 10
    start = threading.Barrier(claimers)
    taken: list[list[int]] = [[] for _ in range(claimers)]
    errors: list[BaseException] = []

    def claim_until_none_left(i: int) -> None:
        mine = (engine, other)[i % 2]
        try:
            start.wait(10)
            while claimed := inbox.claim(mine, now=now, lease=LEASE, limit=3):
                taken[i].extend(c.id for c in claimed)
        except BaseException as exc:  # surfaced below, not lost in the thread
            errors.append(exc)

    threads = [threading.Thread(target=claim_until_none_left, args=(i,)) for i in range(claimers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    other.dispose()
    assert errors == []
    everything = [row_id for mine in taken for row_id in mine]
    assert sorted(everything) == sorted(ids)  # each row exactly once
    assert {r.attempts for r in _rows(engine)} == {1}


def test_a_claimed_row_is_claimed_again_only_once_its_lease_runs_out(engine):
    now = utcnow()
    [row_id] = inbox.record(engine, [_item(1)], now=now)
    [first] = inbox.claim(engine, now=now, lease=LEASE)
    assert (first.id, first.attempts) == (row_id, 1)
    assert inbox.claim(engine, now=now + LEASE - timedelta(seconds=1), lease=LEASE) == []
    [again] = inbox.claim(engine, now=now + LEASE, lease=LEASE)  # its worker died
    assert (again.id, again.attempts, again.item) == (row_id, 2, first.item)
    inbox.finish(engine, [Outcome(row_id, "done")], now=now + LEASE)
    assert inbox.claim(engine, now=now + 10 * LEASE, lease=LEASE) == []  # done is done
    assert inbox.waiting(engine) == 0


def test_a_request_whose_worker_died_is_handled_by_another(engine):
    lease = timedelta(milliseconds=300)
    inbox.record(engine, [_item(1)], now=utcnow())
    assert len(inbox.claim(engine, now=utcnow(), lease=lease)) == 1  # ... and then it crashed
    handler = Counting()
    survivor = InboxWorker(engine, handler, lease=lease)
    try:
        assert survivor.step() == 0  # still within the dead worker's lease
        wait_until(survivor.step, 5, "the lease never ran out", every=0.05)
    finally:
        survivor.stop()
    assert handler.calls == Counter({_body(1): 1})
    [row] = _rows(engine)
    assert (row.state, row.attempts) == ("done", 2)


# -- the worker -------------------------------------------------------------------------------

def test_a_worker_handles_fifty_stored_requests_exactly_once_each(engine):
    handler = Counting()
    worker = InboxWorker(engine, handler, threads=8, poll=0.05).start()
    try:
        items = [_item(n) for n in range(50)]
        for start in range(0, 50, 10):  # bursts arriving while the worker works
            inbox.record(engine, items[start:start + 10] + items[:2], now=utcnow())
        wait_until(lambda: sum(handler.calls.values()) >= 50 and worker.waiting() == 0, 20,
                   "the worker did not finish the stored requests", every=0.05)
    finally:
        worker.stop()
    assert handler.calls == Counter({item.body: 1 for item in items})
    assert {r.state for r in _rows(engine)} == {"done"}


@pytest.mark.parametrize("failing", [{"answer": False}, {"fails_with": RuntimeError("boom")}],
                         ids=["says-not-handled", "raises"])
def test_a_request_that_keeps_failing_is_given_up_after_bounded_attempts(engine, failing):
    handler = Counting(**failing)
    inbox.record(engine, [_item(7)], now=utcnow())
    worker = InboxWorker(engine, handler, retry_after=timedelta(0))
    try:
        for _ in range(InboxWorker.MAX_ATTEMPTS + 3):
            worker.step()
    finally:
        worker.stop()
    assert handler.calls == Counter({_body(7): InboxWorker.MAX_ATTEMPTS})
    [row] = _rows(engine)
    assert row.state == "failed" and row.attempts == InboxWorker.MAX_ATTEMPTS
    assert f"gave up after {InboxWorker.MAX_ATTEMPTS} attempts" in row.error
    assert worker.waiting() == 0


def test_a_failed_attempt_is_retried_later_not_at_once(engine):
    inbox.record(engine, [_item(1)], now=utcnow())
    flaky = Counting(answer=False)
    worker = InboxWorker(engine, flaky, retry_after=timedelta(minutes=5))
    try:
        assert worker.step() == 1
        assert worker.step() == 0  # waiting out its retry delay
    finally:
        worker.stop()
    [row] = _rows(engine)
    assert row.state == "pending" and row.claim_until > utcnow() + timedelta(minutes=4)


def test_prune_forgets_handled_requests_but_never_pending_ones(engine):
    long_ago = utcnow() - timedelta(days=30)
    done, failed, pending, recent = inbox.record(engine, [_item(n) for n in range(4)], now=long_ago)
    inbox.finish(engine, [Outcome(done, "done"), Outcome(failed, "failed", "gave up")],
                 now=long_ago)
    inbox.finish(engine, [Outcome(recent, "done")], now=utcnow())
    assert inbox.prune(engine, before=utcnow() - timedelta(days=7)) == 2
    assert [r.id for r in _rows(engine)] == [pending, recent]


# -- PostgreSQL -------------------------------------------------------------------------------

@pytest.fixture
def postgres_url(postgres_server) -> str:
    url = postgres_server.create_database(f"inbox_{os.getpid()}_{time.monotonic_ns()}")
    upgrade(url)
    return url


@pytest.mark.postgres
def test_on_postgresql_a_stored_request_wakes_a_listening_worker_at_once(postgres_url):
    engine = open_inbox(postgres_url, make_engine(postgres_url))
    handled = threading.Event()
    worker = InboxWorker(engine, lambda *_: handled.set() or True, poll=30).start()
    try:
        def listening() -> bool:
            with engine.connect() as conn:
                return bool(conn.exec_driver_sql(
                    "SELECT 1 FROM pg_stat_activity WHERE query LIKE 'LISTEN %%'").first())

        wait_until(listening, 10, "the worker never listened", every=0.05)
        time.sleep(0.2)  # the claimer's first look (nothing there) is over: it waits its 30 s
        inbox.record(engine, [_item(1)], now=utcnow())
        started = time.monotonic()
        assert handled.wait(5), "not woken: the worker would have waited for its 30 s poll"
        assert time.monotonic() - started < 1.0
    finally:
        worker.stop()
        engine.dispose()


@pytest.mark.postgres
def test_on_postgresql_the_inbox_is_the_bots_database(postgres_url):
    main = make_engine(postgres_url)
    assert open_inbox(postgres_url, main).url == main.url


# -- SQLite -----------------------------------------------------------------------------------

def test_on_sqlite_a_request_is_stored_while_the_bot_holds_its_write_lock(tmp_path):
    """SQLite has one write lock per file: the inbox has its own file, so a detection pass
    writing thousands of drifts cannot hold an ack past Slack's 3 s."""
    url = f"sqlite:///{tmp_path / 'alignbot.db'}"
    upgrade(url)
    main = make_engine(url)
    inbox_engine = open_inbox(url, main)
    assert (tmp_path / "alignbot.inbox.db").exists()
    holding, release = threading.Event(), threading.Event()

    def long_write() -> None:
        with session_scope(main) as s:  # BEGIN IMMEDIATE: the main file's write lock
            s.connection().exec_driver_sql("SELECT count(*) FROM slack_inbox").all()
            holding.set()
            release.wait(15)

    writer = threading.Thread(target=long_write)
    writer.start()
    try:
        assert holding.wait(5)
        started = time.monotonic()
        inbox.record(inbox_engine, [_item(1)], now=utcnow())
        assert time.monotonic() - started < 2.0  # not the 10 s busy timeout of the main file
        assert len(_rows(inbox_engine)) == 1
    finally:
        release.set()
        writer.join()


def _pragma(engine, statement: str) -> tuple:  # type: ignore[no-untyped-def]
    with engine.connect() as connection:
        return connection.connection.driver_connection.execute(statement).fetchone()


def test_on_sqlite_a_stored_request_is_synced_to_disk_before_its_ack(tmp_path):
    """Slack does not resend an acked request, so its commit must outlive a power cut, not just
    a crash of the process; the bot's own file keeps WAL's cheaper unsynced commits."""
    url = f"sqlite:///{tmp_path / 'alignbot.db'}"
    main = make_engine(url)
    inbox_engine = open_inbox(url, main)
    assert _pragma(inbox_engine, "PRAGMA synchronous") == (2,)  # FULL: every commit synced
    assert _pragma(main, "PRAGMA synchronous") == (1,)  # NORMAL


# The inbox table as files made before the inbox had migrations hold it (no priority).
_BEFORE_MIGRATIONS = """
CREATE TABLE slack_inbox (
    id INTEGER NOT NULL PRIMARY KEY, delivery_key VARCHAR(64) NOT NULL UNIQUE,
    content_type VARCHAR(80) NOT NULL, body VARCHAR NOT NULL, state VARCHAR(16) NOT NULL,
    attempts INTEGER NOT NULL, claim_until DATETIME NOT NULL, error VARCHAR,
    received_at DATETIME NOT NULL, done_at DATETIME)"""


def test_the_sqlite_inbox_file_follows_its_own_migrations(tmp_path):
    """A new inbox file is at its head revision; one made before the inbox had migrations keeps
    its pending requests; one written by a newer alignbot is refused with what to do."""
    from alembic.script import ScriptDirectory

    from store.inbox import inbox_url
    from store.migrate import INBOX_MIGRATIONS, NotMigratedError, alembic_config, current_revision

    head = ScriptDirectory.from_config(alembic_config("sqlite://", INBOX_MIGRATIONS)).get_current_head()
    url = f"sqlite:///{tmp_path / 'new' / 'alignbot.db'}"
    fresh = open_inbox(url, make_engine(url))
    assert current_revision(fresh) == head

    url = f"sqlite:///{tmp_path / 'old' / 'alignbot.db'}"
    made_the_old_way = make_engine(inbox_url(url))
    with made_the_old_way.begin() as conn:
        conn.exec_driver_sql(_BEFORE_MIGRATIONS)
        conn.exec_driver_sql(
            "INSERT INTO slack_inbox (delivery_key, content_type, body, state, attempts, "
            "claim_until, received_at) VALUES ('k1', ?, ?, 'pending', 0, "
            "'2026-11-27 09:00:00.000000', '2026-11-27 09:00:00.000000')", (FORM, _body(1)))
    made_the_old_way.dispose()
    adopted = open_inbox(url, make_engine(url))
    assert current_revision(adopted) == head
    [kept] = inbox.claim(adopted, now=utcnow(), lease=LEASE)  # still there, and claimable
    assert (kept.item.body, kept.item.priority) == (_body(1), 0)

    with sqlite3.connect(tmp_path / "old" / "alignbot.inbox.db") as db:
        db.execute("UPDATE alembic_version SET version_num = 'i9999'")
    with pytest.raises(NotMigratedError, match="alignbot.inbox.db has a schema this alignbot"):
        open_inbox(url, make_engine(url))
