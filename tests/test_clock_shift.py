"""``ALIGNBOT_TEST_CLOCK_SHIFT_HOURS`` really moves a test session's clock (``make test-clock``
would otherwise pass at the real hour only, proving nothing)."""

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
AHEAD_HOURS = 57.5


def _probe(shift_hours: float | None) -> subprocess.CompletedProcess:
    """Run the clock probe, which expects the wall clock ``AHEAD_HOURS`` ahead, in a session of
    its own; with ``shift_hours`` set, that session is asked to move its clock so far."""
    env = {**os.environ, "CLOCK_PROBE_WALL": str(time.time() + AHEAD_HOURS * 3600),
           "CLOCK_PROBE_MONOTONIC": str(time.monotonic())}
    env.pop("ALIGNBOT_TEST_CLOCK_SHIFT_HOURS", None)
    if shift_hours is not None:
        env["ALIGNBOT_TEST_CLOCK_SHIFT_HOURS"] = str(shift_hours)
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "tests/support/clock_probe.py"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def test_a_session_runs_hours_ahead_when_asked():
    run = _probe(AHEAD_HOURS)
    assert run.returncode == 0, run.stdout + run.stderr


def test_the_probe_fails_at_the_real_hour():
    run = _probe(None)
    assert run.returncode == 1, run.stdout + run.stderr  # the probe can fail: it is no tautology
