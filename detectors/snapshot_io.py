"""Read a snapshot directory (the one place in detectors that touches files).

A directory holds one file per table, ``<table>.parquet`` or ``<table>.csv`` (Parquet wins when
both exist). Columns are named as in ``canonical.model`` (see ``SNAPSHOT_COLUMNS_DOC``).

Reading is strict: the detectors sum rows by key and read a time without a zone as UTC, so a
doubled inventory row or a local time would hide a stock-out instead of failing. Every rule in
``SNAPSHOT_COLUMNS_DOC`` is checked with whole-column polars expressions (a snapshot can have a
million rows), and the first broken one raises ``SnapshotError`` naming file, row and column.
"""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import polars as pl

from canonical.model import SNAPSHOT_SCHEMAS, input_limits
from detectors.settings import DisruptionSettings
from detectors.snapshot import OPTIONAL_DEFAULTS, Snapshot, conform, empty

REQUIRED_TABLES = ("demand", "inventory", "shipments")
OPTIONAL_TABLES = ("capacity", "lanes")

# One row per business key: the detectors add up rows that share one.
KEYS: dict[str, tuple[str, ...]] = {
    "demand": ("sku", "location", "period"),
    "inventory": ("sku", "location"),
    "shipments": ("shipment_id", "sku"),
    "capacity": ("resource_type", "resource_id", "period"),
    "lanes": ("origin", "destination", "carrier"),
}
# A shipment's own columns, repeated on each of its lines: they must say the same on every line.
SHIPMENT_HEADER = ("origin", "destination", "carrier", "mode", "planned_ship", "planned_arrival",
                   "status", "eta", "last_event_at", "exception_code")
RESOURCE_TYPES = ("lane", "carrier", "site", "dock")  # CapacityRecord.resource_type
# Numbers that may be below zero: on hand, because a backorder is negative stock.
MAY_BE_NEGATIVE = frozenset({"on_hand"})
_MONEY = frozenset({"unit_value", "cost_per_unit"})
_DAYS = frozenset({"transit_days"})
# A date, or a date and time, with nothing after it: no zone (date-only counts: it has none).
_NAIVE_TIME = r"^\s*\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?\s*$"


def shipment_statuses(cfg: DisruptionSettings) -> tuple[str, ...]:
    """Every status the detectors act on: ``planned`` (the default; recommend.py reduces only
    planned shipments) and the configured in-transit, exception and done statuses. Any other
    (``arrived``, say) would count as supply still on its way and never be checked for delay,
    so it is refused."""
    known = ("planned", *cfg.in_transit_statuses, *cfg.exception_statuses, *cfg.done_statuses)
    return tuple(dict.fromkeys(known))


SNAPSHOT_COLUMNS_DOC = """\
Snapshot directory: one file per table, `<table>.csv` or `<table>.parquet`.
Required tables: demand, inventory, shipments. Optional: capacity, lanes (empty when absent).
Columns marked * may be omitted (default in brackets). Timestamps are ISO 8601 with a zone.

demand     sku, location, period (date, first day of the bucket), planned_qty, latest_qty,
           unit_value* [0], sku_class* [default]
shipments  one row per line: shipment_id, origin, destination, sku, qty, carrier* [""],
           mode* [TL], planned_ship*, planned_arrival*, status* [planned], eta*,
           last_event_at*, exception_code*
inventory  sku, location, on_hand, safety_stock* [0]
capacity   resource_type (lane|carrier|site|dock), resource_id, period, available_capacity,
           planned_load, planned_capacity* [= available_capacity]
lanes      origin, destination, cost_per_unit, capacity (free units per period),
           carrier* [""], transit_days* [1]

Rules (the first row that breaks one stops `alignbot detect` with exit 2, naming the file,
row and column; rows count from 1 after the header, so CSV row n is line n + 1):
- one row per key, as rows sharing one would be added up: demand (sku, location, period),
  inventory (sku, location), shipments (shipment_id, sku), capacity (resource_type,
  resource_id, period), lanes (origin, destination, carrier);
- a shipment's lines agree on its own columns: origin, destination, carrier, mode,
  planned_ship, planned_arrival, status, eta, last_event_at, exception_code;
- timestamps carry a zone, `Z` or an offset (2026-11-26T08:00:00Z, 2026-11-26T09:00:00+01:00);
- numbers are finite and within detectors.limits (max_units for quantities, capacities and
  stock, max_unit_value for unit_value and cost_per_unit, max_days for transit_days); none is
  negative except on_hand (a backorder), and a shipment line's qty is more than 0;
- dates and times lie within detectors.limits.earliest .. latest (1990-01-01 .. 2199-12-31);
- capacity.resource_type is lane, carrier, site or dock; shipments.status is planned or one of
  the statuses detectors.disruption knows: in_transit, departed, delayed, exception, delivered,
  arrived, cancelled by default.
"""


