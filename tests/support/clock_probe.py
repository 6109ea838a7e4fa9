"""Run by ``tests/test_clock_shift.py`` in a pytest session of its own; the suite does not
collect it (no ``test_`` prefix)."""

import os
import time
from datetime import UTC, datetime


def test_the_wall_clock_moved_and_the_monotonic_clock_did_not():
    expected = float(os.environ["CLOCK_PROBE_WALL"])
    assert abs(datetime.now(UTC).timestamp() - expected) < 300
    assert abs(time.time() - expected) < 300
    assert 0 <= time.monotonic() - float(os.environ["CLOCK_PROBE_MONOTONIC"]) < 300
