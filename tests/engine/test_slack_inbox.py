"""The Slack door's inbox on SQLite and PostgreSQL: a click acked is a click kept.

Each test plays the part of the HTTP door (``store`` awaits the durable write, as the request
handler does before answering 200) against a real database.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from datetime import timedelta
from urllib.parse import urlencode

import pytest
from sqlmodel import select

from bot.slack_inbox import SlackInbox, classify
from store.db import make_engine, session_scope
from store.tables import SlackInboxRow
from tests.support.waiting import wait_until

FORM = "application/x-www-form-urlencoded"


def _click(n: int) -> bytes:
    # Slack sends UTF-8 (a user's name, a note with an accent): it must come back byte for byte.
    return f'payload={{"type":"block_actions","n":{n},"name":"Zoë Ørsted"}}'.encode()


def _rows(engine) -> list[SlackInboxRow]:
    with session_scope(engine) as s:
        return list(s.exec(select(SlackInboxRow).order_by(SlackInboxRow.id)))


def _wait(predicate, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := predicate():
            return result
        time.sleep(0.02)
    raise AssertionError("condition not met in time")


class Recorder:
    """A handler that records what it was given and answers as told."""

    def __init__(self, answer: bool = True, gate: threading.Event | None = None):
        self.seen: list[str] = []
        self.answer = answer
        self.gate = gate
        self.lock = threading.Lock()

    def __call__(self, body: str, content_type: str) -> bool:
        if self.gate is not None:
            self.gate.wait(30)
        with self.lock:
            self.seen.append(body)
        return self.answer


async def _store_all(inbox: SlackInbox, bodies: list[bytes]) -> None:
    await asyncio.gather(*(inbox.store(b, FORM) for b in bodies))


def test_a_batch_is_stored_with_an_id_for_each_new_click_and_none_for_a_repeat(db_url):
    from datetime import UTC, datetime

    from bot.slack_inbox import delivery_key
    from store import inbox as queries
    from store.inbox import InboxItem

    engine = make_engine(db_url)
    now = datetime(2026, 11, 27, 9, 30, 15, 123456, tzinfo=UTC)
    first, second = _click(1), _click(2)
    items = [InboxItem(delivery_key(b), FORM, b.decode()) for b in (first, second, first)]
    ids = queries.record(engine, items, now=now, hold=timedelta(seconds=15))
    assert ids[0] is not None and ids[1] is not None and ids[0] != ids[1]
    assert ids[2] is None  # the same delivery twice in one batch: stored and handled once
    again = queries.record(engine, items[1:2] + [InboxItem(delivery_key(_click(3)), FORM,
                                                           _click(3).decode())],
                           now=now + timedelta(seconds=1), hold=timedelta(seconds=15))
    assert again[0] is None and again[1] is not None  # Slack's retry of a stored click: none

    if engine.dialect.name == "sqlite":  # a build allowing few parameters per statement
        import sqlite3

        from sqlalchemy import event

        engine.dispose()
        event.listen(engine, "connect", lambda dbapi, _: dbapi.setlimit(
            sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 70))
    many = [InboxItem(delivery_key(_click(n)), FORM, _click(n).decode()) for n in range(10, 35)]
    stored = queries.record(engine, many, now=now, hold=timedelta(seconds=15))
    assert None not in stored and len(set(stored)) == 25  # ten rows' worth per statement

    rows = {r.id: r for r in _rows(engine) if r.id not in stored}
    assert len(rows) == 3
    row = rows[ids[0]]
    assert row.body == first.decode() and row.content_type == FORM  # byte for byte (UTF-8)
    assert (row.state, row.attempts) == ("pending", 1)
    assert row.received_at == now and row.claim_until == now + timedelta(seconds=15)
    assert rows[again[1]].received_at == now + timedelta(seconds=1)


def test_fifty_concurrent_clicks_are_stored_once_each_and_handled_once_each(db_url):
    engine = make_engine(db_url)
    handler = Recorder()
    inbox = SlackInbox(engine, handler)
    try:
        bodies = [_click(i) for i in range(50)]
        # Slack retrying five of them (the same body again) must not make them count twice.
        asyncio.run(_store_all(inbox, bodies + bodies[:5]))
        rows = _rows(engine)
        assert len(rows) == 50  # durable by the time every store() returned
        _wait(lambda: all(r.state == "done" for r in _rows(engine)))
        assert sorted(handler.seen) == sorted(b.decode() for b in bodies)
    finally:
        inbox.stop()


def test_clicks_that_open_a_modal_are_handled_before_the_clicks_waiting_ahead(db_url):
    engine = make_engine(db_url)
    busy = threading.Event()
    handler = Recorder(gate=threading.Event())
    inbox = SlackInbox(engine, lambda body, kind: busy.set() or handler(body, kind), workers=1,
                       urgent=lambda body, _kind: '"n":9' in body or '"n":5' in body)
    try:
        asyncio.run(_store_all(inbox, [_click(0)]))
        _wait(busy.is_set)  # the only worker is handling click 0; the rest queue behind it
        for n in range(1, 10):
            asyncio.run(_store_all(inbox, [_click(n)]))
        _wait(lambda: inbox.waiting() == 9)  # (queued just after the ack)
        handler.gate.set()
        _wait(lambda: len(handler.seen) == 10)
        order = [json.loads(seen.removeprefix("payload="))["n"] for seen in handler.seen]
        assert order == [0, 5, 9, 1, 2, 3, 4, 6, 7, 8]
        _wait(lambda: {r.state for r in _rows(engine)} == {"done"})
    finally:
        inbox.stop()


def test_a_click_whose_process_died_is_handled_by_another(db_url):
    engine = make_engine(db_url)
    stuck = threading.Event()  # the first process never finishes: it "crashed" mid-handling
    dead = SlackInbox(engine, Recorder(gate=stuck), hold=timedelta(milliseconds=300))
    survivor_handler = Recorder()
    survivor = SlackInbox(engine, survivor_handler, hold=timedelta(milliseconds=300))
    try:
        asyncio.run(_store_all(dead, [_click(1)]))
        assert survivor.recover() == 0  # still within the first process's hold
        time.sleep(0.4)
        assert survivor.recover() == 1
        assert survivor_handler.seen == [_click(1).decode()]
        row = _rows(engine)[0]
        assert (row.state, row.attempts) == ("done", 2)
        assert survivor.recover() == 0  # done rows are not taken again
    finally:
        stuck.set()
        dead.stop()
        survivor.stop()


def test_a_click_that_keeps_failing_is_given_up_after_bounded_attempts(db_url):
    engine = make_engine(db_url)
    failing = Recorder(answer=False)
    inbox = SlackInbox(engine, failing, hold=timedelta(milliseconds=50))
    try:
        asyncio.run(_store_all(inbox, [_click(7)]))
        _wait(lambda: len(failing.seen) == 1)
        for _ in range(10):
            time.sleep(0.06)
            inbox.recover()
        row = _rows(engine)[0]
        assert row.state == "failed" and "gave up after 5 attempts" in row.error
        assert len(failing.seen) == SlackInbox.MAX_ATTEMPTS
    finally:
        inbox.stop()


def test_two_processes_recovering_at_once_take_each_click_once(db_url):
    engine = make_engine(db_url)
    stuck = threading.Event()
    dead = SlackInbox(engine, Recorder(gate=stuck), hold=timedelta(milliseconds=100))
    handlers = [Recorder(), Recorder()]
    others = [SlackInbox(engine, h, hold=timedelta(seconds=30)) for h in handlers]
    try:
        asyncio.run(_store_all(dead, [_click(i) for i in range(20)]))
        time.sleep(0.2)
        threads = [threading.Thread(target=o.recover) for o in others]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        taken = handlers[0].seen + handlers[1].seen
        assert sorted(taken) == sorted(_click(i).decode() for i in range(20))
    finally:
        stuck.set()
        for inbox in [dead, *others]:
            inbox.stop()


def test_a_store_that_cannot_write_fails_the_ack_instead_of_pretending(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'no-tables.db'}")  # never migrated
    inbox = SlackInbox(engine, Recorder())
    try:
        with pytest.raises(Exception, match="slack_inbox"):
            asyncio.run(_store_all(inbox, [_click(1)]))
    finally:
        inbox.stop()


@pytest.mark.parametrize(("body", "content_type", "kind"), [
    (_click(1), FORM, "block_actions"),
    (b"command=%2Fdrift&text=mine&user_id=U1", FORM, "slash_command"),
    (b'payload={"type":"view_submission"}', FORM, "other"),
    (b'{"type":"event_callback"}', "application/json", "other"),
    (b"payload=not-json", FORM, "other"),
    (b"payload=%FF%FE", FORM, "other"),
    (b"\xff\xfe", FORM, "other"),
    (b"payload=" + b"[" * 100_000, FORM, "other"),  # past the recursion limit: Bolt refuses it
    # as Slack sends them: form-encoded JSON, the type first or anywhere
    (urlencode({"payload": json.dumps({"type": "block_actions", "actions": []})}).encode(),
     FORM, "block_actions"),
    (urlencode({"payload": json.dumps({"user": {"type": "x"}, "type": "block_actions"})}).encode(),
     FORM, "block_actions"),
    (urlencode({"payload": json.dumps({"type": "view_submission", "view": {}})}).encode(),
     FORM, "other"),
    (urlencode({"payload": json.dumps({"view": {"type": "block_actions"},
                                       "type": "view_submission"})}).encode(), FORM, "other"),
])
def test_requests_are_told_apart(body, content_type, kind):
    assert classify(body, content_type) == kind


def test_on_sqlite_a_click_is_stored_while_the_bot_holds_its_write_lock(tmp_path):
    """SQLite has one write lock per file: the inbox has its own file, so a detection pass
    writing thousands of drifts cannot hold a click's ack past Slack's 3 s."""
    from store.inbox import open_inbox
    from store.migrate import upgrade

    url = f"sqlite:///{tmp_path / 'alignbot.db'}"
    upgrade(url)
    main = make_engine(url)
    inbox_engine = open_inbox(url, main)
    assert (tmp_path / "alignbot.inbox.db").exists()
    holding, release = threading.Event(), threading.Event()

    def long_write() -> None:
        with session_scope(main) as s:  # BEGIN IMMEDIATE: the main file's write lock
            s.exec(select(SlackInboxRow)).all()
            holding.set()
            release.wait(15)

    writer = threading.Thread(target=long_write)
    writer.start()
    holding.wait(5)
    inbox = SlackInbox(inbox_engine, Recorder())
    try:
        started = time.monotonic()
        asyncio.run(_store_all(inbox, [_click(1)]))
        assert time.monotonic() - started < 2.0  # not the 10 s busy timeout of the main file
        assert len(_rows(inbox_engine)) == 1
    finally:
        release.set()
        writer.join()
        inbox.stop()


def _pragma(engine, statement: str) -> tuple:  # type: ignore[no-untyped-def]
    """A SQLite pragma's answer, asked outside a transaction (a checkpoint refuses one)."""
    with engine.connect() as connection:
        return connection.connection.driver_connection.execute(statement).fetchone()


