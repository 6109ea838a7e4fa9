"""Fixtures shared by the whole suite: databases on both backends."""

from __future__ import annotations

import itertools
import os

import pytest

from connectors.sandbox import start_sandboxes
from store.migrate import upgrade
from tests.support.postgres import PostgresServer, start_postgres

_counter = itertools.count()


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
