"""Reading large X12 (and EDIFACT) files: records per second and peak memory for 50 MB.

The files are generated here (seeded, in a temporary folder, never committed): a carrier's
X12 feed of interchanges of 214 status messages (several LX/AT7 loops each, codes drawn from
the whole 004010/005010 lists, time codes CT/ET/PT/MT/CS or none, newline after each segment)
with an 856 ASN now and then, and an EDIFACT IFTSTA feed (``--edifact``) of the same kind.
Each case runs in a fresh process (``python -m bench.x12_parse --child CASE FILE``) that
reports its own peak resident set (``VmHWM``; see ``bench/detect.py`` for why not
``ru_maxrss``):

* ``alignbot inspect FILE --json`` and the table output, through the real CLI, output to
  /dev/null;
* the X12 connector's inbox read: ``read_chunks`` (records counted and let go, as the bot's
  picture takes them) and ``read`` (every record held in one result, for comparison).

Run: ``python -m bench.x12_parse [--mb 50]``.
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
from datetime import datetime, timedelta
from pathlib import Path

from bench.report import Figure

ROOT = Path(__file__).resolve().parent.parent
BENCH = "reading large EDI files"
TARGET_MB = 300  # peak RSS for a 50 MB file, whatever its size
CASES = ("x12-inspect-json", "x12-inspect-table", "x12-connector-chunks", "x12-connector-read",
         "edifact-inspect-json", "edifact-inspect-table")
_ZONES = ("CT", "ET", "PT", "MT", "CS", "")
_STATUS = ("XB", "AF", "X3", "X6", "P1", "X4", "SD", "AG", "X2", "AH", "X1", "D1", "CD", "A9",
           "AM", "CP", "J1", "R1", "OA", "I1")
_REASONS = ("NS", "NS", "NS", "AO", "AI", "AG", "B1", "AQ")


def generate_x12(path: Path, megabytes: float, seed: int = 7, per_interchange: int = 25) -> int:
    """A carrier feed of about ``megabytes``; returns the number of events and ASNs in it."""
    rng = random.Random(seed)
    target = int(megabytes * 1_000_000)
    written = records = control = 0
    start = datetime(2026, 10, 25, 6, 0)
    with path.open("w", encoding="ascii", newline="") as out:
        while written < target:
            control += 1
            sets, n = [], 0
            for _ in range(per_interchange):
                n += 1
                if rng.random() < 0.08:
                    body, count = _asn(rng, control, n)
                else:
                    body, count = _status(rng, control, n, start)
                records += count
                sets.append("".join(f"{seg}~\n" for seg in
                                    [f"ST*{body[0]}*{n:04d}", *body[1:],
                                     f"SE*{len(body) + 1}*{n:04d}"]))
            text = (f"ISA*00*          *00*          *02*SWFT           *ZZ*ACMEFOODS      "
                    f"*261102*0700*U*00401*{control:09d}*0*P*>~\n"
                    f"GS*QM*SWFT*ACMEFOODS*20261102*0700*{control}*X*004010~\n"
                    + "".join(sets)
                    + f"GE*{len(sets)}*{control}~\nIEA*1*{control:09d}~\n")
            out.write(text)
            written += len(text)
    return records


def _status(rng: random.Random, control: int, n: int, start: datetime) -> tuple[list[str], int]:
    ship = f"SHP-{control:06d}{n:03d}"
    body = ["214", f"B10*PRO{control}{n}*{ship}*SWFT", f"L11*BOL-{control}-{n}*BM",
            f"L11*PO-{rng.randint(1000, 9999)}*PO",
            f"N1*SF*ACME PLANT {rng.randint(1, 9)}*93*PLANT-{rng.randint(1, 9)}",
            "N3*1 INDUSTRIAL WAY", "N4*RENO*NV*89502*US",
            f"N1*ST*ACME DC {rng.randint(1, 40)}*93*DC-{rng.randint(1, 40):02d}",
            "N3*500 DOCK ST", "N4*DENVER*CO*80216*US"]
    loops = rng.randint(1, 4)
    when = start + timedelta(minutes=rng.randint(0, 60 * 24 * 20))
    for lx in range(1, loops + 1):
        when += timedelta(minutes=rng.randint(30, 600))
        code = rng.choice(_STATUS)
        reason = rng.choice(_REASONS)
        body += [f"LX*{lx}",
                 f"AT7*{code}*{reason}***{when:%Y%m%d}*{when:%H%M}*{rng.choice(_ZONES)}",
                 "MS1*SALT LAKE CITY*UT*US", f"MS2*SWFT*{rng.randint(100000, 999999)}*TL"]
    body.append(f"AT8*G*L*{rng.randint(1000, 40000)}*{rng.randint(1, 30)}")
    return body, loops


def _asn(rng: random.Random, control: int, n: int) -> tuple[list[str], int]:
    body = ["856", f"BSN*00*ASN-{control}-{n}*20261102*0700*0001", "HL*1**S", "TD5**2*SWFT*M",
            f"REF*BM*BOL-{control}-{n}", "DTM*011*20261102*0800*CT", "DTM*017*20261104*1000*CT",
            "N1*SF*ACME PLANT 1*93*PLANT-1", "N1*ST*ACME DC 1*93*DC-01", "HL*2*1*O",
            f"PRF*PO-{rng.randint(1000, 9999)}"]
    items = rng.randint(2, 6)
    for i in range(items):
        body += [f"HL*{i + 3}*2*I", f"LIN*{i + 1}*SK*SKU-{rng.randint(10000, 99999)}",
                 f"SN1*{i + 1}*{rng.randint(1, 500)}*CA"]
    body.append(f"CTT*{items + 2}")
    return body, 1


def generate_edifact(path: Path, megabytes: float, seed: int = 7) -> int:
    """An IFTSTA feed (D.01B shape) of about ``megabytes``; returns its number of events."""
    rng = random.Random(seed)
    target = int(megabytes * 1_000_000)
    written = events = interchange = 0
    codes = ("13", "24", "31", "20", "1", "21", "23", "18", "6", "27")
    with path.open("w", encoding="ascii", newline="") as out:
        while written < target:
            interchange += 1
            messages = []
            for m in range(1, 26):
                segs = [f"UNH+{m}+IFTSTA:D:01B:UN", f"BGM+77+ST{interchange}-{m}+9",
                        "DTM+137:202611020700:203"]
                for c in range(1, rng.randint(2, 4)):
                    segs.append(f"CNI+{c}+CN{interchange:06d}{m:02d}{c}")
                    for _ in range(rng.randint(1, 3)):
                        day = 1 + rng.randint(0, 20)
                        segs += [f"STS+1+{rng.choice(codes)}",
                                 f"DTM+334:202611{day:02d}{rng.randint(0, 23):02d}00:203",
                                 "LOC+175+DEHAM:139:6"]
                        events += 1
                segs.append(f"UNT+{len(segs) + 1}+{m}")
                messages.append("".join(f"{s}'\n" for s in segs))
            text = (f"UNA:+.? 'UNB+UNOC:3+CARRIER:ZZ+ACMEFOODS:ZZ+261102:0700+IC{interchange}'\n"
                    + "".join(messages) + f"UNZ+{len(messages)}+IC{interchange}'\n")
            out.write(text)
            written += len(text)
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
    started = time.perf_counter()
    if case.startswith("x12-connector"):
        from connectors.x12 import X12Connector, X12Settings

        path = Path(file)
        connector = X12Connector("bench", X12Settings(inbox=".", archive_when="acknowledged",
                                                      max_file_bytes=10**10), path.parent)
        quarantined = 0
        if case == "x12-connector-chunks":
            records = 0
            for chunk in connector.read_chunks():
                records += len(chunk.records)
                quarantined += len(chunk.quarantined)
        else:
            result = connector.read()
            records, quarantined = len(result.records), len(result.quarantined)
        if quarantined:
            raise RuntimeError(f"{quarantined} quarantined; the generated file is wrong")
    elif case == "parse":  # the reader alone, records let go: the memory test's case
        from connectors.x12 import iter_parse_x12

        records = sum(1 for kind, _ in iter_parse_x12(Path(file), "bench") if kind == "record")
    else:
        from bot.cli import app

        args = ["inspect", file] + (["--json"] if case.endswith("json") else [])
        saved = sys.stdout, sys.stderr
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
    proc = subprocess.run([sys.executable, "-m", "bench.x12_parse", "--child", case, str(file)],
                          cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise RuntimeError(f"{case} exited {proc.returncode}: {' / '.join(tail)}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


_WHAT = {"inspect-json": "alignbot inspect --json", "inspect-table": "alignbot inspect (tables)",
         "connector-chunks": "X12 connector inbox read (read_chunks)",
         "connector-read": "X12 connector inbox read (read, every record held)"}


def run(quick: bool = False, log=print, megabytes: float | None = None) -> list[Figure]:  # type: ignore[no-untyped-def]
    size = megabytes or (10.0 if quick else 50.0)
    figures: list[Figure] = []
    with tempfile.TemporaryDirectory(prefix="alignbot-x12-") as tmp:
        # folders of their own: the connector reads every *.edi of its inbox
        (Path(tmp) / "x12").mkdir()
        (Path(tmp) / "edifact").mkdir()
        x12_path, edifact_path = Path(tmp) / "x12" / "carrier.edi", Path(tmp) / "edifact" / "a.edi"
        counts = {"x12": generate_x12(x12_path, size)}
        try:
            import connectors.edifact  # noqa: F401
        except ImportError:
            cases = [c for c in CASES if not c.startswith("edifact")]
        else:
            counts["edifact"] = generate_edifact(edifact_path, size)
            cases = list(CASES)
        for case in cases:
            kind, what = case.split("-", 1)
            path = x12_path if kind == "x12" else edifact_path
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
            log(f"   {case:22s} {mb:5.1f} MB  {records:>9,} records  {result['seconds']:6.1f} s  "
                f"{rate:>9,.0f} records/s  peak RSS {result['peak_rss_mb']:5.0f} MB")
            label = f"{kind.upper()} {mb:.0f} MB, {_WHAT[what]}"
            figures.append(Figure(BENCH, f"{label}: throughput", round(rate), "records/s",
                                  extra={"records": records, "seconds": result["seconds"]}))
            held = what == "connector-read"
            figures.append(Figure(
                BENCH, f"{label}: peak memory", round(result["peak_rss_mb"]), "MB",
                target=TARGET_MB if mb >= 40 and not held else None,
                notes="peak RSS (VmHWM) of a fresh process, imports included"
                      + ("; every record of the file held in one ReadResult" if held else "")))
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--child", nargs=2, metavar=("CASE", "FILE"), help=argparse.SUPPRESS)
    parser.add_argument("--generate", nargs=2, metavar=("FILE", "MB"), help=argparse.SUPPRESS)
    parser.add_argument("--mb", type=float, default=50.0, help="size of each generated file")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(*args.child)))
        return
    if args.generate:
        print(generate_x12(Path(args.generate[0]), float(args.generate[1])))
        return
    run(megabytes=args.mb)


if __name__ == "__main__":
    main()
