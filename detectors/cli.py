"""``alignbot detect --snapshot DIR [--json] [--at TIMESTAMP]``: run the detectors on files.

``detect_command`` is typer-compatible; bot/cli.py registers it. Exit 0 on success, 2 when a
table or column is missing, or a row breaks a rule of ``SNAPSHOT_COLUMNS_DOC`` (the message names
the file, the row and the column).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:  # imported in the functions: `alignbot detect --help` loads no polars
    from rich.console import Console

    from detectors.pipeline import DetectionResult
    from detectors.settings import DetectorSettings


def _parse_at(at: str | None) -> datetime:
    from detectors.snapshot_io import SnapshotError

    if at is None:
        return datetime.now(UTC)  # the CLI is the edge: it may read the clock, detectors never do
    try:
        value = datetime.fromisoformat(at)
    except ValueError:
        raise SnapshotError(f"--at {at!r}: not an ISO 8601 timestamp (e.g. 2026-11-26T08:00:00Z)") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def detect_command(
    snapshot: Annotated[Path, typer.Option("--snapshot", help="Directory of snapshot tables (CSV or Parquet).")],
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
    at: Annotated[str | None, typer.Option("--at", help="Detect as of this ISO timestamp (default: now).")] = None,
) -> None:
    """Detect drift between plan and execution in a snapshot and print recommendations."""
    from detectors.settings import DetectorSettings

    run_detect(snapshot, json_output, at, DetectorSettings())


def run_detect(snapshot: Path, json_output: bool, at: str | None, settings: DetectorSettings) -> None:
    """``detect_command`` with explicit settings, for a caller that loaded the engine config."""
    from rich.console import Console
    from rich.markup import escape

    from detectors.pipeline import detect
    from detectors.snapshot_io import SnapshotError, read_snapshot

    err = Console(stderr=True)
    try:
        now = _parse_at(at)
        snap = read_snapshot(snapshot, settings.disruption)
    except SnapshotError as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    result = detect(snap, settings, now)
    if json_output:
        typer.echo(json.dumps(result.model_dump(mode="json"), indent=2))
    else:
        render(result, Console())


def render(result: DetectionResult, console: Console) -> None:
    from rich.table import Table

    drifts = Table(title=f"Drifts ({len(result.drifts)})")
    for col in ("kind", "key", "severity", "units short", "units excess", "value at risk", "service days"):
        drifts.add_column(col)
    for d in result.drifts:
        i = d.impact
        drifts.add_row(d.kind.value, " ".join(d.key.values()), d.severity.value, f"{i.units_short:,.0f}",
                       f"{i.units_excess:,.0f}", f"{i.value_at_risk:,.0f}", f"{i.service_days_at_risk:.1f}")
    console.print(drifts)
    recs = Table(title=f"Recommendations ({len(result.recommendations)})", show_lines=True)
    for col in ("severity", "summary", "actions", "if ignored → if approved", "options (total cost)"):
        recs.add_column(col)
    for r in result.recommendations:
        actions = "\n".join(f"{a.system}: {a.operation} " + ", ".join(f"{k}={v}" for k, v in a.params.items()
                                                                       if k != "lines")
                            for a in r.actions)
        a, b = r.impact_if_ignored, r.impact_if_approved
        options = "\n".join(f"{'→ ' if o.recommended else ''}{o.name}: {o.total_cost:,.2f}" for o in r.options)
        recs.add_row(r.severity.value, r.summary, actions,
                     f"below safety {a.units_short:,.1f} → {b.units_short:,.1f}\n"
                     f"value {a.value_at_risk:,.0f} → {b.value_at_risk:,.0f}\n"
                     f"days below safety {a.service_days_at_risk:.2f} → {b.service_days_at_risk:.2f}\n"
                     f"cost {r.cost:,.2f}", options)
    console.print(recs)
