"""Small builders so each test states only the numbers it checks."""

from __future__ import annotations

from datetime import UTC, date, datetime

import polars as pl
import pytest

from canonical.model import SNAPSHOT_SCHEMAS
from detectors.snapshot import OPTIONAL_DEFAULTS

NOW = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)  # a Thursday
WEEK = date(2026, 11, 23)  # the current weekly bucket (Mon 23 – Sun 29)
NEXT_WEEK = date(2026, 11, 30)


def ts(day: int, hour: int = 0, month: int = 11) -> datetime:
    return datetime(2026, month, day, hour, tzinfo=UTC)


def table(name: str, rows: list[dict]) -> pl.DataFrame:
    """Rows → a frame of the canonical schema, optional columns defaulted."""
    schema = SNAPSHOT_SCHEMAS[name]
    defaults = OPTIONAL_DEFAULTS[name]
    full = [{c: r.get(c, defaults.get(c)) for c in schema} for r in rows]
    frame = pl.DataFrame(full, schema=schema) if full else pl.DataFrame(schema=schema)
    if name == "capacity":
        frame = frame.with_columns(pl.col("planned_capacity").fill_null(pl.col("available_capacity")))
    return frame


@pytest.fixture
def now() -> datetime:
    return NOW
