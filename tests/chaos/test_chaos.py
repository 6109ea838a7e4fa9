"""Chaos: approvals under SIGKILLs, flaky target systems and doubled Slack deliveries.

The bot's two processes (`alignbot ingress`, `alignbot worker`) on a real PostgreSQL, the Slack
stand-in and both sandbox systems. N recommendations are seeded in the store (as a detection pass would write them), the
bot posts them, and a person approves each one — every click is delivered twice (the click, then
Slack's retry; while the bot is down Slack keeps retrying until it gets a 200). Meanwhile a
killer thread SIGKILLs the ingress or the worker at random (seeded) moments and restarts it, and both sandboxes
fail 20 % of calls (HTTP 500 or answering too late, after applying the change).

What a user would notice is asserted and printed: every approved change happened exactly once
in the target systems, every decision is in the audit trail once, no recommendation was posted
twice, and every message ends up showing the outcome.

FULL (1,000 approvals, 20 kills) runs under `make test-chaos`; REDUCED (40 approvals, 3 kills)
runs in every `make test`.

The bot's own polling is pointed at collections the sandboxes do not have, so reads fail and the
bot never runs detection: a detection pass over the sandbox world (which does not contain these
seeded drifts) would resolve the seeded recommendations before anyone could approve them, and
re-validation would supersede them. With no picture read, the executor trusts the approval
(``DecisionLoop.revalidate``). Execution, decisions and Slack sync are exercised in full.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlmodel import select

from bot.demo import demo_config
from bot.lifecycle import apply_detection
from canonical.model import Action, Recommendation
from sandbox.serving import free_port
from sandbox.slack import SlackStandin
from sandbox.systems import start_sandboxes
from store.db import make_engine, session_scope
from store.migrate import upgrade
from store.tables import ActionRow, AuditEvent, DecisionRow, OutboxRow, RecommendationRow
from tests.support.bot_process import prepare_bot_processes
from tests.support.builders import demand_drift, recommendation_for
from tests.support.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
TOKEN, SECRET = "xoxb-chaos-test-token", "chaos-signing-secret-0123456789"
TERMINAL = {"executed", "failed", "partially_executed", "superseded", "rejected", "expired",
            "resolved"}
PLANNERS = ("U0PLAN1", "U0PLAN2")
CHANNEL = "C0PLANNING"


@dataclass(frozen=True)
class Size:
    approvals: int
    kills: int
    gap: tuple[float, float]  # seconds of uptime between a restart and the next kill
    timeout: float  # for everything to become terminal after the last click


REDUCED = Size(approvals=40, kills=3, gap=(0.5, 2.5), timeout=240)
FULL = Size(approvals=1000, kills=20, gap=(2.0, 12.0), timeout=1200)
SEED = 20261126


class Bot:
    """The bot as production runs it: an `alignbot ingress` and an `alignbot worker` process,
    either of which can be SIGKILLed and started again on the same port."""

    ROLES = ("ingress", "worker")

    def __init__(self, config_path: Path, env: dict[str, str], log: Path):
        self.config_path, self.env, self.log = config_path, env, log
        self.ports = {role: free_port() for role in self.ROLES}
        self.url = f"http://127.0.0.1:{self.ports['ingress']}"
        self.procs: dict[str, subprocess.Popen] = {}
        self.starts = 0

    def start(self, roles: tuple[str, ...] = ROLES) -> None:
        with open(self.log, "a") as log:
            for role in roles:
                log.write(f"\n===== {role} start #{self.starts + 1} at {datetime.now(UTC)} =====\n")
                log.flush()
                self.procs[role] = subprocess.Popen(
                    [str(ROOT / ".venv/bin/alignbot"), role, "--config", str(self.config_path),
                     "--host", "127.0.0.1", "--port", str(self.ports[role])],
                    cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT)
                self.starts += 1
        wait_until(self.up, 60, "the bot did not come up within 60 s", every=0.05)

    def up(self) -> bool:
        for role in self.ROLES:
            proc = self.procs.get(role)
            if proc is None or proc.poll() is not None:
                return False
            try:
                httpx.get(f"http://127.0.0.1:{self.ports[role]}/healthz", timeout=3)
            except httpx.HTTPError:
                return False
        return True

    def kill(self, role: str) -> None:
        self.procs[role].send_signal(signal.SIGKILL)
        self.procs[role].wait(10)

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


@pytest.fixture
def world(postgres_server, tmp_path):
    url = postgres_server.create_database(f"chaos_{os.getpid()}_{time.monotonic_ns()}")
    upgrade(url)
    planning, tms = start_sandboxes(seed=7)
    config = demo_config(planning.url, tms.url, fast=True)
    # Reads go to collections that do not exist (see the module docstring); executes go to
    # POST /actions as usual. A short connector timeout makes injected slow answers time out.
    connectors = []
    for conn in config.connectors:
        entities = ("demand", "inventory") if conn.system == "planning" else (
            "shipments", "capacity", "lanes")
        # retry.timeout_seconds, not the connector's `timeout`: the REST connector's retry
        # policy passes its own per-request timeout (10 s by default), which wins over it.
        settings = {"base_url": conn.settings["base_url"], "retry": {"timeout_seconds": 1},
                    **{e: {"path": f"/chaos-no-reads-{e}"} for e in entities}}
        connectors.append(conn.model_copy(update={
            "settings": settings, "timeout": timedelta(seconds=1),
            "schedule": conn.schedule.model_copy(update={"every": timedelta(minutes=10)})}))
    config = config.model_copy(update={"connectors": connectors})
    slack, config_path, env = prepare_bot_processes(config, url, tmp_path, token=TOKEN,
                                                    secret=SECRET)
    bot = Bot(config_path, env, tmp_path / "bot.log")
    slack.app_url = bot.url + "/slack/events"
    try:
        yield {"config": config, "engine": make_engine(url), "slack": slack, "bot": bot,
               "planning": planning, "tms": tms, "log": tmp_path / "bot.log"}
    finally:
        bot.stop()
        slack.stop()
        planning.stop()
        tms.stop()


def _seed(engine, config, planning, n: int) -> list[int]:
    """N planning-owned recommendations, each: re-plan one demand row + ask a carrier."""
    world = planning.world
    with world.lock:
        keys = sorted(world.tables["demand"])[:n]
        shipments = sorted(k[0] for k in world.tables["shipments"])
    assert len(keys) == n, f"the sandbox world has only {len(keys)} demand rows"
    drifts, recs = [], []
    for i, (sku, location, period) in enumerate(keys):
        drift = demand_drift(sku=sku, location=location, planned=1000, latest=1100)
        drift = drift.model_copy(update={"key": {**drift.key, "period": period},
                                         "fingerprint": f"chaos:{sku}:{location}:{period}"})
        rec: Recommendation = recommendation_for(drift)
        rec = rec.model_copy(update={
            "fingerprint": f"rec:chaos:{sku}:{location}:{period}",
            "drift_fingerprints": [drift.fingerprint],
            "actions": [
                Action(system="planning", operation="update_forecast",
                       params={"sku": sku, "location": location, "period": period,
                               "qty": 1100 + i}),
                Action(system="logistics", operation="request_status",
                       params={"shipment_id": shipments[i % len(shipments)]}),
            ]})
        drifts.append(drift)
        recs.append(rec)
    with session_scope(engine) as s:
        report = apply_detection(s, drifts, recs, config, datetime.now(UTC))
    assert len(report.created) == n
    with session_scope(engine) as s:
        teams = Counter(tuple(r.approvals_required) for r in s.exec(select(RecommendationRow)))
    assert teams == {("planning",): n}, f"expected planning-only approvals, got {teams}"
    return sorted(report.created)


def _counting(roll, counts: Counter):
    """Wrap a sandbox's fault dice so the test knows how many faults it injected."""
    def counted():
        outcome = roll()
        counts[outcome or "ok"] += 1
        return outcome
    return counted


