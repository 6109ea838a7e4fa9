"""A burst of 5,000 drifts of one cause through the whole bot, against Slack's default limits.

5,000 delayed shipments share one carrier, one origin and one ship day (spread over the four
DCs). They are pushed as canonical ``shipment`` records through the signed TMS webhook of a
fresh ``DemoStack`` — so they go through parsing, the snapshot cache, detection,
grouping, the lifecycle upsert, routing and the Slack sync — while the stand-in enforces Slack's
default rate limits (chat.postMessage ≈ 1 per second per channel, bursts of 5). Two deliveries:
all 5,000 in one request, and the same storm as 10 requests of 500 (how a TMS streams it).
Counted from the stand-in: messages per team channel, the most messages any channel got in one
second, HTTP 429s, and the wall time until Slack shows what the store says.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy.exc import OperationalError
from sqlmodel import func, select

from bench.report import Figure
from bench.slack_latency import OUTSIDER, open_messages, settle
from bot.demo import DemoStack
from bot.hooks import sign
from store.db import session_scope
from store.tables import AuditEvent, DriftRow, RecommendationRow

BENCH = "burst of 5,000 drifts"
CHANNEL_TEAM = {"C0PLANNING": "planning", "C0LOGISTICS": "logistics"}


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def storm(stack: DemoStack, n: int, carrier: str, origin: str) -> list[dict]:
    """n delayed shipments of one carrier+origin+ship day, one line each, to the four DCs."""
    world = stack.tms.world
    with world.lock:
        skus = sorted(s for s, p in world.sku_plant.items() if p == origin) or sorted(world.sku_plant)
        dcs = sorted({k[1] for k in world.tables["inventory"] if str(k[1]).startswith("DC-")})
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    ship = now - timedelta(hours=20)
    arrive = ship + timedelta(days=2)
    records = []
    for i in range(n):
        records.append({
            "type": "shipment", "shipment_id": f"BURST-{carrier[:3]}-{i:05d}", "origin": origin,
            "destination": dcs[i % len(dcs)], "carrier": carrier, "mode": "TL",
            "lines": [{"sku": skus[i % len(skus)], "qty": 20.0}],
            "planned_ship": _iso(ship + timedelta(minutes=i % 600)),
            "planned_arrival": _iso(arrive), "status": "delayed",
            "eta": _iso(arrive + timedelta(hours=48)),
            "last_event_at": _iso(now - timedelta(minutes=5)), "exception_code": "WEATHER"})
    return records


def _push(stack: DemoStack, records: list[dict]) -> int:
    body = json.dumps({"records": records}).encode()
    ts = str(int(time.time()))
    reply = httpx.post(stack.bot.url + "/hooks/tms", content=body, timeout=60, headers={
        "Content-Type": "application/json", "X-Alignbot-Timestamp": ts,
        "X-Alignbot-Signature": sign(stack.webhook_secret, ts, body)})
    return reply.status_code


def _quiet(stack: DemoStack, since_calls: int, timeout: float, quiet_for: float = 3.0) -> None:
    """Wait until the store is synced and the bot has made no Slack call for ``quiet_for`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        settle(stack, max(1.0, deadline - time.monotonic()))
        calls = stack.slack.calls()[since_calls:]
        if not calls or time.time() - calls[-1].time >= quiet_for:
            return
        time.sleep(0.5)


class LockProbe(threading.Thread):
    """A tiny write transaction every 100 ms, as a click recording a decision would make:
    how long it waits for SQLite's write lock, and how often it gives up (busy timeout)."""

    def __init__(self, engine) -> None:  # type: ignore[no-untyped-def]
        super().__init__(daemon=True, name="bench-lock-probe")
        self.engine, self.stop = engine, threading.Event()
        self.waits: list[float] = []
        self.failed = 0

    def run(self) -> None:
        while not self.stop.is_set():
            t = time.monotonic()
            try:
                with session_scope(self.engine) as s:
                    s.exec(select(func.count()).select_from(RecommendationRow)).one()
                self.waits.append(time.monotonic() - t)
            except OperationalError:
                self.failed += 1
            self.stop.wait(0.1)


class ClickProbe(threading.Thread):
    """An outsider clicks Approve on an open message every 250 ms during the burst: the ack
    time Slack would see (the handler reads and writes the store before it acks)."""

    def __init__(self, stack: DemoStack) -> None:
        super().__init__(daemon=True, name="bench-click-probe")
        self.stack, self.stop = stack, threading.Event()
        self.elapsed: list[float] = []
        self.failed = 0
        found = open_messages(stack)
        self.message = found[0][0] if found else None

    def run(self) -> None:
        while self.message is not None and not self.stop.is_set():
            try:
                d = self.stack.slack.click(self.message, "Approve", as_user=OUTSIDER)
            except LookupError:
                return
            self.elapsed.append(d.elapsed)
            if not d.ok:
                self.failed += 1
            self.stop.wait(0.25)


def _count(engine, query, default: int = 0) -> int:  # type: ignore[no-untyped-def]
    for _ in range(20):
        try:
            with session_scope(engine) as s:
                return s.exec(query).one() or default
        except OperationalError:
            time.sleep(0.1)
    return default


def one_delivery(n: int, chunks: int, carrier: str, origin: str, log=print) -> dict:  # type: ignore[no-untyped-def]
    with DemoStack(fast=True) as stack:
        stack.slack.wait_for(lambda: stack.slack.messages("C0LOGISTICS"), timeout=60)
        time.sleep(2)
        _quiet(stack, 0, 60)
        base_calls = len(stack.slack.calls())
        base_429 = stack.slack.ratelimited()
        base_ephemeral_429 = stack.slack.ratelimited("chat.postEphemeral")
        engine = stack.runtime.engine
        base_recs = _count(engine, select(func.max(RecommendationRow.id)))
        base_drifts = _count(engine, select(func.max(DriftRow.id)))
        probe = LockProbe(engine)
        probe.start()
        clicker = ClickProbe(stack)
        clicker.start()
        records = storm(stack, n, carrier, origin)
        size = len(records) // chunks
        started = time.monotonic()
        t_wall0 = time.time()
        statuses = [_push(stack, records[i * size:(i + 1) * size if i < chunks - 1 else n])
                    for i in range(chunks)]
        pushed = time.monotonic() - started
        # wait for detection to record the drifts, then for Slack to catch up
        deadline = time.monotonic() + 240
        seen, steady = -1, time.monotonic()
        while time.monotonic() < deadline:
            drifts = _count(engine, select(func.count()).select_from(DriftRow).where(
                DriftRow.id > base_drifts, DriftRow.kind == "disruption"), -1)
            if drifts >= n or (drifts and time.monotonic() - steady > 15):
                break
            if drifts != seen:
                seen, steady = drifts, time.monotonic()
            time.sleep(0.2)
        detected = time.monotonic() - started
        # The probes measure the burst itself; their own Slack calls (the refusals of the
        # outsider's clicks) must not keep the "Slack has caught up" wait below from ending.
        probe.stop.set()
        clicker.stop.set()
        probe.join(5)
        clicker.join(5)
        _quiet(stack, base_calls, max(10.0, deadline - time.monotonic()))
        wall = time.monotonic() - started
        calls = stack.slack.calls()[base_calls:]
        posts = [c for c in calls if c.method == "chat.postMessage" and c.ok]
        top = [c for c in posts if not c.args.get("thread_ts")]
        per_team = Counter(CHANNEL_TEAM.get(str(c.args.get("channel")), str(c.args.get("channel")))
                           for c in top)
        per_channel_second = Counter((str(c.args.get("channel")), int(c.time)) for c in posts)
        first_post = min((c.time for c in top), default=None)
        with session_scope(stack.runtime.engine) as s:
            recs = s.exec(select(RecommendationRow).where(RecommendationRow.id > base_recs)).all()
            open_drifts = s.exec(select(func.count()).select_from(DriftRow).where(
                DriftRow.id > base_drifts, DriftRow.kind == "disruption", DriftRow.is_open)).one()
            superseded = s.exec(select(AuditEvent.reason).where(
                AuditEvent.entity == "recommendation", AuditEvent.to_state == "superseded",
                AuditEvent.entity_id.in_([str(r.id) for r in recs]))).all()
        rec_states = Counter(r.state for r in recs)
        rec_kinds = Counter(r.kind for r in recs)
        out = {
            "shipments": n, "requests": chunks, "http_status": dict(Counter(statuses)),
            "push_seconds": round(pushed, 2), "detected_seconds": round(detected, 2),
            "open_disruption_drifts": open_drifts,
            "wall_seconds": round(wall, 1),
            "first_message_seconds": round(first_post - t_wall0, 2) if first_post else None,
            "messages_total": len(top), "messages_per_team": dict(per_team),
            "thread_replies": len(posts) - len(top),
            "chat_update": sum(1 for c in calls if c.method == "chat.update" and c.ok),
            "max_messages_per_channel_second": max(per_channel_second.values(), default=0),
            # the probe's refusals (chat.postEphemeral, 4 a second) are not the bot's posting
            "http_429": (stack.slack.ratelimited() - base_429
                         - (stack.slack.ratelimited("chat.postEphemeral") - base_ephemeral_429)),
            "slack_calls": len(calls),
            "recommendations_created": len(recs), "recommendation_states": dict(rec_states),
            "recommendation_kinds": dict(rec_kinds),
            "lock_probe_max_wait_seconds": round(max(probe.waits, default=0.0), 2),
            "superseded_reasons": list(superseded),
            "lock_probe_failed": probe.failed, "lock_probe_ok": len(probe.waits),
            "click_probe_n": len(clicker.elapsed), "click_probe_failed": clicker.failed,
            "click_probe_max_ms": round(1000 * max(clicker.elapsed, default=0.0), 1),
            "click_probe_over_3s": sum(1 for e in clicker.elapsed if e > 3.0),
        }
        log(f"    {chunks} request(s): {out['messages_total']} messages, "
            f"{out['http_429']} × 429, {out['wall_seconds']} s")
        return out


def _flapping(reasons: list[str]) -> bool:
    """True if the supersedes went back and forth: a value at risk that fell ("went from A to
    B", B < A), or a change and its reverse (severity low → critical → low)."""
    import re

    pairs = set()
    for reason in reasons:
        m = re.search(r"from (.+?) to (.+?)$", reason.strip())
        if not m:
            continue
        a, b = m.group(1), m.group(2)
        pairs.add((a, b))
        try:
            if float(b.replace(",", "")) < float(a.replace(",", "")):
                return True
        except ValueError:
            pass
    return any((b, a) in pairs for a, b in pairs)


def _lock_note(r: dict) -> str:
    base = (f"a probe transaction every 100 ms during the burst ({r['lock_probe_ok']} got the "
            f"lock, {r['lock_probe_failed']} gave up after the 10 s busy timeout with 'database "
            "is locked')")
    if r["lock_probe_failed"] or r["lock_probe_max_wait_seconds"] > 3.0:
        return ("a write transaction of the burst held SQLite's write lock that long; a click's "
                "decision, the executor and the Slack sync wait for it (clicks themselves are "
                "stored and acked through the inbox's own file); " + base)
    return base


def _click_note(r: dict) -> str:
    if not r["click_probe_n"]:
        return "not measured: no open message to click before the burst"
    base = (f"{r['click_probe_n']} outsider Approve clicks, one every 250 ms during the burst; "
            f"{r['click_probe_over_3s']} took > 3 s, {r['click_probe_failed']} not acked OK")
    if r["click_probe_over_3s"] or r["click_probe_failed"]:
        return ("MISSED: Slack shows the user an error past 3 s; here the bot, the sandboxes, "
                "the stand-in and the probe share one Python process with the burst's "
                "detection. " + base)
    return base


def run(quick: bool = False, log=print) -> list[Figure]:  # type: ignore[no-untyped-def]
    n = 5000
    figures: list[Figure] = []
    variants = [(1, "NORTHLINE", "PLT-DAL")] + ([] if quick else [(10, "BLUEWAY", "PLT-CHI")])
    for chunks, carrier, origin in variants:
        label = "1 request" if chunks == 1 else f"{chunks} requests of {n // chunks}"
        log(f"  burst, {label} ...")
        try:
            r = one_delivery(n, chunks, carrier, origin, log)
        except Exception as exc:  # a failing variant is reported, the others still run
            figures.append(Figure(BENCH, f"Slack messages ({label})", None, "messages",
                                  notes=f"not measured: {type(exc).__name__}: {exc}"))
            continue
        teams = ", ".join(f"{k} {v}" for k, v in sorted(r["messages_per_team"].items())) or "none"
        kinds = ", ".join(f"{v} {k}" for k, v in sorted(r["recommendation_kinds"].items()))
        states = ", ".join(f"{v} {k}" for k, v in sorted(r["recommendation_states"].items()))
        msg_note = (f"{n:,} delayed shipments of {carrier} from {origin}, one ship day, to 4 DCs; "
                    f"{r['open_disruption_drifts']:,} disruption drifts open; per team: {teams}; "
                    f"recommendations created: {kinds} (now {states}); "
                    f"{r['thread_replies']} thread replies, {r['chat_update']} edits")
        if r["superseded_reasons"]:
            shown = "; ".join(r["superseded_reasons"][:3]) + (
                " …" if len(r["superseded_reasons"]) > 3 else "")
            if _flapping(r["superseded_reasons"]):
                msg_note += ("; PRODUCT PROBLEM — supersede flapping (" + shown + "): the cause's "
                             "recommendation shrank and grew back between passes, each flip "
                             "superseding it and posting a new message for the same cause (a "
                             "pass over only the pushed keys sees part of the group)")
            else:
                msg_note += ("; supersedes as the storm grew (" + shown + "): the value at risk "
                             "rose more than the 25 % material-change threshold between passes, "
                             "so the one cause was re-posted as a new message each time")
        if r["messages_total"] > 10:
            msg_note = "MISSED: " + msg_note
        figures += [
            Figure(BENCH, f"Slack messages ({label})", r["messages_total"], "messages",
                   target=10, notes=msg_note, extra=r),
            Figure(BENCH, f"max messages per channel per second ({label})",
                   r["max_messages_per_channel_second"], "msg/s",
                   notes="stand-in allows bursts of 5, then ≈ 1/s per channel"),
            Figure(BENCH, f"HTTP 429s ({label})", r["http_429"], "responses",
                   notes=f"{r['slack_calls']} Slack calls in all; 429s are retried by the "
                         "client after Retry-After (up to 3 times)"),
            Figure(BENCH, f"longest wait for the SQLite write lock ({label})",
                   r["lock_probe_max_wait_seconds"], "s", notes=_lock_note(r)),
            Figure(BENCH, f"writes refused 'database is locked' ({label})",
                   r["lock_probe_failed"], "transactions", target=0,
                   notes=("MISSED: any store write in that moment (a click's decision, recorded "
                          "before the ack; the executor; the Slack sync) fails with 'database "
                          "is locked'" if r["lock_probe_failed"] else
                          "no probe transaction hit the 10 s busy timeout")),
            Figure(BENCH, f"click ack max during the burst ({label})",
                   r["click_probe_max_ms"] if r["click_probe_n"] else None, "ms", target=3000.0,
                   notes=_click_note(r)),
            Figure(BENCH, f"wall time ({label})", r["wall_seconds"], "s",
                   notes=f"push → Slack shows the store; push answered in "
                         f"{r['push_seconds']} s, all drifts in the store at "
                         f"{r['detected_seconds']} s, first message at "
                         f"{r['first_message_seconds']} s"),
        ]
    return figures
