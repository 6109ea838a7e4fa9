"""What the Reject and Modify modals accept, checked from the submission alone.

Slack shows a modal's input errors only in the answer to its submission, and that answer is
the ingress's ack, sent before any worker sees the request: so these checks need nothing but
the submitted payload. The worker applies the same rules again when it records the decision.
"""

from __future__ import annotations

from datetime import date
from typing import Any

REJECT, MODIFY = "rec_reject", "rec_modify"  # the buttons that open the modals
REJECT_CALLBACK = "reject_modal"
MODIFY_CALLBACK = "modify_modal"
REASON_BLOCK, REASON_ACTION = "reason", "reason_input"
VALUE_ACTION = "value"
MAX_REASON = 2000
NO_REASON = "Say why, so the team learns."

# What a person may change in the Modify modal, and as what kind of value. The names are the
# ones detectors put in action params (to_qty, to_date ...) plus older aliases.
EDITABLE_PARAMS: dict[str, type] = {
    **dict.fromkeys(("qty", "to_qty", "quantity", "units", "reduce_by", "to_capacity"), float),
    **dict.fromkeys(("date", "new_date", "to_date", "ship_date", "arrival_date", "need_by",
                     "target_arrival"), date),
    **dict.fromkeys(("carrier", "to_carrier"), str),
}


def coerce(param: str, raw: Any) -> Any:
    """``raw`` as the value ``param`` takes; ValueError saying what was expected."""
    kind = EDITABLE_PARAMS[param]
    try:
        if kind is float:
            value = float(raw)
            if not value >= 0:  # also refuses NaN
                raise ValueError
            return value
        if kind is date:
            return date.fromisoformat(str(raw)).isoformat()
        text = str(raw).strip()
        if not text:
            raise ValueError
        return text
    except ValueError:
        wanted = {float: "a number ≥ 0", date: "a date like 2026-11-30", str: "a name"}[kind]
        raise ValueError(f"{param} must be {wanted}, not {raw!r}") from None


def modify_values(view_state_values: dict) -> dict[str, str]:
    """``view.state.values`` of a Modify submission → ``{"<position>.<param>": value}``."""
    out: dict[str, str] = {}
    for block_id, elements in (view_state_values or {}).items():
        position, _, param = block_id.partition(".")
        if not position.isdigit() or param not in EDITABLE_PARAMS:
            continue  # not one of our inputs
        state = (elements or {}).get(VALUE_ACTION) or {}
        value = state.get("selected_date") if state.get("type") == "datepicker" \
            else state.get("value")
        if value is None:
            value = state.get("selected_date")
        if value is not None and str(value).strip() != "":
            out[block_id] = str(value).strip()
    return out


def opens_modal(payload: dict) -> bool:
    """Whether a click opens a modal: Slack's trigger for it expires 3 s after the click, so
    such clicks are handled before the others waiting."""
    return payload.get("type") == "block_actions" and any(
        isinstance(a, dict) and a.get("action_id") in (REJECT, MODIFY)
        for a in payload.get("actions") or [])


def reject_reason(view: dict) -> str:
    values = (view.get("state") or {}).get("values") or {}
    return str(((values.get(REASON_BLOCK) or {}).get(REASON_ACTION) or {}).get("value") or "")


def submission_errors(payload: dict) -> dict[str, str]:
    """Input errors of a Reject or Modify submission, by block id (empty: none)."""
    if payload.get("type") != "view_submission" or not isinstance(payload.get("view"), dict):
        return {}
    view = payload["view"]
    if view.get("callback_id") == REJECT_CALLBACK:
        return {} if reject_reason(view).strip() else {REASON_BLOCK: NO_REASON}
    if view.get("callback_id") != MODIFY_CALLBACK:
        return {}
    errors = {}
    for block_id, raw in modify_values((view.get("state") or {}).get("values") or {}).items():
        try:
            coerce(block_id.partition(".")[2], raw)
        except ValueError as exc:
            errors[block_id] = str(exc)
    return errors
