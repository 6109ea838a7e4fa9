"""Turn one source record (a JSON object, a CSV row) into one canonical record, or say why not.

Shared by the REST and CSV connectors so that "field mapping" means the same in both: a dict
``canonical_field -> source field`` where the source field may be a dotted path (``a.b.0.c``).
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ValidationError

from detectors.model import (
    CapacityRecord,
    DemandRecord,
    InventoryRecord,
    LaneRecord,
    ShipmentLine,
    ShipmentRecord,
)

Entity = Literal["demand", "shipments", "capacity", "inventory", "lanes"]
ENTITIES: tuple[str, ...] = ("demand", "shipments", "capacity", "inventory", "lanes")
MODELS: dict[str, type[BaseModel]] = {
    "demand": DemandRecord,
    "shipments": ShipmentRecord,
    "capacity": CapacityRecord,
    "inventory": InventoryRecord,
    "lanes": LaneRecord,
}
LINE_FIELDS = tuple(ShipmentLine.model_fields)

_MISSING = object()


class MappingError(ValueError):
    """A source record that cannot become a canonical record; the message is the reason."""


def get_path(obj: Any, path: str) -> Any:
    """``get_path({"a": {"b": [1, 2]}}, "a.b.1") == 2``; a missing step gives ``_MISSING``."""
    if path in ("", "."):
        return obj
    current = obj
    for step in path.split("."):
        if isinstance(current, dict):
            if step not in current:
                return _MISSING
            current = current[step]
        elif isinstance(current, list) and step.lstrip("-").isdigit():
            index = int(step)
            if not -len(current) <= index < len(current):
                return _MISSING
            current = current[index]
        else:
            return _MISSING
    return current


def is_missing(value: Any) -> bool:
    return value is _MISSING


def _pick(source: Any, fields: tuple[str, ...], mapping: dict[str, str],
          constants: dict[str, Any]) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for name in fields:
        value = get_path(source, mapping.get(name, name))
        if value is _MISSING or value is None:
            value = constants.get(name, _MISSING)
        if value is not _MISSING:
            data[name] = value
    return data


def build_record(entity: str, source: Any, mapping: dict[str, str] | None = None,
                 constants: dict[str, Any] | None = None,
                 line_mapping: dict[str, str] | None = None) -> BaseModel:
    """Build the canonical record for ``entity``; raise ``MappingError`` with a short reason."""
    model = MODELS[entity]
    mapping = mapping or {}
    constants = constants or {}
    if not isinstance(source, dict):
        raise MappingError(f"expected a JSON object, got {type(source).__name__}")
    data = _pick(source, tuple(model.model_fields), mapping, constants)
    if entity == "shipments" and "lines" in data:
        lines = data["lines"]
        if not isinstance(lines, list):
            raise MappingError(f"lines: expected a list, got {type(lines).__name__}")
        picked = []
        for line in lines:
            if not isinstance(line, dict):
                raise MappingError(f"lines: expected objects, got {type(line).__name__}")
            picked.append(_pick(line, LINE_FIELDS, line_mapping or {}, {}))
        data["lines"] = picked
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise MappingError(describe(exc)) from None


def describe(exc: ValidationError) -> str:
    """One line a planner can act on: ``planned_qty: Input should be ... (got 'abc')``."""
    parts = []
    for error in exc.errors()[:5]:
        where = ".".join(str(p) for p in error["loc"]) or "record"
        got = error.get("input")
        shown = "" if isinstance(got, dict) else f" (got {got!r:.60})"
        parts.append(f"{where}: {error['msg']}{shown}")
    more = len(exc.errors()) - 5
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


def raw_text(source: Any, limit: int = 2000) -> str:
    try:
        text = json.dumps(source, default=str, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(source)
    return text[:limit]
