"""Turn one source record (a JSON object, a CSV row) into one canonical record, or say why not.

Shared by the REST and CSV connectors so that "field mapping" means the same in both: a dict
``canonical_field -> source field`` where the source field may be a dotted path (``a.b.0.c``).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, TypeAdapter, ValidationError

from canonical.model import (
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


def to_utc(when: datetime, shown: str) -> datetime:
    """``when`` in UTC, or ValueError naming ``shown`` when UTC cannot hold it.

    An offset can push a valid local time past year 9999 (or before year 1) in UTC;
    Python raises OverflowError there, which no reader expects, so it becomes a reason.
    """
    try:
        return when.astimezone(UTC)
    except (OverflowError, ValueError):
        raise ValueError(f"{shown!r} is out of range: it falls outside years 1-9999 in "
                         "UTC") from None


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
    except OverflowError:  # an aware time the model's conversion to UTC cannot hold
        raise MappingError(_out_of_range(model, data)) from None


_DATETIME = TypeAdapter(datetime)


def _out_of_range(model: type[BaseModel], data: dict[str, Any]) -> str:
    """Which field's date-time overflows UTC, for the reason of a quarantined record."""
    for name, value in data.items():
        info = model.model_fields.get(name)
        if info is None or "datetime" not in str(info.annotation):
            continue
        try:
            to_utc(_DATETIME.validate_python(value), str(value))
        except ValidationError:
            continue
        except ValueError as exc:
            return f"{name}: {exc}"
    return "a date-time is out of range once converted to UTC"


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
    except RecursionError:
        text = f"(a {type(source).__name__} nested too deeply to show)"
    return text[:limit]