def test_on_sqlite_an_acked_click_is_synced_to_disk_before_its_ack(tmp_path):
    """Slack does not resend an acked click, so its commit must outlive a power cut, not just
    a crash of the process; the bot's own file keeps WAL's cheaper unsynced commits."""
    from store.inbox import open_inbox

    url = f"sqlite:///{tmp_path / 'alignbot.db'}"
    main = make_engine(url)
    inbox_engine = open_inbox(url, main)

    assert _pragma(inbox_engine, "PRAGMA synchronous") == (2,)  # FULL: every commit synced
    assert _pragma(main, "PRAGMA synchronous") == (1,)  # NORMAL


def test_on_sqlite_no_ack_waits_for_the_log_to_be_copied_into_the_inbox_file(tmp_path):
    """SQLite copies its log into the file (a checkpoint) within the commit that takes the log
    past 1,000 pages, ~30 ms: the inbox leaves that to ``recover``, which runs between bursts."""
    from store.inbox import open_inbox

    url = f"sqlite:///{tmp_path / 'alignbot.db'}"
    main = make_engine(url)
    inbox_engine = open_inbox(url, main)

    assert _pragma(inbox_engine, "PRAGMA wal_autocheckpoint") == (0,)  # no commit checkpoints
    assert _pragma(main, "PRAGMA wal_autocheckpoint") == (1000,)  # the bot's file: SQLite's default

    handled = Recorder()
    inbox = SlackInbox(inbox_engine, handled, hold=timedelta(minutes=5))
    try:
        padding = "x" * 10_000  # a real click carries its message's blocks: ~9 KB
        for batch in range(12):
            bodies = [f'payload={{"type":"block_actions","n":{batch * 50 + i},"p":"{padding}"}}'.encode()
                      for i in range(50)]
            asyncio.run(_store_all(inbox, bodies))
        _wait(lambda: all(row.state == "done" for row in _rows(inbox_engine)))
        assert (tmp_path / "alignbot.inbox.db-wal").stat().st_size > 5_000_000  # all in the log

        inbox.recover()
        asyncio.run(_store_all(inbox, [_click(1)]))
        _, log_pages, _ = _pragma(inbox_engine, "PRAGMA wal_checkpoint(PASSIVE)")
        assert log_pages < 50  # the log started over: recover had copied all of it into the file
        assert len(_rows(inbox_engine)) == 601
    finally:
        inbox.stop()