class SnapshotError(ValueError):
    """A snapshot table is missing, unreadable or breaks a rule; the message names the file,
    the row and the column."""


def _where(path: Path, row: int, columns: list[str] | tuple[str, ...]) -> str:
    """``file: row 3 (line 4), column x``: the row as a person counts it in the file."""
    at = f"row {row + 1} (line {row + 2})" if path.suffix == ".csv" else f"row {row + 1}"
    what = "column" if len(columns) == 1 else "columns"
    return f"{path}: {at}, {what} {', '.join(columns)}"


def _show(value: object) -> str:
    if value is None:
        return "(empty)"
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _read(path: Path) -> pl.DataFrame:
    if path.suffix == ".parquet":
        return pl.read_parquet(path)
    # read as text and cast to the schema ourselves, so errors name the column
    return pl.read_csv(path, infer_schema=False, null_values=[""])


def _parse(table: str, frame: pl.DataFrame, path: Path) -> pl.DataFrame:
    schema = SNAPSHOT_SCHEMAS[table]
    required = [c for c in schema if c not in OPTIONAL_DEFAULTS[table]]
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise SnapshotError(
            f"{path}: missing required column '{missing[0]}'"
            + (f" (also {', '.join(missing[1:])})" if missing[1:] else "")
            + f"; columns are {', '.join(schema)}"
        )
    exprs = []
    for name, dtype in schema.items():
        if name not in frame.columns:
            continue
        col = pl.col(name)
        if frame.schema[name] == pl.Utf8 and dtype == pl.Date:
            col = col.str.to_date("%Y-%m-%d", strict=False)
        elif isinstance(dtype, pl.Datetime):
            _refuse_naive(frame, name, path)
            if frame.schema[name] == pl.Utf8:
                col = col.str.to_datetime(time_zone="UTC", strict=False)
        exprs.append(col.cast(dtype, strict=False).alias(name))
    parsed = frame.with_columns(exprs)
    for name in schema:
        if name not in frame.columns:
            continue
        bad = parsed.get_column(name).is_null() & frame.get_column(name).is_not_null()
        if bad.any():
            row = int(bad.arg_max())
            value = frame.get_column(name)[row]
            raise SnapshotError(f"{_where(path, row, [name])}: cannot read {value!r} as {schema[name]}")
    for name in required:
        if parsed.get_column(name).null_count():
            row = int(parsed.get_column(name).is_null().arg_max())
            raise SnapshotError(f"{_where(path, row, [name])}: empty, but a value is required")
    return parsed


def _refuse_naive(frame: pl.DataFrame, name: str, path: Path) -> None:
    """A time without a zone would be read as UTC: wrong by hours wherever the source is not."""
    column = frame.get_column(name)
    if isinstance(column.dtype, pl.Datetime) and column.dtype.time_zone is None:
        bad = column.is_not_null()  # a Parquet column of naive times: every value is
    elif column.dtype == pl.Utf8:
        bad = column.str.contains(_NAIVE_TIME).fill_null(False)
    else:
        return
    if bad.any():
        row = int(bad.arg_max())
        raise SnapshotError(f"{_where(path, row, [name])}: {_show(column[row])} has no time zone; "
                            f"add Z or an offset (e.g. 2026-11-26T08:00:00Z)")


def _first_bad(frame: pl.DataFrame, bad: pl.Expr) -> int | None:
    """The first row where ``bad`` holds, or None."""
    hits = frame.select(bad.fill_null(False)).to_series()
    return int(hits.arg_max()) if hits.any() else None


def _value_rules(table: str, name: str, dtype: pl.DataType,
                 statuses: tuple[str, ...]) -> list[tuple[pl.Expr, str]]:
    """(the rows it breaks, what is wrong with their value) for each rule on one column."""
    col, limits = pl.col(name), input_limits()
    if dtype == pl.Float64:
        bound, setting = ((limits.max_unit_value, "max_unit_value") if name in _MONEY else
                          (limits.max_days, "max_days") if name in _DAYS else
                          (limits.max_units, "max_units"))
        rules = [(~col.is_finite(), "is not a finite number"),
                 (col.abs() > bound, f"is beyond any real value (limit {bound:g}, detectors.limits.{setting})")]
        if name not in MAY_BE_NEGATIVE:
            rules.append((col < 0, "is negative; quantities, costs and capacities are 0 or more"))
        if (table, name) == ("shipments", "qty"):  # a line of nothing is no line (as connectors read it)
            rules.append((col == 0, "is 0; a shipment line carries more than 0"))
        return rules
    if dtype == pl.Date or isinstance(dtype, pl.Datetime):
        day = col if dtype == pl.Date else col.dt.date()
        return [(~day.is_between(limits.earliest, limits.latest),
                 f"is outside {limits.earliest.isoformat()} .. {limits.latest.isoformat()} "
                 "(detectors.limits.earliest/latest)")]
    allowed = {("capacity", "resource_type"): RESOURCE_TYPES, ("shipments", "status"): statuses}.get((table, name))
    if allowed is not None:
        return [(~col.is_in(list(allowed)), f"is not a known {name}; use one of {', '.join(allowed)}")]
    return []


