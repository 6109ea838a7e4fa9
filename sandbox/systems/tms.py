"""The sandbox TMS: shipments with lines, carrier capacity per week, lanes.

Operations (POST /actions) and the parameters each takes; where two names are listed the
detectors send the first and older callers the second (both with different values: refused):

* ``expedite_shipment`` shipment_id [, ``target_arrival``/``new_eta`` | days, carrier, sku, qty]
* ``create_transfer`` ``from``/``origin``, ``to``/``destination``, sku + qty or lines
  [, carrier, ship_date, arrive_by]
* ``reassign_carrier`` one shipment: shipment_id, carrier; a week's load between carriers:
  from_carrier, to_carrier, period, qty; on one lane: origin, destination, to_carrier,
  period, qty [, from_carrier — empty means "the lane's other carriers"]
* ``reduce_inbound`` shipment_id, sku, ``reduce_by``/``qty`` [, destination, from_qty]
* ``request_status`` shipment_id [, carrier]
* ``confirm_capacity`` resource_type, resource_id, period, qty
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from canonical.model import lane_id
from sandbox.systems._ops import (
    day,
    expect,
    number,
    optional_text,
    pick,
    positive,
    text,
    week,
)
from sandbox.systems._service import SandboxService
from sandbox.systems._world import ActionError, World, parse_ts, ts, week_start

OPEN = ("planned", "in_transit", "delayed")


def _shipment(world: World, params: dict[str, Any]) -> tuple[tuple, dict[str, Any]]:
    key = (text(params, "shipment_id"),)
    row = world.tables["shipments"].get(key)
    if row is None:
        raise ActionError(f"no shipment {key[0]}")
    if row["status"] not in OPEN:
        raise ActionError(f"shipment {key[0]} is {row['status']}; only open shipments change")
    carrier = optional_text(params, "carrier")
    if carrier is not None and carrier != row["carrier"]:
        raise ActionError(f"shipment {key[0]} moves with {row['carrier']}, not {carrier}")
    return key, row


def _carriers(world: World) -> set[str]:
    return {r["resource_id"] for r in world.tables["capacity"].values()
            if r["resource_type"] == "carrier"}


def _move_load(world: World, key: tuple[str, str, str], qty: float) -> None:
    """Add ``qty`` to the planned load of one capacity row (carrier or lane), if planned."""
    if key in world.tables["capacity"]:
        row = world.tables["capacity"][key]
        row["planned_load"] = max(0.0, row["planned_load"] + qty)
        world.touch("capacity", key)


def _ship_week(row: dict[str, Any]) -> str:
    return week_start(parse_ts(row["planned_ship"], "planned_ship").date()).isoformat()


def expedite_shipment(world: World, params: dict[str, Any]) -> dict[str, Any]:
    """Pull the ETA in to ``target_arrival`` (or ``new_eta``), else by ``days`` (default 1).

    Nothing arrives sooner than two hours from now, and an ETA never moves later; back on
    time (within two hours of planned arrival) clears the delay and its exception code.
    ``carrier`` and ``sku``, when sent, must match the shipment (the recommender's picture).
    """
    key, row = _shipment(world, params)
    sku = optional_text(params, "sku")
    if sku is not None and sku not in {line["sku"] for line in row["lines"]}:
        raise ActionError(f"shipment {key[0]} carries no {sku}")
    eta = parse_ts(row["eta"], "eta")
    name = pick(params, "target_arrival", "new_eta")
    if params.get(name) is not None:
        new_eta = parse_ts(text(params, name), f"params.{name}")
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
    return {"shipment_id": key[0], "eta": row["eta"], "previous_eta": ts(eta),
            "status": row["status"]}


def create_transfer(world: World, params: dict[str, Any]) -> dict[str, Any]:
    """A new planned shipment on an existing lane (cheapest carrier unless one is named).

    It ships at ``ship_date`` but never in the past; the planning system gets its receipts.
    More than the origin's stock on hand is refused where the network tracks that position
    (a TMS books transport, it does not own stock, so an untracked origin is taken on trust).
    ``arrive_by`` is checked against the lane's transit time and answered as ``on_time``.
    """
    origin = text(params, pick(params, "from", "origin"))
    dest = text(params, pick(params, "to", "destination"))
    if origin == dest:
        raise ActionError(f"a transfer needs two locations; origin and destination are {origin}")
    lines = params.get("lines")
    if lines is None:
        lines = [{"sku": text(params, "sku"), "qty": positive(params, "qty")}]
    if not isinstance(lines, list) or not lines:
        raise ActionError("params.lines must be a non-empty list of {sku, qty}")
    clean = []
    for line in lines:
        if not isinstance(line, dict):
            raise ActionError("params.lines must be a list of {sku, qty}")
        sku = text(line, "sku")
        if sku not in world.sku_class:
            raise ActionError(f"unknown sku {sku}")
        qty = positive(line, "qty")
        stock = world.tables["inventory"].get((sku, origin))
        if stock is not None and qty > stock["on_hand"]:
            raise ActionError(f"{origin} has only {stock['on_hand']:g} of {sku} on hand; "
                              f"cannot transfer {qty:g}")
        clean.append({"sku": sku, "qty": qty})
    carrier = optional_text(params, "carrier")
    lanes = [r for (o, d, _), r in world.tables["lanes"].items() if (o, d) == (origin, dest)]
    if carrier is not None:
        lanes = [r for r in lanes if r["carrier"] == carrier]
    if not lanes:
        raise ActionError(f"no lane {origin}>{dest}"
                          + (f" served by {carrier}" if carrier is not None else ""))
    lane = min(lanes, key=lambda r: (r["cost_per_unit"], r["carrier"]))
    earliest = world.clock().replace(microsecond=0) + timedelta(hours=4)
    ship = (max(parse_ts(text(params, "ship_date"), "params.ship_date"), earliest)
            if params.get("ship_date") is not None else earliest)
    arrive = ship + timedelta(days=lane["transit_days"])
    arrive_by = day(params, "arrive_by") if params.get("arrive_by") is not None else None
    sid = world.next_transfer_id()
    total = sum(line["qty"] for line in clean)
    world.put("shipments", (sid,), {
        "shipment_id": sid, "origin": origin, "destination": dest, "carrier": lane["carrier"],
        "mode": "TL", "lines": clean, "planned_ship": ts(ship), "planned_arrival": ts(arrive),
        "status": "planned", "eta": ts(arrive), "last_event_at": None, "exception_code": None})
    for line in clean:
        world.put("receipts", (sid, line["sku"]), {
            "shipment_id": sid, "sku": line["sku"], "location": dest, "qty": line["qty"],
            "expected_date": arrive.date().isoformat()})
    period = week_start(ship.date()).isoformat()
    _move_load(world, ("carrier", lane["carrier"], period), total)
    _move_load(world, ("lane", lane_id(origin, dest), period), total)
    lane["capacity"] = max(0.0, lane["capacity"] - total)
    world.touch("lanes", (origin, dest, lane["carrier"]))
    result = {"shipment_id": sid, "carrier": lane["carrier"], "planned_ship": ts(ship),
              "eta": ts(arrive)}
    if arrive_by is not None:
        result.update(arrive_by=arrive_by.isoformat(), on_time=arrive.date() <= arrive_by)
    return result


def reassign_carrier(world: World, params: dict[str, Any]) -> dict[str, Any]:
    """Move one shipment to another carrier, or ``qty`` of a week's load between carriers.

    Three forms: ``shipment_id`` + ``carrier``; ``from_carrier`` + ``to_carrier`` + period +
    qty (checked against the target carrier's free capacity that week); or the same on one lane
    (``origin`` + ``destination``): see ``_reassign_on_lane``.
    """
    if params.get("shipment_id") is not None:
        return _reassign_shipment(world, params)
    if params.get("origin") is not None or params.get("destination") is not None:
        return _reassign_on_lane(world, params)
    carriers = _carriers(world)
    source, target = text(params, "from_carrier"), text(params, "to_carrier")
    period, qty = week(params, "period"), positive(params, "qty")
    for carrier in (source, target):
        if carrier not in carriers:
            raise ActionError(f"unknown carrier {carrier}")
    if source == target:
        raise ActionError(f"from_carrier and to_carrier are both {source}; nothing to move")
    target_row = world.tables["capacity"].get(("carrier", target, period))
    if target_row is None:
        raise ActionError(f"no capacity plan for {target} in week {period}")
    free = target_row["available_capacity"] - target_row["planned_load"]
    if qty > free:
        raise ActionError(f"{target} has only {free:g} units free in week {period}")
    _move_load(world, ("carrier", source, period), -qty)
    _move_load(world, ("carrier", target, period), qty)
    return {"from_carrier": source, "to_carrier": target, "period": period, "qty": qty}


def _reassign_shipment(world: World, params: dict[str, Any]) -> dict[str, Any]:
    key, row = _shipment(world, {k: v for k, v in params.items() if k != "carrier"})
    carrier = text(params, pick(params, "carrier", "to_carrier"))
    if carrier == row["carrier"]:
        raise ActionError(f"shipment {key[0]} already moves with {carrier}")
    if (row["origin"], row["destination"], carrier) not in world.tables["lanes"]:
        raise ActionError(f"{carrier} does not serve {row['origin']}>{row['destination']}")
    qty = sum(line["qty"] for line in row["lines"])
    period = _ship_week(row)
    _move_load(world, ("carrier", row["carrier"], period), -qty)
    _move_load(world, ("carrier", carrier, period), qty)
    previous, row["carrier"] = row["carrier"], carrier
    world.touch("shipments", key)
    return {"shipment_id": key[0], "from_carrier": previous, "carrier": carrier}


def _reassign_on_lane(world: World, params: dict[str, Any]) -> dict[str, Any]:
    """Tender ``qty`` of one lane's week to ``to_carrier``, drawn from its lane allocation.

    The TMS books the carrier for that week: the lane week gains the booked capacity (never
    beyond the capacity the plan assumed for it), the carrier's remaining allocation on the lane
    shrinks, and its week carries the load. ``from_carrier`` gives the load up; empty means
    "whoever carries it now": the lane's other carriers in proportion to their allocation, or
    nobody when ``to_carrier`` is the lane's only carrier (then it is extra capacity booked
    with the same carrier, which the answer says with ``extra_booking``).
    """
    origin, dest = text(params, "origin"), text(params, "destination")
    target = text(params, "to_carrier")
    period, qty = week(params, "period"), positive(params, "qty")
    on_lane = {c: r for (o, d, c), r in world.tables["lanes"].items() if (o, d) == (origin, dest)}
    if not on_lane:
        raise ActionError(f"no lane {origin}>{dest}")
    if target not in on_lane:
        raise ActionError(f"{target} does not serve {origin}>{dest} "
                          f"(served by {', '.join(sorted(on_lane))})")
    source = optional_text(params, "from_carrier")
    if source is not None:
        if source == target:
            raise ActionError(f"from_carrier and to_carrier are both {source}; nothing to move")
        if source not in on_lane:
            raise ActionError(f"{source} does not serve {origin}>{dest}, so it has no load "
                              "there to give up")
        givers = {source: 1.0}
    else:
        others = {c: r["capacity"] for c, r in on_lane.items() if c != target}
        weight = sum(others.values())
        givers = {c: (cap / weight if weight else 1.0 / len(others)) for c, cap in others.items()}
    lane = on_lane[target]
    if qty > lane["capacity"]:
        raise ActionError(f"{target} has only {lane['capacity']:g} units of capacity left on "
                          f"{origin}>{dest}; cannot take {qty:g}")
    lane_week_key = ("lane", lane_id(origin, dest), period)
    lane_week = world.tables["capacity"].get(lane_week_key)
    if lane_week is None:
        raise ActionError(f"no capacity plan for lane {lane_id(origin, dest)} in week {period}")
    for carrier, share in sorted(givers.items()):
        _move_load(world, ("carrier", carrier, period), -qty * share)
    _move_load(world, ("carrier", target, period), qty)
    lane["capacity"] = max(0.0, lane["capacity"] - qty)
    world.touch("lanes", (origin, dest, target))
    lane_week["available_capacity"] = max(lane_week["available_capacity"], min(
        lane_week["planned_capacity"], lane_week["available_capacity"] + qty))
    world.touch("capacity", lane_week_key)
    return {"lane": lane_id(origin, dest), "from_carriers": sorted(givers), "to_carrier": target,
            "period": period, "qty": qty, "extra_booking": not givers,
            "lane_capacity_left": lane["capacity"],
            "lane_week_available": lane_week["available_capacity"]}


def reduce_inbound(world: World, params: dict[str, Any]) -> dict[str, Any]:
    """Cut ``reduce_by`` units of one SKU from a shipment that has not left yet.

    Only ``planned`` shipments change (what is on a truck cannot be un-shipped); a line cut to
    zero leaves the shipment, a shipment with no lines left is cancelled. The carrier and lane
    weeks lose the load and the planning system's receipt shrinks with it.
    """
    key, row = _shipment(world, params)
    sku = text(params, "sku")
    qty = positive(params, pick(params, "reduce_by", "qty"))
    dest = optional_text(params, "destination")
    if dest is not None and dest != row["destination"]:
        raise ActionError(f"shipment {key[0]} goes to {row['destination']}, not {dest}")
    if row["status"] != "planned":
        raise ActionError(f"shipment {key[0]} is {row['status']}; only shipments not yet "
                          "shipped (planned) can be reduced")
    line = next((ln for ln in row["lines"] if ln["sku"] == sku), None)
    if line is None:
        raise ActionError(f"shipment {key[0]} carries no {sku}")
    expect(world, params, "from_qty", line["qty"], f"the quantity of {sku} on {key[0]}")
    if qty > line["qty"]:
        raise ActionError(f"shipment {key[0]} carries only {line['qty']:g} of {sku}; "
                          f"cannot reduce by {qty:g}")
    line["qty"] = float(line["qty"] - qty)
    row["lines"] = [ln for ln in row["lines"] if ln["qty"] > 0]
    if not row["lines"]:
        row["lines"] = [{**line, "qty": qty}]  # keep what it carried, for the record
        row["status"] = "cancelled"
    world.touch("shipments", key)
    period = _ship_week(row)
    _move_load(world, ("carrier", row["carrier"], period), -qty)
    _move_load(world, ("lane", lane_id(row["origin"], row["destination"]), period), -qty)
    receipt = world.tables["receipts"].get((key[0], sku))
    if receipt is not None:
        receipt["qty"] = float(max(0.0, receipt["qty"] - qty))
        world.touch("receipts", (key[0], sku))
    return {"shipment_id": key[0], "sku": sku, "qty": line["qty"], "reduced_by": qty,
            "status": row["status"]}


def request_status(world: World, params: dict[str, Any]) -> dict[str, Any]:
    """Ask the carrier where a shipment is.

    Nothing in the plan changes: a real TMS sends the carrier a status request (EDI 214
    request, portal or API call) and records it. The request is recorded here (GET /received,
    ``messages``), and the sandbox's carrier answers at once with a position report at the
    current ETA, so the shipment has reported again on the next poll.
    """
    key, row = _shipment(world, params)
    row["last_event_at"] = ts(world.clock())
    if row["status"] == "planned" and parse_ts(row["planned_ship"], "planned_ship") <= world.clock():
        row["status"] = "in_transit"
    world.touch("shipments", key)
    world.note("tms", "status_request", shipment_id=key[0], carrier=row["carrier"],
               answered_at=row["last_event_at"], eta=row["eta"], status=row["status"])
    return {"shipment_id": key[0], "carrier": row["carrier"], "status": row["status"],
            "eta": row["eta"], "last_event_at": row["last_event_at"]}


def confirm_capacity(world: World, params: dict[str, Any]) -> dict[str, Any]:
    """Confirm with the carrier (or site) that the plan will use ``qty`` of its spare capacity.

    A real TMS sends the confirmation and holds the capacity; no table here changes (the load
    arrives with the shipments the plan books). The confirmation is recorded (GET /received,
    ``messages``). ``qty`` may not exceed what is spare that week.
    """
    rtype = text(params, "resource_type")
    if rtype not in ("carrier", "lane", "site", "dock"):
        raise ActionError(f"unknown resource_type {rtype!r}; known: carrier, dock, lane, site")
    rid, period = text(params, "resource_id"), week(params, "period")
    qty = number(params, "qty")
    _table, _key, row = world.capacity_row(rtype, rid, period)
    spare = row["available_capacity"] - row["planned_load"]
    if qty > spare + 0.5:
        raise ActionError(f"{rtype} {rid} has only {max(0.0, spare):g} units spare in week "
                          f"{period}; cannot confirm {qty:g}")
    message = world.note("tms", "capacity_confirmation", resource_type=rtype, resource_id=rid,
                         period=period, qty=qty)
    return {"resource_type": rtype, "resource_id": rid, "period": period, "confirmed": qty,
            "spare": spare, "confirmed_at": message["at"]}


OPERATIONS = {"expedite_shipment": expedite_shipment, "create_transfer": create_transfer,
              "reassign_carrier": reassign_carrier, "reduce_inbound": reduce_inbound,
              "request_status": request_status, "confirm_capacity": confirm_capacity}
COLLECTIONS = {"/shipments": "shipments", "/capacity": "capacity", "/lanes": "lanes"}


def tms_service(world: World) -> SandboxService:
    """GET /shipments /capacity /lanes, POST /actions, /scenario/*."""
    return SandboxService(world, "tms", COLLECTIONS, OPERATIONS, fault_seed=2)
