"""Helpers the detectors share: fingerprints, hysteresis, severity, drift objects."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

import polars as pl

from detectors.model import UTC, Drift, DriftKind, Impact, Severity, fingerprint
from detectors.settings import DetectorSettings, SeveritySettings

IMPACT_COLS = ("units_short", "units_excess", "value_at_risk", "service_days_at_risk")


def today(now: datetime) -> date:
    return now.astimezone(UTC).date()


def add_fingerprints(frame: pl.DataFrame, kind: DriftKind, key_cols: list[str]) -> pl.DataFrame:
    """Add ``fingerprint`` using ``model.fingerprint`` so the store sees one id per business key.

    Called only on candidate rows (a small subset), hence the Python loop is off the hot path.
    """
    if frame.is_empty():
        return frame.with_columns(pl.lit(None, dtype=pl.Utf8).alias("fingerprint"))
    cols = [frame.get_column(c).cast(pl.Utf8).to_list() for c in key_cols]
    fps = [fingerprint(kind.value, dict(zip(key_cols, vals))) for vals in zip(*cols)]
    return frame.with_columns(pl.Series("fingerprint", fps, dtype=pl.Utf8))


def is_open(open_fingerprints: frozenset[str]) -> pl.Expr:
    if not open_fingerprints:
        return pl.lit(False)
    return pl.col("fingerprint").is_in(sorted(open_fingerprints))


def severity_expr(s: SeveritySettings) -> pl.Expr:
    """Higher of the value band and the service-days band."""
    v = pl.col("value_at_risk")
    d = pl.col("service_days_at_risk")
    value_rank = (
        pl.when(v >= s.value_critical).then(3)
        .when(v >= s.value_high).then(2)
        .when(v >= s.value_medium).then(1)
        .otherwise(0)
    )
    days_rank = (
        pl.when(d >= s.service_days_critical).then(3)
        .when(d >= s.service_days_high).then(2)
        .when(d >= s.service_days_medium).then(1)
        .otherwise(0)
    )
    return (
        pl.max_horizontal(value_rank, days_rank)
        .cast(pl.UInt32)
        .replace_strict([0, 1, 2, 3], ["low", "medium", "high", "critical"], return_dtype=pl.Utf8)
    )


def severity_of(impact: Impact, s: SeveritySettings) -> Severity:
    frame = pl.DataFrame(
        {"value_at_risk": [impact.value_at_risk], "service_days_at_risk": [impact.service_days_at_risk]}
    )
    return Severity(frame.select(severity_expr(s)).item())


def with_impact_and_severity(frame: pl.DataFrame, settings: DetectorSettings) -> pl.DataFrame:
    for c in IMPACT_COLS:
        if c not in frame.columns:
            frame = frame.with_columns(pl.lit(0.0).alias(c))
    return frame.with_columns(severity_expr(settings.severity).alias("severity"))


def _plain(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 4)
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    return value


def to_drifts(
    frame: pl.DataFrame,
    kind: DriftKind,
    key_cols: list[str],
    evidence_cols: list[str],
    cause_cols: dict[str, str],
    now: datetime,
) -> list[Drift]:
    """Materialise drift rows as ``Drift`` models (output-sized, not input-sized)."""
    drifts = []
    detected = now.astimezone(UTC)
    for row in frame.iter_rows(named=True):
        impact = Impact(
            units_short=round(row["units_short"], 4),
            units_excess=round(row["units_excess"], 4),
            value_at_risk=round(row["value_at_risk"], 2),
            service_days_at_risk=round(row["service_days_at_risk"], 4),
        )
        drifts.append(
            Drift.model_construct(
                kind=kind,
                fingerprint=row["fingerprint"],
                key={c: str(_plain(row[c])) for c in key_cols},
                evidence={c: _plain(row[c]) for c in evidence_cols},
                impact=impact,
                severity=Severity(row["severity"]),
                cause={name: str(_plain(row[c])) for name, c in cause_cols.items()},
                detected_at=detected,
            )
        )
    return drifts


def period_window(settings: DetectorSettings, now: datetime, horizon_days: float) -> pl.Expr:
    """Periods overlapping [today, today + horizon): the current bucket counts until it ends."""
    start = today(now)
    end = start + timedelta(days=horizon_days)
    return (pl.col("period") + timedelta(days=settings.period_days) > start) & (
        pl.col("period") < end
    )
