"""The Slack door: verify a request, store a click, ack at once, handle it right after.

Slack wants its 200 within 3 s, and people click in bursts. Handling a click (Bolt's dispatch,
authorization, the decision's transaction, Slack calls) costs tens of milliseconds of Python;
fifty of them at once would queue for a second or more before the last one is acked. So the
door does the least that makes an ack safe — check the signature, store the raw click durably
(many clicks share one commit) — answers, and hands the click to Bolt on a worker thread. A
crash after the ack loses nothing: the stored click is handled again by whichever process
finds it abandoned. Slash commands only read, so they are acked and handled without storing.
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import heapq
import itertools
import json
import logging
import queue
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from urllib.parse import parse_qs

from sqlalchemy.engine import Engine

from bot.logs import ContextThreadPoolExecutor
from store import inbox
from store.db import checkpoint
from store.inbox import InboxItem, Outcome
from store.types import utcnow

log = logging.getLogger(__name__)

# A handler: (raw body, content type) → True when handled, False to try again later.
Handler = Callable[[str, str], bool]
# Whether a request is handled before the others waiting: (raw body, content type) → bool.
Urgent = Callable[[str, str], bool]


# Slack's interaction payloads open with their type: ``payload={"type":"block_actions",…``,
# form-encoded. Reading it off the first bytes spares decoding and parsing ~10 KB of JSON per
# click; anything that does not match is parsed in full.
_LEADING_TYPE = re.compile(
    rb"payload=(?:%7B|\{)(?:%22|\")type(?:%22|\")(?:%3A|:)(?:\+|%20)*(?:%22|\")([a-z_]+)(?:%22|\")")


def classify(body: bytes, content_type: str) -> str:
    """What Slack sent: ``block_actions`` (a click), ``slash_command``, or ``other``.

    Other requests (events, modal submissions whose answer carries validation errors) go
    through Bolt on the request itself.
    """
    if not content_type.startswith("application/x-www-form-urlencoded"):
        return "other"
    if leading := _LEADING_TYPE.match(body):
        return "block_actions" if leading.group(1) == b"block_actions" else "other"
    try:
        form = parse_qs(body.decode(), keep_blank_values=True)
    except UnicodeDecodeError:
        return "other"
    if "command" in form:
        return "slash_command"
    raw = form.get("payload", [""])[0]
    if not raw:
        return "other"
    try:
        payload = json.loads(raw)
    except (ValueError, RecursionError):  # Bolt, on the request, says what is wrong with it
        return "other"
    return "block_actions" if isinstance(payload, dict) and payload.get(
        "type") == "block_actions" else "other"


def delivery_key(body: bytes) -> str:
    """Slack's retries resend the same body, so its digest identifies the delivery."""
    return hashlib.sha256(body).hexdigest()


