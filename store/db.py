"""Engines and sessions: SQLite (WAL, busy timeout, BEGIN IMMEDIATE) or PostgreSQL.

SQLite's default deferred transactions let two writers both read, then one fails to upgrade
its lock mid-transaction; ``BEGIN IMMEDIATE`` takes the write lock up front so the loser waits
(busy timeout) instead. PostgreSQL needs nothing special: row locks and READ COMMITTED do it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError
from sqlmodel import Session, create_engine

SQLITE_BUSY_TIMEOUT_MS = 10_000
# A PostgreSQL server that has not answered in this long is down or unreachable: a command
# says so instead of hanging (libpq's own default is to wait forever).
POSTGRES_CONNECT_TIMEOUT_S = 5
READ_ONLY = "alignbot_read_only"
URL_FORMS = "sqlite:///path/to/alignbot.db or postgresql://user:password@host:5432/database"


class DatabaseUnavailable(RuntimeError):
    """The database URL cannot be used: not a URL, a kind of database alignbot does not know,
    or no server answering. The message is one line naming it, its password masked."""


def masked_url(url: str) -> str:
    """``url`` with its password as ``***``, for messages. Works on text that does not parse
    as a URL too, masking everything up to the last ``@`` rather than too little."""
    url = re.sub(r"^([\w+.-]+://[^:/?#@]*):.*@", r"\1:***@", url)
    return re.sub(r"([?&]password=)[^&]*", r"\1***", url)


def unusable(url: str, exc: BaseException) -> DatabaseUnavailable:
    """``exc``, raised opening or first using the database at ``url``, as one line saying why."""
    scheme = url.partition("://")[0].partition("+")[0] if "://" in url else ""
    if isinstance(exc, NoSuchModuleError):
        why = f"unknown kind of database {scheme!r}; use {URL_FORMS}"
    elif isinstance(exc, ArgumentError | ValueError):  # their text may hold part of a password
        why = (f"not a valid database URL; use {URL_FORMS} (an @, : or / in the password "
               "must be percent-encoded: %40, %3A, %2F)")
    elif isinstance(exc, ImportError):
        why = f"no driver for {scheme!r} is installed; use {URL_FORMS}"
    else:  # the driver's reason, e.g. "connection refused" or "connection timeout expired"
        why = " ".join(str(exc.orig if isinstance(exc, DBAPIError) else exc).split())
    shown = masked_url(url).replace("postgresql+psycopg://", "postgresql://", 1)  # as written
    return DatabaseUnavailable(f"database {shown}: {why}")


def check_connection(engine: Engine) -> None:
    """Open one connection, or raise DatabaseUnavailable saying why none opens."""
    try:
        engine.connect().close()
    except DBAPIError as exc:
        raise unusable(engine.url.render_as_string(hide_password=False), exc) from None


def normalize_url(url: str) -> str:
    """Let users write ``postgresql://``; we drive it with psycopg 3."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url.removeprefix("postgres://")
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return url


def make_engine(url: str, *, echo: bool = False, pre_ping: bool = True,
                synced_commits: bool = False) -> Engine:
    """``pre_ping=False`` saves a round trip per checkout where a failed statement is cheap to
    report (the Slack inbox: the click gets an error and Slack shows it; the pool then drops the
    dead connection).

    SQLite in WAL mode commits without syncing to disk (``synchronous=NORMAL``): a commit
    survives the process crashing, and the last ones may roll back if the machine loses power.
    ``synced_commits`` syncs every commit (``FULL``), for data that exists nowhere else once
    committed (an acked Slack click: Slack does not send it again). PostgreSQL syncs every commit
    unless its server is configured otherwise."""
    given, url = url, normalize_url(url)
    try:
        parsed = make_url(url)
        if parsed.get_backend_name() == "sqlite":
            if parsed.database and parsed.database != ":memory:":
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            engine = create_engine(
                url,
                echo=echo,
                connect_args={"check_same_thread": False,
                              "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
            )
            _configure_sqlite(engine, synchronous="FULL" if synced_commits else "NORMAL")
            return engine
        return create_engine(
            url, echo=echo, pool_pre_ping=pre_ping, pool_size=10, max_overflow=20,
            connect_args={"connect_timeout": POSTGRES_CONNECT_TIMEOUT_S},
        )
    except (ArgumentError, ValueError, ImportError, OSError) as exc:
        raise unusable(given, exc) from None


def _configure_sqlite(engine: Engine, synchronous: str) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):  # type: ignore[no-untyped-def]
        # Hand transaction control to SQLAlchemy so we can say BEGIN IMMEDIATE ourselves.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection):  # type: ignore[no-untyped-def]
        # A reader needs no write lock: in WAL mode it reads a snapshot while a writer works.
        read_only = connection.get_execution_options().get(READ_ONLY, False)
        connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


def is_postgres(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"


def reader(engine: Engine) -> Engine:
    """The same database for reading only: on SQLite its transactions do not take the write
    lock, so a Slack handler that only reads never queues behind a detection pass's writes."""
    return engine.execution_options(**{READ_ONLY: True})


@contextmanager
def read_scope(engine: Engine) -> Iterator[Session]:
    """A session for reads only (see ``reader``); nothing it holds is committed. Closing it
    ends the transaction and leaves the loaded rows usable (a rollback would expire them)."""
    with Session(reader(engine), expire_on_commit=False) as session:
        yield session


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """One transaction: commit on success, roll back on any error."""
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