class Killer(threading.Thread):
    """SIGKILL the ingress or the worker (a seeded random choice) at random (seeded) moments
    and start it again, ``kills`` times."""

    def __init__(self, bot: Bot, kills: int, gap: tuple[float, float], seed: int):
        super().__init__(name="chaos-killer", daemon=True)
        self.bot, self.kills, self.gap = bot, kills, gap
        self.rng = random.Random(seed)
        self.done = 0
        self.killed: list[str] = []
        self.downtime = 0.0
        self.error: Exception | None = None
        self.lock = threading.Lock()  # held while the bot is down or starting
        self.stop_event = threading.Event()

    def run(self) -> None:
        try:
            while self.done < self.kills and not self.stop_event.is_set():
                if self.stop_event.wait(self.rng.uniform(*self.gap)):
                    return
                with self.lock:
                    down = time.monotonic()
                    role = self.rng.choice(Bot.ROLES)
                    self.bot.kill(role)
                    self.killed.append(role)
                    self.done += 1
                    time.sleep(self.rng.uniform(0.0, 1.0))  # Slack keeps retrying meanwhile
                    self.bot.start((role,))
                    self.downtime += time.monotonic() - down
        except Exception as exc:  # noqa: BLE001 — surfaced by the test
            self.error = exc


def _until_ok(slack: SlackStandin, delivery, retry_num: int, deadline: float):
    """While the app does not answer 200, resend the same body as Slack's retries do.
    Returns the answered delivery and the next retry number."""
    while not delivery.ok:
        if time.monotonic() > deadline:
            raise AssertionError(f"no 200 for a click by retry {retry_num}: "
                                 f"{delivery.status} {delivery.error}")
        time.sleep(0.2)
        delivery = slack.retry(delivery, retry_num=retry_num, reason="http_error")
        retry_num += 1
    return delivery, retry_num


