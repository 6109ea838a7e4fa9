"""SQLite serves one replica: a second bot on the same database file is refused, clearly."""

from __future__ import annotations

import pytest

from bot.runtime import Runtime, StartupError
from store.migrate import upgrade
from tests.support.builders import config


def test_a_second_replica_on_the_same_sqlite_file_is_refused(tmp_path):
    url = f"sqlite:///{tmp_path / 'alignbot.db'}"
    upgrade(url)
    env = {"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "s", "DATABASE_URL": url,
           "SLACK_API_URL": "http://127.0.0.1:9/api/"}
    first = Runtime(config(), environ=env)
    with pytest.raises(StartupError, match="another alignbot is already running") as refused:
        Runtime(config(), environ=env)
    assert "use PostgreSQL (set DATABASE_URL)" in str(refused.value)
    first.stop()  # the first one stops: the file is free again
    Runtime(config(), environ=env).stop()
