"""The payloads Slack sends to an app, in Slack's shapes (slash commands, interactivity, events).

Pure builders: the facade fills in trigger ids and response URLs issued by the stand-in.
"""

from __future__ import annotations

import copy
import secrets
import time
from typing import Any

from sandbox.slack._workspace import APP_ID, TEAM_DOMAIN, TEAM_ID, Message, User

VERIFICATION_TOKEN = "standin-verification-token"  # deprecated by Slack but still sent


def _user(user: User) -> dict[str, Any]:
    return {"id": user.id, "username": user.name, "name": user.name, "team_id": TEAM_ID}


def _team() -> dict[str, Any]:
    return {"id": TEAM_ID, "domain": TEAM_DOMAIN}


def _action_ts() -> str:
    return f"{time.time():.6f}"


def slash_command(command: str, text: str, user: User, channel_id: str, channel_name: str,
                  response_url: str, trigger_id: str) -> dict[str, str]:
    return {
        "token": VERIFICATION_TOKEN, "team_id": TEAM_ID, "team_domain": TEAM_DOMAIN,
        "channel_id": channel_id, "channel_name": channel_name, "user_id": user.id,
        "user_name": user.name, "command": command, "text": text, "api_app_id": APP_ID,
        "is_enterprise_install": "false", "response_url": response_url,
        "trigger_id": trigger_id,
    }


def button_action(block_id: str, element: dict[str, Any]) -> dict[str, Any]:
    action = {"action_id": element.get("action_id", ""), "block_id": block_id,
              "text": copy.deepcopy(element.get("text", {})), "type": "button",
              "action_ts": _action_ts()}
    if "value" in element:
        action["value"] = element["value"]
    if "style" in element:
        action["style"] = element["style"]
    return action


def select_action(block_id: str, element: dict[str, Any], option: dict[str, Any]) -> dict[str, Any]:
    """What Slack sends when someone picks ``option`` in a static_select."""
    return {"action_id": element.get("action_id", ""), "block_id": block_id,
            "type": element.get("type", "static_select"),
            "selected_option": copy.deepcopy(option), "action_ts": _action_ts()}


def block_actions_on_message(user: User, message: Message, channel_name: str,
                             action: dict[str, Any], response_url: str,
                             trigger_id: str) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "type": "block_actions", "user": _user(user), "api_app_id": APP_ID,
        "token": VERIFICATION_TOKEN,
        "container": {"type": "message", "message_ts": message.ts,
                      "channel_id": message.channel, "is_ephemeral": message.is_ephemeral},
        "trigger_id": trigger_id, "team": _team(), "enterprise": None,
        "is_enterprise_install": False,
        "channel": {"id": message.channel, "name": channel_name},
        "state": {"values": {}}, "response_url": response_url, "actions": [action],
    }
    if not message.is_ephemeral:  # Slack omits the message for ephemeral containers
        payload["message"] = message.to_api()
    if message.thread_ts:
        payload["container"]["thread_ts"] = message.thread_ts
    return payload


def block_actions_on_view(user: User, view: dict[str, Any], action: dict[str, Any],
                          trigger_id: str) -> dict[str, Any]:
    return {
        "type": "block_actions", "user": _user(user), "api_app_id": APP_ID,
        "token": VERIFICATION_TOKEN, "container": {"type": "view", "view_id": view["id"]},
        "trigger_id": trigger_id, "team": _team(), "enterprise": None,
        "is_enterprise_install": False, "view": copy.deepcopy(view), "actions": [action],
    }


def view_submission(user: User, view: dict[str, Any], values: dict[str, Any],
                    trigger_id: str) -> dict[str, Any]:
    submitted = copy.deepcopy(view)
    submitted["state"] = {"values": values}
    return {
        "type": "view_submission", "team": _team(), "user": _user(user), "api_app_id": APP_ID,
        "token": VERIFICATION_TOKEN, "trigger_id": trigger_id, "view": submitted,
        "response_urls": [], "is_enterprise_install": False, "enterprise": None,
    }


