"""Once warm, what the bot keeps is frozen out of the garbage collector's full scans."""

from __future__ import annotations

import gc
from datetime import timedelta

from bot.runtime import Runtime
from store.migrate import upgrade
from tests.support.builders import config
from tests.support.waiting import wait_until


def test_objects_the_bot_built_after_start_are_frozen_once_it_is_warm(tmp_path):
    url = f"sqlite:///{tmp_path / 'alignbot.db'}"
    upgrade(url)
    env = {"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "s", "DATABASE_URL": url,
           "SLACK_API_URL": "http://127.0.0.1:9/api/"}
    runtime = Runtime(config(), environ=env).start()
    try:
        kept = [{"n": n} for n in range(2_000)]  # say, caches the first requests filled
        frozen_before = gc.get_freeze_count()
        runtime.freeze_when_warm(after=timedelta(0))

        def frozen_by_a_full_collection() -> bool:
            gc.collect()  # the interpreter makes these anyway; here, without waiting for one
            return gc.get_freeze_count() >= frozen_before + len(kept)

        wait_until(frozen_by_a_full_collection, 10, "the warm objects were not frozen")
        watched = {id(o) for o in gc.get_objects()}  # what full collections walk
        assert not any(id(o) in watched for o in kept)
    finally:
        runtime.stop()
        gc.unfreeze()
