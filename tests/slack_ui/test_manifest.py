"""manifest.yml has the shape of Slack's app manifest schema and asks for exactly our scopes."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

MANIFEST = Path(__file__).resolve().parents[2] / "manifest.yml"
PLACEHOLDER = "https://alignbot.example.com/slack/events"

# Bot token scopes Slack publishes (a subset large enough to catch typos such as "chat.write").
KNOWN_BOT_SCOPES = {
    "app_mentions:read", "channels:history", "channels:join", "channels:manage", "channels:read",
    "chat:write", "chat:write.customize", "chat:write.public", "commands", "emoji:read",
    "files:read", "files:write", "groups:history", "groups:read", "groups:write", "im:history",
    "im:read", "im:write", "links:read", "links:write", "mpim:history", "mpim:read",
    "mpim:write", "pins:read", "pins:write", "reactions:read", "reactions:write",
    "reminders:read", "reminders:write", "team:read", "usergroups:read", "usergroups:write",
    "users.profile:read", "users:read", "users:read.email", "users:write",
    "workflow.steps:execute",
}
# What alignbot calls: chat.postMessage/update/postEphemeral, /drift, usergroups.users.list,
# files upload for the digest chart. Views and app_home_opened need no scope.
EXPECTED_SCOPES = {"chat:write", "commands", "usergroups:read", "files:write", "channels:history",
                   "groups:history"}
KNOWN_BOT_EVENTS = {"app_home_opened", "app_mention", "message.channels", "message.im",
                    "member_joined_channel", "team_join", "reaction_added"}


def _load() -> dict:
    return yaml.safe_load(MANIFEST.read_text(encoding="utf-8"))


def test_top_level_shape():
    m = _load()
    assert set(m) <= {"_metadata", "display_information", "features", "oauth_config",
                      "settings", "functions", "workflows", "outgoing_domains"}
    assert {"display_information", "features", "oauth_config", "settings"} <= set(m)
    assert m["_metadata"]["major_version"] in (1, 2)


def test_display_information_within_slack_limits():
    info = _load()["display_information"]
    assert isinstance(info["name"], str) and 1 <= len(info["name"]) <= 35
    assert 1 <= len(info["description"]) <= 140
    assert 175 <= len(info["long_description"]) <= 4000
    assert re.fullmatch(r"#[0-9a-fA-F]{6}", info["background_color"])


def test_features_home_tab_bot_user_and_drift_command():
    features = _load()["features"]
    assert features["app_home"]["home_tab_enabled"] is True
    assert features["app_home"]["messages_tab_enabled"] is False
    bot = features["bot_user"]
    assert isinstance(bot["display_name"], str) and 1 <= len(bot["display_name"]) <= 80
    assert isinstance(bot["always_online"], bool)
    (drift,) = features["slash_commands"]
    assert drift["command"] == "/drift" and len(drift["command"]) <= 32
    assert drift["url"] == PLACEHOLDER
    assert 1 <= len(drift["description"]) <= 2000
    assert isinstance(drift["usage_hint"], str) and len(drift["usage_hint"]) <= 1000
    assert "mine" in drift["usage_hint"] and "help" in drift["usage_hint"]
    assert drift["should_escape"] is False


def test_scopes_are_exactly_what_the_bot_uses():
    scopes = _load()["oauth_config"]["scopes"]
    assert set(scopes) == {"bot"}  # no user token
    bot = scopes["bot"]
    assert len(bot) == len(set(bot))
    assert set(bot) <= KNOWN_BOT_SCOPES
    assert set(bot) == EXPECTED_SCOPES


def test_settings_events_interactivity_and_flags():
    settings = _load()["settings"]
    events = settings["event_subscriptions"]
    assert events["request_url"] == PLACEHOLDER
    assert events["bot_events"] == ["app_home_opened"]
    assert set(events["bot_events"]) <= KNOWN_BOT_EVENTS
    assert settings["interactivity"] == {"is_enabled": True, "request_url": PLACEHOLDER}
    assert settings["org_deploy_enabled"] is False
    assert settings["socket_mode_enabled"] is False
    assert settings["token_rotation_enabled"] is False


def test_every_url_is_the_placeholder_and_the_file_says_to_replace_it():
    raw = MANIFEST.read_text(encoding="utf-8")
    urls = re.findall(r"https?://\S+", "\n".join(
        line.split("#", 1)[0] for line in raw.splitlines()))  # URLs in values, not comments
    assert urls and set(urls) == {PLACEHOLDER}
    assert raw.count("REPLACE with your alignbot address") == 3
    assert "replace every https://alignbot.example.com" in raw
