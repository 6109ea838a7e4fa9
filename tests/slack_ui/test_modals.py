"""Reject and Modify modals, and a Modify submission landing in the store."""

from __future__ import annotations

from sqlmodel import select

from bot.blocks import decision_line
from bot.decisions import decide
from bot.modal_input import modify_values
from bot.modals import modify_modal, reject_modal
from canonical.model import Action
from store.db import make_engine, session_scope
from store.tables import ActionRow, RecommendationRow
from tests.slack_ui._scenarios import MONDAY, SCENARIOS
from tests.slack_ui._store import detect, rows, store_scenario
from tests.support.builders import NOW, PLANNERS, config, demand_drift, recommendation_for


def _rec_with_editable_actions(session):
    drift = demand_drift()
    rec = recommendation_for(drift).model_copy(update={"actions": [
        Action(system="logistics", operation="create_transfer",
               params={"sku": "SKU-10042", "from": "DC-ATL", "to": "DC-DAL", "qty": 400.0,
                       "carrier": "XPO", "ship_date": "2026-11-18"}),
        Action(system="planning", operation="update_forecast",
               params={"sku": "SKU-10042", "location": "DC-DAL", "period": "2026-11-23",
                       "qty": 1400}),
        Action(system="logistics", operation="request_status",
               params={"shipment_id": "SH-1"}),  # nothing editable
    ]})
    rec_id = detect(session, drift, rec, NOW)
    row = session.get(RecommendationRow, rec_id)
    actions = session.exec(select(ActionRow).where(ActionRow.recommendation_id == rec_id)
                           .order_by(ActionRow.position)).all()
    return row, list(actions)


def _submitted(view: dict, edits: dict[str, str] | None = None) -> dict:
    """view.state.values as Slack sends it when the user submits the modal."""
    edits = edits or {}
    values = {}
    for block in view["blocks"]:
        if block["type"] != "input":
            continue
        element = block["element"]
        bid = block["block_id"]
        if element["type"] == "datepicker":
            state = {"type": "datepicker",
                     "selected_date": edits.get(bid, element.get("initial_date"))}
        else:
            state = {"type": element["type"], "value": edits.get(bid, element.get("initial_value"))}
        values[bid] = {element["action_id"]: state}
    return values


def test_reject_modal_asks_for_a_required_reason(db_url):
    with session_scope(make_engine(db_url)) as s:
        rec, _ = _rec_with_editable_actions(s)
    view = reject_modal(rec)
    assert view["type"] == "modal" and view["callback_id"] == "reject_modal"
    assert view["private_metadata"] == str(rec.id)
    assert view["title"]["text"] == f"Reject #{rec.id}"
    assert view["submit"]["text"] == "Reject"
    (reason,) = [b for b in view["blocks"] if b["type"] == "input"]
    assert reason["block_id"] == "reason" and reason["optional"] is False
    assert reason["element"]["type"] == "plain_text_input"
    assert reason["element"]["action_id"] == "reason_input"
    assert reason["element"]["multiline"] is True


def test_modify_modal_has_one_prefilled_input_per_editable_param(db_url):
    with session_scope(make_engine(db_url)) as s:
        rec, actions = _rec_with_editable_actions(s)
    view = modify_modal(rec, actions)
    assert view["callback_id"] == "modify_modal" and view["private_metadata"] == str(rec.id)
    inputs = {b["block_id"]: b for b in view["blocks"] if b["type"] == "input"}
    # in the message's order and numbers: planning first
    assert list(inputs) == ["1.qty", "0.qty", "0.carrier", "0.ship_date"]
    assert inputs["0.qty"]["element"] == {"type": "number_input", "action_id": "value",
                                          "is_decimal_allowed": True, "min_value": "0",
                                          "initial_value": "400"}
    assert inputs["0.carrier"]["element"]["type"] == "plain_text_input"
    assert inputs["0.carrier"]["element"]["initial_value"] == "XPO"
    assert inputs["0.ship_date"]["element"] == {"type": "datepicker", "action_id": "value",
                                                "initial_date": "2026-11-18"}
    assert inputs["1.qty"]["element"]["initial_value"] == "1400"
    assert inputs["0.qty"]["label"]["text"] == (
        "2. Transfer 400 units of SKU-10042 from DC-ATL to DC-DAL (via XPO, ship 2026-11-18) "
        "— quantity")
    assert inputs["1.qty"]["label"]["text"].startswith("1. Update forecast of SKU-10042")
    assert all(b["optional"] is False for b in inputs.values())
    assert view["submit"]["text"] == "Approve with changes"


def test_unchanged_submission_round_trips_to_the_current_values(db_url):
    with session_scope(make_engine(db_url)) as s:
        rec, actions = _rec_with_editable_actions(s)
    view = modify_modal(rec, actions)
    assert modify_values(_submitted(view)) == {
        "0.qty": "400", "0.carrier": "XPO", "0.ship_date": "2026-11-18", "1.qty": "1400"}


def test_modified_values_are_applied_by_the_decision_engine(db_url):
    engine = make_engine(db_url)
    with session_scope(engine) as s:
        rec, actions = _rec_with_editable_actions(s)
    view = modify_modal(rec, actions)
    changes = modify_values(_submitted(view, {"0.qty": "350", "0.carrier": "Old Dominion",
                                              "0.ship_date": "2026-11-20"}))
    with session_scope(engine) as s:
        result = decide(s, int(view["private_metadata"]), PLANNERS[0], {"planning"}, "modify",
                        now=NOW, changes=changes)
        assert result.recorded and result.state == "approved"
    with session_scope(engine) as s:
        first = s.exec(select(ActionRow).where(ActionRow.recommendation_id == rec.id,
                                               ActionRow.position == 0)).one()
    assert first.params["qty"] == 350.0
    assert first.params["carrier"] == "Old Dominion"
    assert first.params["ship_date"] == "2026-11-20"


def test_modify_values_ignores_other_blocks():
    assert modify_values({"reason": {"reason_input": {"type": "plain_text_input",
                                                      "value": "x"}},
                          "0.qty": {"value": {"type": "number_input", "value": " 12 "}}}) == \
        {"0.qty": "12"}
    assert modify_values({}) == {}


def test_modify_modal_without_editable_params_explains_and_has_no_submit(db_url):
    with session_scope(make_engine(db_url)) as s:
        rec, actions = _rec_with_editable_actions(s)
    view = modify_modal(rec, [a for a in actions if a.operation == "request_status"])
    assert "submit" not in view
    assert "None of these actions has a quantity, date or carrier to change" in \
        view["blocks"][1]["text"]["text"]


def test_modals_say_the_decision_and_its_times_as_the_message_does(db_url):
    cfg = config()
    drifts, rec = SCENARIOS["late shipment"]()  # logistics decides, in Berlin
    with session_scope(make_engine(db_url)) as s:
        rec_id = store_scenario(s, drifts, rec, MONDAY, cfg)
        row, actions, _, _ = rows(s, rec_id)
    line = decision_line(row, cfg)
    assert line == "Move 1 planned receipt to the new ETA — $125 stays at risk, costs nothing"
    assert reject_modal(row, cfg)["blocks"][0]["text"]["text"] == f"*{line}*"
    view = modify_modal(row, actions, cfg)
    assert view["blocks"][0]["text"]["text"].startswith(f"*{line}*\n")
    (to_date,) = [b for b in view["blocks"] if b.get("block_id") == "0.to_date"]
    assert to_date["label"]["text"] == (
        "1. Reschedule receipt of S1 at DC-D from Wed 2 Dec 01:00 CET to Thu 3 Dec 07:00 CET "
        "(1 line, 200 units) — new date")
