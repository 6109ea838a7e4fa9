"""Who owns a recommendation: routing rules from config, evaluated in order.

Routing is data, as in Alertmanager: the first matching rule wins unless it says ``continue``,
in which case later matches add their teams and approvals too. No match → the default team.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from bot.config import AlignbotConfig, RoutingRule
from canonical.model import Recommendation, Severity

_FACT_KEYS = {
    "location": ("location", "destination", "origin", "site", "from", "to"),
    "lane": ("lane",),
    "carrier": ("carrier",),
    "sku_class": ("sku_class",),
}


@dataclass(frozen=True)
class Route:
    teams: tuple[str, ...]
    approvals: dict[str, int]  # team -> approvers needed
    requester_may_approve: bool
    deadline: timedelta
    rules: tuple[str, ...] = field(default=())  # names of the rules that matched

    @property
    def rule(self) -> str:
        return " + ".join(self.rules) or "default"


def route_facts(rec: Recommendation) -> dict[str, set[str]]:
    """The values a rule can match on, gathered from the cause and every affected item."""
    facts: dict[str, set[str]] = {name: set() for name in _FACT_KEYS}
    facts["kind"] = {str(rec.kind)}
    for item in [rec.cause, *rec.affected]:
        for name, keys in _FACT_KEYS.items():
            for key in keys:
                value = item.get(key)
                if value not in (None, ""):
                    facts[name].add(str(value))
    return facts


def _matches(rule: RoutingRule, rec: Recommendation, facts: dict[str, set[str]],
             regions: dict[str, list[str]]) -> bool:
    m = rule.match
    if m.kind and str(rec.kind) not in m.kind:
        return False
    for name in ("location", "lane", "carrier", "sku_class"):
        wanted = getattr(m, name)
        if wanted and not facts[name] & set(wanted):
            return False
    if m.region:
        in_region = {loc for region in m.region for loc in regions.get(region, [])}
        if not facts["location"] & in_region:
            return False
    if m.min_severity and Severity(rec.severity).rank < Severity(m.min_severity).rank:
        return False
    if m.min_value is not None and rec.impact_if_ignored.value_at_risk < m.min_value:
        return False
    return True


def route(rec: Recommendation, config: AlignbotConfig) -> Route:
    routing = config.routing
    facts = route_facts(rec)
    teams: list[str] = []
    approvals: dict[str, int] = {}
    may_approve = True
    deadline: timedelta | None = None
    matched: list[str] = []
    for rule in routing.rules:
        if not _matches(rule, rec, facts, routing.regions):
            continue
        matched.append(rule.name)
        for team in rule.teams:
            if team not in teams:
                teams.append(team)
        needed = rule.approvals or {rule.teams[0]: 1}
        for team, count in needed.items():
            approvals[team] = max(approvals.get(team, 0), count)
        may_approve = may_approve and rule.requester_may_approve
        deadline = rule.deadline if deadline is None else min(deadline, rule.deadline)
        if not rule.continue_:
            break
    if not matched:
        return Route(teams=(routing.default_team,), approvals={routing.default_team: 1},
                     requester_may_approve=True, deadline=routing.default_deadline)
    return Route(teams=tuple(teams), approvals=approvals, requester_may_approve=may_approve,
                 deadline=deadline or routing.default_deadline, rules=tuple(matched))
