"""Read a snapshot directory (the one place in detectors that touches files).

A directory holds one file per table, ``<table>.parquet`` or ``<table>.csv`` (Parquet wins when
both exist). Columns are named as in ``detectors.model`` (see ``SNAPSHOT_COLUMNS_DOC``).
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from detectors.model import SNAPSHOT_SCHEMAS
from detectors.snapshot import OPTIONAL_DEFAULTS, Snapshot, conform, empty

REQUIRED_TABLES = ("demand", "inventory", "shipments")
OPTIONAL_TABLES = ("capacity", "lanes")

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
"""


class SnapshotError(ValueError):
    """A snapshot table is missing or unreadable; the message names the file and column."""


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
        elif frame.schema[name] == pl.Utf8 and isinstance(dtype, pl.Datetime):
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
            raise SnapshotError(
                f"{path}: column '{name}' row {row + 2 if path.suffix == '.csv' else row + 1}: "
                f"cannot read {value!r} as {schema[name]}"
            )
    for name in required:
        if parsed.get_column(name).null_count():
            row = int(parsed.get_column(name).is_null().arg_max())
            raise SnapshotError(f"{path}: column '{name}' is empty on data row {row + 1}")
    return parsed


def read_snapshot(directory: Path | str) -> Snapshot:
    """Read and validate every table; raise SnapshotError naming file and column on the first problem."""
    directory = Path(directory)
    if not directory.is_dir():
        raise SnapshotError(f"{directory}: not a directory of snapshot tables")
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
    return Snapshot(**frames)
