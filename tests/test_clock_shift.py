"""``ALIGNBOT_TEST_CLOCK_SHIFT_HOURS`` really moves a test session's clock (``make test-clock``
would otherwise pass at the real hour only, proving nothing)."""

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_a_session_runs_hours_ahead_when_asked():
    hours = 57.5
    env = {**os.environ, "ALIGNBOT_TEST_CLOCK_SHIFT_HOURS": str(hours),
           "CLOCK_PROBE_WALL": str(time.time() + hours * 3600),
           "CLOCK_PROBE_MONOTONIC": str(time.monotonic())}
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          "tests/support/clock_probe.py"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr


def test_the_probe_fails_at_the_real_hour():
    env = {**os.environ, "CLOCK_PROBE_WALL": str(time.time() + 57.5 * 3600),
           "CLOCK_PROBE_MONOTONIC": str(time.monotonic())}
    env.pop("ALIGNBOT_TEST_CLOCK_SHIFT_HOURS", None)
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          "tests/support/clock_probe.py"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 1, run.stdout + run.stderr  # the probe can fail: it is no tautology
