"""Assemble and run the bot: store, connectors, loop, Slack app, scheduler, HTTP server.

``Runtime`` wires the parts once; ``serve`` runs it until stopped. In HTTP mode one path,
``/slack/events``, takes events, commands and interactivity; with ``SLACK_APP_TOKEN`` set the
Slack side runs over Socket Mode instead and HTTP serves only hooks and health.
"""

from __future__ import annotations

import fcntl
import gc
import logging
import os
import signal
import threading
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import uvicorn
from apscheduler.triggers.date import DateTrigger
from slack_bolt.request import BoltRequest
from slack_sdk.signature import SignatureVerifier
from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bot.config import AlignbotConfig, connector_secrets, database_url
from bot.executor import RetryPolicy
from bot.hooks import webhook_endpoint
from bot.leadership import Leadership
from bot.logs import configure_logging, configured_secrets, dispatch_in_log_context
from bot.loop import DecisionLoop
from bot.membership import TeamDirectory
from bot.metrics import Metrics, instrumented_web_client
from bot.notes import add_note
from bot.scheduler import Jobs
from bot.slack_app import SlackDeps, build_slack_app, opens_modal
from bot.slack_door import SlackDoor
from bot.slack_inbox import SlackInbox
from bot.slack_sync import SlackSync
from canonical.model import Quarantined, set_input_limits
from connectors.base import Connector
from connectors.presets import push_payloads
from connectors.registry import build_connector
from store.db import make_engine, session_scope, warm_pool
from store.inbox import open_inbox
from store.migrate import NotMigratedError, ensure_migrated
from store.tables import QuarantinedRecord

log = logging.getLogger(__name__)

WARM_AFTER = timedelta(seconds=30)  # first polls, first detection pass and Slack sync are done


class StartupError(RuntimeError):
    """The bot cannot start; the message says what to do."""


def execution_lease(config: AlignbotConfig) -> timedelta:
    """How long an executor may hold an outbox row before another may take it over.

    Long enough for one execute call with its retries (REST: up to 4 attempts of ``timeout``
    plus backoff), short enough that a crashed replica's work resumes soon.
    """
    longest = max((c.timeout.total_seconds() for c in config.connectors), default=10.0)
    return timedelta(seconds=max(15.0, longest * 5 + 10))


