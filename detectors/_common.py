"""Helpers the detectors share: fingerprints, hysteresis, severity, drift objects."""

from __future__ import annotations

import hashlib
import math
import re
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np
import polars as pl

from canonical.model import UTC, Drift, DriftKind, Impact, Severity, epoch_micros, fingerprint, trusted
from detectors.settings import DetectorSettings, SeveritySettings

IMPACT_COLS = ("units_short", "units_unserved", "units_excess", "value_at_risk", "service_days_at_risk",
               "days_out_of_stock", "shortage_unit_days")


# Below this many input rows a query runs on polars' in-memory engine: the default ("auto",
# here streaming) sets up a pipeline that costs ~2× a small query, and pays off only on large ones.
SMALL_INPUT_ROWS = 50_000


def engine_for(rows: int) -> str:
    return "in-memory" if rows < SMALL_INPUT_ROWS else "auto"


def collect(query: pl.LazyFrame, rows: int) -> pl.DataFrame:
    """``query.collect()`` on the engine that suits an input of ``rows`` rows."""
    return query.collect(engine=engine_for(rows))


def collect_all(queries: list[pl.LazyFrame], rows: int) -> list[pl.DataFrame]:
    """``pl.collect_all`` (in parallel) on the engine that suits inputs of ``rows`` rows in all."""
    return pl.collect_all(queries, engine=engine_for(rows))


def now_literal(now: datetime) -> pl.Expr:
    """``pl.lit(now).cast(pl.Datetime("us", "UTC"))``, built from its microseconds since the epoch
    (~20 µs; polars converts an aware datetime literal in ~0.3 ms)."""
    return pl.lit(epoch_micros(now), dtype=pl.Int64).cast(pl.Datetime("us", "UTC"))


def today(now: datetime) -> date:
    return now.astimezone(UTC).date()


_SAFE = r'^[\x20-\x21\x23-\x5b\x5d-\x7e]*$'  # printable ASCII without '"' and '\': JSON as is


def add_fingerprints(frame: pl.DataFrame, kind: DriftKind, key_cols: list[str]) -> pl.DataFrame:
    """Add ``fingerprint``, equal to ``model.fingerprint(kind, key)`` for every row.

    The canonical JSON that ``model.fingerprint`` hashes is assembled by polars for keys made of
    plain ASCII (the norm); other rows take the exact Python path.
    """
    if frame.is_empty():
        return _with_column(frame, pl.Series("fingerprint", [], dtype=pl.Utf8))
    fields = sorted(["kind", *key_cols])
    values = {c: pl.col(c).cast(pl.Utf8) for c in key_cols}
    values["kind"] = pl.lit(kind.value)
    parts: list[pl.Expr] = [pl.lit("{")]
    for i, name in enumerate(fields):
        parts += [pl.lit(("" if i == 0 else ", ") + f'"{name}": "'), values[name], pl.lit('"')]
    parts.append(pl.lit("}"))
    safe = pl.all_horizontal([values[c].str.contains(_SAFE) for c in key_cols])
    body = frame.select(pl.concat_str(parts).alias("j"), safe.alias("ok"))
    texts = body.get_column("j").to_list()
    oks = body.get_column("ok").to_list()
    cols = [frame.get_column(c).cast(pl.Utf8).to_list() for c in key_cols] if not all(oks) else []
    fps = [
        hashlib.sha256(t.encode()).hexdigest()[:24] if ok
        else fingerprint(kind.value, {c: col[i] for c, col in zip(key_cols, cols, strict=True)})
        for i, (t, ok) in enumerate(zip(texts, oks, strict=True))
    ]
    return _with_column(frame, pl.Series("fingerprint", fps, dtype=pl.Utf8))


def _with_column(frame: pl.DataFrame, series: pl.Series) -> pl.DataFrame:
    """``frame.with_columns(series)`` without a query (a new column is appended in place of one)."""
    if series.name in frame.columns:
        return frame.with_columns(series)
    return frame.hstack([series])


_SAFE_RE = re.compile(_SAFE)


def fast_fingerprint(kind: str, key: dict[str, str]) -> str:
    """``model.fingerprint`` without json.dumps for plain-ASCII keys (5–10× cheaper per call)."""
    items = {"kind": kind, **{k: str(v) for k, v in key.items()}}
    # fullmatch: re's '$' also matches before a trailing newline, which json.dumps escapes
    if not all(_SAFE_RE.fullmatch(k) and _SAFE_RE.fullmatch(v) for k, v in items.items()):
        return fingerprint(kind, key)
    body = ", ".join(f'"{k}": "{items[k]}"' for k in sorted(items))
    return hashlib.sha256(("{" + body + "}").encode()).hexdigest()[:24]


