"""Detection scaling: 10k → 1M → 5M demand rows, by running ``python -m bench.detect``.

``bench/detect.py`` (the detector benchmark) generates a seeded network, times a full pass, the
DuckDB reference for ``demand_change``, and the peak RSS of a fresh process running one full
pass. It takes ``--scale`` (1.0 = 1M demand rows)
and ``--out``; each size is one child process writing its JSON to a temporary file, so
``bench/results/detect.json`` (the detector benchmark's own record) is left alone.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.report import Figure

ROOT = Path(__file__).resolve().parent.parent
BENCH = "detection scaling"
# (label, scale for bench.detect, repeat) — scale 1.0 is 1M demand rows
FULL_SIZES = [("10k", 0.01, 3), ("1M", 1.0, 3), ("5M", 5.0, 1)]
QUICK_SIZES = [("10k", 0.01, 1), ("1M", 1.0, 1)]
TIMEOUT = {"10k": 120, "1M": 300, "5M": 600}


def _options() -> str:
    try:
        out = subprocess.run([sys.executable, "-m", "bench.detect", "--help"], cwd=ROOT,
                             capture_output=True, text=True, timeout=60)
        return out.stdout
    except (OSError, subprocess.SubprocessError):
        return ""


def _run(scale: float | None, repeat: int, timeout: float, has_out: bool) -> tuple[dict, float]:
    with tempfile.TemporaryDirectory(prefix="alignbot-bench-") as tmp:
        out_path = Path(tmp) / "detect.json"
        cmd = [sys.executable, "-m", "bench.detect", "--repeat", str(repeat)]
        if scale is not None:
            cmd += ["--scale", str(scale)]
        if has_out:
            cmd += ["--out", str(out_path)]
        started = time.monotonic()
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
        took = time.monotonic() - started
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
            raise RuntimeError(f"bench.detect exited {proc.returncode}: {' / '.join(tail)}")
        path = out_path if has_out else ROOT / "bench" / "results" / "detect.json"
        return json.loads(path.read_text()), took


def run(quick: bool = False, log=print) -> list[Figure]:  # type: ignore[no-untyped-def]
    help_text = _options()
    has_scale, has_out = "--scale" in help_text, "--out" in help_text
    sizes = QUICK_SIZES if quick else FULL_SIZES
    figures: list[Figure] = []
    raw: dict[str, dict] = {}
    for label, scale, repeat in sizes:
        if not has_scale and label != "1M":
            continue
        log(f"  detection at {label} demand rows (bench.detect --scale {scale}) ...")
        try:
            data, took = _run(scale if has_scale else None, repeat, TIMEOUT[label], has_out)
        except (RuntimeError, subprocess.TimeoutExpired, OSError, ValueError) as exc:
            figures.append(Figure(BENCH, f"full pass, {label} demand rows", None, "s",
                                  notes=f"not measured: {exc}"))
            continue
        data["_run_seconds"] = round(took, 1)
        raw[label] = data
        figures += _figures(label, data, repeat)
        log(f"    full pass {data['full_pass_seconds']:.3f} s, peak RSS "
            f"{data['peak_rss_mb']:.0f} MB ({took:.0f} s)")
    measured = set(raw)
    for label, _scale, _repeat in FULL_SIZES:
        if label not in measured and not any(f.name.endswith(f"{label} demand rows")
                                             for f in figures):
            why = ("skipped in --quick (a 5M run takes minutes)" if quick and has_scale else
                   "bench.detect has no row-count option")
            figures.append(Figure(BENCH, f"full pass, {label} demand rows", None, "s",
                                  notes=f"not measured: {why}"))
    if raw:
        figures[0].extra["bench_detect_output"] = raw
    return figures


def _figures(label: str, d: dict, repeat: int) -> list[Figure]:
    at_1m = label == "1M"
    rows = d.get("rows", {})
    full, cpu = d["full_pass_seconds"], d.get("full_pass_cpu_seconds")
    stages = d.get("stage_seconds", {})
    load = d.get("load_average_1m")
    sizes = ", ".join(f"{k} {v:,}" for k, v in rows.items())
    full_note = (f"median of {repeat}; {cpu:.2f} s CPU; tables: {sizes}; load {load}"
                 if cpu is not None else f"median of {repeat}")
    if at_1m and full > 1.0:
        split = ", ".join(f"{k.replace('_', ' ')} {v:.2f} s" for k, v in stages.items())
        full_note = (f"MISSED: {full:.2f} s wall / {cpu:.2f} s CPU for one pass (4 detectors + "
                     f"grouping + LP recommendations, {d.get('recommendations', '?')} "
                     f"recommendations); split: {split}; load {load} on 2 shared cores")
    duck, polars_dc = d["demand_change_duckdb_seconds"], d["demand_change_polars_seconds"]
    ratio = d["polars_vs_duckdb_ratio"]
    ratio_note = (f"demand_change only (the DuckDB reference implements that detector): polars "
                  f"{polars_dc * 1000:.1f} ms vs DuckDB {duck * 1000:.1f} ms, "
                  f"{d.get('demand_change_drifts', '?')} drifts both; the full pass is "
                  f"{full / duck:.0f}× the DuckDB demand_change query (not like-for-like); "
                  "tens of ms on a shared machine, so the ratio moves from run to run")
    return [
        Figure(BENCH, f"full pass, {label} demand rows", full, "s",
               target=1.0 if at_1m else None, notes=full_note),
        Figure(BENCH, f"peak memory, {label} demand rows", d["peak_rss_mb"], "MB",
               target=1536 if at_1m else None,
               notes=("peak RSS (VmHWM) of a fresh process loading the snapshot and running one "
                      "pass (not ru_maxrss, which a child inherits from its parent)")),
        Figure(BENCH, f"DuckDB reference (demand_change), {label}", duck, "s",
               notes="same query in DuckDB, all cores, median of 5"),
        Figure(BENCH, f"polars ÷ DuckDB (demand_change), {label}", ratio, "×",
               target=1.5 if at_1m else None, notes=ratio_note),
    ]
