"""Prometheus metrics: what the store holds (read at scrape time) and what this process does.

Every ``Metrics`` owns its own ``CollectorRegistry``; nothing touches prometheus_client's global
default registry, so several runtimes in one process (tests, the demo) never clash.

Two kinds of series:

* **From the store, at scrape time** (``StoreCollector``): a handful of ``GROUP BY`` queries, each
  answered from an index or a small table; nothing is loaded row by row. Every replica reports
  the same numbers for these (they are the shared database), so aggregate them with ``max`` (or
  scrape one replica), not ``sum``.

  - ``alignbot_open_drifts{kind}`` — open drifts (``drifts.is_open``).
  - ``alignbot_open_recommendations{kind,team}`` — recommendations waiting for a decision
    (state ``open``) by kind and owning team; one owned by two teams counts once for each, one
    with no team is ``team="unrouted"``. (Drifts are not linked to teams in the store; a
    recommendation is what a team owns, so the per-team backlog is counted on recommendations.)
  - ``alignbot_recommendations{state}`` — recommendations in every lifecycle state.
  - ``alignbot_decisions_total{verdict}`` — decisions recorded (approve, reject, modify, snooze).
  - ``alignbot_time_to_decision_seconds`` — histogram of ``decided_at - created_at`` over every
    recommendation that has been decided (approved or rejected).
  - ``alignbot_executions_total{status}`` — finished execution attempts (done, duplicate,
    rejected, error), and ``alignbot_executions_running`` — attempts not finished yet (a gauge:
    a counter must never go down, or ``rate()`` would read each finish as a reset).
  - ``alignbot_outbox_depth{state}`` — outbox rows still pending, and dead ones (gave up).
  - ``alignbot_outbox_oldest_pending_age_seconds`` — how long the oldest pending action waits.
  - ``alignbot_connector_stale{connector}`` and
    ``alignbot_connector_last_success_timestamp_seconds{connector}``.
  - ``alignbot_store_up`` — 1 if the queries above succeeded on this scrape, else 0 (and the
    store series are left out rather than reported as zeros).

* **In-process instruments**, per replica:

  - ``alignbot_connector_poll_seconds{connector}`` (histogram) and
    ``alignbot_connector_poll_errors_total{connector}``.
  - ``alignbot_slack_api_calls_total{method}`` — Web API calls (one per call, however many HTTP
    attempts its retries took) and ``alignbot_slack_api_ratelimited_total{method}`` — HTTP 429
    responses received (every one, including those a retry then rode through).
  - ``alignbot_leader`` — 1 while this replica runs the scheduler (polls, sweeps, digests).
  - the standard ``process_*``, ``python_gc_*`` and ``python_info`` series.

Slack calls are counted by a retry handler (``SlackCallObserver``) placed first in the
WebClient's ``retry_handlers``: slack_sdk shows every HTTP attempt's response to its retry
handlers, and Bolt copies the app client's ``retry_handlers`` into the WebClient it builds for
each request, so calls made from listeners are counted too — no monkeypatching, no subclass.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
)
from slack_sdk.http_retry.handler import RetryHandler
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState
from sqlalchemy import String, case, cast, extract, func, select
from sqlalchemy.engine import Engine

from bot.slack_client import api_base_url
from store.db import reader
from store.tables import (
    ConnectorHealth,
    DecisionRow,
    DriftRow,
    ExecutionRow,
    OutboxRow,
    RecommendationRow,
    RecState,
)
from store.types import UTC, utcnow

log = logging.getLogger(__name__)

# 1 min … 1 week: a decision in minutes is great, in hours normal, in days a problem.
DECISION_BUCKETS: tuple[float, ...] = (
    60, 300, 900, 1800, 3600, 7200, 14400, 28800, 86400, 172800, 345600, 604800)
POLL_BUCKETS: tuple[float, ...] = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)

VERDICTS = ("approve", "reject", "modify", "snooze")
EXECUTION_STATUSES = ("done", "duplicate", "rejected", "error")
OUTBOX_DEPTH_STATES = ("pending", "dead")  # "done" rows are history, not depth
UNROUTED = "unrouted"

# Slack method names look like chat.postMessage or admin.conversations.setTeams; anything else
# (an upload URL, a stand-in path) is "other", so a label can never explode in cardinality.
_METHOD = re.compile(r"^[a-z]+(?:\.[A-Za-z]+)+$")


def slack_method(url: str) -> str:
    """The Web API method an HTTP request went to, from its URL."""
    path = url.split("?", 1)[0].rstrip("/")
    name = path.rsplit("/", 1)[-1]
    return name if _METHOD.match(name) else "other"


def _bucket_label(bound: float) -> str:
    return str(float(bound))  # prometheus_client renders le as floats ("60.0")


# -- the store, at scrape time ------------------------------------------------------------------

class StoreCollector:
    """Reads the backlog and history from the database each time Prometheus scrapes."""

    def __init__(self, engine: Engine, *, clock: Callable[[], datetime] = utcnow,
                 decision_buckets: Iterable[float] = DECISION_BUCKETS):
        self.engine = engine
        self.clock = clock
        self.decision_buckets = tuple(sorted(float(b) for b in decision_buckets))

    def collect(self) -> Iterator[Metric]:
        started = time.perf_counter()
        try:
            families = self._families()
        except Exception as exc:  # noqa: BLE001 — a scrape must answer even when the database does not
            log.warning("metrics: store query failed: %s: %s", type(exc).__name__, exc)
            families, up = [], 0.0
        else:
            up = 1.0
        yield from families
        yield GaugeMetricFamily("alignbot_store_up",
                                "1 if the store could be queried for this scrape, else 0.",
                                value=up)
        yield GaugeMetricFamily("alignbot_store_scrape_seconds",
                                "Time spent querying the store for this scrape.",
                                value=time.perf_counter() - started)

    def _families(self) -> list[Metric]:
        with reader(self.engine).connect() as conn:
            drifts = conn.execute(
                select(DriftRow.kind, func.count()).where(DriftRow.is_open)
                .group_by(DriftRow.kind)).all()
            # teams is a JSON list; grouping by its text keeps the aggregation in SQL (there are
            # only a few distinct team combinations) and works on SQLite and PostgreSQL alike.
            teams_text = cast(RecommendationRow.teams, String)
            waiting = conn.execute(
                select(RecommendationRow.kind, teams_text, func.count())
                .where(RecommendationRow.state == RecState.OPEN.value)
                .group_by(RecommendationRow.kind, teams_text)).all()
            states = conn.execute(
                select(RecommendationRow.state, func.count())
                .group_by(RecommendationRow.state)).all()
            verdicts = conn.execute(
                select(DecisionRow.verdict, func.count()).group_by(DecisionRow.verdict)).all()
            decided = conn.execute(self._time_to_decision_query(conn.dialect.name)).one()
            executions = conn.execute(
                select(ExecutionRow.status, ExecutionRow.finished_at.is_(None), func.count())
                .group_by(ExecutionRow.status, ExecutionRow.finished_at.is_(None))).all()
            outbox = conn.execute(
                select(OutboxRow.state, func.count()).where(OutboxRow.state != "done")
                .group_by(OutboxRow.state)).all()
            oldest = conn.execute(
                select(func.min(OutboxRow.created_at)).where(OutboxRow.state == "pending")
            ).scalar()
            health = conn.execute(
                select(ConnectorHealth.connector, ConnectorHealth.stale,
                       ConnectorHealth.last_success_at)).all()
        now = self.clock()
        return [
            self._open_drifts(drifts),
            self._open_recommendations(waiting),
            self._recommendations(states),
            self._decisions(verdicts),
            self._time_to_decision(decided),
            *self._executions(executions),
            *self._outbox(outbox, oldest, now),
            *self._connectors(health),
        ]

    # queries and families ------------------------------------------------------------------

    def _time_to_decision_query(self, dialect: str):  # type: ignore[no-untyped-def]
        rec = RecommendationRow
        if dialect == "sqlite":  # datetimes are text there; julianday is in days
            seconds = func.round(
                (func.julianday(rec.decided_at) - func.julianday(rec.created_at)) * 86400.0, 3)
        else:
            seconds = extract("epoch", rec.decided_at - rec.created_at)
        durations = select(seconds.label("s")).where(rec.decided_at.is_not(None)).subquery()
        s = durations.c.s
        return select(
            func.count(), func.coalesce(func.sum(s), 0),
            *(func.coalesce(func.sum(case((s <= bound, 1), else_=0)), 0)
              for bound in self.decision_buckets))

    @staticmethod
    def _open_drifts(rows: list[Any]) -> Metric:
        family = GaugeMetricFamily("alignbot_open_drifts", "Open drifts, by kind.",
                                   labels=["kind"])
        for kind, n in sorted(rows):
            family.add_metric([kind], n)
        return family

    @staticmethod
    def _open_recommendations(rows: list[Any]) -> Metric:
        counts: dict[tuple[str, str], int] = {}
        for kind, teams_json, n in rows:
            try:
                teams = json.loads(teams_json) if teams_json else []
            except (TypeError, ValueError):
                teams = []
            for team in dict.fromkeys(str(t) for t in teams) or [UNROUTED]:
                counts[kind, team] = counts.get((kind, team), 0) + n
        family = GaugeMetricFamily(
            "alignbot_open_recommendations",
            "Recommendations waiting for a decision (state open), by kind and owning team; "
            "one owned by two teams counts for each.", labels=["kind", "team"])
        for (kind, team), n in sorted(counts.items()):
            family.add_metric([kind, team], n)
        return family

    @staticmethod
    def _recommendations(rows: list[Any]) -> Metric:
        counts = {state.value: 0 for state in RecState}
        counts.update({state: n for state, n in rows})
        family = GaugeMetricFamily("alignbot_recommendations",
                                   "Recommendations in each lifecycle state.", labels=["state"])
        for state, n in sorted(counts.items()):
            family.add_metric([state], n)
        return family

    @staticmethod
    def _decisions(rows: list[Any]) -> Metric:
        counts = dict.fromkeys(VERDICTS, 0)
        counts.update({verdict: n for verdict, n in rows})
        family = CounterMetricFamily("alignbot_decisions",
                                     "Decisions recorded, by verdict.", labels=["verdict"])
        for verdict, n in sorted(counts.items()):
            family.add_metric([verdict], n)
        return family

    def _time_to_decision(self, row: Any) -> Metric:
        count, total, *cumulative = row
        buckets = [(_bucket_label(b), int(n)) for b, n in zip(self.decision_buckets, cumulative)]
        buckets.append(("+Inf", int(count)))
        return HistogramMetricFamily(
            "alignbot_time_to_decision_seconds",
            "From a recommendation's creation to its decision (approved or rejected).",
            buckets=buckets, sum_value=float(total))

    @staticmethod
    def _executions(rows: list[Any]) -> list[Metric]:
        counts, running = dict.fromkeys(EXECUTION_STATUSES, 0), 0
        for status, unfinished, n in rows:
            if unfinished or not status:
                running += n
            else:
                counts[status] = counts.get(status, 0) + n
        family = CounterMetricFamily("alignbot_executions",
                                     "Finished attempts to execute an approved action, by outcome.",
                                     labels=["status"])
        for status, n in sorted(counts.items()):
            family.add_metric([status], n)
        return [family, GaugeMetricFamily("alignbot_executions_running",
                                          "Execution attempts under way (not finished).",
                                          value=running)]

    @staticmethod
    def _outbox(rows: list[Any], oldest: datetime | None, now: datetime) -> list[Metric]:
        counts = dict.fromkeys(OUTBOX_DEPTH_STATES, 0)
        counts.update({state: n for state, n in rows})
        depth = GaugeMetricFamily(
            "alignbot_outbox_depth",
            "Approved actions not yet executed (pending) or given up on (dead).",
            labels=["state"])
        for state, n in sorted(counts.items()):
            depth.add_metric([state], n)
        if oldest is not None and oldest.tzinfo is None:  # SQLite text, stored as UTC
            oldest = oldest.replace(tzinfo=UTC)
        age = GaugeMetricFamily(
            "alignbot_outbox_oldest_pending_age_seconds",
            "How long the oldest pending action has waited (0 when none is pending).",
            value=max(0.0, (now - oldest).total_seconds()) if oldest is not None else 0.0)
        return [depth, age]

    @staticmethod
    def _connectors(rows: list[Any]) -> list[Metric]:
        stale = GaugeMetricFamily("alignbot_connector_stale",
                                  "1 while a connector's data is marked stale.",
                                  labels=["connector"])
        success = GaugeMetricFamily("alignbot_connector_last_success_timestamp_seconds",
                                    "When a connector last read successfully (Unix time).",
                                    labels=["connector"])
        for name, is_stale, last_success in sorted(rows, key=lambda r: r[0]):
            stale.add_metric([name], 1.0 if is_stale else 0.0)
            if last_success is not None:
                if last_success.tzinfo is None:
                    last_success = last_success.replace(tzinfo=UTC)
                success.add_metric([name], last_success.timestamp())
        return [stale, success]


# -- the process ----------------------------------------------------------------------------------

class Metrics:
    """All of alignbot's metrics for one runtime, in a registry of its own."""

    def __init__(self, engine: Engine | None, registry: CollectorRegistry | None = None, *,
                 connectors: Iterable[str] = (), clock: Callable[[], datetime] = utcnow,
                 process_metrics: bool = True):
        self.registry = registry if registry is not None else CollectorRegistry()
        reg = self.registry
        self.poll_seconds = Histogram(
            "alignbot_connector_poll_seconds", "Time to poll one connector (read and record).",
            ["connector"], buckets=POLL_BUCKETS, registry=reg)
        self.poll_errors = Counter(
            "alignbot_connector_poll_errors", "Connector polls that failed.", ["connector"],
            registry=reg)
        self.slack_calls = Counter(
            "alignbot_slack_api_calls", "Slack Web API calls, by method (retries not counted).",
            ["method"], registry=reg)
        self.slack_ratelimited = Counter(
            "alignbot_slack_api_ratelimited",
            "HTTP 429 responses from the Slack Web API, by method (each one, retried or not).",
            ["method"], registry=reg)
        self.detection_passes = Counter(
            "alignbot_detection_passes", "Detection passes, by outcome: ok, isolated (key groups "
            "that made the pass fail were quarantined, the rest detected) or failed.",
            ["outcome"], registry=reg)
        self.isolated_groups = Counter(
            "alignbot_detection_isolated_groups",
            "Key groups (a SKU, a resource, a lane) quarantined because detection failed on them.",
            registry=reg)
        for outcome in ("ok", "isolated", "failed"):
            self.detection_passes.labels(outcome)
        self.leader = Gauge("alignbot_leader",
                            "1 while this replica runs the scheduler (polls, sweeps, digests).",
                            registry=reg)
        for name in connectors:  # known series from the start, so rate() sees the first error
            self.poll_seconds.labels(name)
            self.poll_errors.labels(name)
        self.store: StoreCollector | None = None
        if engine is not None:
            self.store = StoreCollector(engine, clock=clock)
            reg.register(self.store)
        if process_metrics:
            ProcessCollector(registry=reg)
            PlatformCollector(registry=reg)
            GCCollector(registry=reg)
        self._lock = threading.Lock()

    # instruments --------------------------------------------------------------------------

    def observe_poll(self, connector: str, seconds: float, ok: bool) -> None:
        self.poll_seconds.labels(connector).observe(max(0.0, seconds))
        if not ok:
            self.poll_errors.labels(connector).inc()
        else:
            self.poll_errors.labels(connector)  # the series exists (at 0) once a poll ran

    def observe_detection(self, outcome: str, isolated: int) -> None:
        self.detection_passes.labels(outcome).inc()
        self.isolated_groups.inc(isolated)

    def count_slack_call(self, method: str) -> None:
        self.slack_calls.labels(method).inc()

    def count_ratelimit(self, method: str) -> None:
        self.slack_ratelimited.labels(method).inc()

    def set_leader(self, leader: bool) -> None:
        self.leader.set(1 if leader else 0)

    def slack_observer(self) -> SlackCallObserver:
        return SlackCallObserver(self)

    # exposition ---------------------------------------------------------------------------

    def render(self, accept: str | None = None) -> tuple[bytes, str]:
        """The exposition (Prometheus text, or OpenMetrics if ``accept`` asks) and its type."""
        encoder, content_type = choose_encoder(accept or "")
        with self._lock:  # concurrent scrapes take turns rather than stacking up queries
            return encoder(self.registry), content_type

    def starlette_endpoint(self) -> Callable[[Any], Any]:
        """An async Starlette endpoint for ``GET /metrics``; the queries run off the event loop."""
        from starlette.concurrency import run_in_threadpool
        from starlette.responses import Response

        async def metrics(request: Any) -> Response:
            body, content_type = await run_in_threadpool(
                self.render, request.headers.get("accept"))
            return Response(body, headers={"Content-Type": content_type,
                                           "Cache-Control": "no-store"})

        return metrics