def _messages_by_rec(slack: SlackStandin) -> dict[int, list]:
    found: dict[int, list] = {}
    for m in slack.messages(CHANNEL):
        if m.metadata and m.metadata.get("event_type") == "alignbot_recommendation":
            found.setdefault(int(m.metadata["event_payload"]["id"]), []).append(m)
    return found


def _stuck(engine) -> list[dict]:
    """What the recommendations that did not finish are waiting for."""
    with session_scope(engine) as s:
        rows = s.exec(select(RecommendationRow).where(
            RecommendationRow.state.not_in(list(TERMINAL)))).all()
        out = []
        for rec in rows[:10]:
            actions = s.exec(select(ActionRow).where(ActionRow.recommendation_id == rec.id)).all()
            boxes = s.exec(select(OutboxRow).where(
                OutboxRow.action_id.in_([a.id for a in actions]))).all()
            out.append({"id": rec.id, "state": rec.state, "decisions": len(s.exec(
                select(DecisionRow).where(DecisionRow.recommendation_id == rec.id)).all()),
                "actions": [a.status for a in actions],
                "outbox": [(b.state, b.attempts, str(b.lease_until), str(b.available_at),
                            b.last_error[:80]) for b in boxes]})
        return out


def _received(server) -> dict:
    for _ in range(20):  # /received carries no injected faults, but be patient anyway
        try:
            return httpx.get(server.url + "/received", timeout=10).json()
        except httpx.HTTPError:
            time.sleep(0.5)
    raise AssertionError(f"{server.url}/received did not answer")


