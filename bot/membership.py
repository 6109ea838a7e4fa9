"""Who belongs to which team: configured member ids plus Slack user group membership.

``usergroups.users.list`` is a Tier 2 method (about 20 calls a minute), so group members are
cached for a short TTL; a failed lookup falls back to the configured members only.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.config import AlignbotConfig

log = logging.getLogger(__name__)


class TeamDirectory:
    def __init__(self, config: AlignbotConfig, client: WebClient | None, *, ttl: float = 60.0,
                 clock: Callable[[], float] = time.monotonic):
        self.config = config
        self.client = client
        self.ttl = ttl
        self.clock = clock
        self._groups: dict[str, tuple[float, frozenset[str]]] = {}
        self._lock = threading.Lock()

    def teams_of(self, user_id: str) -> set[str]:
        teams = set()
        for team in self.config.teams:
            if user_id in team.members:
                teams.add(team.name)
            elif team.usergroup_id and user_id in self._group_members(team.usergroup_id):
                teams.add(team.name)
        return teams

    def _group_members(self, group_id: str) -> frozenset[str]:
        now = self.clock()
        with self._lock:
            cached = self._groups.get(group_id)
            if cached and now - cached[0] < self.ttl:
                return cached[1]
        if self.client is None:
            return frozenset()
        try:
            members = frozenset(self.client.usergroups_users_list(usergroup=group_id)["users"])
        except SlackApiError as exc:
            log.warning("usergroups.users.list %s failed: %s", group_id, exc.response["error"])
            return cached[1] if cached else frozenset()
        with self._lock:
            self._groups[group_id] = (now, members)
        return members
