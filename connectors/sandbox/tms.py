"""The sandbox TMS: shipments with lines, carrier capacity per week, lanes."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from connectors.sandbox._ops import number, text, week
from connectors.sandbox._service import SandboxService
from connectors.sandbox._world import ActionError, World, parse_ts, ts, week_start
from detectors.model import lane_id

OPEN = ("planned", "in_transit", "delayed")


def _shipment(world: World, params: dict[str, Any]) -> tuple[tuple, dict[str, Any]]:
    key = (text(params, "shipment_id"),)
    row = world.tables["shipments"].get(key)
    if row is None:
        raise ActionError(f"no shipment {key[0]}")
    if row["status"] not in OPEN:
        raise ActionError(f"shipment {key[0]} is {row['status']}; only open shipments change")
    return key, row


def _move_load(world: World, key: tuple[str, str, str], qty: float) -> None:
    """Add ``qty`` to the planned load of one capacity row (carrier or lane), if planned."""
    if key in world.tables["capacity"]:
        row = world.tables["capacity"][key]
        row["planned_load"] = max(0.0, row["planned_load"] + qty)
        world.touch("capacity", key)


def expedite_shipment(world: World, params: dict[str, Any]) -> dict[str, Any]:
    """Pull the ETA in by ``days`` (default 1) or to ``new_eta``; on time again clears the delay."""
    key, row = _shipment(world, params)
    eta = parse_ts(row["eta"], "eta")
    if "new_eta" in params:
        new_eta = parse_ts(text(params, "new_eta"), "params.new_eta")
    else:
        new_eta = eta - timedelta(days=number(params, "days", minimum=0.1, default=1.0))
    floor = world.clock() + timedelta(hours=2)  # nothing arrives sooner than that
    new_eta = min(eta, max(new_eta, floor))
    row["eta"] = ts(new_eta)
    if new_eta <= parse_ts(row["planned_arrival"], "planned_arrival") + timedelta(hours=2):
        row["status"] = "in_transit" if row["last_event_at"] else "planned"
        row["exception_code"] = None
    row["last_event_at"] = ts(world.clock())
    world.touch("shipments", key)
    return {"shipment_id": key[0], "eta": row["eta"], "status": row["status"]}


def create_transfer(world: World, params: dict[str, Any]) -> dict[str, Any]:
    """A new planned shipment on an existing lane (cheapest carrier unless one is named)."""
    origin, dest = text(params, "origin"), text(params, "destination")
    lines = params.get("lines")
    if lines is None:
        lines = [{"sku": text(params, "sku"), "qty": number(params, "qty", minimum=1)}]
    if not isinstance(lines, list) or not lines:
        raise ActionError("params.lines must be a non-empty list of {sku, qty}")
    clean = []
    for line in lines:
        if not isinstance(line, dict):
            raise ActionError("params.lines must be a list of {sku, qty}")
        sku = text(line, "sku")
        if sku not in world.sku_class:
            raise ActionError(f"unknown sku {sku}")
        clean.append({"sku": sku, "qty": number(line, "qty", minimum=1)})
    lanes = [r for (o, d, _), r in world.tables["lanes"].items() if (o, d) == (origin, dest)]
    if "carrier" in params:
        lanes = [r for r in lanes if r["carrier"] == params["carrier"]]
    if not lanes:
        raise ActionError(f"no lane {origin}>{dest}"
                          + (f" served by {params['carrier']}" if "carrier" in params else ""))
    lane = min(lanes, key=lambda r: (r["cost_per_unit"], r["carrier"]))
    ship = (parse_ts(text(params, "ship_date"), "params.ship_date") if "ship_date" in params
            else world.clock().replace(microsecond=0) + timedelta(hours=4))
    arrive = ship + timedelta(days=lane["transit_days"])
    sid = world.next_transfer_id()
    total = sum(line["qty"] for line in clean)
    world.put("shipments", (sid,), {
        "shipment_id": sid, "origin": origin, "destination": dest, "carrier": lane["carrier"],
        "mode": "TL", "lines": clean, "planned_ship": ts(ship), "planned_arrival": ts(arrive),
        "status": "planned", "eta": ts(arrive), "last_event_at": None, "exception_code": None})
    period = week_start(ship.date()).isoformat()
    _move_load(world, ("carrier", lane["carrier"], period), total)
    _move_load(world, ("lane", lane_id(origin, dest), period), total)
    lane["capacity"] = max(0.0, lane["capacity"] - total)
    world.touch("lanes", (origin, dest, lane["carrier"]))
    return {"shipment_id": sid, "carrier": lane["carrier"], "eta": ts(arrive)}


def reassign_carrier(world: World, params: dict[str, Any]) -> dict[str, Any]:
    """Move one shipment to another carrier, or ``qty`` of a week's load between carriers."""
    carriers = {r["resource_id"] for r in world.tables["capacity"].values()
                if r["resource_type"] == "carrier"}
    if "shipment_id" in params:
        key, row = _shipment(world, params)
        carrier = text(params, "carrier")
        if (row["origin"], row["destination"], carrier) not in world.tables["lanes"]:
            raise ActionError(f"{carrier} does not serve {row['origin']}>{row['destination']}")
        qty = sum(line["qty"] for line in row["lines"])
        period = week_start(parse_ts(row["planned_ship"], "planned_ship").date()).isoformat()
        _move_load(world, ("carrier", row["carrier"], period), -qty)
        _move_load(world, ("carrier", carrier, period), qty)
        previous, row["carrier"] = row["carrier"], carrier
        world.touch("shipments", key)
        return {"shipment_id": key[0], "from_carrier": previous, "carrier": carrier}
    source, target = text(params, "from_carrier"), text(params, "to_carrier")
    period, qty = week(params, "period"), number(params, "qty", minimum=1)
    for carrier in (source, target):
        if carrier not in carriers:
            raise ActionError(f"unknown carrier {carrier}")
    target_row = world.tables["capacity"].get(("carrier", target, period))
    if target_row is None:
        raise ActionError(f"no capacity plan for {target} in week {period}")
    free = target_row["available_capacity"] - target_row["planned_load"]
    if qty > free:
        raise ActionError(f"{target} has only {free:g} units free in week {period}")
    _move_load(world, ("carrier", source, period), -qty)
    _move_load(world, ("carrier", target, period), qty)
    return {"from_carrier": source, "to_carrier": target, "period": period, "qty": qty}


OPERATIONS = {"expedite_shipment": expedite_shipment, "create_transfer": create_transfer,
              "reassign_carrier": reassign_carrier}
COLLECTIONS = {"/shipments": "shipments", "/capacity": "capacity", "/lanes": "lanes"}


def tms_service(world: World) -> SandboxService:
    """GET /shipments /capacity /lanes, POST /actions, /scenario/*."""
    return SandboxService(world, "tms", COLLECTIONS, OPERATIONS, fault_seed=2)