def is_open(open_fingerprints: frozenset[str]) -> pl.Expr:
    if not open_fingerprints:
        return pl.lit(False)
    return pl.col("fingerprint").is_in(sorted(open_fingerprints))


def severity_of(impact: Impact, s: SeveritySettings) -> Severity:
    """The higher of the value band and the service-days band; days count only when at least
    ``service_days_min_units`` units are below safety stock."""
    def rank(x: float, bands: tuple[float, float, float]) -> int:
        return sum(x >= b for b in bands)

    days = impact.service_days_at_risk if impact.units_short >= s.service_days_min_units else 0.0
    r = max(rank(impact.value_at_risk, (s.value_medium, s.value_high, s.value_critical)),
            rank(days, (s.service_days_medium, s.service_days_high, s.service_days_critical)))
    return (Severity.LOW, Severity.MEDIUM, Severity.HIGH, Severity.CRITICAL)[r]


def with_impact_and_severity(frame: pl.DataFrame | pl.LazyFrame, settings: DetectorSettings,
                             sort_by: list[str] | None = None) -> pl.DataFrame:
    """Missing impact columns as 0, rows sorted by ``sort_by``, then ``severity`` last.

    One in-memory query (the frame is output-sized); the severity bands are applied to the
    collected columns, as ``severity_of`` would for each row.
    """
    query = frame.lazy()
    missing = [pl.lit(0.0).alias(c) for c in IMPACT_COLS if c not in query.collect_schema().names()]
    if missing:
        query = query.with_columns(missing)
    if sort_by:
        query = query.sort(sort_by)
    out = query.collect(engine="in-memory")
    return _with_column(out, severity_column(out, settings.severity))


_SEVERITY_LABELS = pl.Series("severity", ["low", "medium", "high", "critical"], dtype=pl.Utf8)


def severity_column(frame: pl.DataFrame, s: SeveritySettings) -> pl.Series:
    """``severity_of`` for each row of ``frame`` (nulls rank lowest, NaN highest)."""
    def column(name: str) -> np.ndarray:
        return frame.get_column(name).cast(pl.Float64).fill_null(-np.inf).to_numpy()

    def rank(x: np.ndarray, bands: tuple[float, float, float]) -> np.ndarray:
        with np.errstate(invalid="ignore"):
            return sum(((x >= b) | np.isnan(x)).astype(np.int64) for b in bands)

    days = column("service_days_at_risk")
    with np.errstate(invalid="ignore"):
        days = np.where(column("units_short") >= s.service_days_min_units, days, -np.inf)
    r = np.maximum(rank(column("value_at_risk"), (s.value_medium, s.value_high, s.value_critical)),
                   rank(days, (s.service_days_medium, s.service_days_high, s.service_days_critical)))
    return _SEVERITY_LABELS.gather(r)


def round_like_python(values: np.ndarray, ndigits: int) -> list[float]:
    """``[round(v, ndigits) for v in values]``, exactly, at array speed.

    Python rounds the exact binary value to ``ndigits`` decimals (ties to even) and returns the
    double nearest that decimal. ``rint(v·10ⁿ)`` finds the same integer k unless v·10ⁿ lies
    within its own rounding error of a tie, and k / 10ⁿ (two exact operands, one correctly
    rounded division) is then that nearest double. Values near a tie, too large for k to be
    exact, or not finite take Python's own ``round``.
    """
    x = np.asarray(values, dtype=np.float64)
    scale = 10.0 ** ndigits
    with np.errstate(invalid="ignore", over="ignore"):
        scaled = x * scale
        k = np.rint(scaled)
        out = k / scale
        frac = np.abs(scaled - np.floor(scaled) - 0.5)
        exact = np.isfinite(scaled) & (np.abs(scaled) < 2.0 ** 50) & (frac > np.abs(scaled) * 2.0 ** -48 + 1e-9)
    result = out.tolist()
    if not exact.all():
        for i in np.flatnonzero(~exact).tolist():
            result[i] = round(float(x[i]), ndigits)
    return result


