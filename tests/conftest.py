"""Fixtures shared by the whole suite: databases on both backends."""

from __future__ import annotations

import itertools
import os
from datetime import UTC, datetime, timedelta

import pytest

from sandbox.systems import start_sandboxes
from store.migrate import upgrade
from tests.support.postgres import PostgresServer, start_postgres

_counter = itertools.count()
_clock_shift = None


def pytest_configure(config: pytest.Config) -> None:
    """``ALIGNBOT_TEST_CLOCK_SHIFT_HOURS=H``: run the session with the wall clock H hours ahead.

    The sandbox world is built around the current hour, so a test can pass at one hour of the
    week and fail at another; ``make test-clock`` runs the tests that read it at several hours.
    Only this process's clock moves (``time.time``, ``datetime.now``; the monotonic clock and
    timeouts stay real): tests that start the bot or PostgreSQL as their own processes do not
    belong in such a run.
    """
    global _clock_shift
    hours = os.environ.get("ALIGNBOT_TEST_CLOCK_SHIFT_HOURS")
    if hours:
        import time_machine

        _clock_shift = time_machine.travel(datetime.now(UTC) + timedelta(hours=float(hours)),
                                           tick=True)
        _clock_shift.start()


def pytest_report_header(config: pytest.Config) -> str | None:
    if _clock_shift is None:
        return None
    return f"wall clock shifted to {datetime.now(UTC):%Y-%m-%d %H:%M} UTC (ALIGNBOT_TEST_CLOCK_SHIFT_HOURS)"


def pytest_unconfigure(config: pytest.Config) -> None:
    if _clock_shift is not None:
        _clock_shift.stop()


@pytest.fixture(scope="session")
def postgres_server() -> PostgresServer:
    server = start_postgres()
    if server is None:
        if os.environ.get("ALIGNBOT_REQUIRE_POSTGRES") == "1":
            pytest.fail("PostgreSQL is required (ALIGNBOT_REQUIRE_POSTGRES=1) but initdb is "
                        "missing: apt-get install postgresql")
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql) — skipping")
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_db_url(request, tmp_path) -> str:
    """A database URL on each backend, empty (not migrated)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'alignbot.db'}"
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.create_database(f"test_{os.getpid()}_{next(_counter)}")


@pytest.fixture
def db_url(empty_db_url) -> str:
    """A migrated database URL on each backend."""
    upgrade(empty_db_url)
    return empty_db_url


@pytest.fixture
def sandboxes():
    """The sandbox planning system and TMS (seed 7) on real loopback ports."""
    planning, tms = start_sandboxes(seed=7)
    yield planning, tms
    planning.stop()
    tms.stop()
