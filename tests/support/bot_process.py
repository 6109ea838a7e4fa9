"""What a test needs to run real `alignbot run` processes: a Slack stand-in, a config file and
the environment, set up the way an operator would (used by the replica and chaos tests)."""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from bot.config import AlignbotConfig
from bot.demo import DEMO_GROUPS, DEMO_USERS
from sandbox.slack import RateLimits, SlackStandin


def prepare_bot_processes(config: AlignbotConfig, database_url: str, tmp_path: Path, *,
                          token: str, secret: str) -> tuple[SlackStandin, Path, dict[str, str]]:
    """(started stand-in without rate limits, alignbot.yml path, environment for the bot)."""
    members = [u["id"] for u in DEMO_USERS]
    slack = SlackStandin(token, secret, users=DEMO_USERS, usergroups=DEMO_GROUPS,
                         channels=[{"id": t.channel, "name": t.name, "members": members}
                                   for t in config.teams],
                         rate_limits=RateLimits.unlimited()).start()
    config_path = tmp_path / "alignbot.yml"
    config_path.write_text(yaml.safe_dump(config.model_dump(mode="json", by_alias=True)))
    env = {**os.environ, "SLACK_BOT_TOKEN": token, "SLACK_SIGNING_SECRET": secret,
           "SLACK_API_URL": slack.api_url, "DATABASE_URL": database_url,
           "TMS_WEBHOOK_SECRET": "whsec"}
    env.pop("SLACK_APP_TOKEN", None)
    return slack, config_path, env