class Runtime:
    def __init__(self, config: AlignbotConfig, *, environ: Mapping[str, str] | None = None,
                 connectors: Mapping[str, Connector] | None = None, worker: str | None = None,
                 fast: bool = False, retry: RetryPolicy = RetryPolicy()):
        env = dict(os.environ if environ is None else environ)
        set_input_limits(config.detectors.limits)  # what connectors and hooks accept
        self.config = config
        self.env = env
        self.worker = worker or f"{os.uname().nodename}:{os.getpid()}"
        self.engine = self._open_database(database_url(config, env))
        self.metrics = Metrics(self.engine, connectors=[c.name for c in config.connectors])
        self.connectors = dict(connectors) if connectors is not None else {
            c.name: build_connector(c.name, c.kind, c.settings, connector_secrets(c, env),
                                    timeout=c.timeout.total_seconds())
            for c in config.connectors}
        self.loop = DecisionLoop(config, self.engine, self.connectors, worker=self.worker,
                                 retry=retry, observe_poll=self.metrics.observe_poll,
                                 observe_detection=self.metrics.observe_detection,
                                 lease=execution_lease(config))
        slack = config.slack
        self.bot_token = env[slack.bot_token_env]
        self.signing_secret = env[slack.signing_secret_env]
        self.app_token = env.get(slack.app_token_env) or None
        self.client = instrumented_web_client(self.bot_token, env.get(slack.api_url_env),
                                              self.metrics)
        self.directory = TeamDirectory(config, self.client)
        self.sync = SlackSync(self.engine, self.client, config)
        deps = SlackDeps(config, self.engine, self.directory, on_change=self.wake)
        self.slack_app = build_slack_app(deps, signing_secret=self.signing_secret,
                                         client=self.client)
        self._acked_app = build_slack_app(deps, signing_secret=self.signing_secret,
                                          client=self.client, already_acked=True)
        self.verifier = SignatureVerifier(self.signing_secret)
        try:
            inbox_engine = open_inbox(database_url(config, env), self.engine)
        except NotMigratedError as exc:
            raise StartupError(str(exc)) from None
        self.inbox = SlackInbox(inbox_engine, self._handle_slack_request, urgent=opens_modal)
        # Background work starts, and pauses between items, only while the door is quiet.
        self.jobs = Jobs(before_run=self.inbox.acks_first.wait)
        # Statements of work under way wait while the door answers; not when the inbox shares
        # the bot's engine (one in-memory database): its writer is what the door waits for.
        if inbox_engine is not self.engine:
            event.listen(self.engine, "before_cursor_execute",
                         lambda *_args, **_kw: self.inbox.acks_first.step_aside())
        self.sync.checkpoint = self.inbox.acks_first.wait
        self.loop.checkpoint = self.loop.executor.checkpoint = self.inbox.acks_first.wait
        self.jobs.register_local(drain=self._drain, sync=self.sync.run,
                                 recover=self.inbox.recover, fast=fast)
        self.leadership = Leadership(
            self.engine, interval=1.0 if fast else 2.0,
            on_elected=lambda: (self.metrics.set_leader(True), self.jobs.register_leader(
                config, poll=self.loop.poll_and_detect, sweep=self.loop.sweep,
                digest=self.post_digest, fast=fast)),
            on_deposed=lambda: (self.metrics.set_leader(False), self.jobs.remove_leader_jobs()))
        self._stopped = threading.Event()

    # -- parts -----------------------------------------------------------------------------

    def _open_database(self, url: str) -> Engine:
        engine = make_engine(url)
        try:
            ensure_migrated(engine)
        except NotMigratedError as exc:
            raise StartupError(str(exc)) from None
        if engine.dialect.name == "sqlite":
            self._lock_sqlite(engine)
        return engine

    def _lock_sqlite(self, engine: Engine) -> None:
        """SQLite serves one replica: a second process on the same file is refused."""
        database = make_url(str(engine.url)).database
        if not database or database == ":memory:":
            return
        self._lock_file = open(Path(database).with_suffix(".lock"), "w")  # noqa: SIM115
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StartupError(
                f"another alignbot is already running on {database}. SQLite supports one "
                "replica; for several, use PostgreSQL (set DATABASE_URL).") from None

    def _drain(self) -> None:
        executed = False
        while self.loop.drain() and not self._stopped.is_set():
            executed = True
            self.jobs.wake(Jobs.SYNC)
        if executed:  # read back what was done now, not at the next scheduled poll
            changed = self.loop.changed_systems()
            self.jobs.wake(*(f"poll:{c.name}" for c in self.config.connectors if c.system in changed))

    def wake(self) -> None:
        self.jobs.wake(Jobs.DRAIN, Jobs.SYNC)

    def accept_push(self, connector: str, records: list[Any],
                    quarantined: list[Quarantined]) -> None:
        if quarantined:
            with session_scope(self.engine) as s:
                for bad in quarantined:
                    s.add(QuarantinedRecord(connector=connector, source=bad.source,
                                            position=bad.position, reason=bad.reason,
                                            raw=bad.raw))
        if records:
            self.loop.push(records)
            self.jobs.wake(Jobs.SYNC)

    def post_digest(self, team: str) -> None:
        from bot.digest import build_digest

        with session_scope(self.engine) as s:
            digest = build_digest(s, team, self.config, self.loop.clock())
        self.client.files_upload_v2(
            channel=digest.channel, content=digest.chart_png, filename="drift-week.png",
            title=f"Drift opened vs closed — {team}", initial_comment=digest.text)
        with session_scope(self.engine) as s:
            add_note(s, None, f"digest:{team}:{self.loop.clock():%G-W%V}", digest.text,
                     channel=digest.channel, in_thread=False, blocks=digest.blocks)
        self.jobs.wake(Jobs.SYNC)

    # -- HTTP ------------------------------------------------------------------------------

    def _handle_slack_request(self, body: str, content_type: str) -> bool:
        """Run a request the door already verified and acked through Bolt (after the ack).

        A stored request Bolt cannot read never will: it is dropped once with a warning, not
        retried with an error each time.
        """
        try:
            request = BoltRequest(body=body, headers={"content-type": [content_type]})
        except (ValueError, TypeError, AttributeError, RecursionError) as exc:
            log.warning("dropped a stored Slack request alignbot cannot read (%s: %s)",
                        type(exc).__name__, str(exc)[:200])
            return True
        return dispatch_in_log_context(self._acked_app, request).status < 500

    def asgi_app(self) -> SlackDoor:
        secrets = {c.name: self.env[c.webhook_secret_env] for c in self.config.connectors
                   if c.webhook_secret_env and self.env.get(c.webhook_secret_env)}

        async def healthz(_: Request) -> JSONResponse:
            report = await run_in_threadpool(self.health)
            return JSONResponse(report, 200 if report["ok"] else 503)

        rest = Starlette(routes=[
            Route("/hooks/{connector}", webhook_endpoint(
                secrets, self._accept_in_thread, payloads=push_payloads(self.config.connectors)),
                  methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/metrics", self.metrics.starlette_endpoint(), methods=["GET"]),
        ])
        return SlackDoor(rest, inbox=self.inbox, verifier=self.verifier, bolt=self.slack_app)

    def _accept_in_thread(self, connector: str, records: list[Any],
                          quarantined: list[Quarantined]) -> None:
        threading.Thread(target=self.accept_push, args=(connector, records, quarantined),
                         name=f"push-{connector}", daemon=True).start()

    def health(self) -> dict[str, Any]:
        from bot.health import health_report

        return health_report(self)

    # -- life ------------------------------------------------------------------------------

    def connect_socket_mode(self) -> Any:
        """Connect to Slack over Socket Mode (``SLACK_APP_TOKEN``); ``stop()`` closes it.

        The handler uses ``self.client``, so ``apps.connections.open`` goes to
        ``SLACK_API_URL`` too.
        """
        from slack_bolt.adapter.socket_mode import SocketModeHandler

        if not self.app_token:
            raise StartupError("Socket Mode needs an app-level token (xapp-…) in "
                               f"{self.config.slack.app_token_env}")
        self._socket = SocketModeHandler(self.slack_app, self.app_token)
        self._socket.connect()
        return self._socket

    def start(self) -> Runtime:
        # The first burst of clicks after a start should not pay for threads and connections.
        warm_pool(self.engine, self.inbox.workers)  # each worker may hold one
        warm_pool(self.inbox.engine, 2)
        self.inbox.warm_up()
        self.jobs.start()
        self.leadership.start()
        return self

    def freeze_when_warm(self, after: timedelta = WARM_AFTER) -> None:
        """Freeze once more what the first polls, passes and Slack requests built to keep:
        modules imported on first use, compiled SQL, the clients' pools. In the ack bench's
        bot that was ~20k objects, and every full collection walked them: 20–40 ms each,
        3–10 ms after this (measured by logging the bot's collections).

        From ``after`` start on, the next full collection the interpreter makes anyway freezes
        what survived it, so the freeze adds no pause of its own (a collection made for it
        once met a burst of clicks and delayed their acks by ~60 ms) and freezes no garbage.
        """
        self.jobs.add("freeze-warm-objects", freeze_after_next_full_collection,
                      DateTrigger(run_date=datetime.now(UTC) + after, timezone=UTC))

    def disconnect_socket_mode(self) -> None:
        if getattr(self, "_socket", None) is not None:
            self._socket.close()
            self._socket = None

    def stop(self) -> None:
        self.disconnect_socket_mode()
        self._stopped.set()
        self.leadership.stop()
        self.jobs.shutdown()
        self.inbox.stop()
        if getattr(self, "_lock_file", None) is not None:
            self._lock_file.close()  # lets the next process on this SQLite file start
            self._lock_file = None


def freeze_startup_objects() -> None:
    """Keep what start-up built out of the garbage collector's full scans.

    Modules, the Bolt apps, the ORM's mappers and the configuration are most of the heap and
    live as long as the process; a full collection walked all of them (~200k objects, ~180 ms
    holding the interpreter), and a burst of Slack requests meeting one waited that long for its
    acks. Reference counting still frees whatever they let go of. Called again once the bot is
    warm (``Runtime.freeze_when_warm``).
    """
    gc.collect()
    gc.freeze()


def freeze_after_next_full_collection() -> None:
    """Freeze what survives the collector's next full collection, once."""
    frozen = threading.Event()

    def freeze_survivors(phase: str, info: dict[str, int]) -> None:
        # Runs inside the collection, which holds the interpreter: nothing can be allocated
        # between the collection and the freeze. Left in place afterwards as a no-op:
        # removing a callback while the collector iterates over them would skip the next one.
        if phase == "stop" and info["generation"] == 2 and not frozen.is_set():
            frozen.set()
            gc.freeze()

    gc.callbacks.append(freeze_survivors)


def serve(config: AlignbotConfig, host: str = "0.0.0.0", port: int = 3000) -> None:
    configure_logging(level=os.environ.get("ALIGNBOT_LOG_LEVEL", "INFO"),
                      json=os.environ.get("ALIGNBOT_LOG_FORMAT", "json") != "text",
                      secrets=configured_secrets(config, os.environ),
                      # every job run and every /healthz schema check would be a line otherwise
                      levels={"apscheduler.executors": "WARNING",
                              "alembic.runtime.migration": "WARNING"})
    runtime = Runtime(config).start()
    try:
        if runtime.app_token:
            runtime.connect_socket_mode()
            log.info("Socket Mode connected; HTTP serves /hooks and /healthz only")
        server = uvicorn.Server(uvicorn.Config(runtime.asgi_app(), host=host, port=port,
                                               log_level="info", lifespan="off",
                                               log_config=None,
                                               # a JSON line per Slack request costs acks time
                                               access_log=os.environ.get(
                                                   "ALIGNBOT_ACCESS_LOG", "0") == "1"))
        signal.signal(signal.SIGTERM, lambda *_: setattr(server, "should_exit", True))
        freeze_startup_objects()
        runtime.freeze_when_warm()
        server.run()
    finally:
        runtime.stop()
