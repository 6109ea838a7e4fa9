"""The sandbox supply network: one seeded world both sandbox systems serve a view of.

Same seed and same ``now`` give the same network, plan and shipments, so demos and tests are
repeatable. The scenario clock injects drift one step at a time (random drift across many SKUs),
or plays the story ``make demo`` tells (one drift per beat, on targets chosen so the detectors
raise it); actions change the tables so a re-poll sees their effect. Every row carries
``updated_at`` from a strictly increasing clock, which is what makes ``updated_since`` reads exact.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from typing import Any

from canonical.model import lane_id

PLANTS = ("PLT-DAL", "PLT-CHI", "PLT-ATL")
DCS = ("DC-NJ", "DC-CA", "DC-TX", "DC-OH")
CARRIERS = ("NORTHLINE", "BLUEWAY", "SWIFTCARGO", "REDROUTE")
WEEKS = 8
# transit days plant -> DC, and between DCs (symmetric)
PLANT_TRANSIT = {
    "PLT-DAL": {"DC-NJ": 3, "DC-CA": 3, "DC-TX": 1, "DC-OH": 2},
    "PLT-CHI": {"DC-NJ": 2, "DC-CA": 4, "DC-TX": 2, "DC-OH": 1},
    "PLT-ATL": {"DC-NJ": 2, "DC-CA": 4, "DC-TX": 2, "DC-OH": 2},
}
DC_TRANSIT = {("DC-NJ", "DC-OH"): 1, ("DC-NJ", "DC-TX"): 3, ("DC-NJ", "DC-CA"): 5,
              ("DC-CA", "DC-TX"): 3, ("DC-CA", "DC-OH"): 4, ("DC-TX", "DC-OH"): 2}
DC_WEIGHT = {"DC-NJ": 1.3, "DC-CA": 1.1, "DC-TX": 0.9, "DC-OH": 0.7}
CLASS_WEEKLY = {"A": (200, 800), "B": (50, 200), "C": (5, 50)}
CLASS_VALUE = {"A": (40.0, 200.0), "B": (15.0, 80.0), "C": (2.0, 30.0)}
CLASS_SAFETY_WEEKS = {"A": 1.0, "B": 0.8, "C": 0.5}
EXCEPTION_CODES = ("WEATHER", "EQUIPMENT_FAILURE", "PORT_CONGESTION", "DRIVER_SHORTAGE")
DONE = ("delivered", "arrived", "cancelled")
# The story: (when, in beats of ``story_seconds``; what happens). One drift per beat, then the
# late shipment of beat 5 is reported back on time, so its recommendation resolves on its own.
STORY = ((0.25, "demand_spike"), (1.25, "late_shipment"), (2.25, "capacity_cut"),
         (3.25, "big_demand_move"), (4.25, "delay"), (6.25, "back_on_time"))
STORY_HORIZON_DAYS = 14.0  # the stock the story reasons about: alignbot.example.yml's horizon
BOTH_TEAMS_VALUE = 25_000.0  # alignbot.example.yml: "big demand moves need both sides" from here


class ActionError(ValueError):
    """An action the sandbox refuses (unknown sku, no such lane ...); answered with HTTP 422."""


def ts(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_ts(value: Any, name: str) -> datetime:
    try:
        when = datetime.fromisoformat(str(value))
    except ValueError:
        raise ActionError(f"{name}: {value!r} is not an ISO date-time") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def week_start(day: date) -> date:
    return day - timedelta(days=day.weekday())


class World:
    """Tables of one network (``tables[entity][key] -> row``) behind one lock."""

    def __init__(self, seed: int = 7, now: datetime | None = None, n_skus: int = 300,
                 auto_step_seconds: float | None = None, checks_from: bool = True,
                 story_seconds: float | None = None):
        self.seed = seed
        self.checks_from = checks_from  # refuse actions whose from_* values are stale
        self.lock = threading.RLock()
        self.now = (now or datetime.now(UTC)).astimezone(UTC).replace(minute=0, second=0,
                                                                      microsecond=0)
        self.weeks = [week_start(self.now.date()) + timedelta(weeks=i) for i in range(WEEKS)]
        self.tables: dict[str, dict[tuple, dict[str, Any]]] = {
            name: {} for name in ("demand", "inventory", "site_capacity", "receipts",
                                  "shipments", "capacity", "lanes")}
        self.versions: Counter[str] = Counter()
        self.step_count = 0
        self.injected: list[dict[str, Any]] = []
        self.auto_step_seconds = auto_step_seconds
        self._auto_started = time.monotonic()
        self._auto_done = 0
        self._last_tick = datetime(2000, 1, 1, tzinfo=UTC)
        self._transfer_seq = 0
        self._seq: Counter[str] = Counter()
        # what the systems sent out or noted without changing a table: status requests to
        # carriers, capacity confirmations, load deferred past the horizon (GET /received)
        self.messages: list[dict[str, Any]] = []
        self._scenario_rng = random.Random(seed * 7919 + 17)
        self._build(random.Random(seed), n_skus)
        # story mode: the stage is set now, the beats wait for start_story()
        self.story_seconds = story_seconds
        self.story: list[dict[str, Any]] = self._cast_story() if story_seconds else []
        self._story_started: float | None = None

    # -- clock and writes

    def clock(self) -> datetime:
        """Scenario time: ``now`` at creation plus the real time elapsed since."""
        return self.now + timedelta(seconds=time.monotonic() - self._auto_started)

    def tick(self) -> str:
        """A strictly increasing microsecond timestamp: no two writes share an updated_at."""
        stamp = datetime.now(UTC)
        if stamp <= self._last_tick:
            stamp = self._last_tick + timedelta(microseconds=1)
        self._last_tick = stamp
        return stamp.isoformat(timespec="microseconds")[:-6] + "Z"  # fixed width: sorts as time

    def put(self, table: str, key: tuple, row: dict[str, Any]) -> dict[str, Any]:
        row["updated_at"] = self.tick()
        self.tables[table][key] = row
        self.versions[table] += 1
        return row

    def touch(self, table: str, key: tuple) -> None:
        self.put(table, key, self.tables[table][key])

    # -- the seeded network

    def _build(self, rng: random.Random, n_skus: int) -> None:
        skus = [f"SKU-{i:05d}" for i in range(1, n_skus + 1)]
        order = skus[:]
        rng.shuffle(order)
        self.sku_class: dict[str, str] = {}
        for rank, sku in enumerate(order):
            share = rank / max(1, n_skus)
            self.sku_class[sku] = "A" if share < 0.15 else "B" if share < 0.45 else "C"
        self.sku_value = {s: round(rng.uniform(*CLASS_VALUE[c]), 2)
                          for s, c in self.sku_class.items()}
        self.sku_plant = {s: rng.choice(PLANTS) for s in skus}
        self.base = {(s, dc): rng.uniform(*CLASS_WEEKLY[self.sku_class[s]]) * DC_WEIGHT[dc]
                     for s in skus for dc in DCS}

        for (sku, dc), weekly in self.base.items():
            for i, week in enumerate(self.weeks):
                planned = float(round(weekly * rng.uniform(0.9, 1.1)))
                latest = float(round(planned * rng.uniform(0.93, 1.07))) if i < 4 else planned
                self.put("demand", (sku, dc, week.isoformat()), {
                    "sku": sku, "location": dc, "period": week.isoformat(),
                    "planned_qty": planned, "latest_qty": latest,
                    "unit_value": self.sku_value[sku], "sku_class": self.sku_class[sku],
                    "source": "forecast"})
            cls = self.sku_class[sku]
            self.put("inventory", (sku, dc), {
                "sku": sku, "location": dc, "on_hand": float(round(weekly * rng.uniform(3.2, 5.0))),
                "safety_stock": float(round(weekly * CLASS_SAFETY_WEEKS[cls]))})
        for sku in skus:
            plant = self.sku_plant[sku]
            weekly = sum(self.base[(sku, dc)] for dc in DCS)
            self.put("inventory", (sku, plant), {
                "sku": sku, "location": plant, "on_hand": float(round(weekly * rng.uniform(2, 4))),
                "safety_stock": float(round(weekly * 0.5))})
        for plant in PLANTS:
            for week in self.weeks:
                load = sum(self.tables["demand"][(s, dc, week.isoformat())]["planned_qty"]
                           for s in skus if self.sku_plant[s] == plant for dc in DCS)
                cap = float(round(load * 1.15, -2))
                self.put("site_capacity", (plant, week.isoformat()), {
                    "resource_type": "site", "resource_id": plant, "period": week.isoformat(),
                    "planned_capacity": cap, "available_capacity": cap,
                    "planned_load": float(round(load)), "unit": "units"})

        for plant, dests in PLANT_TRANSIT.items():
            for dc, days in dests.items():
                for carrier in sorted(rng.sample(CARRIERS, 2)):
                    self._add_lane(rng, plant, dc, carrier, days, (3000, 8000))
        for (a, b), days in DC_TRANSIT.items():
            for origin, dest in ((a, b), (b, a)):
                self._add_lane(rng, origin, dest, rng.choice(CARRIERS), days, (1000, 3000))
        for carrier in CARRIERS:
            for week in self.weeks:
                cap = float(round(rng.uniform(8000, 15000), -2))
                self.put("capacity", ("carrier", carrier, week.isoformat()), {
                    "resource_type": "carrier", "resource_id": carrier, "period": week.isoformat(),
                    "planned_capacity": cap, "available_capacity": cap,
                    "planned_load": float(round(cap * rng.uniform(0.6, 0.85), -1)),
                    "unit": "units"})

        lane_total: dict[str, float] = {}
        for (origin, dest, _carrier), lane in sorted(self.tables["lanes"].items()):
            lid = lane_id(origin, dest)
            lane_total[lid] = lane_total.get(lid, 0.0) + lane["capacity"]
        for lid, cap in sorted(lane_total.items()):
            for week in self.weeks:
                self.put("capacity", ("lane", lid, week.isoformat()), {
                    "resource_type": "lane", "resource_id": lid, "period": week.isoformat(),
                    "planned_capacity": cap, "available_capacity": cap,
                    "planned_load": float(round(cap * rng.uniform(0.5, 0.8), -1)),
                    "unit": "units"})

        plant_lanes = [k for k in self.tables["lanes"] if k[0] in PLANTS]
        for i in range(48):
            origin, dest, carrier = rng.choice(plant_lanes)
            days = PLANT_TRANSIT[origin][dest]
            pool = [s for s in skus if self.sku_plant[s] == origin] or skus
            lines = [{"sku": s, "qty": float(max(10, round(self.base[(s, dest)]
                                                           * rng.uniform(0.5, 2), -1)))}
                     for s in sorted(rng.sample(pool, rng.randint(1, 4)))]
            if i < 40:  # in transit, arriving after now
                arrive = self.now + timedelta(hours=rng.uniform(6, days * 24 + 6))
                ship = arrive - timedelta(days=days)
                status, last = "in_transit", min(self.now, ship + timedelta(hours=rng.uniform(1, 8)))
            else:
                ship = self.now + timedelta(hours=rng.uniform(12, 96))
                arrive = ship + timedelta(days=days)
                status, last = "planned", None
            eta = arrive + timedelta(hours=rng.uniform(-3, 3)) if status == "in_transit" else arrive
            sid = f"SHP-{10001 + i}"
            self.put("shipments", (sid,), {
                "shipment_id": sid, "origin": origin, "destination": dest, "carrier": carrier,
                "mode": "TL", "lines": lines, "planned_ship": ts(ship), "planned_arrival": ts(arrive),
                "status": status, "eta": ts(eta), "last_event_at": ts(last) if last else None,
                "exception_code": None})
            for line in lines:
                self.put("receipts", (sid, line["sku"]), {
                    "shipment_id": sid, "sku": line["sku"], "location": dest, "qty": line["qty"],
                    "expected_date": arrive.date().isoformat()})

    def _add_lane(self, rng: random.Random, origin: str, dest: str, carrier: str, days: int,
                  capacity: tuple[int, int]) -> None:
        self.put("lanes", (origin, dest, carrier), {
            "origin": origin, "destination": dest, "carrier": carrier,
            "cost_per_unit": round(0.2 + 0.15 * days * rng.uniform(0.8, 1.2), 2),
            "capacity": float(round(rng.uniform(*capacity), -2)), "transit_days": float(days)})

    # -- the scenario clock

    def catch_up(self) -> None:
        """Apply the auto-advance steps and story beats that are due; called on every request,
        no thread."""
        with self.lock:
            self._play_story()
        if not self.auto_step_seconds:
            return
        due = int((time.monotonic() - self._auto_started) / self.auto_step_seconds)
        for _ in range(min(due - self._auto_done, 100)):
            self.step()
        self._auto_done = max(self._auto_done, due)

    def step(self) -> dict[str, Any]:
        """Advance one step: a demand spike, a batch of delayed shipments, a carrier cut."""
        with self.lock:
            self.step_count += 1
            rng = self._scenario_rng
            injected = [d for d in (self._spike(rng), self._delay(rng), self._cut(rng)) if d]
            for item in injected:
                item["step"] = self.step_count
            self.injected.extend(injected)
            return {"step": self.step_count, "injected": injected}

    def _spike(self, rng: random.Random) -> dict[str, Any]:
        dc = rng.choice(DCS)
        pool = sorted(s for s, c in self.sku_class.items() if c in "AB")
        skus = sorted(rng.sample(pool, min(len(pool), rng.randint(4, 6))))
        first = rng.randint(0, 1)
        periods = [w.isoformat() for w in self.weeks[first:first + 2]]
        factor = round(rng.uniform(1.8, 2.6), 2)
        for sku in skus:
            for period in periods:
                row = self.tables["demand"][(sku, dc, period)]
                row["latest_qty"] = float(round(row["planned_qty"] * factor))
                row["source"] = "orders"
                self.touch("demand", (sku, dc, period))
        return {"kind": "demand_spike", "location": dc, "skus": skus, "periods": periods,
                "factor": factor}

    def _delay(self, rng: random.Random) -> dict[str, Any] | None:
        groups: dict[tuple[str, str], list[tuple]] = {}
        for key, row in sorted(self.tables["shipments"].items()):
            if row["status"] == "in_transit":
                groups.setdefault((row["origin"], row["carrier"]), []).append(key)
        if not groups:
            return None
        several = sorted(g for g, keys in groups.items() if len(keys) >= 2)
        origin, carrier = rng.choice(several or sorted(groups))
        keys = groups[(origin, carrier)][:4]
        code = rng.choice(EXCEPTION_CODES)
        delayed = []
        for key in keys:
            row = self.tables["shipments"][key]
            eta = parse_ts(row["eta"], "eta") + timedelta(hours=rng.uniform(36, 96))
            row.update(eta=ts(eta), status="delayed", exception_code=code,
                       last_event_at=ts(self.clock()))
            self.touch("shipments", key)
            delayed.append(row["shipment_id"])
        return {"kind": "shipment_delay", "origin": origin, "carrier": carrier,
                "exception_code": code, "shipments": delayed}

    def _cut(self, rng: random.Random) -> dict[str, Any]:
        cut_before = {d["carrier"] for d in self.injected if d["kind"] == "capacity_cut"}
        carrier = rng.choice([c for c in CARRIERS if c not in cut_before] or list(CARRIERS))
        first = rng.randint(0, 1)
        periods = [w.isoformat() for w in self.weeks[first:first + 2]]
        ratio = 1.0
        for period in periods:
            row = self.tables["capacity"][("carrier", carrier, period)]
            available = float(round(row["planned_load"] * rng.uniform(0.55, 0.75), -1))
            ratio = min(ratio, available / row["planned_capacity"])
            row["available_capacity"] = available
            self.touch("capacity", ("carrier", carrier, period))
        for key, lane in self.tables["lanes"].items():
            if lane["carrier"] != carrier:
                continue
            lost = lane["capacity"] * (1 - ratio)  # the cut carrier's share of the lane
            for period in periods:
                week_key = ("lane", lane_id(lane["origin"], lane["destination"]), period)
                row = self.tables["capacity"][week_key]
                row["available_capacity"] = float(max(0.0, round(row["available_capacity"]
                                                                 - lost, -1)))
                self.touch("capacity", week_key)
            lane["capacity"] = float(round(lane["capacity"] * ratio, -1))
            self.touch("lanes", key)
        return {"kind": "capacity_cut", "carrier": carrier, "periods": periods}

    # -- the story (make demo): one drift per beat, on targets the detectors really raise

    def start_story(self) -> bool:
        """Start the story's clock; False when there is no story or it started already."""
        with self.lock:
            if not self.story or self._story_started is not None:
                return False
            self._story_started = time.monotonic()
            return True

    @property
    def story_started(self) -> bool:
        return self._story_started is not None

    def _play_story(self) -> None:
        if self._story_started is None or not self.story_seconds:
            return
        beats = (time.monotonic() - self._story_started) / self.story_seconds
        for beat in self.story:
            if beat["at"] <= beats and beat["beat"] not in {i.get("beat") for i in self.injected}:
                getattr(self, f"_play_{beat['kind']}")(beat)
                self.injected.append({**beat, "played_at": ts(self.clock())})

    def _cast_story(self) -> list[dict[str, Any]]:
        """Choose each beat's target so that the detectors raise it, and set the stage: every
        truck on the road has just reported in, and one DC is low on what a truck brings it."""
        at = self.now
        for key, row in sorted(self.tables["shipments"].items()):
            if row["status"] == "in_transit":
                row["last_event_at"] = ts(at)
                self.touch("shipments", key)
        late = self._cast_late_shipment(at)
        cut = self._cast_capacity_cut(at, avoid={late["carrier"]})
        delay = self._cast_delay(at, avoid={late["carrier"], cut["carrier"]},
                                 positions={(late["sku"], late["destination"])})
        skus = {late["sku"]}
        spike = self._cast_demand_spike(at, "B", (3_000.0, 15_000.0), skus, "DC-NJ")
        skus.add(spike["sku"])
        big = self._cast_demand_spike(at, "A", (2 * BOTH_TEAMS_VALUE, 10 * BOTH_TEAMS_VALUE),
                                      skus, "DC-CA")
        cast = {"demand_spike": spike, "late_shipment": late, "capacity_cut": cut,
                "big_demand_move": big, "delay": delay, "back_on_time": delay}
        return [{"beat": i, "at": when, **cast[kind], "kind": kind}
                for i, (when, kind) in enumerate(STORY, start=1)]

    def _lowest(self, sku: str, loc: str, at: datetime, *, on_hand: float | None = None,
                latest: dict[str, float] | None = None,
                arrivals: dict[str, datetime] | None = None) -> float:
        """The lowest projected stock of ``sku`` at ``loc`` over the horizon from ``at``: each
        week's latest demand spread evenly over it, receipts landing at their ETA. ``latest``
        (period -> qty) and ``arrivals`` (shipment id -> when) say what a beat would change."""
        end = STORY_HORIZON_DAYS * 24.0

        def hours(when: datetime) -> float:
            return (when - at).total_seconds() / 3600.0

        weeks = []
        for week in self.weeks:
            qty = (latest or {}).get(week.isoformat(),
                                     self.tables["demand"][(sku, loc, week.isoformat())]["latest_qty"])
            start = hours(datetime(week.year, week.month, week.day, tzinfo=UTC))
            weeks.append((start, start + 168.0, qty / 168.0))
        receipts: dict[float, float] = {}
        for row in self.tables["shipments"].values():
            if row["status"] in DONE or row["destination"] != loc:
                continue
            when = (arrivals or {}).get(row["shipment_id"]) or parse_ts(
                row["eta"] or row["planned_arrival"], "eta")
            lands = max(hours(when), 0.0)
            for line in row["lines"]:
                if line["sku"] == sku and lands < end:
                    receipts[lands] = receipts.get(lands, 0.0) + line["qty"]
        points = sorted({0.0, end, *receipts,
                         *(t for w in weeks for t in w[:2] if 0.0 < t < end)})
        level = (self.tables["inventory"][(sku, loc)]["on_hand"] if on_hand is None
                 else on_hand) + receipts.get(0.0, 0.0)
        lowest = level
        for p0, p1 in zip(points, points[1:], strict=False):
            level -= sum(rate * max(0.0, min(p1, b) - max(p0, a)) for a, b, rate in weeks)
            lowest = min(lowest, level)
            level += receipts.get(p1, 0.0)
        return lowest

    def _daily(self, sku: str, loc: str, at: datetime) -> float:
        week = week_start(at.date()).isoformat()
        return self.tables["demand"][(sku, loc, week)]["latest_qty"] / 7.0

    def _cast_late_shipment(self, at: datetime) -> dict[str, Any]:
        """A truck due in a day or two carrying most of what one DC will sell; the DC keeps
        just enough to last until it lands (the stage), so three days late is a stock-out."""
        for _key, row in sorted(self.tables["shipments"].items()):
            eta = parse_ts(row["eta"], "eta")
            if row["status"] != "in_transit" or not 18 <= (eta - at).total_seconds() / 3600 <= 60:
                continue
            for line in sorted(row["lines"], key=lambda ln: -ln["qty"]):
                sku, dc = line["sku"], row["destination"]
                stock = self.tables["inventory"][(sku, dc)]
                daily, safety = self._daily(sku, dc, at), stock["safety_stock"]
                lands_in = (eta - at).total_seconds() / 86400
                on_hand = float(math.ceil(safety + daily * (lands_in + 0.6)))
                later = {row["shipment_id"]: eta + timedelta(hours=72)}
                if (on_hand >= stock["on_hand"] or daily < 10
                        or self._lowest(sku, dc, at, on_hand=on_hand) < safety + 0.3 * daily
                        or self._lowest(sku, dc, at, on_hand=on_hand, arrivals=later)
                        > safety - max(50.0, 1.5 * daily)):
                    continue
                stock["on_hand"] = on_hand
                self.touch("inventory", (sku, dc))
                return {"shipment_id": row["shipment_id"], "origin": row["origin"],
                        "destination": dc, "carrier": row["carrier"], "sku": sku,
                        "qty": line["qty"], "eta": row["eta"], "delay_hours": 72,
                        "exception_code": "WEATHER", "on_hand": on_hand,
                        "daily_demand": round(daily, 1)}
        raise RuntimeError("the story finds no shipment whose delay would cause a stock-out")

    def _cast_delay(self, at: datetime, avoid: set[str], positions: set[tuple[str, str]]
                    ) -> dict[str, Any]:
        """A truck whose delay costs nothing (its DC has stock enough), with another carrier."""
        for _key, row in sorted(self.tables["shipments"].items()):
            eta = parse_ts(row["eta"], "eta")
            if (row["status"] != "in_transit" or row["carrier"] in avoid
                    or (eta - at).total_seconds() < 12 * 3600):
                continue
            later = {row["shipment_id"]: eta + timedelta(hours=30)}
            lines = [(ln["sku"], row["destination"]) for ln in row["lines"]]
            if any(p in positions or self._lowest(*p, at, arrivals=later)
                   < self.tables["inventory"][p]["safety_stock"] for p in lines):
                continue
            return {"shipment_id": row["shipment_id"], "origin": row["origin"],
                    "destination": row["destination"], "carrier": row["carrier"],
                    "eta": row["eta"], "delay_hours": 30, "exception_code": "PORT_CONGESTION"}
        raise RuntimeError("the story finds no shipment for a harmless delay")

    def _cast_capacity_cut(self, at: datetime, avoid: set[str]) -> dict[str, Any]:
        """A carrier whose capacity in the week of a planned shipment falls just below the
        load planned on it: the shipments planned to leave last no longer fit."""
        planned = sorted((r for r in self.tables["shipments"].values()
                          if r["status"] == "planned" and r["carrier"] not in avoid),
                         key=lambda r: (r["planned_ship"], r["shipment_id"]))
        for row in planned:
            period = week_start(parse_ts(row["planned_ship"], "planned_ship").date()).isoformat()
            key = ("carrier", row["carrier"], period)
            if key not in self.tables["capacity"]:
                continue
            cap = self.tables["capacity"][key]
            moving = sum(ln["qty"] for r in planned if r["carrier"] == row["carrier"]
                         and week_start(parse_ts(r["planned_ship"], "ship").date()).isoformat()
                         == period for ln in r["lines"])
            available = float(math.floor((cap["planned_load"] - 0.6 * moving) / 10) * 10)
            return {"carrier": row["carrier"], "period": period,
                    "planned_capacity": cap["planned_capacity"],
                    "available_capacity": available, "planned_load": cap["planned_load"]}
        raise RuntimeError("the story finds no carrier with planned shipments to cut")

    def _cast_demand_spike(self, at: datetime, sku_class: str, value: tuple[float, float],
                           avoid: set[str], prefer: str) -> dict[str, Any]:
        """Orders for one SKU at one DC well above the forecast for the coming week, so far
        above that the DC's stock falls below safety stock by ``value`` (low, high) in money."""
        inbound = {(ln["sku"], r["destination"]) for r in self.tables["shipments"].values()
                   if r["status"] not in DONE for ln in r["lines"]}
        window = (at + timedelta(hours=12), at + timedelta(days=7, hours=12))
        periods = [w.isoformat() for w in self.weeks
                   if datetime(w.year, w.month, w.day, tzinfo=UTC) < window[1]
                   and datetime(w.year, w.month, w.day, tzinfo=UTC) + timedelta(days=7) > window[0]]
        dcs = [prefer, *(dc for dc in DCS if dc != prefer)]
        for dc in dcs:
            for sku in sorted(s for s, c in self.sku_class.items() if c == sku_class):
                if sku in avoid or (sku, dc) in inbound:
                    continue
                rows = [self.tables["demand"][(sku, dc, p)] for p in periods]
                safety = self.tables["inventory"][(sku, dc)]["safety_stock"]
                for factor in (1.6, 1.8, 2.0, 2.3, 2.6, 3.0):
                    latest = {r["period"]: float(round(r["planned_qty"] * factor)) for r in rows}
                    if any(latest[r["period"]] - r["planned_qty"] < 60 for r in rows):
                        continue
                    short = safety - self._lowest(sku, dc, at, latest=latest)
                    if value[0] <= short * self.sku_value[sku] <= value[1]:
                        return {"sku": sku, "location": dc, "periods": periods,
                                "factor": factor, "latest": latest,
                                "planned": {r["period"]: r["planned_qty"] for r in rows},
                                "unit_value": self.sku_value[sku]}
        raise RuntimeError(f"the story finds no class {sku_class} SKU for a demand spike")

    def _play_demand_spike(self, beat: dict[str, Any]) -> None:
        for period, qty in beat["latest"].items():
            key = (beat["sku"], beat["location"], period)
            self.tables["demand"][key].update(latest_qty=qty, source="orders")
            self.touch("demand", key)

    _play_big_demand_move = _play_demand_spike

    def _play_late_shipment(self, beat: dict[str, Any]) -> None:
        key = (beat["shipment_id"],)
        eta = parse_ts(beat["eta"], "eta") + timedelta(hours=beat["delay_hours"])
        self.tables["shipments"][key].update(eta=ts(eta), status="delayed",
                                             exception_code=beat["exception_code"],
                                             last_event_at=ts(self.clock()))
        self.touch("shipments", key)

    _play_delay = _play_late_shipment

    def _play_back_on_time(self, beat: dict[str, Any]) -> None:
        key = (beat["shipment_id"],)
        self.tables["shipments"][key].update(eta=beat["eta"], status="in_transit",
                                             exception_code=None, last_event_at=ts(self.clock()))
        self.touch("shipments", key)

    def _play_capacity_cut(self, beat: dict[str, Any]) -> None:
        key = ("carrier", beat["carrier"], beat["period"])
        self.tables["capacity"][key]["available_capacity"] = beat["available_capacity"]
        self.touch("capacity", key)

    # -- helpers the actions use

    def next_transfer_id(self) -> str:
        self._transfer_seq += 1
        return f"TRF-{self._transfer_seq:05d}"

    def next_id(self, prefix: str) -> str:
        self._seq[prefix] += 1
        return f"{prefix}-{self._seq[prefix]:05d}"

    def note(self, system: str, kind: str, **fields: Any) -> dict[str, Any]:
        """Record a message a system sent (or a plan note) with the scenario time it was sent."""
        message = {"system": system, "kind": kind, "at": ts(self.clock()), **fields}
        self.messages.append(message)
        return message

    def capacity_row(self, resource_type: str, resource_id: str, period: str
                     ) -> tuple[str, tuple, dict[str, Any]]:
        """(table, key, row) of one resource-week: sites and docks are planned in the
        planning system (``site_capacity``), carriers and lanes in the TMS (``capacity``)."""
        if resource_type in ("site", "dock"):
            table, key = "site_capacity", (resource_id, period)
            row = self.tables[table].get(key)
            if row is not None and row["resource_type"] != resource_type:
                row = None
        else:
            table, key = "capacity", (resource_type, resource_id, period)
            row = self.tables[table].get(key)
        if row is None:
            raise ActionError(f"no capacity plan for {resource_type} {resource_id} "
                              f"in week {period}")
        return table, key, row