def test_on_postgresql_the_inbox_is_the_bots_database(postgres_server):
    from store.inbox import open_inbox

    url = postgres_server.create_database("inbox_same_db")
    main = make_engine(url)
    inbox_engine = open_inbox(url, main)
    assert inbox_engine.url == main.url  # the same database


def _answering_for(gate, seconds: float) -> threading.Thread:  # type: ignore[no-untyped-def]
    """The door answering one request for ``seconds``, from another thread; returns once begun."""
    def hold() -> None:
        with gate.answering():
            time.sleep(seconds)
    thread = threading.Thread(target=hold)
    thread.start()
    time.sleep(0.02)
    return thread


def test_handling_waits_while_the_door_answers_and_never_past_its_patience():
    from bot.slack_inbox import AcksFirst

    gate = AcksFirst(settle=0.01, patience=0.5)

    def waited() -> float:
        start = time.monotonic()
        gate.wait()
        return time.monotonic() - start

    time.sleep(0.02)
    assert waited() < 0.1  # nobody answering: handling goes ahead

    answering = _answering_for(gate, 0.2)
    assert 0.15 <= waited() < 0.45  # held until the answer was out (and the door settled)
    answering.join()

    answering = _answering_for(gate, 1.2)
    assert 0.45 <= waited() < 1.0  # a door that never goes quiet does not starve handling
    answering.join()


