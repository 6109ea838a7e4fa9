"""Run the executor in its own process, for the kill -9 tests.

``python -m tests.support.executor_proc DB_URL PLANNING_URL TMS_URL [--die-after-call]``
With ``--die-after-call`` the process SIGKILLs itself right after the first action reached
its system and before the executor could write down the result: the worst moment to crash.
"""

from __future__ import annotations

import os
import signal
import sys
from datetime import timedelta

from bot.executor import Executor, RetryPolicy
from connectors.registry import build_connector
from store.db import make_engine


class DieAfterCall:
    def __init__(self, inner):
        self.inner, self.name = inner, inner.name

    def execute(self, action):
        result = self.inner.execute(action)
        os.kill(os.getpid(), signal.SIGKILL)
        return result


def main() -> None:
    db_url, planning_url, tms_url, *flags = sys.argv[1:]
    connectors = {
        "plan": build_connector("plan", "rest", {"base_url": planning_url}, {}),
        "tms": build_connector("tms", "rest", {"base_url": tms_url}, {}),
    }
    if "--die-after-call" in flags:
        connectors = {name: DieAfterCall(c) for name, c in connectors.items()}
    executor = Executor(make_engine(db_url), connectors, worker=f"proc-{os.getpid()}",
                        lease=timedelta(seconds=1), retry=RetryPolicy(max_attempts=3))
    while executor.drain():
        pass


if __name__ == "__main__":
    main()