def event_callback(event: dict[str, Any], *, event_time: int | None = None) -> dict[str, Any]:
    """The Events API envelope around ``event``."""
    now = event_time or int(time.time())
    return {
        "token": VERIFICATION_TOKEN, "team_id": TEAM_ID, "api_app_id": APP_ID,
        "event": event, "type": "event_callback",
        "event_id": "Ev" + secrets.token_hex(5).upper(), "event_time": now,
        "authorizations": [{"enterprise_id": None, "team_id": TEAM_ID, "user_id": "U0ALIGNBOT",
                            "is_bot": True, "is_enterprise_install": False}],
        "is_ext_shared_channel": False,
        "event_context": "4-" + secrets.token_urlsafe(24),
    }


def app_home_opened(user: User, dm_channel: str, home_view: dict[str, Any] | None,
                    tab: str = "home") -> dict[str, Any]:
    event: dict[str, Any] = {"type": "app_home_opened", "user": user.id, "channel": dm_channel,
                             "tab": tab, "event_ts": _action_ts()}
    if home_view is not None:
        event["view"] = copy.deepcopy(home_view)
    return event_callback(event)


def url_verification(challenge: str | None = None) -> dict[str, Any]:
    return {"token": VERIFICATION_TOKEN, "challenge": challenge or secrets.token_urlsafe(24),
            "type": "url_verification"}


def input_values(view: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """``view.state.values`` for a submission: ``values`` keyed by action_id or block_id.

    Each input element gets the value shape Slack uses for its type; inputs with no value given
    are submitted empty, as Slack does for optional inputs.
    """
    out: dict[str, dict[str, Any]] = {}
    used: set[str] = set()
    for block in view.get("blocks", []):
        if block.get("type") != "input" or not isinstance(block.get("element"), dict):
            continue
        element = block["element"]
        block_id, action_id = block.get("block_id", ""), element.get("action_id", "")
        key = action_id if action_id in values else block_id if block_id in values else None
        if key is not None:
            used.add(key)
        out.setdefault(block_id, {})[action_id] = _element_value(
            element, values[key] if key is not None else None)
    unknown = set(values) - used
    if unknown:
        raise KeyError(f"No input with action_id or block_id {sorted(unknown)} in view "
                       f"{view.get('callback_id')!r}")
    return out


def _option(element: dict[str, Any], wanted: Any) -> dict[str, Any]:
    options = list(element.get("options") or [])
    for group in element.get("option_groups") or []:
        options += group.get("options", [])
    for opt in options:
        if wanted in (opt.get("value"), opt.get("text", {}).get("text")):
            return copy.deepcopy(opt)
    raise KeyError(f"No option {wanted!r} in {element.get('action_id')!r}; have "
                   f"{[o.get('value') for o in options]}")


def _element_value(element: dict[str, Any], value: Any) -> dict[str, Any]:
    kind = element.get("type", "plain_text_input")
    if kind in ("plain_text_input", "number_input", "email_text_input", "url_text_input"):
        return {"type": kind, "value": None if value is None else str(value)}
    if kind in ("static_select", "radio_buttons", "external_select"):
        return {"type": kind,
                "selected_option": None if value is None else _option(element, value)}
    if kind in ("multi_static_select", "checkboxes"):
        return {"type": kind, "selected_options": [_option(element, v) for v in value or []]}
    if kind == "datepicker":
        return {"type": kind, "selected_date": value}
    if kind == "users_select":
        return {"type": kind, "selected_user": value}
    if kind == "multi_users_select":
        return {"type": kind, "selected_users": list(value or [])}
    if kind == "conversations_select":
        return {"type": kind, "selected_conversation": value}
    if kind == "channels_select":
        return {"type": kind, "selected_channel": value}
    return {"type": kind, "value": value}
