"""Handles what the ingress stored: claims inbox rows, the most urgent first, and runs each
through the Bolt app on a thread of its own.

Rows are claimed under a lease (``store.inbox.claim``), so several workers share one inbox and a
worker that dies mid-request leaves its rows to the others once the lease runs out. A worker
waits for new rows on PostgreSQL's ``LISTEN`` (or an in-process wake-up), and polls as well.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import timedelta

from sqlalchemy.engine import Engine

from bot.logs import ContextThreadPoolExecutor
from store import inbox
from store.inbox import Claimed, Outcome
from store.types import utcnow

log = logging.getLogger(__name__)

# A handler: (raw body, content type) → True when handled, False to try again later.
Handler = Callable[[str, str], bool]


class InboxWorker:
    MAX_ATTEMPTS = 5

    def __init__(self, engine: Engine, handle: Handler, *, threads: int = 8,
                 lease: timedelta = timedelta(seconds=30),
                 retry_after: timedelta = timedelta(seconds=2),
                 poll: float | None = None, keep: timedelta = timedelta(days=7)):
        self.engine = engine
        self.handle = handle
        self.threads = threads
        self.lease = lease
        self.retry_after = retry_after
        self.keep = keep
        postgres = engine.dialect.name == "postgresql"
        # PostgreSQL tells a listening worker at once; a SQLite file can only be looked at
        self.poll = poll if poll is not None else (1.0 if postgres else 0.05)
        self._free = threading.Semaphore(threads)
        self._pool = ContextThreadPoolExecutor(max_workers=threads, thread_name_prefix="inbox")
        self._wake = threading.Event()
        self._stopped = threading.Event()
        self._parts = [threading.Thread(target=self._claim_loop, name="inbox-claim", daemon=True)]
        if postgres:
            self._parts.append(threading.Thread(target=self._listen, name="inbox-listen",
                                                daemon=True))
        self._last_prune = 0.0

    def start(self) -> InboxWorker:
        for part in self._parts:
            part.start()
        return self

    def wake(self) -> None:
        self._wake.set()

    def step(self) -> int:
        """Claim and handle what is waiting, here and now (tests step the worker by hand)."""
        claimed = inbox.claim(self.engine, now=utcnow(), lease=self.lease, limit=self.threads)
        for row in claimed:
            self._run(row)
        return len(claimed)

    def waiting(self) -> int:
        return inbox.waiting(self.engine)

    def _claim_loop(self) -> None:
        while not self._stopped.is_set():
            try:
                claimed = self._claim_for_free_threads()
            except Exception:  # the database is away: try again after a pause
                log.exception("could not claim Slack requests")
                claimed = 0
            if not claimed:
                self._wake.wait(self.poll)
                self._wake.clear()
            self._prune_now_and_then()

    def _claim_for_free_threads(self) -> int:
        self._free.acquire()  # at least one thread free before anything is claimed
        free = 1
        while free < self.threads and self._free.acquire(blocking=False):
            free += 1
        try:
            claimed = inbox.claim(self.engine, now=utcnow(), lease=self.lease, limit=free)
        except BaseException:
            for _ in range(free):
                self._free.release()
            raise
        for _ in range(free - len(claimed)):
            self._free.release()
        for row in claimed:
            self._pool.submit(self._run_and_free, row)
        return len(claimed)

    def _run_and_free(self, row: Claimed) -> None:
        try:
            self._run(row)
        finally:
            self._free.release()

    def _run(self, row: Claimed) -> None:
        try:
            handled = self.handle(row.item.body, row.item.content_type)
        except Exception:
            log.exception("handling Slack request %s failed", row.id)
            handled = False
        now = utcnow()
        try:
            if handled:
                inbox.finish(self.engine, [Outcome(row.id, "done")], now=now)
            elif row.attempts >= self.MAX_ATTEMPTS:
                log.error("gave up on Slack request %s after %d attempts", row.id, row.attempts)
                inbox.finish(self.engine, [Outcome(
                    row.id, "failed", f"gave up after {row.attempts} attempts")], now=now)
            else:
                inbox.retry_at(self.engine, row.id, now + self.retry_after * row.attempts)
        except Exception:  # the lease runs out and it is claimed again; decisions are idempotent
            log.exception("could not record the outcome of Slack request %s", row.id)

    def _listen(self) -> None:
        """Wake the claimer whenever the ingress stores something (PostgreSQL ``NOTIFY``)."""
        import psycopg

        conninfo = self.engine.url.set(drivername="postgresql").render_as_string(
            hide_password=False)
        while not self._stopped.is_set():
            try:
                with psycopg.connect(conninfo, autocommit=True, connect_timeout=10) as conn:
                    conn.execute(f"LISTEN {inbox.NOTIFY_CHANNEL}")
                    while not self._stopped.is_set():
                        for _ in conn.notifies(timeout=1.0, stop_after=1):
                            self._wake.set()
            except Exception as exc:  # polling goes on meanwhile
                log.warning("inbox notifications unavailable (%s); polling", exc)
                self._stopped.wait(5)

    def _prune_now_and_then(self) -> None:
        if time.monotonic() - self._last_prune < 3600:
            return
        self._last_prune = time.monotonic()
        try:
            inbox.prune(self.engine, before=utcnow() - self.keep)
        except Exception:
            log.exception("could not prune the Slack inbox")

    def stop(self) -> None:
        self._stopped.set()
        self._wake.set()
        self._free.release()  # a claimer waiting for a free thread sees the stop
        for part in self._parts:
            if part.is_alive():
                part.join(timeout=5)
        self._pool.shutdown(wait=True, cancel_futures=False)
