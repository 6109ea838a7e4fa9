"""Turn grouped drifts into recommendations: one coordinated change on both the planning and
the logistics side, with what it buys (impact if approved vs if ignored) and what else was weighed.

Allocation problems are solved once per pass for all groups (one transfer LP, one
reassignment LP), then their answers are handed to the group that owns each need.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import Any

import polars as pl

from detectors._common import today
from detectors.capacity_shift import resource_loads
from detectors.grouping import Group
from detectors.impact import residual, total, worst
from detectors.model import Action, DriftKind, Impact, Recommendation, trusted
from detectors.settings import DetectorSettings
from detectors.transfers import plan_reassignment, plan_transfers

# who answers a shortfall at a sku × location when several groups touch it
_OWNER_PRECEDENCE = {DriftKind.DISRUPTION: 0, DriftKind.DEMAND_CHANGE: 1, DriftKind.STOCKOUT_RISK: 2}


@dataclass(frozen=True)
class Context:
    """The tables recommendations need besides the drifts themselves."""

    projection: pl.DataFrame
    shipments: pl.DataFrame
    capacity: pl.DataFrame
    lanes: pl.DataFrame
    settings: DetectorSettings
    now: datetime
    loads: pl.DataFrame | None = None  # resource_loads of the capacity drifts, when detection kept them


def _columns(frame: pl.DataFrame, *names: str) -> list[list[Any]]:
    return [frame.get_column(n).to_list() for n in names]


def _dicts(frame: pl.DataFrame) -> list[dict[str, Any]]:
    """``list(frame.iter_rows(named=True))``, converted column by column (~2x cheaper)."""
    names = frame.columns
    return [dict(zip(names, row, strict=True)) for row in zip(*_columns(frame, *names))]


def _u(x: float) -> str:
    return f"{x:,.0f}"


def _money(x: float) -> str:
    return f"{x:,.0f}"


def _transfer_action(t: dict[str, Any], day: date) -> Action:
    return Action.unchecked(
        system="logistics",
        operation="create_transfer",
        params={
            "sku": t["sku"], "from": t["from"], "to": t["to"], "qty": t["qty"],
            "carrier": t["carrier"], "ship_date": _iso(day), "arrive_by": _days_after(day, t["transit_days"]),
        },
    )


@lru_cache(maxsize=64)
def _iso(day: date) -> str:
    return day.isoformat()


@lru_cache(maxsize=1024)
def _days_after(day: date, days: float) -> str:
    """``day`` + ``days`` as ISO text: a few distinct transit times and lead times serve thousands
    of actions."""
    return (day + timedelta(days=float(days))).isoformat()


def _assign_needs(groups: list[Group]) -> tuple[pl.DataFrame, dict[tuple[str, str], Group]]:
    """Collect shortfalls per sku × location and decide which group answers each."""
    need: dict[tuple[str, str], float] = defaultdict(float)
    owner: dict[tuple[str, str], Group] = {}

    def claim(key: tuple[str, str], g: Group) -> None:
        cur = owner.get(key)
        if cur is None or _OWNER_PRECEDENCE[g.kind] < _OWNER_PRECEDENCE[cur.kind]:
            owner[key] = g

    for g in groups:
        for d in g.drifts:
            if g.kind is DriftKind.DISRUPTION:
                for line in d.evidence.get("lines") or []:
                    if line["need_units"] > 0:
                        key = (line["sku"], d.evidence["destination"])
                        need[key] = max(need[key], float(line["need_units"]))
                        claim(key, g)
            elif g.kind is DriftKind.DEMAND_CHANGE and g.key.get("direction", d.cause["direction"]) == "up":
                claim((d.key["sku"], d.key["location"]), g)
            elif g.kind is DriftKind.STOCKOUT_RISK:
                key = (d.key["sku"], d.key["location"])
                need[key] = max(need[key], d.impact.units_short)
                claim(key, g)
    needs = pl.DataFrame(
        {"sku": [k[0] for k in need], "location": [k[1] for k in need],
         "qty": [float(int(v + 0.999999)) for v in need.values()]},
        schema={"sku": pl.Utf8, "location": pl.Utf8, "qty": pl.Float64},
    ).lazy().join(
        pl.DataFrame({"sku": [k[0] for k in owner], "location": [k[1] for k in owner]},
                     schema={"sku": pl.Utf8, "location": pl.Utf8}).lazy(),
        on=["sku", "location"], how="semi",
    ).sort("sku", "location").collect(engine="in-memory")
    return needs, owner


def recommend(groups: list[Group], ctx: Context,
              assigned: tuple[pl.DataFrame, dict[tuple[str, str], Group]] | None = None) -> list[Recommendation]:
    """One recommendation per group; stockout drifts another group already answers join it.

    ``assigned``: ``_assign_needs(groups)`` when the caller already has it (the incremental pass).
    """
    needs, owner = assigned if assigned is not None else _assign_needs(groups)
    transfers = plan_transfers(needs, ctx.projection, ctx.lanes, ctx.settings)
    by_dest: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for t in _dicts(transfers):
        by_dest[(t["sku"], t["to"])].append(t)
    need_qty = dict(zip(zip(*_columns(needs, "sku", "location")), needs.get_column("qty").to_list()))

    # stockout drifts whose shortfall another group answers are absorbed by that group
    kept: list[Group] = []
    for g in groups:
        if g.kind is DriftKind.STOCKOUT_RISK:
            own = []
            for d in g.drifts:
                o = owner.get((d.key["sku"], d.key["location"]))
                if o is not None and o is not g:
                    o.absorbed.append(d)
                else:
                    own.append(d)
            g.drifts = own
            if not own:
                continue
        kept.append(g)

    cap_plan = _capacity_plan([g for g in kept if g.kind is DriftKind.CAPACITY_SHIFT], ctx)
    inbound = _inbound_lines(kept, ctx)
    owned: dict[int, list[tuple[str, str]]] = defaultdict(list)
    for k, o in owner.items():
        owned[id(o)].append(k)
    out = []
    for g in kept:
        mine = {k: by_dest.get(k, []) for k in owned.get(id(g), [])}
        if g.kind is DriftKind.DEMAND_CHANGE:
            rec = _demand(g, mine, need_qty, inbound, ctx)
        elif g.kind is DriftKind.DISRUPTION:
            rec = _disruption(g, mine, need_qty, ctx)
        elif g.kind is DriftKind.CAPACITY_SHIFT:
            rec = _capacity(g, cap_plan, ctx)
        else:
            rec = _stockout(g, mine, need_qty, inbound, ctx)
        out.append(rec)
    return out


def _finish(g: Group, ctx: Context, *, summary: str, actions: list[Action], impact_if_approved: Impact,
            impact_if_ignored: Impact, rationale: str, alternatives: list[str],
            affected: list[dict[str, Any]]) -> Recommendation:
    drifts = g.drifts + g.absorbed
    return trusted(Recommendation, {
        "fingerprint": g.fingerprint,
        "kind": g.kind,
        "drift_fingerprints": [d.fingerprint for d in drifts],
        "summary": summary,
        "actions": actions,
        "impact_if_approved": impact_if_approved,
        "impact_if_ignored": impact_if_ignored,
        "severity": worst(drifts, impact_if_ignored, ctx.settings.severity),
        "rationale": rationale,
        "alternatives": alternatives,
        "affected": affected,
        "cause": dict(g.key),
    })


def _covered(mine: dict[tuple[str, str], list[dict[str, Any]]]) -> float:
    return sum(t["qty"] for ts in mine.values() for t in ts)


def _transfer_alternatives(mine, need_qty) -> list[str]:
    alts = []
    moved = _covered(mine)
    needed = sum(need_qty.get(k, 0.0) for k in mine)
    if needed > moved:
        alts.append(
            f"Transfer more from other locations — only {_u(moved)} of {_u(needed)} units are "
            "spare above safety stock on lanes with room"
        )
    return alts


# --- demand change ---------------------------------------------------------------------------


def _demand(g, mine, need_qty, inbound, ctx) -> Recommendation:
    day = today(ctx.now)
    sku, loc, direction = g.key.get("sku", ""), g.key.get("location", ""), g.key.get("direction", "")
    delta = sum(d.evidence["delta"] for d in g.drifts)
    periods = [d.key["period"] for d in g.drifts]
    actions = [
        Action.unchecked(system="planning", operation="update_forecast",
               params={"sku": d.key["sku"], "location": d.key["location"], "period": d.key["period"],
                       "from_qty": d.evidence["planned_qty"], "to_qty": d.evidence["latest_qty"]})
        for d in g.drifts
    ]
    ignored = total([d.impact for d in g.drifts])
    if g.absorbed:  # the stockout this demand causes: its service risk, not its units again
        ignored = ignored.model_copy(update={"service_days_at_risk": max(
            d.impact.service_days_at_risk for d in g.absorbed)})
    affected = [{"sku": d.key["sku"], "location": d.key["location"], "period": d.key["period"],
                 "planned_qty": d.evidence["planned_qty"], "latest_qty": d.evidence["latest_qty"]}
                for d in g.drifts]
    if direction == "up":
        transfers = [t for ts in mine.values() for t in ts]
        actions += [_transfer_action(t, day) for t in transfers]
        moved = _covered(mine)
        short = sum(need_qty.get(k, 0.0) for k in mine)
        # the forecast change closes the plan gap; only the shortfall transfers miss stays open
        approved = residual(ignored, short_covered=ignored.units_short - max(0.0, short - moved))
        src = ", ".join(sorted({f"{t['from']} ({_u(t['qty'])})" for t in transfers}))
        summary = (
            f"Demand for {sku} at {loc} is up {_u(delta)} units over {len(periods)} period(s): "
            f"raise the forecast" + (f" and transfer {_u(moved)} units from {src}" if transfers else "")
        )
        rationale = (
            f"Latest demand exceeds the plan by {_u(delta)} units; projected stock at {loc} falls "
            f"{_u(short)} units below safety stock within {ctx.settings.stockout.horizon_days:g} days. "
            "Transfers take spare stock above safety stock from the cheapest lanes with room."
            if short > 0 else
            f"Latest demand exceeds the plan by {_u(delta)} units; stock at {loc} still covers it, "
            "so only the plan needs to follow."
        )
        alternatives = [
            f"Do nothing — the plan keeps supplying {_u(delta)} units too few to {loc}",
            "Expedite a new supply order — slower and dearer than moving stock already in the network",
        ] + _transfer_alternatives(mine, need_qty)
    else:
        excess = -delta
        lines = [ln for ln in inbound.get((sku, loc), []) if ln["status"] == "planned"]  # not yet shipped
        reduce_left = excess
        for line in lines:
            if reduce_left < 1:
                break
            qty = float(min(line["qty"], int(reduce_left)))
            actions.append(Action.unchecked(system="logistics", operation="reduce_inbound",
                                  params={"shipment_id": line["shipment_id"], "sku": sku,
                                          "destination": loc, "reduce_by": qty,
                                          "from_qty": line["qty"]}))
            reduce_left -= qty
        reduced = excess - reduce_left
        approved = residual(ignored, excess_covered=reduced + 0.0)
        summary = (
            f"Demand for {sku} at {loc} is down {_u(excess)} units: lower the forecast"
            + (f" and cut {_u(reduced)} units from inbound not yet shipped" if reduced else "")
        )
        rationale = (
            f"Latest demand is {_u(excess)} units below the plan; without a change that stock "
            f"piles up at {loc}. Only shipments still in 'planned' status are reduced."
        )
        alternatives = [
            f"Do nothing — {_u(excess)} extra units tie up {_money(ignored.value_at_risk)} in stock at {loc}",
            "Cancel shipments already in transit — costs more than holding the stock",
        ]
    for d in g.absorbed:
        affected.append({"sku": d.key["sku"], "location": d.key["location"], "kind": d.kind.value,
                         "units_short": d.impact.units_short})
    return _finish(g, ctx, summary=summary, actions=actions, impact_if_approved=approved,
                   impact_if_ignored=ignored, rationale=rationale, alternatives=alternatives,
                   affected=affected)


# --- disruption ------------------------------------------------------------------------------


def _disruption(g, mine, need_qty, ctx) -> Recommendation:
    day = today(ctx.now)
    rc = ctx.settings.recommend
    actions: list[Action] = []
    affected = []
    carrier, origin = g.key.get("carrier", ""), g.key.get("origin", "")
    expedite_ids = []
    for d in g.drifts:
        ev = d.evidence
        new_date = ev.get("eta") or "unknown"
        actions.append(Action.unchecked(system="planning", operation="reschedule_receipt",
                              params={"shipment_id": d.key["shipment_id"], "location": ev["destination"],
                                      "from_date": ev.get("planned_arrival"), "to_date": new_date,
                                      "lines": [{"sku": ln["sku"], "qty": ln["qty"]} for ln in ev["lines"]]}))
        # what transfers leave uncovered at this destination decides whether to expedite
        uncovered = 0.0
        for ln in ev["lines"]:
            key = (ln["sku"], ev["destination"])
            moved = sum(t["qty"] for t in mine.get(key, []))
            uncovered += max(0.0, ln["need_units"] - moved)
        if d.impact.service_days_at_risk >= rc.expedite_min_service_days and uncovered > 0:
            expedite_ids.append(d.key["shipment_id"])
            actions.append(Action.unchecked(system="logistics", operation="expedite_shipment",
                                  params={"shipment_id": d.key["shipment_id"], "carrier": ev["carrier"],
                                          "target_arrival": ev.get("planned_arrival")}))
        if "stopped_reporting" in (ev.get("reasons") or []):
            actions.append(Action.unchecked(system="logistics", operation="request_status",
                                  params={"shipment_id": d.key["shipment_id"], "carrier": ev["carrier"]}))
        affected.append({"shipment_id": d.key["shipment_id"], "destination": ev["destination"],
                         "reasons": ev.get("reasons"), "eta": ev.get("eta"),
                         "planned_arrival": ev.get("planned_arrival"),
                         "units": d.impact.units_short, "service_days_at_risk": d.impact.service_days_at_risk})
    transfers = [t for ts in mine.values() for t in ts]
    actions += [_transfer_action(t, day) for t in transfers]
    ignored = total([d.impact for d in g.drifts])
    if g.absorbed:  # the stockout the delay causes: its service risk, not its units again
        ignored = ignored.model_copy(update={"service_days_at_risk": max(
            [ignored.service_days_at_risk] + [d.impact.service_days_at_risk for d in g.absorbed])})
    needed = sum(need_qty.get(k, 0.0) for k in mine)
    moved = _covered(mine)
    # the receipt stays late either way; approval removes the service risk it covers
    approved = ignored.model_copy(update={
        "service_days_at_risk": round(ignored.service_days_at_risk * (max(0.0, needed - moved) / needed), 4)
        if needed > 0 else 0.0,
    })
    if expedite_ids:
        approved = approved.model_copy(update={"service_days_at_risk": 0.0})
    n = len(g.drifts)
    summary = (
        f"{n} shipment(s) from {origin} with {carrier or 'unknown carrier'} are late: reschedule receipts"
        + (f", re-source {_u(moved)} units by transfer" if transfers else "")
        + (f", expedite {len(expedite_ids)}" if expedite_ids else "")
    )
    rationale = (
        f"{_u(ignored.units_short)} units arrive late; destination stock above safety covers part of "
        f"the delay, leaving {ignored.service_days_at_risk:.1f} service day(s) at risk. Planning must "
        "move the receipts so downstream orders are not promised on the old dates."
    )
    alternatives = [
        "Do nothing — receipts stay on the old dates and orders get promised stock that is not there",
        "Re-source everything from another supplier — lead time is longer than the delay",
    ] + _transfer_alternatives(mine, need_qty)
    if not expedite_ids:
        alternatives.append("Expedite — stock and transfers already cover the delay")
    return _finish(g, ctx, summary=summary, actions=actions, impact_if_approved=approved,
                   impact_if_ignored=ignored, rationale=rationale, alternatives=alternatives,
                   affected=affected)


# --- stockout risk ---------------------------------------------------------------------------


def _stockout(g, mine, need_qty, inbound, ctx) -> Recommendation:
    day = today(ctx.now)
    actions: list[Action] = []
    affected = []
    for d in g.drifts:
        sku, loc = d.key["sku"], d.key["location"]
        ts = mine.get((sku, loc), [])
        actions += [_transfer_action(t, day) for t in ts]
        moved = sum(t["qty"] for t in ts)
        left = max(0.0, d.impact.units_short - moved)
        if left > 0:
            late = [ln for ln in inbound.get((sku, loc), []) if ln["status"] != "planned"]
            if late:
                first = min(late, key=lambda ln: ln["arrival"])
                actions.append(Action.unchecked(system="logistics", operation="expedite_shipment",
                                      params={"shipment_id": first["shipment_id"], "carrier": first["carrier"],
                                              "sku": sku, "qty": first["qty"]}))
            cross = d.evidence.get("below_safety_in_days") or 0.0
            actions.append(Action.unchecked(system="planning", operation="update_replenishment_plan",
                                  params={"sku": sku, "location": loc, "qty": float(int(left + 0.999999)),
                                          "need_by": _days_after(day, int(cross))}))
        affected.append({"sku": sku, "location": loc, "min_projected": d.evidence["min_projected"],
                         "safety_stock": d.evidence["safety_stock"],
                         "days_of_cover": d.evidence["days_of_cover"]})
    ignored = total([d.impact for d in g.drifts])
    moved = _covered(mine)
    approved = residual(ignored, short_covered=moved)
    first = g.drifts[0]
    soonest = min((d.evidence.get("below_safety_in_days") or 0.0) for d in g.drifts)
    what = (f"{first.key['sku']} at {first.key['location']}" if len(g.drifts) == 1
            else f"{len(g.drifts)} SKUs at {first.key['location']}")
    summary = (
        f"{what} drop{'s' if len(g.drifts) == 1 else ''} {_u(ignored.units_short)} units below "
        f"safety stock within {soonest:.0f} day(s)"
        + (f": transfer {_u(moved)} units" if moved else ": replan replenishment")
    )
    rationale = (
        "Projection from on hand, latest demand and inbound as it now arrives (by ETA) falls "
        "below safety stock; spare stock elsewhere is moved first, the plan covers the rest."
    )
    alternatives = [
        "Do nothing — the location runs below safety stock"
        + (f" and out of stock for {ignored.service_days_at_risk:.1f} day(s)" if ignored.service_days_at_risk else ""),
        "Lower safety stock — hides the risk instead of covering it",
    ] + _transfer_alternatives(mine, need_qty)
    return _finish(g, ctx, summary=summary, actions=actions, impact_if_approved=approved,
                   impact_if_ignored=ignored, rationale=rationale, alternatives=alternatives,
                   affected=affected)


def _inbound_lines(groups: list[Group], ctx: Context) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """Open inbound lines for the sku × locations of demand-down and stockout groups.

    Sorted latest-arriving first, so reductions hit what is furthest away.
    """
    # only demand-down groups (see ``_demand``) and stock-out groups read them
    keys = [(d.key["sku"], d.key["location"]) for g in groups
            if g.kind is DriftKind.STOCKOUT_RISK
            or (g.kind is DriftKind.DEMAND_CHANGE and g.key.get("direction", "") != "up") for d in g.drifts]
    if not keys:
        return {}
    frame = pl.DataFrame({"sku": [k[0] for k in keys], "destination": [k[1] for k in keys]})
    lines = (
        ctx.shipments.lazy()
        .select("sku", "destination", "shipment_id", "carrier", "qty", "status", "eta",
                "planned_arrival")  # what _demand and _stockout read
        .join(frame.lazy().unique(), on=["sku", "destination"], how="semi")
        .filter(~pl.col("status").is_in(ctx.settings.disruption.done_statuses))
        .with_columns(pl.coalesce("eta", "planned_arrival").alias("arrival"))
        .sort(["arrival", "shipment_id"], descending=[True, False], nulls_last=True)
        .collect(engine="in-memory")  # one query, as the eager steps ran
    )
    out: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in _dicts(lines):
        out[(r["sku"], r["destination"])].append(r)
    return out


# --- capacity shift --------------------------------------------------------------------------


def _capacity_plan(groups: list[Group], ctx: Context) -> dict[str, Any]:
    """Solve reassignment for all capacity cuts at once; find later periods with room for the rest."""
    cuts = [d for g in groups for d in g.drifts if d.cause.get("direction") == "cut"]
    if not cuts:
        return {"reassigned": {}, "rephase": {}}
    drifts = pl.DataFrame(
        {
            "fingerprint": [d.fingerprint for d in cuts],
            "resource_type": [d.key["resource_type"] for d in cuts],
            "resource_id": [d.key["resource_id"] for d in cuts],
            "period": [date.fromisoformat(d.key["period"]) for d in cuts],
            "overflow": [float(d.evidence["overflow"]) for d in cuts],
        }
    )
    # one query for the overflow items and the spare periods (in-memory, as eager steps ran)
    if ctx.loads is None:
        loads = resource_loads(drifts, ctx.shipments, ctx.settings).lazy()
    else:
        loads = ctx.loads.lazy().join(drifts.lazy().select("resource_type", "resource_id", "period"),
                                      on=["resource_type", "resource_id", "period"], how="semi")
    loads = (
        loads
        .group_by("resource_type", "resource_id", "period", "origin", "destination", "carrier")
        .agg(pl.col("qty").sum())
    )
    items = (
        drifts.lazy().join(loads, on=["resource_type", "resource_id", "period"], how="left")
        .with_columns((pl.col("qty") / pl.col("qty").sum().over("fingerprint")).alias("share"))
        .with_columns(
            # a lane cut with no shipments on record: the lane id says where the load goes
            pl.when(pl.col("origin").is_null() & (pl.col("resource_type") == "lane"))
            .then(pl.col("resource_id").str.split(">").list.first()).otherwise(pl.col("origin")).alias("origin"),
            pl.when(pl.col("destination").is_null() & (pl.col("resource_type") == "lane"))
            .then(pl.col("resource_id").str.split(">").list.last()).otherwise(pl.col("destination")).alias("destination"),
            pl.col("share").fill_null(1.0),
            pl.when(pl.col("resource_type") == "carrier").then(pl.col("resource_id"))
            .otherwise(pl.col("carrier")).fill_null("").alias("exclude_carrier"),
        )
        .filter(pl.col("resource_type").is_in(["carrier", "lane"]) & pl.col("origin").is_not_null())
        .with_columns((pl.col("overflow") * pl.col("share")).floor().alias("qty"))
        .filter(pl.col("qty") >= 1)
        .sort("fingerprint", "origin", "destination", "exclude_carrier")
        .with_row_index("item_id")
        .with_columns(pl.col("item_id").cast(pl.Int64))
        .select("item_id", "origin", "destination", "exclude_carrier", "qty", "fingerprint")
    )
    spare = (
        ctx.capacity.lazy().join(drifts.lazy().select("resource_type", "resource_id").unique(),
                                 on=["resource_type", "resource_id"], how="semi")
        .with_columns((pl.col("available_capacity") - pl.col("planned_load")).alias("room"))
        .filter(pl.col("room") >= 1)
        .sort("resource_type", "resource_id", "period")
        .select("resource_type", "resource_id", "period", "room")
    )
    items, spare = pl.collect_all([items, spare], engine="in-memory")
    moves = plan_reassignment(items.drop("fingerprint"), ctx.lanes, ctx.settings).lazy().join(
        items.lazy().select("item_id", "fingerprint", pl.col("exclude_carrier").alias("from_carrier")), on="item_id"
    ).collect(engine="in-memory")
    reassigned: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for m in _dicts(moves):
        reassigned[m["fingerprint"]].append(m)
    rephase: dict[tuple[str, str], list[tuple[date, float]]] = defaultdict(list)
    for rtype, rid, period, room in zip(*_columns(spare, "resource_type", "resource_id", "period", "room")):
        rephase[(rtype, rid)].append((period, room))
    return {"reassigned": reassigned, "rephase": rephase}


def _capacity(g, plan, ctx) -> Recommendation:
    actions: list[Action] = []
    affected = []
    rtype, res = g.key.get("resource_type", ""), g.key.get("resource", "")
    ignored = total([d.impact for d in g.drifts])
    moved_total = 0.0
    rephased_total = 0.0
    cut = g.key.get("direction", g.drifts[0].cause.get("direction")) == "cut"
    room = {k: list(v) for k, v in plan["rephase"].items()}
    for d in sorted(g.drifts, key=lambda d: d.key["period"]):
        ev = d.evidence
        period = d.key["period"]
        affected.append({"resource_type": d.key["resource_type"], "resource_id": d.key["resource_id"],
                         "period": period, "planned_load": ev["planned_load"],
                         "available_capacity": ev["available_capacity"]})
        if not cut:
            actions.append(Action.unchecked(system="planning", operation="update_capacity_plan",
                                  params={"resource_type": d.key["resource_type"], "resource_id": d.key["resource_id"],
                                          "period": period, "from_capacity": ev["planned_capacity"],
                                          "to_capacity": ev["available_capacity"]}))
            actions.append(Action.unchecked(system="logistics", operation="confirm_capacity",
                                  params={"resource_type": d.key["resource_type"], "resource_id": d.key["resource_id"],
                                          "period": period, "qty": ev["spare_capacity"]}))
            continue
        moved = 0.0
        for m in plan["reassigned"].get(d.fingerprint, []):
            moved += m["qty"]
            actions.append(Action.unchecked(system="logistics", operation="reassign_carrier",
                                  params={"from_carrier": m["from_carrier"], "to_carrier": m["carrier"],
                                          "origin": m["origin"], "destination": m["destination"],
                                          "period": period, "qty": m["qty"]}))
        left = max(0.0, float(int(ev["overflow"] + 0.999999)) - moved)
        slots = room.get((d.key["resource_type"], d.key["resource_id"]), [])
        for i, (p, r) in enumerate(slots):
            if left < 1:
                break
            if p.isoformat() <= period or r < 1:
                continue
            q = float(min(int(r), int(left + 0.999999)))
            actions.append(Action.unchecked(system="planning", operation="rephase_plan",
                                  params={"resource_type": d.key["resource_type"], "resource_id": d.key["resource_id"],
                                          "from_period": period, "to_period": p.isoformat(), "qty": q}))
            slots[i] = (p, r - q)
            left -= q
            rephased_total += q
        if left >= 1:
            actions.append(Action.unchecked(system="planning", operation="rephase_plan",
                                  params={"resource_type": d.key["resource_type"], "resource_id": d.key["resource_id"],
                                          "from_period": period, "to_period": None, "qty": float(int(left + 0.999999)),
                                          "note": "no capacity found within the planning horizon"}))
        moved_total += moved
    if cut:
        approved = residual(ignored, short_covered=moved_total + rephased_total)
        summary = (
            f"{rtype.capitalize()} {res} lost capacity: {_u(ignored.units_short)} units do not fit"
            + (f"; move {_u(moved_total)} to other carriers" if moved_total else "")
            + (f", rephase {_u(rephased_total)}" if rephased_total else "")
        )
        rationale = (
            "Planned load exceeds the capacity now available. Overflow goes to other carriers on the "
            "same lanes at least cost; what no carrier can take moves to the next period with room."
        )
        alternatives = [
            f"Do nothing — {_u(ignored.units_short)} units miss their period",
            "Pay the carrier a premium to restore capacity — not offered in the data, ask the carrier",
        ]
        if rtype in ("site", "dock"):
            alternatives.append("Reassign to another carrier — the constraint is the site, not the carrier")
    else:
        approved = residual(ignored, excess_covered=ignored.units_excess)
        summary = f"{rtype.capitalize()} {res} has {_u(ignored.units_excess)} units of capacity the plan does not use"
        rationale = "Available capacity grew well above the planned load; the plan can pull work forward."
        alternatives = ["Do nothing — the extra capacity expires unused"]
    return _finish(g, ctx, summary=summary, actions=actions, impact_if_approved=approved,
                   impact_if_ignored=ignored, rationale=rationale, alternatives=alternatives,
                   affected=affected)

