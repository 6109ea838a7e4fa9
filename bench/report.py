"""Figures, machine information and the two outputs of ``python -m bench``.

Every benchmark returns a list of ``Figure``: a value with its unit, the target it is held to (if
any) and a note that says plainly why a target is missed or what the number does not cover.
``write_results`` turns them into ``bench/results/latest.json`` and ``latest.md``.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).parent / "results"

_OPS = {"<=": lambda v, t: v <= t, ">=": lambda v, t: v >= t}
_OP_TEXT = {"<=": "≤", ">=": "≥"}


@dataclass
class Figure:
    bench: str
    name: str
    value: float | int | None  # None: not measured (the note says why)
    unit: str
    target: float | None = None
    op: str = "<="
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def met(self) -> bool | None:
        if self.target is None or self.value is None:
            return None
        return bool(_OPS[self.op](self.value, self.target))

    def target_text(self) -> str:
        if self.target is None:
            return "—"
        return f"{_OP_TEXT[self.op]} {_fmt(self.target)} {self.unit}".strip()

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["met"] = self.met
        out["target_text"] = self.target_text()
        if not out["extra"]:
            out.pop("extra")
        return out


def percentile(values: list[float], q: float) -> float | None:
    """Linear-interpolated percentile (numpy's default); None for no values."""
    if not values:
        return None
    import numpy as np

    return float(np.percentile(np.asarray(values, dtype=float), q))


def machine_info() -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram_gb = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram_gb = round(int(line.split()[1]) / 1024 / 1024, 1)
                break
    except OSError:
        pass
    versions: dict[str, str] = {}
    for module in ("polars", "duckdb", "slack_bolt", "sqlalchemy"):
        try:
            versions[module] = __import__(module).__version__
        except Exception:  # a missing optional library is just not listed
            pass
    return {
        "cpu_model": cpu,
        "cores": os.cpu_count(),
        "ram_gb": ram_gb,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "libraries": versions,
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "git_commit": _git_commit(),
    }


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, cwd=Path(__file__).parent, timeout=5)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def _fmt(value: float | int | None) -> str:
    if value is None:
        return "not measured"
    if isinstance(value, int) or float(value).is_integer():
        return f"{int(value):,}"
    v = float(value)
    if abs(v) >= 100:
        return f"{v:,.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    if abs(v) >= 1:
        return f"{v:.2f}"
    return f"{v:.3g}"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown_table(figures: list[Figure]) -> str:
    lines = ["| benchmark | figure | value | target | met | notes |",
             "|---|---|---|---|---|---|"]
    for f in figures:
        value = _fmt(f.value) + (f" {f.unit}" if f.value is not None and f.unit else "")
        met = {True: "yes", False: "**NO**", None: "—"}[f.met]
        lines.append(f"| {_cell(f.bench)} | {_cell(f.name)} | {_cell(value)} | "
                     f"{_cell(f.target_text())} | {met} | {_cell(f.notes)} |")
    return "\n".join(lines)


def write_results(figures: list[Figure], machine: dict[str, Any], meta: dict[str, Any],
                  out_dir: Path = RESULTS_DIR) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    missed = [f"{f.bench}: {f.name}" for f in figures if f.met is False]
    doc = {
        "date": now,
        "machine": {**machine, "load_average_at_end": [round(x, 2) for x in os.getloadavg()]},
        **meta,
        "targets_missed": missed,
        "figures": [f.to_json() for f in figures],
    }
    json_path = out_dir / "latest.json"
    json_path.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    m = doc["machine"]
    header = (
        f"Benchmarks ({'quick' if meta.get('quick') else 'full'} run, {now}) on "
        f"{m['cpu_model']}, {m['cores']} cores, {m['ram_gb']} GB RAM, Python {m['python']}; "
        f"load average {m['load_average_at_start'][0]} at start, "
        f"{m['load_average_at_end'][0]} at end (a shared machine). "
        f"Run time {meta.get('run_seconds', 0):.0f} s. `make bench` regenerates it."
    )
    md_path = out_dir / "latest.md"
    md_path.write_text(header + "\n\n" + markdown_table(figures) + "\n")
    return json_path, md_path
