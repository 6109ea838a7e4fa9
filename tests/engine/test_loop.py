"""The loop against the sandbox systems: polls, pushes over signed HTTP, and the scheduler."""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime, timedelta, timezone

import httpx
from sqlmodel import select
from starlette.applications import Starlette
from starlette.routing import Route

from bot.hooks import sign, webhook_endpoint
from bot.loop import DecisionLoop
from bot.scheduler import Jobs
from connectors.registry import build_connector
from sandbox.serving import BackgroundServer
from store.db import make_engine, session_scope
from store.tables import ConnectorHealth, QuarantinedRecord, RecommendationRow
from tests.support.builders import config

SECRET = "whsec-test-0123456789"


def _loop(db_url, planning, tms, sleep=time.sleep, **kw) -> DecisionLoop:
    cfg = config(connectors=[
        {"name": "plan", "kind": "rest", "system": "planning",
         "settings": {"base_url": planning.url, "demand": {}, "inventory": {}}},
        {"name": "tms", "kind": "rest", "system": "logistics", "webhook_secret_env": "TMS_HOOK",
         "settings": {"base_url": tms.url, "shipments": {}, "capacity": {}, "lanes": {}}},
    ])
    connectors = {c.name: build_connector(c.name, c.kind, c.settings, {}, timeout=5, sleep=sleep)
                  for c in cfg.connectors}
    return DecisionLoop(cfg, make_engine(db_url), connectors, **kw)


def _runs(engine) -> dict[str, int]:
    from store.tables import ConnectorRun

    with session_scope(engine) as s:
        names = s.exec(select(ConnectorRun.connector)).all()
    return {name: names.count(name) for name in ("plan", "tms")}


def _active(engine) -> dict[str, RecommendationRow]:
    with session_scope(engine) as s:
        rows = s.exec(select(RecommendationRow).where(RecommendationRow.state == "open")).all()
    return {r.fingerprint: r for r in rows}


def test_repeated_polls_keep_one_recommendation_per_fingerprint(db_url, sandboxes):
    planning, tms = sandboxes
    loop = _loop(db_url, planning, tms)
    httpx.post(planning.url + "/scenario/step", timeout=5)  # demand spike, delays, capacity cut
    for _ in range(3):
        for name in ("plan", "tms"):
            assert loop.poll_and_detect(name).ok
    open_recs = _active(loop.engine)
    assert open_recs, "the injected drift must produce recommendations"
    with session_scope(loop.engine) as s:
        fingerprints = s.exec(select(RecommendationRow.fingerprint)).all()
    assert len(fingerprints) == len(set(fingerprints))  # no duplicates across polls
    kinds = {r.kind for r in open_recs.values()}
    assert {"demand_change", "disruption", "capacity_shift"} <= kinds


def test_a_source_that_is_down_is_marked_stale_and_closes_nothing(db_url, sandboxes):
    planning, tms = sandboxes
    waits: list[float] = []
    loop = _loop(db_url, planning, tms, sleep=waits.append)
    httpx.post(planning.url + "/scenario/step", timeout=5)
    loop.poll_and_detect("plan")
    loop.poll_and_detect("tms")
    before = set(_active(loop.engine))
    tms.stop()
    for _ in range(3):
        outcome = loop.poll_and_detect("tms")
    assert not outcome.ok and "ConnectError" in outcome.error
    assert len(waits) == 3 * 3  # each poll gave up after its bounded retries
    with session_scope(loop.engine) as s:
        health = s.get(ConnectorHealth, "tms")
    assert health.stale and health.consecutive_failures == 3
    assert set(_active(loop.engine)) == before  # nothing resolved on a partial picture


