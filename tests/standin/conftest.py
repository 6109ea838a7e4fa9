from __future__ import annotations

import pytest
from slack_sdk import WebClient

from sandbox.serving import BackgroundServer
from sandbox.slack import SlackStandin
from tests.support.slack_receiver import Receiver

TOKEN = "xoxb-standin-test"
SECRET = "standin-signing-secret"


@pytest.fixture
def slack():
    with SlackStandin(
        TOKEN, SECRET,
        channels=[{"id": "C1", "name": "planning"},
                  {"id": "C2", "name": "logistics", "members": ["U2"]},
                  {"id": "C3", "name": "private-ops", "is_private": True},
                  {"id": "C4", "name": "outsiders", "is_member": False}],
        users=[{"id": "U1", "name": "alice", "email": "alice@example.com"},
               {"id": "U2", "name": "bob"}],
        usergroups={"S_PLAN": ["U1"], "S_LOG": ["U2", "U1"]},
    ) as standin:
        yield standin


@pytest.fixture
def client(slack):
    return WebClient(TOKEN, base_url=slack.api_url, timeout=5)


@pytest.fixture
def receiver(slack):
    app = Receiver()
    with BackgroundServer(app) as server:
        slack.app_url = server.url + "/slack/events"
        yield app
