"""The sandbox planning system: demand plan, inventory, site capacity and planned receipts.

Operations (POST /actions) and the parameters each takes; where two names are listed the
detectors send the first and older callers the second, and sending both with different values
is refused:

* ``update_forecast`` sku, location, period, ``to_qty``/``qty`` [, ``from_qty``]
* ``reschedule_receipt`` shipment_id, ``to_date``/``new_date`` [, location, lines, from_date]
* ``update_safety_stock`` sku, location, safety_stock
* ``update_replenishment_plan`` sku, location, qty, need_by
* ``update_capacity_plan`` resource_type, resource_id, period, ``to_capacity``/``capacity``
  [, ``from_capacity``]
* ``rephase_plan`` resource_type, resource_id, from_period, to_period (null: past the
  horizon), qty [, note]

``from_*`` parameters are what the recommender saw; when the plan has moved on since, the action
is refused as stale (422) instead of overwriting someone else's change.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sandbox.systems._ops import (
    day,
    expect,
    known,
    number,
    optional_text,
    pick,
    positive,
    text,
    week,
)
from sandbox.systems._service import SandboxService
from sandbox.systems._world import ActionError, World, parse_ts
from sandbox.systems.vendors import ibp_routes

RESOURCE_TYPES = ("carrier", "lane", "site", "dock")


def update_forecast(world: World, params: dict[str, Any]) -> dict[str, Any]:
    """Re-plan one sku × location × week: ``planned_qty`` becomes ``to_qty`` (or ``qty``)."""
    key = (text(params, "sku"), text(params, "location"), week(params, "period"))
    qty = number(params, pick(params, "to_qty", "qty"))
    row = world.tables["demand"].get(key)
    if row is None:
        raise ActionError(f"no demand plan for sku {key[0]} at {key[1]} in week {key[2]}")
    expect(world, params, "from_qty", row["planned_qty"],
           f"the plan for {key[0]} at {key[1]} in week {key[2]}")
    previous = row["planned_qty"]
    row["planned_qty"] = float(qty)
    world.touch("demand", key)
    return {"previous_qty": previous, "planned_qty": row["planned_qty"]}


def reschedule_receipt(world: World, params: dict[str, Any]) -> dict[str, Any]:
    """Move the planned receipt of a shipment to a new date (e.g. its slipped ETA).

    ``location`` and ``lines`` (when sent) must match the receipt on record, so a receipt is
    never moved on the strength of a shipment the plan does not know in that form.
    """
    shipment_id = text(params, "shipment_id")
    name = pick(params, "to_date", "new_date")
    new_date = parse_ts(text(params, name), f"params.{name}").date().isoformat()
    keys = [k for k in world.tables["receipts"] if k[0] == shipment_id]
    if not keys:
        raise ActionError(f"no planned receipt for shipment {shipment_id}")
    rows = [world.tables["receipts"][k] for k in keys]
    location = optional_text(params, "location")
    if location is not None and location != rows[0]["location"]:
        raise ActionError(f"shipment {shipment_id} is received at {rows[0]['location']}, "
                          f"not {location}")
    lines = params.get("lines")
    if lines is not None:
        if not isinstance(lines, list) or not all(isinstance(x, dict) for x in lines):
            raise ActionError("params.lines must be a list of {sku, qty}")
        planned = {r["sku"] for r in rows}
        missing = sorted({str(x.get("sku")) for x in lines} - planned)
        if missing:
            raise ActionError(f"shipment {shipment_id} has no planned receipt of "
                              f"{', '.join(missing)}")
    previous = sorted({r["expected_date"] for r in rows})
    for key in keys:
        world.tables["receipts"][key]["expected_date"] = new_date
        world.touch("receipts", key)
    return {"receipts": len(keys), "expected_date": new_date, "previous_dates": previous}


def update_safety_stock(world: World, params: dict[str, Any]) -> dict[str, Any]:
    key = (text(params, "sku"), text(params, "location"))
    row = world.tables["inventory"].get(key)
    if row is None:
        raise ActionError(f"no inventory position for sku {key[0]} at {key[1]}")
    row["safety_stock"] = number(params, "safety_stock")
    world.touch("inventory", key)
    return {"safety_stock": row["safety_stock"]}


def update_replenishment_plan(world: World, params: dict[str, Any]) -> dict[str, Any]:
    """Plan an extra replenishment of ``qty`` to arrive at ``location`` by ``need_by``.

    The plan gains a planned receipt (GET /receipts, id ``REP-nnnnn``) from the SKU's source
    plant; it becomes a shipment in the TMS only when logistics books it, so the inventory
    projection (built from TMS shipments) does not count it yet.
    """
    sku, location = text(params, "sku"), text(params, "location")
    if (sku, location) not in world.tables["inventory"]:
        raise ActionError(f"no inventory position for sku {sku} at {location}")
    qty = positive(params, "qty")
    need_by = day(params, "need_by")
    today = world.clock().date()
    if need_by < today:
        raise ActionError(f"params.need_by {need_by.isoformat()} is in the past "
                          f"(today is {today.isoformat()})")
    order = world.next_id("REP")
    world.put("receipts", (order, sku), {
        "shipment_id": order, "sku": sku, "location": location, "qty": qty,
        "expected_date": need_by.isoformat()})
    return {"order_id": order, "source": world.sku_plant.get(sku), "qty": qty,
            "expected_date": need_by.isoformat()}


def _resource(params: dict[str, Any]) -> tuple[str, str]:
    return (known("resource_type", text(params, "resource_type"), RESOURCE_TYPES),
            text(params, "resource_id"))


def update_capacity_plan(world: World, params: dict[str, Any]) -> dict[str, Any]:
    """The capacity the plan assumes for one resource-week becomes ``to_capacity``.

    Sites and docks live in this system's capacity plan; carrier and lane weeks are the
    planning assumptions the TMS shows next to what is available (one shared network here).
    """
    rtype, rid = _resource(params)
    period = week(params, "period")
    capacity = number(params, pick(params, "to_capacity", "capacity"))
    table, key, row = world.capacity_row(rtype, rid, period)
    expect(world, params, "from_capacity", row["planned_capacity"],
           f"the planned capacity of {rtype} {rid} in week {period}")
    previous = row["planned_capacity"]
    row["planned_capacity"] = float(capacity)
    world.touch(table, key)
    return {"previous_capacity": previous, "planned_capacity": row["planned_capacity"],
            "available_capacity": row["available_capacity"]}


def rephase_plan(world: World, params: dict[str, Any]) -> dict[str, Any]:
    """Move ``qty`` of a resource's planned load from ``from_period`` to ``to_period``.

    ``to_period`` null means no week within the horizon has room: the load leaves
    ``from_period`` and is recorded as deferred past the horizon (GET /received, messages),
    where a planner picks it up; it is not silently dropped.
    """
    rtype, rid = _resource(params)
    source_period = week(params, "from_period")
    qty = positive(params, "qty")
    table, key, row = world.capacity_row(rtype, rid, source_period)
    if qty > row["planned_load"] + 0.5:
        raise ActionError(f"{rtype} {rid} has only {row['planned_load']:g} units planned in "
                          f"week {source_period}; cannot move {qty:g}")
    target = None
    if params.get("to_period") is not None:
        target_period = week(params, "to_period")
        if target_period == source_period:
            raise ActionError(f"params.to_period is the same week as params.from_period "
                              f"({source_period})")
        target = world.capacity_row(rtype, rid, target_period)
    row["planned_load"] = max(0.0, row["planned_load"] - qty)
    world.touch(table, key)
    result: dict[str, Any] = {"from_period": source_period, "qty": qty,
                              "from_load": row["planned_load"]}
    if target is not None:
        t_table, t_key, t_row = target
        t_row["planned_load"] += qty
        world.touch(t_table, t_key)
        result.update(to_period=t_key[-1], to_load=t_row["planned_load"])
    else:
        horizon_end = (world.weeks[-1] + timedelta(weeks=1)).isoformat()
        world.note("planning", "deferred_load", resource_type=rtype, resource_id=rid,
                   from_period=source_period, qty=qty, after=horizon_end,
                   note=optional_text(params, "note") or "")
        result.update(to_period=None, deferred_after=horizon_end)
    return result


OPERATIONS = {"update_forecast": update_forecast, "reschedule_receipt": reschedule_receipt,
              "update_safety_stock": update_safety_stock,
              "update_replenishment_plan": update_replenishment_plan,
              "update_capacity_plan": update_capacity_plan, "rephase_plan": rephase_plan}
COLLECTIONS = {"/demand": "demand", "/inventory": "inventory", "/capacity": "site_capacity",
               "/receipts": "receipts"}


def planning_service(world: World) -> SandboxService:
    """GET /demand /inventory /capacity (sites) /receipts, POST /actions, /scenario/*; and the
    demand plan as SAP IBP's planning data API serves key figures (``vendors.ibp_routes``)."""
    service = SandboxService(world, "planning", COLLECTIONS, OPERATIONS, fault_seed=1)
    service.app.router.routes.extend(ibp_routes(world))
    return service
