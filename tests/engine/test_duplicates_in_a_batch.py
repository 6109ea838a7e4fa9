"""Two records with one business key in one batch: the first is used, the second quarantined.

Through ``DecisionLoop.poll`` against the sandbox planning system (a connector whose read
doubles an inventory record), and through the real ``/hooks`` endpoint.
"""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import polars as pl
from sqlmodel import select
from starlette.applications import Starlette
from starlette.routing import Route

from bot.hooks import sign, webhook_endpoint
from bot.loop import DecisionLoop
from canonical.model import InventoryRecord, ReadResult
from connectors.registry import build_connector
from sandbox.serving import BackgroundServer
from store.db import make_engine, session_scope
from store.tables import ConnectorRun, QuarantinedRecord
from tests.support.builders import config

SECRET = "whsec-test-0123456789"


class Doubling:
    """The real connector, whose reads carry a second record for the first inventory key, with
    a million more on hand: were it used, the stock-out at that key would disappear."""

    def __init__(self, real: Any):
        self.real = real
        self.first: InventoryRecord | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def read(self, since: str | None = None) -> ReadResult:
        result = self.real.read(since)
        self.first = next(r for r in result.records if isinstance(r, InventoryRecord))
        doubled = self.first.model_copy(update={"on_hand": self.first.on_hand + 1_000_000})
        result.records.append(doubled)
        return result


def _loop(db_url: str, planning: Any, tms: Any) -> tuple[DecisionLoop, Doubling]:
    cfg = config(connectors=[
        {"name": "plan", "kind": "rest", "system": "planning",
         "settings": {"base_url": planning.url, "demand": {}, "inventory": {}}},
        {"name": "tms", "kind": "rest", "system": "logistics",
         "settings": {"base_url": tms.url, "shipments": {}, "capacity": {}, "lanes": {}}},
    ])
    connectors = {c.name: build_connector(c.name, c.kind, c.settings, {}, timeout=5) for c in cfg.connectors}
    connectors["plan"] = doubling = Doubling(connectors["plan"])
    return DecisionLoop(cfg, make_engine(db_url), connectors), doubling


def _on_hand(loop: DecisionLoop, sku: str, location: str) -> list[float]:
    inventory = loop.cache.snapshot().inventory
    return inventory.filter((pl.col("sku") == sku) & (pl.col("location") == location)) \
        .get_column("on_hand").to_list()


def test_a_poll_quarantines_the_second_record_for_a_key_and_uses_the_first(db_url, sandboxes):
    planning, tms = sandboxes
    loop, plan = _loop(db_url, planning, tms)
    outcome = loop.poll("plan")
    assert outcome.ok and outcome.quarantined == 1
    first = plan.first
    assert _on_hand(loop, first.sku, first.location) == [first.on_hand]  # not the doubled one
    with session_scope(loop.engine) as s:
        [bad] = s.exec(select(QuarantinedRecord)).all()
        [run] = s.exec(select(ConnectorRun)).all()
    assert (bad.connector, bad.source, bad.run_id) == ("plan", "plan", run.id)
    assert run.records == outcome.records and run.quarantined == 1
    assert bad.position == f"record #{outcome.records}"  # the last of the batch
    assert bad.reason.startswith(f"duplicate inventory key sku={first.sku}, location={first.location} "
                                 "in one batch; the first, at record #")
    assert json.loads(bad.raw)["on_hand"] == first.on_hand + 1_000_000


def test_a_push_quarantines_the_second_record_for_a_key_and_uses_the_first(db_url, sandboxes):
    planning, tms = sandboxes
    loop, _ = _loop(db_url, planning, tms)
    accepted: list[tuple[list, list]] = []
    app = Starlette(routes=[Route("/hooks/{connector}", webhook_endpoint(
        {"tms": SECRET}, lambda name, records, bad: (loop.push(records), accepted.append((records, bad)))),
        methods=["POST"])])
    body = json.dumps({"records": [
        {"type": "inventory", "sku": "SKU-X", "location": "DC-X", "on_hand": 5},
        {"type": "inventory", "sku": "SKU-X"},  # invalid: quarantined as before
        {"type": "inventory", "sku": "SKU-X", "location": "DC-X", "on_hand": 5000},
    ]}).encode()
    with BackgroundServer(app) as server:
        now = str(int(time.time()))
        reply = httpx.post(server.url + "/hooks/tms", content=body, timeout=5, headers={
            "X-Alignbot-Timestamp": now, "X-Alignbot-Signature": sign(SECRET, now, body),
            "Content-Type": "application/json"})
        deadline = time.monotonic() + 10
        while not accepted and time.monotonic() < deadline:
            time.sleep(0.05)
    assert reply.status_code == 202 and reply.json()["accepted"] == 1
    quarantined = reply.json()["quarantined"]
    assert [q["position"] for q in quarantined] == ["record #1", "record #2"]
    assert quarantined[1]["source"] == "webhook:tms"
    assert quarantined[1]["reason"] == ("duplicate inventory key sku=SKU-X, location=DC-X in one batch; "
                                        "the first, at record #0, is used")
    [(records, _)] = accepted
    assert [r.on_hand for r in records] == [5.0]
    assert _on_hand(loop, "SKU-X", "DC-X") == [5.0]