def test_work_under_way_steps_aside_while_the_door_answers_but_not_for_long():
    from bot.slack_inbox import AcksFirst

    gate = AcksFirst()

    def stepped_aside(longest: float) -> float:
        start = time.monotonic()
        gate.step_aside(longest)
        return time.monotonic() - start

    assert stepped_aside(0.5) < 0.01  # nobody answering: no wait

    answering = _answering_for(gate, 0.2)
    assert 0.15 <= stepped_aside(0.5) < 0.4  # until the answer is out, not a settling time more
    answering.join()

    answering = _answering_for(gate, 1.0)
    assert 0.08 <= stepped_aside(0.1) < 0.4  # never longer than asked
    answering.join()

    with gate.answering():  # the door's own thread never waits for itself
        assert stepped_aside(0.5) < 0.01
    import gc
    wait_until(gc.isenabled, 3, "the collector was not turned back on")  # as the door left it


def test_no_garbage_collection_starts_while_the_door_answers():
    import gc

    from bot.slack_inbox import AcksFirst

    gate = AcksFirst(settle=0.2)
    assert gc.isenabled()
    collections: list[int] = []
    record = lambda phase, info: phase == "start" and collections.append(info["generation"])  # noqa: E731
    gc.callbacks.append(record)
    try:
        with gate.answering():
            collections.clear()
            junk = [[i] for i in range(50_000)]  # allocations that would set off collections
            with gate.answering():  # a second request in flight
                pass
            assert not gc.isenabled()
        assert not gc.isenabled()  # the next request of the burst may be a moment away
        assert collections == []
        wait_until(gc.isenabled, 3, "the collector was not turned back on once the door settled")
        del junk
        [[i] for i in range(50_000)]
        assert collections  # collecting again

        with gate.answering():  # requests without a pause: collected at least every max_hold
            wait_until(gc.isenabled, 3, "the collector stayed off while the door kept answering")

        gc.disable()  # turned off by someone else: the door does not turn it back on
        try:
            with gate.answering():
                pass
            time.sleep(0.3)
            assert not gc.isenabled()
        finally:
            gc.enable()
    finally:
        gc.callbacks.remove(record)


def test_the_sqlite_inbox_file_follows_its_own_migrations(tmp_path):
    """A new inbox file is at its head revision; one made before the inbox had migrations keeps
    its pending clicks; one written by a newer alignbot is refused with what to do."""
    import sqlite3

    from alembic.script import ScriptDirectory

    from store.inbox import INBOX, inbox_url, open_inbox
    from store.migrate import INBOX_MIGRATIONS, NotMigratedError, alembic_config, current_revision

    head = ScriptDirectory.from_config(alembic_config("sqlite://", INBOX_MIGRATIONS)).get_current_head()
    url = f"sqlite:///{tmp_path / 'new' / 'alignbot.db'}"
    fresh = open_inbox(url, make_engine(url))
    assert current_revision(fresh) == head

    url = f"sqlite:///{tmp_path / 'old' / 'alignbot.db'}"
    made_the_old_way = make_engine(inbox_url(url))
    INBOX.create(made_the_old_way)  # how the inbox file was made before it had migrations
    inbox = SlackInbox(made_the_old_way, Recorder())
    asyncio.run(_store_all(inbox, [_click(1)]))
    inbox.stop()
    adopted = open_inbox(url, make_engine(url))
    assert current_revision(adopted) == head
    assert len(_rows(adopted)) == 1  # the stored click is still there

    with sqlite3.connect(tmp_path / "old" / "alignbot.inbox.db") as db:
        db.execute("UPDATE alembic_version SET version_num = 'i9999'")
    with pytest.raises(NotMigratedError, match="alignbot.inbox.db has a schema this alignbot"):
        open_inbox(url, make_engine(url))