# -- Slack ------------------------------------------------------------------------------------------

class SlackCallObserver(RetryHandler):
    """Counts Web API calls and 429s; never asks for a retry itself.

    slack_sdk offers each HTTP attempt's outcome to its retry handlers in order until one
    accepts; so this one must come **first** in ``retry_handlers`` to see every attempt. An
    attempt with ``state.current_attempt == 0`` is the first of its call: that is one call,
    however many retries follow. Every 429 is counted, including the last one that exhausted
    the retry budget (the built-in handler's ``can_retry`` would never look at that one).
    """

    def __init__(self, metrics: Metrics):
        super().__init__(max_retry_count=0)
        self.metrics = metrics

    def can_retry(self, *, state: RetryState, request: HttpRequest,
                  response: HttpResponse | None = None,
                  error: Exception | None = None) -> bool:
        try:
            method = slack_method(request.url)
            if state.current_attempt == 0:
                self.metrics.count_slack_call(method)
            if response is not None and response.status_code == 429:
                self.metrics.count_ratelimit(method)
        except Exception:  # counting must never break a Slack call
            log.debug("metrics: could not count a Slack call", exc_info=True)
        return False

    def _can_retry(self, *, state: RetryState, request: HttpRequest,
                   response: HttpResponse | None = None,
                   error: Exception | None = None) -> bool:
        return False


def slack_retry_handlers(metrics: Metrics | None, *,
                         max_rate_limit_retries: int = 3) -> list[RetryHandler]:
    """The retry handlers of ``bot.slack_client.make_web_client``, with the observer first."""
    handlers: list[RetryHandler] = [] if metrics is None else [SlackCallObserver(metrics)]
    handlers += [ConnectionErrorRetryHandler(max_retry_count=2),
                 RateLimitErrorRetryHandler(max_retry_count=max_rate_limit_retries)]
    return handlers


def instrumented_web_client(token: str, api_url: str | None, metrics: Metrics | None, *,
                            timeout: int = 10, max_rate_limit_retries: int = 3) -> WebClient:
    """``make_web_client`` plus call and 429 counting (also in Bolt's per-request clients)."""
    return WebClient(token=token, base_url=api_base_url(api_url), timeout=timeout,
                     retry_handlers=slack_retry_handlers(
                         metrics, max_rate_limit_retries=max_rate_limit_retries))


__all__ = [
    "DECISION_BUCKETS", "POLL_BUCKETS", "Metrics", "SlackCallObserver", "StoreCollector",
    "instrumented_web_client", "slack_method", "slack_retry_handlers",
]