def test_pushed_event_reaches_a_recommendation_without_a_poll(db_url, sandboxes):
    planning, tms = sandboxes
    loop = _loop(db_url, planning, tms)
    loop.poll_and_detect("plan")
    loop.poll_and_detect("tms")
    shipment = tms.world.tables["shipments"][("SHP-10003",)]
    late = datetime.fromisoformat(shipment["planned_arrival"].replace("Z", "+00:00")) \
        + timedelta(days=3)
    pushed: list[int] = []

    def accept(name, records, quarantined):
        with session_scope(loop.engine) as s:
            for bad in quarantined:
                s.add(QuarantinedRecord(connector=name, source=bad.source,
                                        position=bad.position, reason=bad.reason, raw=bad.raw))
        report = loop.push(records)
        # a new recommendation, or the new version of its cause's group when another shipment
        # of the same carrier, lane and day was already late (the sandbox is built around now)
        pushed.extend(report.created + [new for _old, new in report.superseded])

    app = Starlette(routes=[Route("/hooks/{connector}", webhook_endpoint({"tms": SECRET}, accept),
                                  methods=["POST"])])
    body = json.dumps({"records": [
        {"type": "shipment_event", "shipment_id": "SHP-10003", "status": "delayed",
         "event_time": datetime.now(timezone.utc).isoformat(), "eta": late.isoformat(),
         "reason_code": "WEATHER", "carrier": "BLUEWAY"},
        {"type": "shipment_event", "shipment_id": "SHP-10003"},  # malformed: no status/time
        {"type": "telepathy"},
    ]}).encode()
    with BackgroundServer(app) as server:
        url = server.url + "/hooks/tms"
        now = str(int(time.time()))
        headers = lambda ts, sig: {"X-Alignbot-Timestamp": ts,  # noqa: E731
                                   "X-Alignbot-Signature": sig,
                                   "Content-Type": "application/json"}
        bad = httpx.post(url, content=body, headers=headers(now, "v1=" + "0" * 64), timeout=5)
        stale_ts = str(int(time.time()) - 600)
        stale = httpx.post(url, content=body, headers=headers(stale_ts, sign(SECRET, stale_ts,
                                                                            body)), timeout=5)
        assert (bad.status_code, stale.status_code) == (401, 401)
        assert "stale" in stale.json()["error"]
        assert not pushed

        ok = httpx.post(url, content=body, headers=headers(now, sign(SECRET, now, body)),
                        timeout=5)
        assert ok.status_code == 202
        assert ok.json()["accepted"] == 1
        assert [q["position"] for q in ok.json()["quarantined"]] == ["record #1", "record #2"]
        deadline = time.monotonic() + 10
        while not pushed and time.monotonic() < deadline:
            time.sleep(0.05)
    assert pushed, "the pushed delay must create a recommendation at once"
    with session_scope(loop.engine) as s:
        rec = s.get(RecommendationRow, pushed[0])
        quarantined = s.exec(select(QuarantinedRecord)).all()
    assert rec.kind == "disruption"
    assert "SHP-10003" in json.dumps(rec.body)
    assert len(quarantined) == 2


def test_another_replicas_reads_do_not_move_this_ones_read_position(db_url, sandboxes):
    """Replicas share the database but each keeps its picture in memory: if one replica's
    read moved the other's cursor, the other would never see the change it read."""
    planning, tms = sandboxes
    leader, other = _loop(db_url, planning, tms), _loop(db_url, planning, tms)
    for name in ("plan", "tms"):
        assert leader.poll_and_detect(name).ok
    before = {r.kind for r in _active(leader.engine).values()}
    httpx.post(planning.url + "/scenario/step", timeout=5)  # demand spike, delays, capacity cut
    for name in ("plan", "tms"):
        assert other.poll(name).ok  # e.g. re-validating an approval: reads the change first
    for name in ("plan", "tms"):
        assert leader.poll_and_detect(name).ok
    after = {r.kind for r in _active(leader.engine).values()}
    assert {"demand_change", "disruption", "capacity_shift"} <= after, (before, after)


