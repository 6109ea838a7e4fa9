"""What the Slack sync's crash tests start from: a migrated SQLite store and a Slack stand-in
without rate limits whose channels are the configured teams', every planner and coordinator in
each."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from slack_sdk import WebClient
from sqlalchemy.engine import Engine

from bot.config import AlignbotConfig
from bot.slack_client import make_web_client
from sandbox.slack import RateLimits, SlackStandin
from store.db import make_engine
from store.migrate import upgrade
from tests.support.builders import COORDINATORS, PLANNERS, config


class Crash(BaseException):
    """The process dies here (SIGKILL runs no except clause; BaseException skips them too)."""


class DiesAfterPosting:
    """A Web API client that posts a message, then the process dies before recording it;
    ``only`` picks which posts are fatal (by their arguments), every one by default."""

    def __init__(self, client: WebClient, only: Callable[[dict], bool] = lambda _kw: True):
        self.client = client
        self.only = only

    def chat_postMessage(self, **kw: Any) -> Any:  # noqa: N802 — slack_sdk's name
        reply = self.client.chat_postMessage(**kw)
        if self.only(kw):
            raise Crash
        return reply

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)


@contextmanager
def store_and_slack(tmp_path: Path, token: str,
                    secret: str) -> Iterator[tuple[Engine, AlignbotConfig, SlackStandin, WebClient]]:
    url = f"sqlite:///{tmp_path / 'alignbot.db'}"
    upgrade(url)
    engine = make_engine(url)
    cfg = config()
    members = PLANNERS + COORDINATORS
    slack = SlackStandin(token, secret,
                         channels=[{"id": t.channel, "name": t.name, "members": members}
                                   for t in cfg.teams],
                         users=[{"id": u, "name": u.lower()} for u in members],
                         rate_limits=RateLimits.unlimited()).start()
    try:
        yield engine, cfg, slack, make_web_client(token, slack.api_url, timeout=5)
    finally:
        slack.stop()
        engine.dispose()
