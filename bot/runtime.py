"""Assemble and run the worker: store, connectors, loop, Slack app, inbox, scheduler, HTTP.

``Runtime`` wires the parts once; ``serve_worker`` runs it until stopped (``alignbot worker``).
Slack's requests reach it through the inbox the ingress fills (``bot.ingress``); its own HTTP
server takes pushed events (``/hooks``) and serves ``/healthz`` and ``/metrics``.
"""

from __future__ import annotations

import fcntl
import logging
import os
import signal
import threading
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

import uvicorn
from slack_bolt.request import BoltRequest
from sqlalchemy.engine import Engine, make_url
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bot.config import AlignbotConfig, connector_secrets, database_url
from bot.executor import RetryPolicy
from bot.hooks import webhook_endpoint
from bot.inbox_worker import InboxWorker
from bot.leadership import Leadership
from bot.logs import dispatch_in_log_context
from bot.loop import DecisionLoop
from bot.membership import TeamDirectory
from bot.metrics import Metrics, instrumented_web_client
from bot.notes import add_note
from bot.scheduler import Jobs
from bot.slack_app import SlackDeps, build_slack_app
from bot.slack_sync import SlackSync
from canonical.model import Quarantined, set_input_limits
from connectors.base import Connector
from connectors.presets import push_payloads
from connectors.registry import build_connector
from store.db import make_engine, session_scope
from store.inbox import open_inbox
from store.migrate import NotMigratedError, ensure_migrated
from store.tables import QuarantinedRecord

log = logging.getLogger(__name__)


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
        self.client = instrumented_web_client(self.bot_token, env.get(slack.api_url_env),
                                              self.metrics)
        self.directory = TeamDirectory(config, self.client)
        self.sync = SlackSync(self.engine, self.client, config)
        deps = SlackDeps(config, self.engine, self.directory, on_change=self.wake)
        self.slack_app = build_slack_app(deps, client=self.client)
        try:
            inbox_engine = open_inbox(database_url(config, env), self.engine)
        except NotMigratedError as exc:
            raise StartupError(str(exc)) from None
        self.inbox = InboxWorker(inbox_engine, self._handle_slack_request,
                                 poll=0.05 if fast else None)
        self.jobs = Jobs()
        self.jobs.register_local(drain=self._drain, sync=self.sync.run, fast=fast)
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
        """Run a request the ingress verified, stored and acked through the Bolt app.

        A stored request Bolt cannot read never will: it is dropped once with a warning, not
        retried with an error each time.
        """
        try:
            request = BoltRequest(body=body, headers={"content-type": [content_type]})
        except (ValueError, TypeError, AttributeError, RecursionError) as exc:
            log.warning("dropped a stored Slack request alignbot cannot read (%s: %s)",
                        type(exc).__name__, str(exc)[:200])
            return True
        return dispatch_in_log_context(self.slack_app, request).status < 500

    def asgi_app(self) -> Starlette:
        """The worker's HTTP server: pushed events, health and metrics."""
        secrets = {c.name: self.env[c.webhook_secret_env] for c in self.config.connectors
                   if c.webhook_secret_env and self.env.get(c.webhook_secret_env)}

        async def healthz(_: Request) -> JSONResponse:
            report = await run_in_threadpool(self.health)
            return JSONResponse(report, 200 if report["ok"] else 503)

        return Starlette(routes=[
            Route("/hooks/{connector}", webhook_endpoint(
                secrets, self._accept_in_thread, payloads=push_payloads(self.config.connectors)),
                  methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/metrics", self.metrics.starlette_endpoint(), methods=["GET"]),
        ])

    def _accept_in_thread(self, connector: str, records: list[Any],
                          quarantined: list[Quarantined]) -> None:
        threading.Thread(target=self.accept_push, args=(connector, records, quarantined),
                         name=f"push-{connector}", daemon=True).start()

    def health(self) -> dict[str, Any]:
        from bot.health import health_report

        return health_report(self.engine, self.client, self.config, worker=self.worker,
                             leader=self.leadership.is_leader, last_pass=self.loop.last_pass,
                             inbox_waiting=self.inbox.waiting)

    # -- life ------------------------------------------------------------------------------

    def start(self) -> Runtime:
        self.inbox.start()
        self.jobs.start()
        self.leadership.start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        self.leadership.stop()
        self.jobs.shutdown()
        self.inbox.stop()
        if getattr(self, "_lock_file", None) is not None:
            self._lock_file.close()  # lets the next process on this SQLite file start
            self._lock_file = None


def serve_worker(config: AlignbotConfig, host: str = "0.0.0.0", port: int = 3001) -> None:
    """``alignbot worker``: run until SIGTERM."""
    runtime = Runtime(config).start()
    try:
        server = uvicorn.Server(uvicorn.Config(runtime.asgi_app(), host=host, port=port,
                                               log_level="info", lifespan="off",
                                               log_config=None,
                                               access_log=os.environ.get(
                                                   "ALIGNBOT_ACCESS_LOG", "0") == "1"))
        signal.signal(signal.SIGTERM, lambda *_: setattr(server, "should_exit", True))
        server.run()
    finally:
        runtime.stop()
