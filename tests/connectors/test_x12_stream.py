"""X12 read as a stream: the same answers in chunks of any size, from files, and peak memory
that does not grow with the file (measured in fresh processes, VmHWM, as bench/detect.py)."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.x12_parse import generate_x12
from connectors.x12 import X12Connector, X12Settings, iter_parse_x12, parse_x12
from connectors.x12_syntax import EnvelopeWarning, Interchange, TransactionSet, iter_x12

SHARED = Path("/work/shared/fixtures/x12")
HERE = Path(__file__).parent / "fixtures" / "x12"
ROOT = Path(__file__).resolve().parents[2]


def _feed() -> str:
    """Interchanges with different separators back to back, and a damaged one among them."""
    batch = (SHARED / "214_status_batch.edi").read_text()
    piped = batch.replace("*", "|").replace("~", "\n").replace(">", "^")
    return (batch + "\n" + (SHARED / "214_damaged.edi").read_text() + piped
            + (HERE / "214_carrier_005010_newlines.edi").read_text()
            + (HERE / "856_item_levels.edi").read_text())


def _summary(items: list) -> list:
    out = []
    for item in items:
        if isinstance(item, TransactionSet):
            out.append(("tx", item.position, item.set_id, len(item.segments), item.errors))
        elif isinstance(item, Interchange):
            out.append(("isa", item.control, item.separators))
        else:
            assert isinstance(item, EnvelopeWarning)
            out.append(("warning", item.position, item.reason))
    return out


@pytest.mark.parametrize("chunk", [1, 7, 105, 106, 4096])
def test_any_chunk_size_reads_the_same(chunk: int) -> None:
    text = _feed()
    whole = _summary(list(iter_x12(text, chunk_chars=1 << 20)))
    assert _summary(list(iter_x12(text, chunk_chars=chunk))) == whole
    # and from a binary file, decoded a chunk at a time
    assert _summary(list(iter_x12(io.BytesIO(text.encode()), chunk_chars=chunk))) == whole
    assert sum(1 for item in whole if item[0] == "isa") == 5


def test_a_file_streams_to_what_parse_x12_reads(tmp_path: Path) -> None:
    path = tmp_path / "feed.edi"
    path.write_text(_feed())
    whole = parse_x12(path.read_bytes(), "feed.edi", default_zone="America/Chicago")
    streamed = list(iter_parse_x12(path, "feed.edi", default_zone="America/Chicago"))
    assert [item for kind, item in streamed if kind == "record"] == whole.records
    assert [item for kind, item in streamed if kind == "quarantined"] == whole.quarantined
    assert len(whole.records) == 5 + 1 + 5 + 8 + 1 and len(whole.quarantined) == 2


def test_latin1_bytes_in_a_stream_are_read_not_refused() -> None:
    text = (SHARED / "214_status_batch.edi").read_text().replace("CHICAGO*IL", "MÜNCHEN*BY")
    data = text.encode("latin-1")
    (event, *_) = [kind_item[1] for kind_item in iter_parse_x12(io.BytesIO(data), "f")
                   if kind_item[0] == "record"]
    assert event.location == "MÜNCHEN, BY, US"


def test_the_connector_hands_a_large_file_over_in_chunks(tmp_path: Path) -> None:
    (tmp_path / "inbox").mkdir()
    expected = generate_x12(tmp_path / "inbox" / "feed.edi", 1.0)
    connector = X12Connector("x12", X12Settings(), tmp_path)
    chunks = list(connector.read_chunks())
    assert sum(len(c.records) for c in chunks) == expected
    assert all(len(c.records) <= 5_000 for c in chunks) and len(chunks) > 2
    assert not any(c.quarantined for c in chunks)
    assert chunks[-1].cursor and all(c.cursor is None for c in chunks[:-1])
    again = connector.read(chunks[-1].cursor)  # acknowledged: archived, nothing new
    assert again.records == [] and (tmp_path / "archive" / "feed.edi").exists()


def _peak(case: str, path: Path) -> dict:
    proc = subprocess.run([sys.executable, "-m", "bench.x12_parse", "--child", case, str(path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.timeout(600)
@pytest.mark.parametrize("case", ["parse", "x12-connector-chunks"])
def test_peak_memory_does_not_grow_with_the_file(tmp_path: Path, case: str) -> None:
    """2 MB and 8 MB of X12: 4x the file, the same peak within a few MB. The reader before
    this held every segment of the file, ~44 MB of memory per MB of X12 (2.2 GB for 50)."""
    peaks = {}
    for mb in (2, 8):
        (tmp_path / str(mb)).mkdir()
        path = tmp_path / str(mb) / "feed.edi"
        records = generate_x12(path, mb)
        result = _peak(case, path)
        assert result["records"] == records
        peaks[mb] = result["peak_rss_mb"]
    growth = peaks[8] - peaks[2]
    assert growth < 6, f"peak grew {growth:.1f} MB for 6 MB more X12 ({peaks})"
