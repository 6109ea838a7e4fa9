"""``python -m bench`` (``make bench``): every benchmark, a Markdown table, bench/results/latest.*

    python -m bench            # full run (≈ 10 min on 2 shared cores)
    python -m bench --quick    # ≈ 2 min: smaller samples, no 5M-row detection, one burst variant
    python -m bench --only slack,burst

Benchmarks print numbers; they do not pass or fail. A missed target is marked in the table and
its note says why. ``bench/results/latest.json`` holds the machine, the date and every figure
with its unit and target; ``latest.md`` the table (for the README).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
import traceback
from pathlib import Path

from bench.report import RESULTS_DIR, Figure, machine_info, markdown_table, write_results

BENCHES = {
    "detect": ("detection scaling", "bench.scaling"),
    "ack": ("Slack ack latency (a separate bot process, 50 concurrent clicks)", "bench.slack_ack"),
    "slack": ("Slack latency (push → message, approve → executed)", "bench.slack_latency"),
    "burst": ("burst of 5,000 drifts of one cause", "bench.burst"),
    "x12": ("reading large EDI files (50 MB X12 and EDIFACT: records/s, peak memory)",
            "bench.x12_parse"),
    "ingest": ("reading large files (50 MB CSV and EPCIS: records/s, peak memory)",
               "bench.ingest"),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="the ≈ 2 min version")
    parser.add_argument("--only", default=",".join(BENCHES),
                        help=f"comma-separated subset of {', '.join(BENCHES)}")
    parser.add_argument("--out-dir", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    chosen = [b.strip() for b in args.only.split(",") if b.strip()]
    unknown = [b for b in chosen if b not in BENCHES]
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; choose from {list(BENCHES)}")

    # The bot's own logs (JSON lines, Bolt listener errors) would bury the figures.
    logging.disable(logging.CRITICAL)
    machine = machine_info()
    print(f"alignbot benchmarks ({'quick' if args.quick else 'full'}) on {machine['cpu_model']}, "
          f"{machine['cores']} cores, {machine['ram_gb']} GB, Python {machine['python']}, "
          f"load {machine['load_average_at_start'][0]}", flush=True)
    started = time.monotonic()
    figures: list[Figure] = []
    timings: dict[str, float] = {}
    for key in chosen:
        title, module_name = BENCHES[key]
        print(f"\n== {title}", flush=True)
        t = time.monotonic()
        try:
            module = __import__(module_name, fromlist=["run"])
            figures += module.run(quick=args.quick,
                                  log=lambda *a: print(*a, flush=True))
        except Exception as exc:  # one broken benchmark must not hide the others' numbers
            traceback.print_exc()
            figures.append(Figure(title, "run", None, "", notes=f"failed: "
                                  f"{type(exc).__name__}: {exc}"))
        timings[key] = round(time.monotonic() - t, 1)
        print(f"   ({timings[key]:.0f} s)", flush=True)
    run_seconds = time.monotonic() - started
    json_path, md_path = write_results(
        figures, machine, {"quick": args.quick, "benchmarks": chosen,
                           "run_seconds": round(run_seconds, 1), "seconds_per_benchmark": timings},
        args.out_dir)
    print("\n" + markdown_table(figures))
    missed = [f for f in figures if f.met is False]
    print(f"\n{len(figures)} figures, {len(missed)} targets missed; run time {run_seconds:.0f} s; "
          f"wrote {json_path} and {md_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