def test_a_replica_that_never_polled_reads_the_sources_before_it_revalidates(db_url, sandboxes):
    planning, tms = sandboxes
    leader = _loop(db_url, planning, tms)
    httpx.post(planning.url + "/scenario/step", timeout=5)
    for name in ("plan", "tms"):
        leader.poll_and_detect(name)
    live = next(iter(_active(leader.engine).values()))
    gone = live.model_copy(update={"fingerprint": "demand_change:no-such-drift"})

    fresh = _loop(db_url, planning, tms)  # another replica: it has never polled
    assert fresh.revalidate(live) is None  # still holds: execute
    assert fresh.revalidate(gone) == "the drift it answered is gone"  # not trusted blindly


def test_jobs_have_stable_ids_never_overlap_and_can_be_woken():
    jobs = Jobs()
    running, peak, runs = [0], [0], []
    lock = threading.Lock()

    def slow():
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.3)
        with lock:
            running[0] -= 1
        runs.append(time.monotonic())

    drained: list[float] = []
    cfg = config()
    jobs.register(cfg, poll=lambda name: None, drain=lambda: drained.append(time.monotonic()),
                  sync=None, sweep=lambda: None, digest=lambda team: None)
    assert jobs.ids() == ["digest:logistics", "digest:planning", "outbox-drain", "poll:plan",
                          "poll:tms", "sweep"]
    jobs.add_every("slow", slow, 0.05)
    jobs.start(run_polls_now=False)
    try:
        time.sleep(1.2)
        assert peak[0] == 1  # never two runs of the same job at once
        jobs.scheduler.remove_job("slow")
        count = len(drained)  # the drain ticks every 2 s
        jobs.wake(Jobs.DRAIN)
        time.sleep(0.3)
        assert len(drained) == count + 1  # woken instead of waiting for its next tick
    finally:
        jobs.shutdown()


def test_a_value_detection_fails_on_is_quarantined_and_the_rest_is_still_detected(db_url, sandboxes):
    """Validation keeps such values out at the door; if one gets past it anyway (here built
    without validation), only its key group leaves the picture, not every recommendation."""
    from datetime import date

    from bot.health import _detection
    from bot.metrics import Metrics
    from canonical.model import DemandRecord
    from tests.ops._prom import by_label, parse, value

    planning, tms = sandboxes
    metrics = Metrics(None, process_metrics=False)
    loop = _loop(db_url, planning, tms, observe_detection=metrics.observe_detection)
    httpx.post(planning.url + "/scenario/step", timeout=5)
    loop.poll("plan"), loop.poll("tms")
    expected = loop.current_detection().recommendations
    bad = DemandRecord.model_construct(sku="SKU-BROKEN", location="DC-NJ", period=date.today(),
                                       planned_qty=float("inf"), latest_qty=10.0, unit_value=1.0,
                                       sku_class="A", source="forecast")
    loop.cache.apply([bad])
    report = loop.detect()
    assert len(report.created) == len(expected) > 0  # every other recommendation was raised
    assert loop.last_pass.ok and loop.last_pass.isolated[0].startswith("sku SKU-BROKEN: ")
    with session_scope(loop.engine) as s:
        (row,) = s.exec(select(QuarantinedRecord).where(QuarantinedRecord.connector == "detection")).all()
    assert row.source == "sku SKU-BROKEN" and "inf" in row.raw and "left it out" in row.reason
    health = _detection(loop.last_pass)
    assert health["ok"] and health["isolated"][0].startswith("sku SKU-BROKEN: ")
    loop.detect()  # the record is out of the picture: the next pass runs clean
    assert loop.last_pass.isolated == []
    scraped = parse(metrics.render()[0])
    assert by_label(scraped, "alignbot_detection_passes_total", "outcome") == {
        "ok": 1, "isolated": 1, "failed": 0}
    assert value(scraped, "alignbot_detection_isolated_groups_total") == 1