class AcksFirst:
    """Holds handling back while the door is answering Slack, so a burst's acks go out first.

    Python runs one thread at a time: eight workers busy with Bolt would leave the event loop
    a ninth of the interpreter, and the fiftieth click of a burst would wait for the handling
    of the first. Workers wait until the door has been idle ``settle`` seconds, but never
    longer than ``patience`` (a modal's trigger lives 3 s; handling must not starve). A
    burst's requests arrive a few milliseconds apart, more on a loaded machine, so ``settle``
    is long enough that the door is not taken for idle between two of them.

    Work already under way steps aside too: ``step_aside`` holds a thread, before each of its
    database statements, while a request is being answered.

    The cyclic garbage collector is held off the same way: a collection starting mid-burst
    holds the interpreter for tens of milliseconds, and every ack waiting behind it would be
    that much later. It is turned back on once the door has settled, or after ``max_hold``
    seconds of requests without a pause, so cyclic garbage is never left uncollected for long.
    """

    def __init__(self, settle: float = 0.02, patience: float = 0.3, max_hold: float = 1.0):
        self.settle = settle
        self.patience = patience
        self.max_hold = max_hold
        self._answering = 0
        self._last = 0.0
        lock = threading.Lock()
        self._lock = threading.Condition(lock)  # workers wait on it
        self._gc_turn = threading.Condition(lock)  # the collector's releaser waits on it
        self._gc_held_since: float | None = None  # set while this gate keeps the collector off
        self._releaser: threading.Thread | None = None
        self._door: int | None = None  # the thread answering (the event loop's)

    @contextmanager
    def answering(self) -> Iterator[None]:
        with self._lock:
            self._door = threading.get_ident()
            self._answering += 1
            if self._answering == 1 and self._gc_held_since is None and gc.isenabled():
                gc.disable()
                self._gc_held_since = time.monotonic()
                if self._releaser is None:
                    self._releaser = threading.Thread(target=self._release_collector,
                                                      name="acks-first-gc", daemon=True)
                    self._releaser.start()
                self._gc_turn.notify()
        try:
            yield
        finally:
            with self._lock:
                self._answering -= 1
                self._last = time.monotonic()
                if self._answering == 0:
                    self._lock.notify_all()
                    self._gc_turn.notify()

    def wait(self) -> None:
        deadline = time.monotonic() + self.patience
        with self._lock:
            while (now := time.monotonic()) < deadline:
                if self._answering:  # woken when the last answer is out: no polling meanwhile
                    self._lock.wait(deadline - now)
                elif (quiet := now - self._last) >= self.settle:
                    return
                else:
                    self._lock.wait(min(deadline - now, self.settle - quiet))

    def step_aside(self, longest: float = 0.05) -> None:
        """Wait while a request is being answered, at most ``longest`` seconds.

        For work already under way (a detection pass, decisions being executed, Slack edits):
        called before each database statement, it hands the interpreter to the door for the
        few milliseconds a burst of acks takes. Measured on 18 rounds of 50 clicks per database,
        alternating with and without: the median round's slowest ack went 41.6 → 37.5 ms on
        PostgreSQL and 36.7 → 34.1 ms on SQLite. Never on the door's own thread.
        """
        if not self._answering or threading.get_ident() == self._door:
            return
        deadline = time.monotonic() + longest
        with self._lock:
            while self._answering and (left := deadline - time.monotonic()) > 0:
                self._lock.wait(left)

    def _release_collector(self) -> None:
        """Turn the collector back on once the door settles (or the hold has lasted too long)."""
        with self._lock:
            while True:
                held_since = self._gc_held_since
                if held_since is None:
                    self._gc_turn.wait()
                    continue
                now = time.monotonic()
                until_released = held_since + self.max_hold - now
                if not self._answering:
                    until_released = min(until_released, self._last + self.settle - now)
                if until_released <= 0:
                    self._gc_held_since = None
                    gc.enable()
                else:
                    self._gc_turn.wait(until_released)


