"""Slack-facing latency on the demo stack, its ingress a process of its own
(``bot.demo.DemoStack(fast=True, ingress_process=True)``).

* pushed event → message: signed ``POST /hooks/tms`` delaying one sandbox shipment, until a
  message in #logistics names that shipment (a new message, or an existing one edited);
* approve → executed: from the click's HTTP ack until the recommendation row is ``executed``
  and until the Slack message says so;

Ack latency under 50 concurrent clicks is measured against a separate bot process in
``bench/slack_ack.py``.

Everything (sandboxes, the Slack stand-in, the bot, the clicking threads) runs in this one
Python process on 127.0.0.1, so the client's threads share the GIL with the bot: the latencies
are an upper bound of what a separate bot process would show.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy.exc import OperationalError
from sqlmodel import func, select

from bench.report import Figure, percentile
from bot.demo import DEMO_GROUPS, DemoStack
from bot.hooks import sign
from store.db import session_scope
from store.tables import RecommendationRow, SlackNote

OUTSIDER = "U0SALES"
CHANNELS = ("C0LOGISTICS", "C0PLANNING")
DONE = ("executed", "failed", "partially_executed")


# -- helpers ------------------------------------------------------------------------------------

def members(config, team: str) -> list[str]:  # type: ignore[no-untyped-def]
    """Who may decide for ``team`` in the demo workspace (its members and user group)."""
    t = config.team(team)
    return list(t.members or []) + list(DEMO_GROUPS.get(t.usergroup_id or "", []))


def settle(stack: DemoStack, timeout: float = 90.0) -> float:
    """Wait until Slack shows what the store says (nothing to post, edit or note); seconds."""
    started = time.monotonic()
    rec = RecommendationRow
    while time.monotonic() - started < timeout:
        try:
            with session_scope(stack.runtime.engine) as s:
                unposted = s.exec(select(func.count()).select_from(rec).where(
                    rec.state == "open", rec.slack_ts.is_(None))).one()
                behind = s.exec(select(func.count()).select_from(rec).where(
                    rec.slack_ts.is_not(None), rec.slack_version < rec.version)).one()
                notes = s.exec(select(func.count()).select_from(SlackNote).where(
                    SlackNote.state == "pending")).one()
        except OperationalError:  # SQLite busy past its timeout: the bot holds the lock
            continue
        if unposted == 0 and behind == 0 and notes == 0:
            return time.monotonic() - started
        time.sleep(0.2)
    return time.monotonic() - started


def has_buttons(message) -> bool:  # type: ignore[no-untyped-def]
    return any(b.get("type") == "actions" for b in message.blocks)


def open_messages(stack: DemoStack) -> list[tuple[object, RecommendationRow]]:
    """(message, row) for posted recommendations that are open and still show their buttons."""
    out = []
    with session_scope(stack.runtime.engine) as s:
        rows = {r.slack_ts: r for r in s.exec(select(RecommendationRow).where(
            RecommendationRow.state == "open", RecommendationRow.slack_ts.is_not(None)))}
    for channel in CHANNELS:
        for m in stack.slack.messages(channel):
            row = rows.get(m.ts)
            if row is not None and has_buttons(m):
                out.append((m, row))
    return out


def _text(message) -> str:  # type: ignore[no-untyped-def]
    return message.text + "\n" + json.dumps(message.blocks)


def _state(stack: DemoStack, rec_id: int) -> str:
    with session_scope(stack.runtime.engine) as s:
        return s.get(RecommendationRow, rec_id).state


def _count_by(items) -> dict[str, int]:  # type: ignore[no-untyped-def]
    out: dict[str, int] = {}
    for item in items:
        out[item] = out.get(item, 0) + 1
    return out


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- 3. pushed event → message -----------------------------------------------------------------

def push_to_message(stack: DemoStack, samples: int, log=print) -> list[Figure]:  # type: ignore[no-untyped-def]
    bench = "pushed event → message"
    world = stack.tms.world
    with world.lock:
        candidates = sorted(row["shipment_id"] for row in world.tables["shipments"].values()
                            if row["status"] == "in_transit" and not row.get("exception_code"))
    shown = " ".join(_text(m) for m in stack.slack.messages("C0LOGISTICS"))
    candidates = [sid for sid in candidates if sid not in shown][:samples]
    latencies, kinds, timeouts, accepted = [], {"new message": 0, "edited message": 0}, 0, 0
    hit_429: list[float] = []
    clean: list[float] = []
    last_push = 0.0
    base_429 = stack.slack.ratelimited()
    for sid in candidates:
        with world.lock:
            row = dict(world.tables["shipments"][(sid,)])
        planned = datetime.fromisoformat(row["planned_arrival"].replace("Z", "+00:00"))
        body = json.dumps({"records": [{
            "type": "shipment_event", "shipment_id": sid, "status": "delayed",
            "event_time": _iso(datetime.now(UTC)), "eta": _iso(planned + timedelta(hours=60)),
            "reason_code": "WEATHER"}]}).encode()
        before = {m.ts for m in stack.slack.messages("C0LOGISTICS")}
        # one push at a time, at most ~1 per 1.2 s: latency of the bot, not of Slack's
        # 1 message/s/channel limit (the burst benchmark measures that)
        time.sleep(max(0.0, last_push + 1.2 - time.monotonic()))
        ts = str(int(time.time()))
        wall0 = time.time()
        started = last_push = time.monotonic()
        reply = httpx.post(stack.bot.url + "/hooks/tms", content=body, timeout=10, headers={
            "Content-Type": "application/json", "X-Alignbot-Timestamp": ts,
            "X-Alignbot-Signature": sign(stack.webhook_secret, ts, body)})
        if reply.status_code == 202:
            accepted += 1

        def shown_now(sid=sid):  # type: ignore[no-untyped-def]
            for m in stack.slack.messages("C0LOGISTICS"):
                if sid in _text(m):
                    return m
            return None
        try:
            message = stack.slack.wait_for(shown_now, timeout=20)
        except TimeoutError:
            timeouts += 1
            continue
        latencies.append(time.monotonic() - started)
        limited = sum(1 for c in stack.slack.calls() if c.status == 429 and c.time >= wall0)
        (hit_429 if limited else clean).append(latencies[-1])
        kinds["new message" if message.ts not in before else "edited message"] += 1
    n = len(latencies)
    log(f"    {n} pushes observed, p50 {percentile(latencies, 50)}")
    detail = (f"{n} of {len(candidates)} pushes (one delayed shipment each, 202 for {accepted}), "
              f"one at a time ≥ 1.2 s apart; {kinds['new message']} new messages, "
              f"{kinds['edited message']} edits of an existing message of the same cause"
              + (f"; {timeouts} not shown within 20 s" if timeouts else "")
              + f"; {stack.slack.ratelimited() - base_429} Slack 429s meanwhile")
    ms = lambda v: None if v is None else round(v * 1000, 1)  # noqa: E731
    return [
        Figure(bench, "push → message p50", ms(percentile(latencies, 50)), "ms", notes=detail),
        Figure(bench, "push → message p95", ms(percentile(latencies, 95)), "ms",
               notes="includes detection, lifecycle upsert, the Slack sync (woken "
                     "at once) and chat.postMessage"
                     + (f"; pushes that met a 429 on the way: n={len(hit_429)}, p50 "
                        f"{ms(percentile(hit_429, 50))} ms; without: n={len(clean)}, p50 "
                        f"{ms(percentile(clean, 50))} ms, p95 {ms(percentile(clean, 95))} ms — the "
                        "one sync worker sleeps through Retry-After (≥ 1 s) while other posts "
                        "(stock-out notes, thread replies) share the channel's 1 message/s"
                        if hit_429 else "; no 429 during any push")),
    ]


# -- 4. approve → executed ---------------------------------------------------------------------

def approve_to_executed(stack: DemoStack, samples: int, log=print) -> list[Figure]:  # type: ignore[no-untyped-def]
    bench = "approve → executed"
    to_db, to_msg, acks, outcomes = [], [], [], {}
    base_429 = stack.slack.ratelimited()
    base_calls = len(stack.slack.calls())
    for _attempt in range(3):
        singles = [(m, r) for m, r in open_messages(stack)
                   if len(r.approvals_required) == 1 and sum(r.approvals_required.values()) == 1]
        if len(singles) >= samples - len(to_db):
            break
        stack.step()
        time.sleep(3)
        settle(stack, 60)
    for message, row in singles[:samples - len(to_db)]:
        team = next(iter(row.approvals_required))
        user = members(stack.config, team)[0]
        started = time.monotonic()
        delivery = stack.slack.click(message, "Approve", as_user=user)
        acked = started + delivery.elapsed
        acks.append(delivery.elapsed)
        t_db = t_msg = None
        deadline = time.monotonic() + 45
        while time.monotonic() < deadline and (t_db is None or t_msg is None):
            if t_db is None:
                state = _state(stack, row.id)
                if state in DONE:
                    t_db = time.monotonic()
                    outcomes[state] = outcomes.get(state, 0) + 1
            if t_msg is None:
                current = stack.slack.message(message.channel, message.ts)
                if current is not None and "xecuted" in current.text + json.dumps(current.blocks) \
                        and not has_buttons(current):
                    t_msg = time.monotonic()
            time.sleep(0.01)
        if t_db is not None:
            to_db.append(t_db - acked)
        if t_msg is not None:
            to_msg.append(t_msg - acked)
    log(f"    {len(to_db)} approvals, outcomes {outcomes}")
    ms = lambda v: None if v is None else round(v * 1000, 1)  # noqa: E731
    detail = (f"{len(acks)} approvals one at a time on single-team recommendations; outcomes "
              + ", ".join(f"{v} {k}" for k, v in outcomes.items())
              + "; executor woken on approval, re-validation, both sandbox systems")
    calls = stack.slack.calls()[base_calls:]
    limited = stack.slack.ratelimited() - base_429
    msg_note = (f"{len(to_msg)} messages edited to 'Executed', buttons gone; meanwhile the bot "
                f"made {sum(c.method == 'chat.postMessage' for c in calls)} chat.postMessage "
                f"(thread notes) and {sum(c.method == 'chat.update' for c in calls)} chat.update "
                f"calls and got {limited} HTTP 429s ("
                + (", ".join(f"{k} {v}" for k, v in sorted(
                    _count_by(c.method for c in calls if c.status == 429).items())) or "none")
                + ")")
    if limited:
        msg_note += (" — a 429 defers only that method and channel (its Retry-After); edits of "
                     "recommendation messages go before thread notes")
    return [
        Figure(bench, "ack → row executed p50", ms(percentile(to_db, 50)), "ms", notes=detail),
        Figure(bench, "ack → row executed p95", ms(percentile(to_db, 95)), "ms"),
        Figure(bench, "ack → message shows executed p50", ms(percentile(to_msg, 50)), "ms",
               notes=msg_note),
        Figure(bench, "ack → message shows executed p95", ms(percentile(to_msg, 95)), "ms"),
    ]


def run(quick: bool = False, log=print) -> list[Figure]:  # type: ignore[no-untyped-def]
    figures: list[Figure] = []
    with DemoStack(fast=True, ingress_process=True) as stack:
        stack.slack.wait_for(lambda: stack.slack.messages("C0LOGISTICS"), timeout=60)
        stack.step()  # a demand spike, delayed shipments and a carrier capacity cut
        time.sleep(3)
        settle(stack, 90)
        t = time.monotonic()
        stack.runtime.loop.detect()
        full_pass = time.monotonic() - t
        log("  pushed event → message ...")
        figures += push_to_message(stack, 5 if quick else 12, log)
        figures.append(Figure("pushed event → message", "full detection pass in the demo",
                              round(full_pass * 1000, 1), "ms",
                              notes="detect + lifecycle on the demo network; the scheduler runs "
                                    "one every 2 s, and a push waits for a running one"))
        settle(stack, 60)
        log("  approve → executed ...")
        figures += approve_to_executed(stack, 4 if quick else 10, log)
        settle(stack, 30)
        time.sleep(2)  # let post-ack listeners finish before the stand-in goes away
    return figures
