"""The Reject and Modify modals, and reading the Modify submission back.

Block ids of the Modify inputs are ``"<position>.<param>"`` so a submission maps straight onto
``bot.decisions.apply_modifications``; the recommendation id travels in ``private_metadata``.
Given the configuration, a modal says the decision as the message does (its money in the
configured currency) and numbers the actions and shows their times as the message does, so the
form and the message it came from never disagree.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, tzinfo
from typing import Any

from slack_sdk.models.blocks import (
    Block,
    ContextBlock,
    DatePickerElement,
    InputBlock,
    MarkdownTextObject,
    NumberInputElement,
    PlainTextInputElement,
    PlainTextObject,
    SectionBlock,
)
from slack_sdk.models.views import View

from bot._format import MAX_SECTION_TEXT, MAX_VIEW_BLOCKS, MAX_VIEW_TITLE, clip, num, rec_zone
from bot.blocks import decision_line, describe_action, numbered
from bot.config import AlignbotConfig
from bot.modal_input import (
    EDITABLE_PARAMS,
    MAX_REASON,
    MODIFY_CALLBACK,
    REASON_ACTION,
    REASON_BLOCK,
    REJECT_CALLBACK,
    VALUE_ACTION,
)
from store.tables import ActionRow, RecommendationRow

NUMBER_PARAMS = tuple(p for p, kind in EDITABLE_PARAMS.items() if kind is float)
DATE_PARAMS = tuple(p for p, kind in EDITABLE_PARAMS.items() if kind is date)
TEXT_PARAMS = tuple(p for p, kind in EDITABLE_PARAMS.items() if kind is str)
EDITABLE = tuple(EDITABLE_PARAMS)
_PARAM_LABEL = {"qty": "quantity", "to_qty": "new quantity", "quantity": "quantity",
                "units": "units", "reduce_by": "reduce by", "to_capacity": "new capacity",
                "date": "date", "new_date": "new date", "to_date": "new date",
                "ship_date": "ship date", "arrival_date": "arrival date", "need_by": "need by",
                "target_arrival": "target arrival", "carrier": "carrier",
                "to_carrier": "new carrier"}


def _said(rec: RecommendationRow, config: AlignbotConfig | None) -> str:
    return decision_line(rec, config) if config is not None else rec.summary


def reject_modal(rec: RecommendationRow, config: AlignbotConfig | None = None) -> dict:
    """Asks for the reason a rejection needs (it goes to the thread and the audit log)."""
    view = View(
        type="modal", callback_id=REJECT_CALLBACK, private_metadata=str(rec.id),
        title=_title(f"Reject #{rec.id}"),
        submit=PlainTextObject(text="Reject"), close=PlainTextObject(text="Cancel"),
        blocks=[
            SectionBlock(text=MarkdownTextObject(text=clip(f"*{_said(rec, config)}*",
                                                           MAX_SECTION_TEXT))),
            InputBlock(
                block_id=REASON_BLOCK, optional=False,
                label=PlainTextObject(text="Why reject it?"),
                hint=PlainTextObject(text="Shown in the thread so the team sees why; nothing is "
                                          "changed in either system."),
                element=PlainTextInputElement(
                    action_id=REASON_ACTION, multiline=True, min_length=1, max_length=MAX_REASON,
                    placeholder=PlainTextObject(text="e.g. the customer order was cancelled")),
            ),
        ],
    )
    return view.to_dict()


def modify_modal(rec: RecommendationRow, actions: Sequence[ActionRow],
                 config: AlignbotConfig | None = None) -> dict:
    """One input per editable parameter of each action, pre-filled with the current value, in
    the order and with the numbers the message shows."""
    zone = rec_zone(config, rec.teams) if config is not None else UTC
    inputs: list[Block] = []
    for n, action in numbered(actions):
        for param in (p for p in action.params if p in EDITABLE):
            inputs.append(_input(n, action, param, action.params[param], zone))
    blocks: list[Block] = [SectionBlock(text=MarkdownTextObject(text=clip(
        f"*{_said(rec, config)}*\nChange what you need, then *Approve with changes*. "
        "Your approval counts once the changes are valid.", MAX_SECTION_TEXT)))]
    if not inputs:
        blocks.append(SectionBlock(text=MarkdownTextObject(
            text="None of these actions has a quantity, date or carrier to change. "
                 "Approve or reject the recommendation as it is.")))
        return View(type="modal", callback_id=MODIFY_CALLBACK, private_metadata=str(rec.id),
                    title=_title(f"Modify #{rec.id}"), close=PlainTextObject(text="Close"),
                    blocks=blocks).to_dict()
    room = MAX_VIEW_BLOCKS - len(blocks)
    if len(inputs) > room:
        left_out = len(inputs) - (room - 1)
        inputs = inputs[: room - 1] + [ContextBlock(elements=[MarkdownTextObject(
            text=f"_+{left_out} more values are not editable here; reject and ask for a new "
                 "recommendation if they need changing._")])]
    blocks.extend(inputs)
    return View(type="modal", callback_id=MODIFY_CALLBACK, private_metadata=str(rec.id),
                title=_title(f"Modify #{rec.id}"),
                submit=PlainTextObject(text="Approve with changes"),
                close=PlainTextObject(text="Cancel"), blocks=blocks).to_dict()


def _title(text: str) -> PlainTextObject:
    return PlainTextObject(text=clip(text, MAX_VIEW_TITLE))


def _input(n: int, action: ActionRow, param: str, current: Any, zone: tzinfo) -> InputBlock:
    label = clip(f"{n}. {describe_action(action.operation, action.params, zone)} — "
                 f"{_PARAM_LABEL[param]}", 2000)
    block_id = f"{action.position}.{param}"
    if param in NUMBER_PARAMS:
        element = NumberInputElement(action_id=VALUE_ACTION, is_decimal_allowed=True,
                                     min_value="0", initial_value=_number(current))
        hint = f"Now {num(current)}." if _number(current) is not None else None
    elif param in DATE_PARAMS:
        element = DatePickerElement(action_id=VALUE_ACTION, initial_date=_iso_date(current))
        hint = None
    else:
        element = PlainTextInputElement(action_id=VALUE_ACTION, min_length=1, max_length=200,
                                        initial_value=str(current) if current else None)
        hint = None
    return InputBlock(block_id=block_id, label=PlainTextObject(text=label), element=element,
                      optional=False, hint=PlainTextObject(text=hint) if hint else None)


def _number(value: Any) -> str | None:
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return str(int(x)) if x == int(x) else str(x)


def _iso_date(value: Any) -> str | None:
    try:
        return date.fromisoformat(str(value)[:10]).isoformat()
    except ValueError:
        return None