class SlackInbox:
    """Group-committed click store plus the worker threads that handle what it stored.

    ``urgent`` picks the requests handled before the others waiting (clicks that open a
    modal: Slack's trigger for it expires 3 s after the click, a decision can take longer).
    """

    MAX_ATTEMPTS = 5
    BATCH = 200

    def __init__(self, engine: Engine, handle: Handler, *, hold: timedelta = timedelta(seconds=15),
                 workers: int = 8, keep: timedelta = timedelta(days=7),
                 urgent: Urgent | None = None):
        self.engine = engine
        self.handle = handle
        self.hold = hold
        self.keep = keep
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._work = _Triage(urgent or (lambda _body, _type: False))
        self.workers = workers
        self._pool = ContextThreadPoolExecutor(max_workers=workers,
                                               thread_name_prefix="slack-inbox")
        self._writer = threading.Thread(target=self._write_loop, name="slack-inbox-writer",
                                        daemon=True)
        self._stopped = threading.Event()
        self._last_prune = 0.0
        self.acks_first = AcksFirst()
        self._writer.start()

    # -- the door's side ---------------------------------------------------------------------

    async def store(self, body: bytes, content_type: str) -> None:
        """Return once the click is durably stored (or was already); raise if it cannot be."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        item = InboxItem(delivery_key(body), content_type, body.decode())
        self._queue.put((item, loop, done))
        await done

    def handle_soon(self, body: bytes, content_type: str) -> None:
        """Handle a request that needs no storing (a slash command) on a worker thread."""
        self._submit(None, body.decode(), content_type)

    # -- the writer thread: many clicks, one commit ------------------------------------------

    def _write_loop(self) -> None:
        while not self._stopped.is_set():
            try:
                first = self._queue.get(timeout=0.5)
            except queue.Empty:
                continue
            if first is None:
                break
            batch = [first]
            while len(batch) < self.BATCH:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._stopped.set()
                    break
                batch.append(nxt)
            self._write(batch)

    def _write(self, batch: list) -> None:  # type: ignore[type-arg]
        try:
            ids = inbox.record(self.engine, [item for item, _, _ in batch], now=utcnow(),
                               hold=self.hold)
        except Exception as exc:  # the door answers 500; Slack shows the user an error
            log.exception("could not store %d Slack click(s)", len(batch))
            _settle_all(batch, exc)
            return
        _settle_all(batch, None)
        for (item, _, _), row_id in zip(batch, ids, strict=True):
            if row_id is not None:  # None: a retried delivery of a click stored before
                self._submit(row_id, item.body, item.content_type)

    # -- worker threads ----------------------------------------------------------------------

    def _submit(self, row_id: int | None, body: str, content_type: str) -> None:
        """Queue a request for the workers; each pool task handles the most urgent one waiting
        when it runs, which need not be the one it was queued with."""
        self._work.put((row_id, body, content_type))
        self._pool.submit(self._run_next)

    def warm_up(self) -> None:
        """Start the worker threads now rather than during the first burst of clicks."""
        for _ in range(self.workers):
            self._pool.submit(time.sleep, 0.01)

    def waiting(self) -> int:
        """How many stored or acked requests wait for a worker."""
        return len(self._work)

    def _run_next(self) -> None:
        self.acks_first.wait()
        if (job := self._work.take()) is not None:
            self._run(*job)

    def _run(self, row_id: int | None, body: str, content_type: str) -> None:
        try:
            handled = self.handle(body, content_type)
        except Exception:
            log.exception("handling a Slack request failed")
            handled = False
        if row_id is None:
            return
        if handled:
            try:
                inbox.finish(self.engine, [Outcome(row_id, "done")], now=utcnow())
            except Exception:  # it stays pending and is handled again; decisions are idempotent
                log.exception("could not mark Slack click %s handled", row_id)
        # not handled: left pending; ``recover`` takes it again once its hold runs out

    def recover(self) -> int:
        """Handle clicks whose process died (or whose handling failed) before finishing."""
        now = utcnow()
        claimed, given_up = inbox.claim_abandoned(self.engine, now=now, hold=self.hold,
                                                  max_attempts=self.MAX_ATTEMPTS)
        for row_id in given_up:
            log.error("gave up on Slack click %s after %d attempts", row_id, self.MAX_ATTEMPTS)
        for row_id, item in claimed:
            log.info("handling Slack click %s left by another process", row_id)
            self._run(row_id, item.body, item.content_type)
        checkpoint(self.engine)  # the inbox file's log, copied here rather than in an ack's commit
        if time.monotonic() - self._last_prune > 3600:
            self._last_prune = time.monotonic()
            inbox.prune(self.engine, before=now - self.keep)
        return len(claimed)

    def stop(self) -> None:
        self._queue.put(None)
        self._writer.join(timeout=5)
        self._pool.shutdown(wait=True, cancel_futures=False)


class _Triage:
    """Requests waiting for a worker, the urgent ones first, otherwise in arrival order.

    Telling urgent from not means parsing the request, so it is done by the workers as they
    take work (after the door's acks), never by the writer on the ack path.
    """

    def __init__(self, urgent: Urgent):
        self.urgent = urgent
        self._lock = threading.Lock()
        self._arrived: list[tuple[int | None, str, str]] = []
        self._ready: list[tuple[int, int, tuple[int | None, str, str]]] = []
        self._seq = itertools.count()

    def put(self, job: tuple[int | None, str, str]) -> None:
        with self._lock:
            self._arrived.append(job)

    def __len__(self) -> int:
        with self._lock:
            return len(self._arrived) + len(self._ready)

    def take(self) -> tuple[int | None, str, str] | None:
        # One lock over ranking and taking: a worker finding nothing must mean nothing waits.
        with self._lock:
            for job in self._arrived:
                rank = 0 if self._is_urgent(job) else 1
                heapq.heappush(self._ready, (rank, next(self._seq), job))
            self._arrived.clear()
            return heapq.heappop(self._ready)[2] if self._ready else None

    def _is_urgent(self, job: tuple[int | None, str, str]) -> bool:
        try:
            return self.urgent(job[1], job[2])
        except Exception:  # a request the check cannot read is handled in turn, and fails there
            return False


def _settle_all(batch: list, exc: BaseException | None) -> None:  # type: ignore[type-arg]
    """Resolve a batch's waiting acks, one wake-up of each event loop for the whole batch."""
    by_loop: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = {}
    for _, loop, done in batch:
        by_loop.setdefault(loop, []).append(done)
    for loop, futures in by_loop.items():
        loop.call_soon_threadsafe(_settle_each, futures, exc)


def _settle_each(futures: list[asyncio.Future[None]], exc: BaseException | None) -> None:
    for done in futures:
        _settle(done, exc)


def _settle(done: asyncio.Future[None], exc: BaseException | None) -> None:
    if done.done():
        return
    if exc is None:
        done.set_result(None)
    else:
        done.set_exception(exc)
