"""Routing rules: first match wins, `continue` adds owners, no match goes to the default."""

from bot.routing import route
from tests.support.builders import config, demand_drift, recommendation_for


def test_small_demand_change_goes_to_the_default_team_with_one_approval():
    rec = recommendation_for(demand_drift(planned=1000, latest=1100))  # 2,500 at risk
    owner = route(rec, config())
    assert owner.teams == ("planning",)
    assert owner.approvals == {"planning": 1}
    assert owner.rule == "default"


def test_large_demand_change_needs_planning_and_logistics():
    rec = recommendation_for(demand_drift(planned=1000, latest=4000))  # 75,000 at risk
    owner = route(rec, config())
    assert owner.teams == ("planning", "logistics")
    assert owner.approvals == {"planning": 1, "logistics": 1}
    assert owner.deadline.total_seconds() == 2 * 3600


def test_first_match_wins_unless_continue():
    rules = [
        {"name": "south", "match": {"region": ["south"]}, "teams": ["logistics"],
         "deadline": "3h", "continue": True},
        {"name": "everything", "teams": ["planning"], "approvals": {"planning": 2},
         "requester_may_approve": False, "deadline": "1h"},
        {"name": "never reached", "teams": ["logistics"], "approvals": {"logistics": 3}},
    ]
    cfg = config(routing={"default_team": "planning", "regions": {"south": ["DC-DAL"]},
                          "rules": rules})
    owner = route(recommendation_for(demand_drift(location="DC-DAL")), cfg)
    assert owner.teams == ("logistics", "planning")
    assert owner.approvals == {"logistics": 1, "planning": 2}
    assert owner.requester_may_approve is False
    assert owner.deadline.total_seconds() == 3600  # the strictest deadline of the matches
    assert owner.rules == ("south", "everything")

    elsewhere = route(recommendation_for(demand_drift(location="DC-SEA")), cfg)
    assert elsewhere.teams == ("planning",) and elsewhere.rules == ("everything",)