def _check(table: str, frame: pl.DataFrame, path: Path, present: list[str], statuses: tuple[str, ...]) -> None:
    """The rules of ``SNAPSHOT_COLUMNS_DOC`` on a conformed table (defaults filled in). Values
    are checked only in the columns the file has: a default is valid, and a copied one
    (planned_capacity from available_capacity) would blame a column the file does not have."""
    rules = [(name, bad, why) for name, dtype in SNAPSHOT_SCHEMAS[table].items() if name in present
             for bad, why in _value_rules(table, name, dtype, statuses)]
    anywhere = [bad.fill_null(False).any().alias(str(i)) for i, (_, bad, _) in enumerate(rules)]
    broken = frame.select(anywhere).row(0) if rules else ()
    for (name, bad, why), hit in zip(rules, broken):  # all rules in one parallel pass, then the first
        if hit:
            row = _first_bad(frame, bad)
            raise SnapshotError(f"{_where(path, row, [name])}: {_show(frame.get_column(name)[row])} {why}")
    keys = KEYS[table]
    row = _first_bad(frame, ~pl.struct(keys).is_first_distinct())  # one hash pass, no window
    if row is not None:
        key = [frame.get_column(k)[row] for k in keys]
        first = _first_bad(frame, pl.all_horizontal(pl.col(k) == v for k, v in zip(keys, key)))
        raise SnapshotError(f"{_where(path, row, keys)}: duplicate key {' / '.join(map(_show, key))} "
                            f"(first at row {first + 1})")
    if table == "shipments":
        _check_shipment_header(frame, path)


def _check_shipment_header(frame: pl.DataFrame, path: Path) -> None:
    """Every line of a shipment repeats its header; lines that disagree leave it undefined
    (which ETA, which status?), so the first line that differs from the shipment's first is refused."""
    columns = ["shipment_id", *SHIPMENT_HEADER]
    if frame.select(columns).unique().height == frame.get_column("shipment_id").n_unique():
        return  # one header per shipment: the common case, without windows over a million rows
    indexed = frame.with_row_index("_row")
    differs = indexed.select(
        pl.col("_row").min().over("shipment_id").alias("_first"),
        *(pl.col(c).ne_missing(pl.col(c).first().over("shipment_id")).alias(c) for c in SHIPMENT_HEADER),
    )
    row = int(differs.select(pl.any_horizontal(SHIPMENT_HEADER)).to_series().arg_max())
    name = next(c for c in SHIPMENT_HEADER if differs.get_column(c)[row])
    first = differs.get_column("_first")[row]
    values = frame.get_column(name)
    raise SnapshotError(
        f"{_where(path, row, [name])}: shipment {frame.get_column('shipment_id')[row]} has "
        f"{_show(values[row])} here but {_show(values[first])} at row {first + 1}; "
        "a shipment's lines must agree on its own columns")


def read_snapshot(directory: Path | str, disruption: DisruptionSettings | None = None) -> Snapshot:
    """Read and validate every table; raise SnapshotError naming file, row and column on the
    first problem. ``disruption``: the settings whose statuses a shipment may have (default:
    the default settings)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise SnapshotError(f"{directory}: not a directory of snapshot tables")
    statuses = shipment_statuses(disruption or DisruptionSettings())
    frames: dict[str, pl.DataFrame] = {}
    for table in REQUIRED_TABLES + OPTIONAL_TABLES:
        path = next((p for p in (directory / f"{table}.parquet", directory / f"{table}.csv") if p.exists()), None)
        if path is None:
            if table in REQUIRED_TABLES:
                raise SnapshotError(
                    f"{directory / (table + '.csv')}: missing table '{table}' "
                    f"(add {table}.csv or {table}.parquet)"
                )
            frames[table] = empty(table)
            continue
        try:
            raw = _read(path)
        except Exception as exc:  # polars raises several types for unreadable files
            raise SnapshotError(f"{path}: unreadable: {exc}") from exc
        parsed = _parse(table, raw, path)
        try:
            frames[table] = conform(table, parsed)
        except KeyError as exc:
            raise SnapshotError(f"{path}: missing required column '{exc.args[0]}'") from None
        _check(table, frames[table], path, raw.columns, statuses)
    return Snapshot(**frames)
