"""Reading large files: records per second and peak memory for 50 MB CSV and EPCIS files.

The files are generated here (seeded, in a temporary folder, never committed): a demand export
(``sku,location,period,planned_qty,latest_qty,unit_value``, ~1M rows) and an EPCISDocument of
ObjectEvents (departing, arriving, receiving and some inspecting, which are skipped). Each case
runs in a fresh process (``python -m bench.ingest --child CASE FILE``) that reports its own peak
resident set (``VmHWM``; see ``bench/detect.py`` for why not ``ru_maxrss``):

* ``alignbot inspect FILE --json`` and the table output, through the real CLI, output to
  /dev/null;
* the CSV connector's inbox read (``CsvDropConnector.read_chunks``), records counted and let go
  as the bot's picture would take them.

Run: ``python -m bench.ingest [--mb 50]``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

from bench.report import Figure

ROOT = Path(__file__).resolve().parent.parent
BENCH = "reading large files"
TARGET_MB = 300  # peak RSS for a 50 MB file, whatever its size
CASES = ("csv-inspect-json", "csv-inspect-table", "csv-connector", "epcis-inspect-json",
         "epcis-inspect-table")


def generate_csv(path: Path, megabytes: float, seed: int = 7) -> int:
    """A demand export of about ``megabytes``; returns its number of rows."""
    rng = random.Random(seed)
    target = int(megabytes * 1_000_000)
    weeks = [(date(2026, 11, 23) + timedelta(weeks=k)).isoformat() for k in range(13)]
    rows = written = 0
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write("sku,location,period,planned_qty,latest_qty,unit_value\n")
        while written < target:
            lines = []
            for _ in range(10_000):
                planned = rng.randint(20, 2_000)
                latest = max(0, round(planned * rng.uniform(0.7, 1.6)))
                lines.append(f"SKU-{rng.randint(10_000, 99_999)},DC-{rng.randint(1, 40):02d},"
                             f"{rng.choice(weeks)},{planned},{latest},"
                             f"{rng.randint(100, 9_999) / 100}\n")
            chunk = "".join(lines)
            out.write(chunk)
            written += len(chunk)
            rows += len(lines)
    return rows


def generate_epcis(path: Path, megabytes: float, seed: int = 7) -> int:
    """An EPCISDocument of about ``megabytes``; returns its number of events."""
    rng = random.Random(seed)
    target = int(megabytes * 1_000_000)
    steps = ["departing"] * 4 + ["arriving"] * 3 + ["receiving"] * 2 + ["inspecting"]
    events = written = 0
    with path.open("w", encoding="utf-8") as out:
        head = json.dumps({"@context": ["https://ref.gs1.org/standards/epcis/epcis-context.jsonld"],
                           "type": "EPCISDocument", "schemaVersion": "2.0",
                           "creationDate": "2026-11-20T08:00:00Z"})
        out.write(head[:-1] + ', "epcisBody": {"eventList": [')
        while written < target:
            parts = []
            for _ in range(2_000):
                n = events + len(parts)
                parts.append(json.dumps({
                    "type": "ObjectEvent", "action": "OBSERVE",
                    "eventTime": f"2026-11-{rng.randint(10, 28)}T{rng.randint(0, 23):02d}:"
                                 f"{rng.randint(0, 59):02d}:00.000+01:00",
                    "eventTimeZoneOffset": "+01:00",
                    "eventID": f"ni:///sha-256;{n:064x}?ver=CBV2.0",
                    "epcList": [f"urn:epc:id:sscc:4012345.{n:010d}"],
                    "bizStep": rng.choice(steps), "disposition": "in_transit",
                    "readPoint": {"id": f"urn:epc:id:sgln:4012345.{rng.randint(1, 99):05d}.0"},
                    "bizTransactionList": [{"type": "desadv", "bizTransaction":
                                            f"urn:epcglobal:cbv:bt:4012345000009:SHP-{n}"}],
                }))
            chunk = ("," if events else "") + ",".join(parts)
            out.write(chunk)
            written += len(chunk)
            events += len(parts)
        out.write("]}}")
    return events


def _peak_rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status (not Linux?)")


def child(case: str, file: str) -> dict:
    """In a fresh process: run one case on ``file``; its records, seconds and peak RSS."""
    records = None
    if case == "csv-connector":
        from connectors.csv_drop import CsvDropConnector, CsvDropSettings, FilePattern

        path = Path(file)
        connector = CsvDropConnector("bench", CsvDropSettings(
            path=str(path.parent), archive_dir=None,
            files=[FilePattern(glob=path.name, entity="demand")]))
        started = time.perf_counter()
        records = quarantined = 0
        for chunk in connector.read_chunks():
            records += len(chunk.records)
            quarantined += len(chunk.quarantined)
        if quarantined:
            raise RuntimeError(f"{quarantined} rows quarantined; the generated file is wrong")
    else:
        from bot.cli import app  # imports before the clock starts: the CLI's start-up is not
        from connectors.inspection import inspect_command  # noqa: F401 — the file's cost

        args = ["inspect", file] + (["--json"] if case.endswith("json") else [])
        saved = sys.stdout, sys.stderr
        started = time.perf_counter()
        with open(os.devnull, "w") as null:
            sys.stdout = sys.stderr = null
            try:
                app(args, standalone_mode=False)
            finally:
                sys.stdout, sys.stderr = saved
    return {"case": case, "records": records, "seconds": time.perf_counter() - started,
            "peak_rss_mb": _peak_rss_mb()}


def measure(case: str, file: Path, timeout: float = 900) -> dict:
    """``child`` in a process of its own (so its peak is its own)."""
    proc = subprocess.run([sys.executable, "-m", "bench.ingest", "--child", case, str(file)],
                          cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise RuntimeError(f"{case} exited {proc.returncode}: {' / '.join(tail)}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run(quick: bool = False, log=print, megabytes: float | None = None) -> list[Figure]:  # type: ignore[no-untyped-def]
    size = megabytes or (10.0 if quick else 50.0)
    figures: list[Figure] = []
    with tempfile.TemporaryDirectory(prefix="alignbot-ingest-") as tmp:
        csv_path, epcis_path = Path(tmp) / "demand.csv", Path(tmp) / "events.json"
        counts = {"csv": generate_csv(csv_path, size), "epcis": generate_epcis(epcis_path, size)}
        for case in CASES:
            kind = case.split("-", 1)[0]
            path = csv_path if kind == "csv" else epcis_path
            mb = path.stat().st_size / 1e6
            try:
                result = measure(case, path)
            except (RuntimeError, subprocess.TimeoutExpired, OSError, ValueError) as exc:
                figures.append(Figure(BENCH, f"{case}, {mb:.0f} MB", None, "",
                                      notes=f"failed: {exc}"))
                log(f"   {case}: failed: {exc}")
                continue
            records = result["records"] or counts[kind]
            rate = records / result["seconds"]
            log(f"   {case:20s} {mb:5.1f} MB  {records:>9,} records  {result['seconds']:6.1f} s  "
                f"{rate:>9,.0f} records/s  peak RSS {result['peak_rss_mb']:5.0f} MB")
            what = {"csv-inspect-json": "alignbot inspect --json", "csv-inspect-table":
                    "alignbot inspect (tables)", "csv-connector": "CSV connector inbox read",
                    "epcis-inspect-json": "alignbot inspect --json", "epcis-inspect-table":
                    "alignbot inspect (tables)"}[case]
            label = f"{kind.upper()} {mb:.0f} MB, {what}"
            figures.append(Figure(BENCH, f"{label}: throughput", round(rate), "records/s",
                                  extra={"records": records, "seconds": result["seconds"]}))
            figures.append(Figure(
                BENCH, f"{label}: peak memory", round(result["peak_rss_mb"]), "MB",
                target=TARGET_MB if mb >= 40 else None,
                notes="peak RSS (VmHWM) of a fresh process, imports included"))
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--child", nargs=2, metavar=("CASE", "FILE"), help=argparse.SUPPRESS)
    parser.add_argument("--mb", type=float, default=50.0, help="size of each generated file")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(*args.child)))
        return
    run(megabytes=args.mb)


if __name__ == "__main__":
    main()
