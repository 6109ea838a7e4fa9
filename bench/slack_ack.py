"""How fast a real ``alignbot run`` acks Slack: 50 concurrent clicks, and /drift, with the
worker idle and while a full detection pass over the 1M-row network runs.

The set-up is production's: ``alignbot run`` starts the ingress and the worker as two processes
(HTTP mode; on SQLite, then on PostgreSQL when it is installed), the sandboxes and the Slack
stand-in (which receives the bot's Web API calls after each ack) run in this process, and the
clicks come from another process (``bench.clicker``) that signs each request as Slack does and
sends all fifty at once, each on a fresh connection. The latency is what Slack would see: from
opening the connection to the end of the answer. The detection load is ``bench.detect --busy``,
a process running full passes over the 1M-row network back to back, on the same two cores.

Clicks mix what people do on open recommendation messages: Approve by team members and by an
outsider (refused with an ephemeral note), Reject and Modify (which open modals — the trigger
they carry lives 3 s, so handling after the ack must still be quick).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from sqlmodel import func, select

from bench.report import Figure, percentile
from bench.slack_latency import members
from bot.demo import demo_config
from sandbox.serving import free_port
from sandbox.systems import start_sandboxes
from store.db import make_engine, session_scope
from store.inbox import inbox_url
from store.migrate import upgrade
from store.tables import RecommendationRow, SlackInboxRow
from tests.support.bot_process import prepare_bot_processes
from tests.support.waiting import wait_until

ROOT = Path(__file__).resolve().parents[1]
TOKEN, SECRET = "xoxb-bench-ack", "bench-ack-signing-secret-0123"
NOWHERE = "http://127.0.0.1:9/slack/events"  # capture a click's exact body without sending it
OUTSIDER = "U0SALES"
CHANNELS = ("C0LOGISTICS", "C0PLANNING")


class BotUnderTest:
    """Sandboxes, the stand-in and one ``alignbot run`` process, started and stopped together."""

    def __init__(self, database_url: str | None = None):
        self.database_url = database_url

    def __enter__(self) -> BotUnderTest:
        self.tmp = Path(tempfile.mkdtemp(prefix="alignbot-bench-ack-"))
        self.database_url = self.database_url or f"sqlite:///{self.tmp / 'alignbot.db'}"
        upgrade(self.database_url)
        self.engine = make_engine(self.database_url)
        self.inbox_engine = make_engine(inbox_url(self.database_url))  # the bot creates it
        self.planning, self.tms = start_sandboxes(seed=7)
        self.config = demo_config(self.planning.url, self.tms.url, fast=False)
        self.slack, config_path, env = prepare_bot_processes(
            self.config, self.database_url, self.tmp, token=TOKEN, secret=SECRET)
        port = free_port()
        while free_port() == port + 1:  # the worker listens on the next port
            port = free_port()
        self.url = f"http://127.0.0.1:{port}"  # the ingress
        self.worker_url = f"http://127.0.0.1:{port + 1}"
        self._log = open(self.tmp / "bot.log", "w")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [str(ROOT / ".venv/bin/alignbot"), "run", "--config", str(config_path),
             "--host", "127.0.0.1", "--port", str(port)],
            cwd=ROOT, env={**env, "ALIGNBOT_LOG_LEVEL": "WARNING"}, stdout=self._log,
            stderr=subprocess.STDOUT)
        wait_until(self._healthy, 120, "the bot did not come up")
        self.slack.app_url = self.url + "/slack/events"
        return self

    def _healthy(self) -> bool:
        try:
            return all(httpx.get(url + "/healthz", timeout=3).status_code == 200
                       for url in (self.url, self.worker_url))
        except httpx.HTTPError:
            return False

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        for part in (self.slack, self.planning, self.tms):
            part.stop()
        self._log.close()
        self.engine.dispose()
        self.inbox_engine.dispose()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def cpu_seconds(self) -> float:
        """The bot's processes' user + system CPU time so far (``alignbot run`` and its two
        children)."""
        pid = self.proc.pid
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        total = 0.0
        for each in [pid, *map(int, children)]:
            fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return total

    def open_messages(self) -> list[tuple[object, RecommendationRow]]:
        """(message, row) for posted open recommendations that still show their buttons."""
        with session_scope(self.engine) as s:
            rows = {r.slack_ts: r for r in s.exec(select(RecommendationRow).where(
                RecommendationRow.state == "open", RecommendationRow.slack_ts.is_not(None)))}
        return [(m, rows[m.ts]) for ch in CHANNELS for m in self.slack.messages(ch)
                if m.ts in rows and any(b.get("type") == "actions" for b in m.blocks)]

    def enough_open_messages(self, n: int = 10) -> None:
        """At least n open messages to click; each round approves up to ten, so when fewer are
        left the scenario injects more drift."""
        if len(self.open_messages()) < n:
            httpx.post(self.planning.url + "/scenario/step", timeout=10)
        wait_until(lambda: len(self.open_messages()) >= n, 120, f"fewer than {n} open messages")

    def pending_clicks(self) -> int:
        with session_scope(self.inbox_engine) as s:
            return s.exec(select(func.count()).select_from(SlackInboxRow).where(
                SlackInboxRow.state == "pending")).one()

    def handling_seconds(self, after_id: int) -> list[float]:
        """Per stored request after ``after_id``: from stored to handled (decision recorded,
        refusal told, modal opened)."""
        with session_scope(self.inbox_engine) as s:
            rows = s.exec(select(SlackInboxRow).where(SlackInboxRow.id > after_id)).all()
        return [(r.done_at - r.received_at).total_seconds() for r in rows if r.done_at]

    def last_stored(self) -> int:
        with session_scope(self.inbox_engine) as s:
            return s.exec(select(func.coalesce(func.max(SlackInboxRow.id), 0))).one()


class DetectionLoad:
    """``bench.detect --busy``: full passes over the 1M-row network, back to back, in a process
    beside the bot, from the first finished pass until stopped."""

    def __enter__(self) -> DetectionLoad:
        # at the worker's niceness under `alignbot run`: the passes are the worker's work
        self.proc = subprocess.Popen([sys.executable, "-m", "bench.detect", "--busy"], cwd=ROOT,
                                     text=True, stdout=subprocess.PIPE,
                                     preexec_fn=lambda: os.nice(10))
        assert self.proc.stdout is not None
        if self.proc.stdout.readline().strip() != "ready":
            raise RuntimeError("the detection load did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        self.proc.kill()
        self.proc.wait()


class Clicker:
    """The clicker process, started (and done importing) before the clicks are made: Slack
    delivers a click within milliseconds of issuing its trigger, and the trigger lives 3 s."""

    def __enter__(self) -> Clicker:
        self.proc = subprocess.Popen([sys.executable, "-m", "bench.clicker"], cwd=ROOT, text=True,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        assert self.proc.stdout is not None
        if self.proc.stdout.readline().strip() != "ready":
            raise RuntimeError("the clicker process did not start")
        return self

    def fire(self, url: str, requests: list[dict]) -> list[dict]:
        """Send the requests at once; their timings in order."""
        job = json.dumps({"url": url, "signing_secret": SECRET, "requests": requests})
        out, _ = self.proc.communicate(job, timeout=120)
        if self.proc.returncode != 0:
            raise RuntimeError(f"the clicker failed with exit status {self.proc.returncode}")
        return json.loads(out)

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def fire(url: str, plan: Callable[[], list[dict]]) -> tuple[list[dict], list[dict]]:
    """Start a clicker, then make the requests with ``plan`` and send them at once:
    (requests, their timings in order)."""
    with Clicker() as clicker:
        requests = plan()
        return requests, clicker.fire(url, requests)


def _captured(bot: BotUnderTest, message, button: str, user: str) -> dict:  # type: ignore[no-untyped-def]
    delivery = bot.slack.click(message, button, as_user=user, url=NOWHERE)
    return {"body": delivery.request.body.decode(), "content_type": delivery.request.content_type,
            "label": f"{button} ({'outsider' if user == OUTSIDER else 'member'})"}


def plan_round(bot: BotUnderTest, n: int) -> list[dict]:
    """n clicks: 1/5 outsider Approve, 1/5 member Approve, 2/5 Reject, 1/5 Modify (members)."""
    msgs = bot.open_messages()
    clicks = []
    for i in range(n):
        message, row = msgs[i % len(msgs)]
        team_members = members(bot.config, row.teams[0])
        button, user = [("Approve", OUTSIDER), ("Approve", team_members[i % len(team_members)]),
                        ("Reject", team_members[0]), ("Reject", team_members[0]),
                        ("Modify", team_members[0])][i % 5]
        clicks.append(_captured(bot, message, button, user))
    return clicks


def _ms(v: float | None) -> float | None:
    return None if v is None else round(v * 1000, 1)


def run(quick: bool = False, log=print) -> list[Figure]:  # type: ignore[no-untyped-def]
    """On SQLite (one process, the default) and, when installed, on PostgreSQL (production)."""
    from tests.support.postgres import start_postgres

    figures = _or_why_not("SQLite", lambda: measure(None, "SQLite", quick, log))
    server = start_postgres(durable=True)  # commits synced to disk, as in production
    if server is None:
        log("    PostgreSQL is not installed: the PostgreSQL round is skipped")
        return figures
    try:
        return figures + _or_why_not("PostgreSQL", lambda: measure(
            server.create_database("bench_ack"), "PostgreSQL", quick, log))
    finally:
        server.stop()


def _or_why_not(backend: str, measure_it: Callable[[], list[Figure]]) -> list[Figure]:
    """One backend's figures, or a row saying why there are none (the other's still count)."""
    try:
        return measure_it()
    except Exception as exc:  # noqa: BLE001 — a bench reports its failure, it does not crash
        return [Figure(f"Slack ack latency ({backend})", "run", None, "",
                       notes=f"failed: {type(exc).__name__}: {exc}")]


@dataclass
class Rounds:
    """What a set of rounds measured: acks as Slack saw them, and each stored click from
    stored to handled."""

    acks: list[float] = field(default_factory=list)
    handled: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    round_max: list[str] = field(default_factory=list)  # slowest ack of each round, with load
    expired: int = 0
    views: int = 0
    cpu_per_click: list[float] = field(default_factory=list)


def click_rounds(bot: BotUnderTest, rounds: int, concurrency: int) -> Rounds:
    out = Rounds()
    views_before = len(bot.slack.calls("views.open"))
    for _ in range(rounds):
        bot.enough_open_messages()
        after = bot.last_stored()
        with Clicker() as clicker:
            clicks = plan_round(bot, concurrency)
            cpu0 = bot.cpu_seconds()
            results = clicker.fire(bot.url + "/slack/events", clicks)
        wait_until(lambda: bot.pending_clicks() == 0, 120, "clicks left unhandled")
        out.cpu_per_click.append((bot.cpu_seconds() - cpu0) / len(clicks))
        out.handled += bot.handling_seconds(after)
        out.round_max.append(f"{_ms(max(r['seconds'] for r in results))} ms "
                             f"(load {os.getloadavg()[0]:.2f})")
        for r in results:
            out.acks.append(r["seconds"])
            out.statuses[r["status"]] = out.statuses.get(r["status"], 0) + 1
        time.sleep(2.0)  # let the Slack edits of this round go out
    views = bot.slack.calls("views.open")[views_before:]
    out.views = len(views)
    out.expired = sum(1 for c in views if c.response.get("error") == "expired_trigger_id")
    return out


TEXTS = ["", "mine", "help", "SKU-00087", "DC-CA", "NORTHLINE", "#3", "disruption",
         "DC-NJ>DC-TX", "!!nonsense??"]


def drift_rounds(bot: BotUnderTest, rounds: int, concurrency: int) -> Rounds:
    out = Rounds()
    users = [("U0PLAN1", "C0PLANNING"), ("U0LOG1", "C0LOGISTICS")]

    def plan_commands() -> list[dict]:
        commands = []
        for i in range(concurrency):
            user, channel = users[i % len(users)]
            d = bot.slack.command(f"/drift {TEXTS[i % len(TEXTS)]}".strip(), as_user=user,
                                  channel=channel, url=NOWHERE)
            commands.append({"body": d.request.body.decode(),
                             "content_type": d.request.content_type})
        return commands

    for _ in range(rounds):
        answered = len(bot.slack.calls("response_url"))
        after = bot.last_stored()
        _, results = fire(bot.url + "/slack/events", plan_commands)
        out.acks += [r["seconds"] for r in results]
        out.round_max.append(f"{_ms(max(r['seconds'] for r in results))} ms "
                             f"(load {os.getloadavg()[0]:.2f})")
        wait_until(lambda n=answered: len(bot.slack.calls("response_url")) >= n + concurrency,
                   120, "commands left unanswered")
        out.handled += bot.handling_seconds(after)
    return out


def measure(database_url: str | None, backend: str, quick: bool,
            log=print) -> list[Figure]:  # type: ignore[no-untyped-def]
    bench = f"Slack ack latency ({backend})"
    rounds, concurrency = (1 if quick else 3), 50
    with BotUnderTest(database_url) as bot:
        httpx.post(bot.planning.url + "/scenario/step", timeout=10)
        wait_until(lambda: len(bot.open_messages()) >= 10, 120, "fewer than 10 open messages")
        events = bot.url + "/slack/events"
        message, row = bot.open_messages()[0]
        fire(events, lambda: [_captured(bot, message, "Approve", OUTSIDER)])  # warm-up
        sequential = []
        for _ in range(10):
            first = bot.open_messages()[0][0]
            _, results = fire(events, lambda m=first: [_captured(bot, m, "Approve", OUTSIDER)])
            sequential += [r["seconds"] for r in results]
        idle, idle_drift = click_rounds(bot, rounds, concurrency), \
            drift_rounds(bot, rounds, concurrency)
        with DetectionLoad():
            busy, busy_drift = click_rounds(bot, rounds, concurrency), \
                drift_rounds(bot, rounds, concurrency)

    log(f"    idle: {len(idle.acks)} clicks, p99 {_ms(percentile(idle.acks, 99))} ms; "
        f"during passes: p99 {_ms(percentile(busy.acks, 99))} ms")
    synced_by = ("PostgreSQL's defaults: fsync, synchronous_commit" if backend == "PostgreSQL"
                 else "the inbox file commits with synchronous=FULL")
    setup = (f"`alignbot run` (ingress and worker processes) on {backend}; clicks sent by another "
             "process, all at once, each on a fresh connection; each batch stored and synced to "
             f"disk before its acks ({synced_by})")
    during = "while full detection passes over the 1M-row network run back to back beside it"
    figures = [
        Figure(bench, "click ack, one at a time p50", _ms(percentile(sequential, 50)), "ms",
               notes=f"{len(sequential)} outsider clicks in sequence; {setup}"),
    ]
    for label, clicks, drift, target in (("worker idle", idle, idle_drift, 50.0),
                                         (during, busy, busy_drift, 100.0)):
        short = "idle" if clicks is idle else "during a 1M pass"
        status_text = ", ".join(f"HTTP {k}×{v}" for k, v in sorted(clicks.statuses.items()))
        figures += [
            Figure(bench, f"click ack p99 ({concurrency} concurrent, {short})",
                   _ms(percentile(clicks.acks, 99)), "ms", target=target,
                   notes=f"{label}; p50 {_ms(percentile(clicks.acks, 50))} ms; "
                         f"{len(clicks.acks)} clicks in {rounds} round(s); {status_text}; slowest "
                         "ack of each round: " + " / ".join(clicks.round_max)),
            Figure(bench, f"/drift ack p99 ({concurrency} concurrent, {short})",
                   _ms(percentile(drift.acks, 99)), "ms", target=target,
                   notes=f"{label}; p50 {_ms(percentile(drift.acks, 50))} ms; 10 query forms, "
                         "answered through response_url after the ack; slowest ack of each "
                         "round: " + " / ".join(drift.round_max)),
            Figure(bench, f"decisions recorded p95 ({short})",
                   _ms(percentile(clicks.handled, 95)), "ms", target=1000.0,
                   notes=f"{label}; from a click stored to it handled (decision recorded, refusal "
                         f"told, modal opened), {len(clicks.handled)} clicks; the bot spent "
                         f"{1000 * sum(clicks.cpu_per_click) / len(clicks.cpu_per_click):.1f} ms "
                         "CPU per click (both processes)"),
            Figure(bench, f"modals not opened ({short}, expired trigger)", clicks.expired,
                   "calls", target=0,
                   notes=f"{clicks.views} views.open calls for the Reject/Modify clicks"),
        ]
    return figures
