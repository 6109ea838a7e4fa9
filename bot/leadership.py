"""Exactly one replica runs the scheduler: a PostgreSQL session advisory lock decides which.

The lock lives as long as the database session that took it, so when the leader dies (even by
kill -9) PostgreSQL ends its session and releases the lock, and the next replica to ask gets
it. Every replica keeps asking every ``interval`` seconds. On SQLite there is only ever one
replica (the runtime refuses a second), so it leads at once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine

log = logging.getLogger(__name__)

# A fixed 64-bit key, "alignbot" in ASCII: the same for every replica of one deployment.
LEADER_LOCK_KEY = int.from_bytes(b"alignbot", "big") & 0x7FFF_FFFF_FFFF_FFFF


class Leadership:
    def __init__(self, engine: Engine, *, on_elected: Callable[[], None],
                 on_deposed: Callable[[], None], interval: float = 2.0,
                 key: int = LEADER_LOCK_KEY):
        self.engine = engine
        self.on_elected = on_elected
        self.on_deposed = on_deposed
        self.interval = interval
        self.key = key
        self.is_leader = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="leadership", daemon=True)
        self._conn: Connection | None = None

    def start(self) -> Leadership:
        if self.engine.dialect.name != "postgresql":
            self._become(True)
            return self
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(self.interval * 3)
        self._release()
        if self.is_leader:
            self._become(False)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                if self._conn is None:
                    self._conn = self.engine.connect().execution_options(
                        isolation_level="AUTOCOMMIT")
                if self.is_leader:
                    self._conn.execute(text("SELECT 1"))  # still our session, still our lock
                else:
                    got = self._conn.execute(text("SELECT pg_try_advisory_lock(:k)"),
                                             {"k": self.key}).scalar()
                    if got:
                        self._become(True)
            except Exception as exc:  # the session is gone: so is the lock
                log.warning("leadership check failed: %s", exc)
                self._release()
                if self.is_leader:
                    self._become(False)
            self._stop.wait(self.interval)

    def _become(self, leader: bool) -> None:
        self.is_leader = leader
        log.info("this replica %s the scheduler", "now leads" if leader else "no longer leads")
        (self.on_elected if leader else self.on_deposed)()

    def _release(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:
                pass
            self._conn = None