def test_a_pass_that_cannot_be_isolated_makes_the_bot_unhealthy(db_url, sandboxes, monkeypatch):

    from bot import loop as loop_module
    from bot.health import _detection

    planning, tms = sandboxes
    loop = _loop(db_url, planning, tms)
    loop.poll("plan"), loop.poll("tms")

    def broken(*args, **kwargs):
        raise RuntimeError("solver crashed")

    monkeypatch.setattr(loop_module, "detect", broken)
    with __import__("pytest").raises(RuntimeError):
        loop.detect()
    health = _detection(loop.last_pass)
    assert not health["ok"] and health["error"] == "RuntimeError: solver crashed"


def test_an_executed_action_is_read_back_before_the_next_pass(db_url, sandboxes):
    """After an approved update_forecast runs, the planning system is read again before any
    pass: the demand drift closes instead of coming back as a new recommendation."""
    from bot.decisions import decide

    planning, tms = sandboxes
    loop = _loop(db_url, planning, tms)
    httpx.post(planning.url + "/scenario/step", timeout=5)
    loop.poll("plan"), loop.poll("tms")
    loop.detect()
    demand = next(r for r in _active(loop.engine).values() if r.kind == "demand_change")
    for team in demand.approvals_required:
        with session_scope(loop.engine) as s:
            decide(s, demand.id, "U0PLAN1" if team == "planning" else "U0LOG1", {team}, "approve",
                   now=loop.clock())
    loop.drain()
    with session_scope(loop.engine) as s:
        assert s.get(RecommendationRow, demand.id).state == "executed"
        systems = {a["system"] for a in demand.body["actions"]}
    assert "planning" in systems and loop.changed_systems() == systems
    before = _runs(loop.engine)
    report = loop.detect()  # no poll in between: the pass reads the changed systems itself
    assert loop.changed_systems() == set()
    assert {name for name in ("plan", "tms") if _runs(loop.engine)[name] > before[name]} == {
        {"planning": "plan", "logistics": "tms"}[system] for system in systems}
    assert report.created == [] and demand.fingerprint not in _active(loop.engine)
    with session_scope(loop.engine) as s:
        from store.tables import DriftRow
        closed = s.exec(select(DriftRow).where(DriftRow.fingerprint.in_(
            demand.body["drift_fingerprints"]))).all()
    assert closed and not any(d.is_open for d in closed)


class _BreaksAfterOneChunk:
    """The real CSV connector, whose read fails after handing over its first chunk (a file
    share that goes away mid-read)."""

    def __init__(self, real):
        self.real = real

    def __getattr__(self, name):
        return getattr(self.real, name)

    def read_chunks(self, since=None):
        chunks = self.real.read_chunks(since)
        yield next(chunks)
        raise OSError("the file share went away")


def test_a_large_file_is_polled_a_chunk_at_a_time_and_a_read_that_fails_part_way_saves_no_cursor(
        db_url, tmp_path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "demand_1.csv").write_text("sku,location,period,planned_qty,latest_qty,unit_value\n" + "".join(
        f"SKU-{i},DC-1,2026-11-30,{i},{i},1\n" for i in range(12_000)))
    cfg = config(connectors=[{"name": "drop", "kind": "csv", "system": "planning", "settings": {
        "path": str(inbox), "files": [{"glob": "demand_*.csv", "entity": "demand"}]}}])
    real = build_connector("drop", "csv", cfg.connectors[0].settings, {}, timeout=5)
    loop = DecisionLoop(cfg, make_engine(db_url), {"drop": _BreaksAfterOneChunk(real)})

    failed = loop.poll("drop")
    assert not failed.ok and "file share went away" in failed.error
    with session_scope(loop.engine) as s:
        assert s.get(ConnectorHealth, "drop").cursor is None  # the next read starts over
    assert (inbox / "demand_1.csv").exists()

    loop.connectors["drop"] = real
    read = loop.poll("drop")
    assert read.ok and read.records == 12_000
    assert loop.cache.snapshot().demand.height == 12_000  # the first chunk is not counted twice
    assert loop.poll("drop").records == 0  # recorded as read