def _run(world, size: Size) -> None:
    engine, slack, bot = world["engine"], world["slack"], world["bot"]
    started = time.monotonic()
    rec_ids = _seed(engine, world["config"], world["planning"], size.approvals)
    injected = Counter()
    for server in (world["planning"], world["tms"]):
        faults = server.service.faults
        faults.roll = _counting(faults.roll, injected)
        r = httpx.post(server.url + "/scenario/faults", timeout=5, json={
            "error_rate": 0.10, "timeout_rate": 0.10, "timeout_seconds": 2, "seed": SEED})
        assert r.status_code == 200, r.text
    bot.start()
    killer = Killer(bot, size.kills, size.gap, SEED)
    killer.start()

    # -- approve every recommendation, each click delivered twice ------------------------
    redeliveries = Counter()
    lock = threading.Lock()
    index: dict[int, object] = {}

    def message_for(rec_id: int):
        with lock:
            if rec_id not in index:
                for rid, ms in _messages_by_rec(slack).items():
                    index.setdefault(rid, ms[0])
            return index.get(rec_id)

    def approve(index: int, rec_id: int) -> tuple[int, int]:
        user = PLANNERS[index % 2]
        message = wait_until(lambda: message_for(rec_id), 300, f"recommendation {rec_id} was never posted", every=0.2)
        deadline = time.monotonic() + 180
        first, retry_num = _until_ok(slack, slack.click(message, "Approve", as_user=user), 1,
                                     deadline)
        with lock:
            redeliveries["click"] += retry_num - 1
        # Slack delivers it again (as if our 200 had been lost): the same body, retry header
        second, after = _until_ok(slack, slack.retry(first, retry_num=retry_num), retry_num + 1,
                                  deadline)
        with lock:
            redeliveries["retry"] += after - retry_num - 1
        return first.status, second.status

    with ThreadPoolExecutor(max_workers=4) as pool:  # four people clicking through the list
        statuses = list(pool.map(lambda item: approve(*item), enumerate(rec_ids)))
    clicks_done = time.monotonic()
    assert all(s == (200, 200) for s in statuses)

    # -- let the killer finish, then wait for every recommendation to be terminal ----------
    killer.join(timeout=size.timeout)
    assert killer.error is None, f"the killer failed: {killer.error!r}"
    assert killer.done == size.kills, f"only {killer.done} of {size.kills} kills happened"
    if not bot.up():
        bot.start()

    def states():
        with session_scope(engine) as s:
            return Counter(s.exec(select(RecommendationRow.state)).all())

    def unsettled():
        """Recommendations still moving: decided but not finished. An open one with no
        decision after every click was answered 200 is an approval that was lost — it will
        never move, and is reported below rather than waited for."""
        with session_scope(engine) as s:
            decided = set(s.exec(select(DecisionRow.recommendation_id)).all())
            rows = s.exec(select(RecommendationRow.id, RecommendationRow.state)).all()
        return [rid for rid, state in rows
                if state not in TERMINAL and not (state == "open" and rid not in decided)]
    try:
        wait_until(lambda: not unsettled(), size.timeout, "recommendations still moving", every=1.0)
    except TimeoutError:
        raise AssertionError(f"not all settled after {size.timeout:.0f} s: {dict(states())};"
                             f" stuck: {_stuck(engine)}; bot log: {world['log']}") from None
    terminal_at = time.monotonic()

    # -- what a user would notice ------------------------------------------------------------
    final_states = states()
    with session_scope(engine) as s:
        actions = s.exec(select(ActionRow)).all()
        keys = {a.idempotency_key for a in actions}
        decisions = Counter(s.exec(select(DecisionRow.recommendation_id)).all())
        approved_audit = Counter(int(e) for e in s.exec(select(AuditEvent.entity_id).where(
            AuditEvent.entity == "recommendation", AuditEvent.to_state == "approved")).all())
    received = [_received(srv) for srv in (world["planning"], world["tms"])]
    ledger = {e["idempotency_key"]: e for r in received for e in r["actions"]}
    applied_total = sum(e["applied"] for e in ledger.values())
    attempts_total = sum(e["attempts"] for e in ledger.values())
    applied_twice = [k for k, e in ledger.items() if e["applied"] > 1]
    never_applied = [k for k in keys if ledger.get(k, {}).get("applied", 0) != 1]
    strangers = set(ledger) - keys
    posts = _messages_by_rec(slack)
    duplicate_posts = sum(len(v) - 1 for v in posts.values())

    with session_scope(engine) as s:
        lost = sorted(set(s.exec(select(RecommendationRow.id).where(
            RecommendationRow.state == "open")).all()) - set(decisions))

    # every message ends up showing the outcome (buttons gone); the sync may lag a little
    def still_with_buttons():
        return [rid for rid, ms in _messages_by_rec(slack).items()
                if rid not in lost and any(b.get("type") == "actions"
                       for b in (slack.message(CHANNEL, ms[0].ts).blocks or []))]
    def unlinked_of(rids):  # the store never learned which message is theirs: never edited
        with session_scope(engine) as s:
            return [rid for rid in rids if s.get(RecommendationRow, rid).slack_ts is None]
    try:  # a message posted just before a kill is adopted once the dead worker's claim expires
        wait_until(lambda: not still_with_buttons(), 150, "messages still offer buttons", every=1.0)
    except TimeoutError:
        pass
    stale_messages = still_with_buttons()
    unlinked = unlinked_of(stale_messages)
    wall = time.monotonic() - started

    print(f"\nchaos ({size.approvals} approvals): kills {killer.done} ({killer.killed}) "
          f"(bot down {killer.downtime:.1f} s in total, {bot.starts} starts); "
          f"clicks {2 * len(rec_ids)} (+{sum(redeliveries.values())} "
          f"re-deliveries while the bot was down or busy); "
          f"connector faults injected (20 %: 10 % HTTP 500, 10 % answered after the 1 s "
          f"timeout): {injected['error']} HTTP 500 + {injected['timeout']} late of "
          f"{sum(injected.values())} sandbox calls; observed at the sandboxes' ledgers: "
          f"{attempts_total - applied_total} repeated execute deliveries (attempts "
          f"{attempts_total} - applied {applied_total}); actions {len(keys)}, applied {applied_total}, "
          f"applied twice {len(applied_twice)}, never applied {len(never_applied)}; "
          f"decisions {sum(decisions.values())} for {len(rec_ids)} recommendations; "
          f"approvals answered 200 but never recorded {len(lost)} {lost[:10]}; "
          f"duplicate Slack posts {duplicate_posts}; messages still showing buttons "
          f"{len(stale_messages)} (never linked {len(unlinked)}); states {dict(final_states)}; "
          f"wall {wall:.1f} s (clicks done at {clicks_done - started:.1f} s, "
          f"all terminal at {terminal_at - started:.1f} s)")

    assert not lost, (
        f"{len(lost)} approvals were answered HTTP 200 (twice: click and Slack's retry) but "
        f"never recorded: {lost[:10]} — the message still offers Approve. bot/slack_app.py "
        "acks before it records (process_before_response=False), so a crash between the ack "
        "and the commit loses the click and Slack does not retry a 200")
    assert final_states == {"executed": len(rec_ids)}, \
        f"every approved recommendation executed, got {dict(final_states)}"
    assert not applied_twice, f"applied more than once: {applied_twice[:5]}"
    assert not never_applied, f"never applied: {never_applied[:5]}"
    assert not strangers, f"the sandboxes received keys the store does not know: {strangers}"
    assert applied_total == len(keys) == 2 * len(rec_ids)
    assert attempts_total > applied_total, "the injected faults never hit an execute call"
    assert injected["error"] and injected["timeout"]
    assert decisions == {rid: 1 for rid in rec_ids}, "one decision row per recommendation"
    assert approved_audit == {rid: 1 for rid in rec_ids}, \
        "one audit row to 'approved' per recommendation"
    assert duplicate_posts == 0, f"{duplicate_posts} recommendations were posted twice"
    assert set(posts) == set(rec_ids)
    assert not stale_messages, (
        f"{len(stale_messages)} executed recommendations still show Approve in Slack: "
        f"{stale_messages[:10]}; of them never linked to their message (slack_ts unset): "
        f"{unlinked[:10]} — bot/slack_sync.py posts (chat_postMessage) and records slack_ts in "
        "a later transaction; a crash in between leaves a message the bot never edits once "
        "the recommendation is decided (and re-posts it if it is still open after the claim)")


@pytest.mark.postgres
@pytest.mark.timeout(900)
def test_chaos_reduced(world):
    """Runs in every `make test`: 40 approvals, 3 kills, the same faults."""
    _run(world, REDUCED)


@pytest.mark.chaos
@pytest.mark.postgres
@pytest.mark.timeout(5400)
def test_chaos_full(world):
    """`make test-chaos`: 1,000 approvals, 20 SIGKILLs, 20 % connector faults, double clicks."""
    _run(world, FULL)
