"""Slack-facing latency on the one-command demo stack (``bot.demo.DemoStack(fast=True)``).

* pushed event → message: signed ``POST /hooks/tms`` delaying one sandbox shipment, until a
  message in #logistics names that shipment (a new message, or an existing one edited);
* approve → executed: from the click's HTTP ack until the recommendation row is ``executed``
  and until the Slack message says so;
* ack latency: 50 concurrent clicks (Approve by team members and by an outsider, Reject and
  Modify that open modals) at the open messages, and concurrent ``/drift`` commands — the time
  the stand-in waits for the HTTP answer (``Delivery.elapsed``).

Everything (sandboxes, the Slack stand-in, the bot, the clicking threads) runs in this one
Python process on 127.0.0.1, so the client's threads share the GIL with the bot: the latencies
are an upper bound of what a separate bot process would show.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
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

def members(stack: DemoStack, team: str) -> list[str]:
    t = stack.config.team(team)
    found = list(t.members or [])
    if t.usergroup_id:
        found += DEMO_GROUPS.get(t.usergroup_id, [])
    return found


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
               notes="includes incremental detection, lifecycle upsert, the Slack sync (woken "
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
        user = members(stack, team)[0]
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
        msg_note += (" — the one Slack sync worker waits out Retry-After on a 429 (the client "
                     "retries in place), and the edit queues behind it")
    return [
        Figure(bench, "ack → row executed p50", ms(percentile(to_db, 50)), "ms", notes=detail),
        Figure(bench, "ack → row executed p95", ms(percentile(to_db, 95)), "ms"),
        Figure(bench, "ack → message shows executed p50", ms(percentile(to_msg, 50)), "ms",
               notes=msg_note),
        Figure(bench, "ack → message shows executed p95", ms(percentile(to_msg, 95)), "ms"),
    ]


# -- 2. ack latency ----------------------------------------------------------------------------

def _plan_round(stack: DemoStack, n: int) -> list[tuple[object, str, str]]:
    """(message, button, user) for n clicks: 1/5 outsider Approve, 1/5 member Approve on a few
    messages (two members at once on each), 2/5 member Reject (modal), 1/5 member Modify."""
    msgs = open_messages(stack)
    if not msgs:
        return []
    approve_targets = msgs[:max(1, min(5, len(msgs) - 1))]
    clicks = []
    for i in range(n):
        kind = i % 5
        if kind == 1:
            message, row = approve_targets[(i // 5) % len(approve_targets)]
            team_members = members(stack, row.teams[0])
            clicks.append((message, "Approve", team_members[(i // 5) % len(team_members)]))
            continue
        message, row = msgs[i % len(msgs)]
        member = members(stack, row.teams[0])[0]
        clicks.append({0: (message, "Approve", OUTSIDER), 2: (message, "Reject", member),
                       3: (message, "Reject", member), 4: (message, "Modify", member)}[kind])
    return clicks


def ack_latency(stack: DemoStack, rounds: int, concurrency: int = 50,
                log=print) -> list[Figure]:  # type: ignore[no-untyped-def]
    bench = "Slack ack latency"
    if len(open_messages(stack)) < 10:  # enough open messages to spread 50 clicks over
        stack.step()
        time.sleep(3)
        settle(stack, 60)
    # warm-up (not counted): the membership cache and Bolt's first dispatch
    warm = open_messages(stack)
    if warm:
        stack.slack.click(warm[0][0], "Approve", as_user=OUTSIDER)
    stack.slack.command("/drift", as_user="U0PLAN1", channel="C0PLANNING")

    # one at a time: the cost of one ack without queueing
    sequential = []
    for i in range(10):
        target = open_messages(stack)
        if not target:
            break
        message, row = target[i % len(target)]
        sequential.append(stack.slack.click(message, "Approve", as_user=OUTSIDER).elapsed)
    base_views = len(stack.slack.calls("views.open"))

    elapsed, statuses, skipped, by_button = [], {}, 0, {}

    def one(click):  # type: ignore[no-untyped-def]
        message, button, user = click
        try:
            return button, user, stack.slack.click(message, button, as_user=user)
        except LookupError:  # the message lost its buttons meanwhile (decided by a click)
            return button, user, None

    cpu = 0.0
    for _ in range(rounds):
        clicks = _plan_round(stack, concurrency)
        if not clicks:
            break
        c0 = time.process_time()
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            for button, user, d in pool.map(one, clicks):
                if d is None:
                    skipped += 1
                    continue
                elapsed.append(d.elapsed)
                statuses[d.status] = statuses.get(d.status, 0) + 1
                label = f"{button} ({'outsider' if user == OUTSIDER else 'member'})"
                by_button.setdefault(label, []).append(d.elapsed)
        cpu += time.process_time() - c0
        time.sleep(1.0)
        settle(stack, 30)
    views = stack.slack.calls("views.open")[base_views:]
    expired = sum(1 for c in views if c.response.get("error") == "expired_trigger_id")
    texts = ["", "mine", "help", "SKU-00087", "DC-CA", "NORTHLINE", "#3", "disruption",
             "DC-NJ>DC-TX", "!!nonsense??"]
    users = [("U0PLAN1", "C0PLANNING"), ("U0LOG1", "C0LOGISTICS"), ("U0SALES", "C0PLANNING")]
    commands = [(f"/drift {texts[i % len(texts)]}".strip(), *users[i % len(users)])
                for i in range(20 * rounds)]
    with ThreadPoolExecutor(max_workers=10) as pool:
        drift = list(pool.map(lambda c: stack.slack.command(c[0], as_user=c[1], channel=c[2]),
                              commands))
    drift_s = [d.elapsed for d in drift]
    drift_status: dict[int, int] = {}
    for d in drift:
        drift_status[d.status] = drift_status.get(d.status, 0) + 1
    log(f"    {len(elapsed)} clicks, p50 {percentile(elapsed, 50)}, p99 {percentile(elapsed, 99)}")

    ms = lambda v: None if v is None else round(v * 1000, 1)  # noqa: E731
    p99 = ms(percentile(elapsed, 99))
    split = "; ".join(f"{k} n={len(v)} p50 {ms(percentile(v, 50))} ms p99 {ms(percentile(v, 99))} ms"
                      for k, v in sorted(by_button.items()))
    base = (f"{len(elapsed)} clicks in {rounds} round(s) of {concurrency} concurrent; HTTP "
            + ", ".join(f"{k}×{v}" for k, v in sorted(statuses.items()))
            + (f"; {skipped} skipped (buttons gone)" if skipped else ""))
    seq_p50 = ms(percentile(sequential, 50))
    p99_note = split
    if p99 is not None and p99 > 50:
        per_click = 1000 * cpu / max(1, len(elapsed))
        p99_note = (f"MISSED: one click alone acks in {seq_p50} ms; 50 at once queue behind each "
                    f"other: the round cost the process {per_click:.0f} ms CPU per click (bot, "
                    f"stand-in and client together), ≈ {per_click * concurrency / 1000:.1f} s "
                    "for the burst of mostly GIL-bound Python, because the bot is one "
                    "Python process whose request work (signature check, Bolt dispatch, "
                    "middleware, payload parsing, the decision's store transaction — recorded "
                    "before the ack — and the Slack calls after it, on Bolt's 10-thread "
                    "listener executor) is serialised by the GIL; a 64-worker "
                    "executor (one trial outside the repo) moved p50 only ≈ 7 %. Here the stand-in "
                    "and the 50 client threads share that process on 2 busy cores, so the "
                    "tail is overstated, but meeting 50 ms at 50 concurrent needs < 1 ms of "
                    "Python per ack or several bot processes. " + split)
    return [
        Figure(bench, f"click ack p50 ({concurrency} concurrent)", ms(percentile(elapsed, 50)),
               "ms", notes=base),
        Figure(bench, f"click ack p99 ({concurrency} concurrent)", p99, "ms", target=50.0,
               notes=p99_note),
        Figure(bench, "click ack max", ms(max(elapsed) if elapsed else None), "ms",
               target=3000.0, notes="Slack shows an error after 3 s"),
        Figure(bench, "click ack, one at a time p50", seq_p50, "ms",
               notes=f"{len(sequential)} outsider clicks in sequence, no concurrency"),
        Figure(bench, "modals not opened under load (expired trigger)", expired, "calls",
               target=0, notes=(f"MISSED: {expired} of {len(views)} views.open calls for the "
                                "Reject/Modify clicks came > 3 s after the click (Slack's "
                                "trigger_id lifetime), so those users saw no modal; the listener "
                                "executor (10 workers) queues post-ack work behind the DB writes"
                                if expired else f"{len(views)} views.open calls, all in time")),
        Figure(bench, "/drift ack p50", ms(percentile(drift_s, 50)), "ms",
               notes=f"{len(drift_s)} commands, 10 at a time, 10 query forms; HTTP "
                     + ", ".join(f"{k}×{v}" for k, v in sorted(drift_status.items()))),
        Figure(bench, "/drift ack p99", ms(percentile(drift_s, 99)), "ms"),
    ]


def run(quick: bool = False, log=print) -> list[Figure]:  # type: ignore[no-untyped-def]
    figures: list[Figure] = []
    with DemoStack(fast=True) as stack:
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
        settle(stack, 60)
        log("  ack latency ...")
        figures += ack_latency(stack, rounds=1 if quick else 3, log=log)
        settle(stack, 30)
        time.sleep(2)  # let post-ack listeners finish before the stand-in goes away
    return figures
