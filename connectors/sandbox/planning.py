"""The sandbox planning system: demand plan, inventory, site capacity and planned receipts."""

from __future__ import annotations

from typing import Any

from connectors.sandbox._ops import number, text, week
from connectors.sandbox._service import SandboxService
from connectors.sandbox._world import ActionError, World, parse_ts


def update_forecast(world: World, params: dict[str, Any]) -> dict[str, Any]:
    """Re-plan one sku × location × week: ``planned_qty`` becomes ``qty``."""
    key = (text(params, "sku"), text(params, "location"), week(params, "period"))
    qty = number(params, "qty")
    row = world.tables["demand"].get(key)
    if row is None:
        raise ActionError(f"no demand plan for sku {key[0]} at {key[1]} in week {key[2]}")
    previous = row["planned_qty"]
    row["planned_qty"] = float(qty)
    world.touch("demand", key)
    return {"previous_qty": previous, "planned_qty": row["planned_qty"]}


def reschedule_receipt(world: World, params: dict[str, Any]) -> dict[str, Any]:
    """Move the planned receipt of a shipment to a new date (e.g. its slipped ETA)."""
    shipment_id = text(params, "shipment_id")
    new_date = parse_ts(text(params, "new_date"), "params.new_date").date().isoformat()
    keys = [k for k in world.tables["receipts"] if k[0] == shipment_id]
    if not keys:
        raise ActionError(f"no planned receipt for shipment {shipment_id}")
    for key in keys:
        world.tables["receipts"][key]["expected_date"] = new_date
        world.touch("receipts", key)
    return {"receipts": len(keys), "expected_date": new_date}


def update_safety_stock(world: World, params: dict[str, Any]) -> dict[str, Any]:
    key = (text(params, "sku"), text(params, "location"))
    row = world.tables["inventory"].get(key)
    if row is None:
        raise ActionError(f"no inventory position for sku {key[0]} at {key[1]}")
    row["safety_stock"] = number(params, "safety_stock")
    world.touch("inventory", key)
    return {"safety_stock": row["safety_stock"]}


OPERATIONS = {"update_forecast": update_forecast, "reschedule_receipt": reschedule_receipt,
              "update_safety_stock": update_safety_stock}
COLLECTIONS = {"/demand": "demand", "/inventory": "inventory", "/capacity": "site_capacity",
               "/receipts": "receipts"}


def planning_service(world: World) -> SandboxService:
    """GET /demand /inventory /capacity (sites) /receipts, POST /actions, /scenario/*."""
    return SandboxService(world, "planning", COLLECTIONS, OPERATIONS, fault_seed=1)