def _plain(value: Any) -> Any:
    """JSON-safe evidence: rounded floats, ISO dates, and None for ∞/NaN (no stock use → no cover limit)."""
    if isinstance(value, float):
        return round(value, 4) if math.isfinite(value) else None
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _plain_column(series: pl.Series) -> list[Any]:
    """``_plain`` of every value of a column, with the per-type work hoisted out of the loop."""
    dtype = series.dtype
    if dtype.is_float():
        values = round_like_python(series.cast(pl.Float64).to_numpy(), 4)  # null → NaN → None below
        isfinite = math.isfinite
        return [v if isfinite(v) else None for v in values]
    if isinstance(dtype, pl.List) and isinstance(dtype.inner, pl.Struct):
        return _plain_struct_lists(series)
    values = series.to_list()
    if dtype.is_numeric() or dtype in (pl.Utf8, pl.Boolean, pl.Null):
        return values
    if dtype in (pl.Date, pl.Datetime) or isinstance(dtype, pl.Datetime):
        return [None if v is None else v.isoformat() for v in values]
    return [_plain(v) for v in values]


def _plain_struct_lists(series: pl.Series) -> list[Any]:
    """``_plain`` of a column of lists of structs (a shipment's lines), one field at a time."""
    lengths = series.list.len()
    if series.null_count() or (lengths == 0).any():
        return [_plain(v) for v in series.to_list()]
    fields = series.explode().struct.unnest()
    names = fields.columns
    rows = [dict(zip(names, vals)) for vals in zip(*(_plain_column(fields.get_column(c)) for c in names))]
    out, start = [], 0
    for n in lengths.to_list():
        out.append(rows[start:start + n])
        start += n
    return out


def _rounded_columns(frame: pl.DataFrame, columns: list[str], ndigits: int) -> dict[str, list[float]]:
    """``round_like_python`` of each column (as float; null → NaN), all in one call."""
    if not columns:
        return {}
    flat = round_like_python(np.concatenate([frame.get_column(c).cast(pl.Float64).to_numpy() for c in columns]),
                             ndigits)
    n = frame.height
    return {c: flat[i * n:(i + 1) * n] for i, c in enumerate(columns)}


def to_drifts(
    frame: pl.DataFrame,
    kind: DriftKind,
    key_cols: list[str],
    evidence_cols: list[str],
    cause_cols: dict[str, str],
    now: datetime,
) -> list[Drift]:
    """Materialise drift rows as ``Drift`` models (output-sized, not input-sized).

    Built column by column: each value is made JSON-safe once, whatever role it plays.
    """
    if frame.is_empty():
        return []
    detected = now.astimezone(UTC)
    columns = list(dict.fromkeys([*key_cols, *evidence_cols, *cause_cols.values()]))
    impact4 = ["units_short", "units_unserved", "units_excess", "service_days_at_risk", "days_out_of_stock",
               "shortage_unit_days"]
    floats = [c for c in columns if frame.schema[c].is_float()]
    rounded = _rounded_columns(frame, list(dict.fromkeys([*floats, *impact4])), 4)  # one numpy pass
    isfinite = math.isfinite
    plain: dict[str, list[Any]] = {}
    for c in columns:
        plain[c] = ([v if isfinite(v) else None for v in rounded[c]] if c in rounded
                    else _plain_column(frame.get_column(c)))
    as_text = {c: [str(v) for v in plain[c]] for c in dict.fromkeys([*key_cols, *cause_cols.values()])}
    keys = [dict(zip(key_cols, vals)) for vals in zip(*(as_text[c] for c in key_cols))]
    evidence = [dict(zip(evidence_cols, vals)) for vals in zip(*(plain[c] for c in evidence_cols))]
    names = list(cause_cols)
    causes = ([dict(zip(names, vals)) for vals in zip(*(as_text[cause_cols[n]] for n in names))]
              if names else [{} for _ in range(frame.height)])
    short, unserved, excess, days, out, unit_days = (rounded[c] for c in impact4)
    value = round_like_python(frame.get_column("value_at_risk").to_numpy(), 2)
    severities = [Severity(s) for s in frame.get_column("severity").to_list()]
    drifts = []
    for i, fp in enumerate(frame.get_column("fingerprint").to_list()):
        impact = trusted(Impact, {
            "units_short": short[i], "units_unserved": unserved[i], "units_excess": excess[i],
            "value_at_risk": value[i], "service_days_at_risk": days[i], "days_out_of_stock": out[i],
            "shortage_unit_days": unit_days[i], "orders_at_risk": 0,
        })
        drifts.append(trusted(Drift, {
            "kind": kind, "fingerprint": fp, "key": keys[i], "evidence": evidence[i], "impact": impact,
            "severity": severities[i], "cause": causes[i], "detected_at": detected,
        }))
    return drifts


def period_window(settings: DetectorSettings, now: datetime, horizon_days: float) -> pl.Expr:
    """Periods overlapping [today, today + horizon): the current bucket counts until it ends."""
    start = today(now)
    end = start + timedelta(days=horizon_days)
    return (pl.col("period") + timedelta(days=settings.period_days) > start) & (
        pl.col("period") < end
    )
