"""Slack's Web API, served locally over real HTTP, so slack_sdk and Bolt run unmodified against it.

Request formats follow Slack: arguments in the query string, a form-encoded body or a JSON body
(JSON needs ``Authorization: Bearer``); answers are ``{"ok": true, ...}`` or
``{"ok": false, "error": "..."}`` with HTTP 200, and HTTP 429 + ``Retry-After`` when rate limited.
Also served: the file upload URL that files.getUploadURLExternal hands out, and response_url.

Tokens are checked by type as Slack does: ``apps.connections.open`` takes only the app-level
token (``xapp-…``, and only in the ``Authorization`` header), every other method only the bot
token; the other kind of token gets ``not_allowed_token_type``, an unknown one ``invalid_auth``.
"""

from __future__ import annotations

import base64
import copy
import json
import logging
import secrets
import time
from collections.abc import Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from sandbox.slack._ratelimit import RateLimiter
from sandbox.slack._workspace import (
    APP_ID,
    BOT_ID,
    BOT_NAME,
    BOT_USER_ID,
    TEAM_DOMAIN,
    TEAM_ID,
    TEAM_NAME,
    Call,
    Message,
    UploadedFile,
    Workspace,
)

log = logging.getLogger(__name__)

MAX_TEXT = 40_000
MAX_BLOCKS = 50
MAX_VIEW_BLOCKS = 100
RESPONSE_URL_USES = 5
RESPONSE_URL_TTL = 30 * 60


class ApiError(Exception):
    """A Slack error answer: ``{"ok": false, "error": error, **extra}``."""

    def __init__(self, error: str, **extra: Any):
        super().__init__(error)
        self.error = error
        self.extra = extra


def _invalid_arguments(*messages: str) -> ApiError:
    return ApiError("invalid_arguments", response_metadata={"messages": list(messages)})


Handler = Callable[[Workspace, dict[str, Any]], dict[str, Any]]
METHODS: dict[str, Handler] = {}
APP_TOKEN_METHODS = frozenset({"apps.connections.open"})  # the rest take the bot token


def method(name: str) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        METHODS[name] = fn
        return fn
    return register


# -- argument helpers ---------------------------------------------------------------------------

def _json_arg(args: dict[str, Any], key: str, error: str) -> Any:
    """Slack accepts structured args as JSON text (form bodies) or as JSON values (JSON bodies)."""
    value = args.get(key)
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            raise ApiError(error) from None
    return value


def _bool_arg(args: dict[str, Any], key: str) -> bool:
    value = args.get(key)
    if isinstance(value, str):
        return value.lower() in ("1", "true", "yes")
    return bool(value)


def _required(args: dict[str, Any], key: str) -> str:
    value = args.get(key)
    if value is None or value == "":
        raise _invalid_arguments(f"[ERROR] missing required field: {key}")
    return str(value)


def _content(args: dict[str, Any]) -> tuple[str | None, list | None, list | None]:
    text = args.get("text")
    blocks = _json_arg(args, "blocks", "invalid_blocks")
    attachments = _json_arg(args, "attachments", "invalid_attachments")
    if blocks is not None and (not isinstance(blocks, list) or len(blocks) > MAX_BLOCKS
                               or not all(isinstance(b, dict) and "type" in b for b in blocks)):
        raise ApiError("invalid_blocks")
    if blocks is not None:
        try:
            blocks = normalize_blocks(blocks)
        except ValueError as exc:
            raise ApiError("invalid_blocks",
                           response_metadata={"messages": [f"[ERROR] {exc}"]}) from None
    if attachments is not None and not isinstance(attachments, list):
        raise ApiError("invalid_attachments")
    if text is not None and len(str(text)) > MAX_TEXT:
        raise ApiError("msg_too_long")
    return (None if text is None else str(text)), blocks, attachments


def normalize_blocks(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Fill in block_id/action_id where missing, as Slack does; refuse duplicates, as Slack does."""
    out = copy.deepcopy(blocks)
    block_ids: set[str] = set()
    for block in out:
        if not isinstance(block, dict) or "type" not in block:
            raise ValueError("every block needs a type")
        block_id = block.setdefault("block_id", secrets.token_urlsafe(4))
        if block_id in block_ids:
            raise ValueError(f"duplicate block_id {block_id!r}")
        block_ids.add(block_id)
        elements = list(block.get("elements") or []) if block["type"] == "actions" else []
        for key in ("accessory", "element"):
            if isinstance(block.get(key), dict):
                elements.append(block[key])
        action_ids: set[str] = set()
        for element in elements:
            if not isinstance(element, dict) or "type" not in element:
                raise ValueError(f"element without a type in block {block_id!r}")
            if element["type"] in ("image", "plain_text", "mrkdwn"):
                continue
            action_id = element.setdefault("action_id", secrets.token_urlsafe(4))
            if action_id in action_ids:
                raise ValueError(f"duplicate action_id {action_id!r} in block {block_id!r}")
            action_ids.add(action_id)
    return out


def _channel(ws: Workspace, args: dict[str, Any], key: str = "channel"):
    channel_id = args.get(key)
    if not channel_id:
        raise ApiError("channel_not_found")
    ch = ws.resolve_channel(str(channel_id))
    if ch is None:
        raise ApiError("channel_not_found")
    return ch


# -- apps (Socket Mode) -------------------------------------------------------------------------

@method("apps.connections.open")
def apps_connections_open(ws: Workspace, args: dict[str, Any]) -> dict[str, Any]:
    """A single-use WebSocket URL for one Socket Mode connection (see ``socket_mode``)."""
    from sandbox.slack.socket_mode import PATH

    ticket = ws.issue_socket_ticket()
    base = "ws" + ws.base_url.removeprefix("http")
    return {"ok": True, "url": f"{base}{PATH}?ticket={ticket}&app_id={APP_ID}"}


# -- auth, chat ---------------------------------------------------------------------------------

@method("auth.test")
def auth_test(ws: Workspace, args: dict[str, Any]) -> dict[str, Any]:
    return {"ok": True, "url": f"https://{TEAM_DOMAIN}.slack.com/", "team": TEAM_NAME,
            "user": BOT_NAME, "team_id": TEAM_ID, "user_id": BOT_USER_ID, "bot_id": BOT_ID,
            "is_enterprise_install": False}


@method("chat.postMessage")
def chat_post_message(ws: Workspace, args: dict[str, Any]) -> dict[str, Any]:
    ch = _channel(ws, args)
    if ch.is_archived:
        raise ApiError("is_archived")
    if not ch.is_im and not ch.is_member:
        raise ApiError("not_in_channel")
    text, blocks, attachments = _content(args)
    if not text and not blocks and not attachments:
        raise ApiError("no_text")
    thread_ts = args.get("thread_ts") or None
    if thread_ts:
        parent = ws.get_message(ch.id, str(thread_ts))
        if parent is None:
            # Deliberately strict: a reply to a message that does not exist is a bot bug.
            raise ApiError("thread_not_found")
        thread_ts = parent.thread_ts or parent.ts  # a reply's ts threads under its parent
    msg = ws.add_message(Message(
        channel=ch.id, ts=ws.next_ts(), text=text or "", blocks=blocks or [],
        attachments=attachments or [], thread_ts=thread_ts,
        broadcast=bool(thread_ts) and _bool_arg(args, "reply_broadcast"),
        metadata=_json_arg(args, "metadata", "invalid_metadata")))
    return {"ok": True, "channel": ch.id, "ts": msg.ts, "message": msg.to_api()}


@method("chat.update")
def chat_update(ws: Workspace, args: dict[str, Any]) -> dict[str, Any]:
    ch = _channel(ws, args)
    msg = ws.get_message(ch.id, str(args.get("ts") or ""))
    if msg is None or msg.is_ephemeral:  # Slack cannot update ephemeral messages
        raise ApiError("message_not_found")
    if msg.user != BOT_USER_ID:
        raise ApiError("cant_update_message")
    text, blocks, attachments = _content(args)
    if text is None and blocks is None and attachments is None:
        raise ApiError("no_text")
    ws.edit_message(msg, text=text, blocks=blocks, attachments=attachments)
    return {"ok": True, "channel": ch.id, "ts": msg.ts, "text": msg.text,
            "message": msg.to_api()}


@method("chat.postEphemeral")
def chat_post_ephemeral(ws: Workspace, args: dict[str, Any]) -> dict[str, Any]:
    ch = _channel(ws, args)
    user = str(args.get("user") or "")
    if user not in ws.users:
        raise ApiError("user_not_found")
    if not ch.has_member(user):
        raise ApiError("user_not_in_channel")
    text, blocks, attachments = _content(args)
    if not text and not blocks and not attachments:
        raise ApiError("no_text")
    msg = ws.add_message(Message(
        channel=ch.id, ts=ws.next_ts(), text=text or "", blocks=blocks or [],
        attachments=attachments or [], thread_ts=args.get("thread_ts") or None,
        ephemeral_to=user))
    return {"ok": True, "message_ts": msg.ts}


@method("chat.getPermalink")
def chat_get_permalink(ws: Workspace, args: dict[str, Any]) -> dict[str, Any]:
    ch = _channel(ws, args)
    ts = str(args.get("message_ts") or "")
    msg = ws.get_message(ch.id, ts)
    if msg is None or msg.is_ephemeral:
        raise ApiError("message_not_found")
    link = f"{ws.base_url}/archives/{ch.id}/p{ts.replace('.', '')}"
    if msg.thread_ts:
        link += f"?thread_ts={msg.thread_ts}&cid={ch.id}"
    return {"ok": True, "channel": ch.id, "permalink": link}


# -- conversations, users, usergroups -------------------------------------------------------------

def _page(items: list[Any], args: dict[str, Any], kind: str, default: int = 100) -> tuple[list, str]:
    """Slack cursor pagination: the cursor is an opaque base64 of the next item's position."""
    try:
        limit = int(args.get("limit") or default)
    except ValueError:
        raise _invalid_arguments("[ERROR] invalid `limit`") from None
    limit = max(1, min(limit, 1000))
    start = 0
    cursor = args.get("cursor")
    if cursor:
        try:
            prefix, _, pos = base64.b64decode(str(cursor)).decode().partition(":")
            start = int(pos)
            if prefix != kind or start < 0:
                raise ValueError(cursor)
        except ValueError:
            raise ApiError("invalid_cursor") from None
    end = start + limit
    next_cursor = base64.b64encode(f"{kind}:{end}".encode()).decode() if end < len(items) else ""
    return items[start:end], next_cursor


@method("conversations.list")
def conversations_list(ws: Workspace, args: dict[str, Any]) -> dict[str, Any]:
    types = set(str(args.get("types") or "public_channel").split(","))
    exclude_archived = _bool_arg(args, "exclude_archived")
    with ws.lock:
        chans = [c for c in ws.channels.values()
                 if ((c.is_im and "im" in types)
                     or (not c.is_im and c.is_private and "private_channel" in types)
                     or (not c.is_im and not c.is_private and "public_channel" in types))
                 and not (exclude_archived and c.is_archived)]
        rows = [c.to_api(ws.member_count(c)) for c in chans]
    page, cursor = _page(rows, args, "channel")
    return {"ok": True, "channels": page, "response_metadata": {"next_cursor": cursor}}


@method("conversations.info")
def conversations_info(ws: Workspace, args: dict[str, Any]) -> dict[str, Any]:
    channel_id = str(args.get("channel") or "")
    with ws.lock:
        ch = ws.channels.get(channel_id)
        if ch is None:
            raise ApiError("channel_not_found")
        return {"ok": True, "channel": ch.to_api(ws.member_count(ch))}


@method("conversations.history")
def conversations_history(ws: Workspace, args: dict[str, Any]) -> dict[str, Any]:
    """Top-level messages of a channel, newest first; metadata only when asked for, as Slack."""
    channel_id = str(args.get("channel") or "")
    oldest = float(args.get("oldest") or 0)
    latest = float(args.get("latest") or "inf")
    with_metadata = _bool_arg(args, "include_all_metadata")
    with ws.lock:
        if channel_id not in ws.channels:
            raise ApiError("channel_not_found")
        rows = []
        for m in reversed(ws.all_messages()):
            if m.channel != channel_id or m.is_ephemeral or (m.thread_ts and not m.broadcast):
                continue
            if not oldest < float(m.ts) < latest:
                continue
            row = m.to_api()
            if not with_metadata:
                row.pop("metadata", None)
            rows.append(row)
    page, cursor = _page(rows, args, "history")
    return {"ok": True, "messages": page, "has_more": bool(cursor),
            "response_metadata": {"next_cursor": cursor}}


@method("conversations.replies")
def conversations_replies(ws: Workspace, args: dict[str, Any]) -> dict[str, Any]:
    """A thread, oldest first: the parent, then its replies. ``ts`` may name the parent or any
    reply; a message without replies comes back alone. Metadata only when asked for, as Slack."""
    channel_id = str(args.get("channel") or "")
    ts = str(args.get("ts") or "")
    if not ts:
        raise ApiError("invalid_arguments", response_metadata={"messages": [
            "[ERROR] missing required field: ts"]})
    oldest = float(args.get("oldest") or 0)
    latest = float(args.get("latest") or "inf")
    inclusive = _bool_arg(args, "inclusive")
    with_metadata = _bool_arg(args, "include_all_metadata")
    with ws.lock:
        if channel_id not in ws.channels:
            raise ApiError("channel_not_found")
        msg = ws.get_message(channel_id, ts)
        if msg is None or msg.is_ephemeral:
            raise ApiError("thread_not_found")
        parent = ws.get_message(channel_id, msg.thread_ts) if msg.thread_ts else msg
        if parent is None:
            raise ApiError("thread_not_found")
        thread = [parent] + [r for t in parent.replies
                             if (r := ws.get_message(channel_id, t)) is not None]
        rows = []
        for m in thread:
            at = float(m.ts)
            if not ((oldest <= at if inclusive else oldest < at)
                    and (at <= latest if inclusive else at < latest)):
                continue
            row = m.to_api()
            if not with_metadata:
                row.pop("metadata", None)
            rows.append(row)
    page, cursor = _page(rows, args, "replies", default=1000)
    return {"ok": True, "messages": page, "has_more": bool(cursor),
            "response_metadata": {"next_cursor": cursor}}


@method("users.info")
def users_info(ws: Workspace, args: dict[str, Any]) -> dict[str, Any]:
    user = ws.users.get(str(args.get("user") or ""))
    if user is None:
        raise ApiError("user_not_found")
    return {"ok": True, "user": user.to_api()}


@method("usergroups.users.list")
def usergroups_users_list(ws: Workspace, args: dict[str, Any]) -> dict[str, Any]:
    group = str(args.get("usergroup") or "")
    if group not in ws.usergroups:
        raise ApiError("no_such_subteam")
    return {"ok": True, "users": list(ws.usergroups[group])}


# -- views --------------------------------------------------------------------------------------

def _view_arg(args: dict[str, Any], expected_type: str) -> dict[str, Any]:
    view = _json_arg(args, "view", "invalid_arguments")
    if not isinstance(view, dict):
        raise _invalid_arguments("[ERROR] missing required field: view")
    if view.get("type") != expected_type:
        raise _invalid_arguments(f"[ERROR] must be '{expected_type}' [json-pointer:/view/type]")
    blocks = view.get("blocks")
    if not isinstance(blocks, list) or len(blocks) > MAX_VIEW_BLOCKS:
        raise _invalid_arguments("[ERROR] must provide an array of at most 100 blocks "
                                 "[json-pointer:/view/blocks]")
    try:
        view = {**view, "blocks": normalize_blocks(blocks)}
    except ValueError as exc:
        raise _invalid_arguments(f"[ERROR] {exc} [json-pointer:/view/blocks]") from None
    if expected_type == "modal" and not isinstance(view.get("title"), dict):
        raise _invalid_arguments("[ERROR] missing required field: title [json-pointer:/view]")
    if len(json.dumps(view)) > 250_000:
        raise ApiError("view_too_large")
    return view


def _materialize_view(ws: Workspace, view: dict[str, Any], view_id: str,
                      root_id: str | None = None, previous: dict | None = None) -> dict[str, Any]:
    out = copy.deepcopy(view)
    out.update(
        id=view_id, team_id=TEAM_ID, app_id=APP_ID, bot_id=BOT_ID, app_installed_team_id=TEAM_ID,
        private_metadata=view.get("private_metadata", ""),
        callback_id=view.get("callback_id", ""), external_id=view.get("external_id", ""),
        state={"values": {}}, hash=f"{int(time.time())}.{ws.new_id('h')[1:]}",
        clear_on_close=bool(view.get("clear_on_close", False)),
        notify_on_close=bool(view.get("notify_on_close", False)),
        root_view_id=root_id or view_id, previous_view_id=None,
    )
    if previous is not None:
        out["previous_view_id"] = previous.get("previous_view_id")
        out["root_view_id"] = previous.get("root_view_id", view_id)
    return out


def _external_id_taken(ws: Workspace, external_id: str, except_id: str | None = None) -> bool:
    return bool(external_id) and any(
        v.get("external_id") == external_id and vid != except_id for vid, v in ws.views.items())


@method("views.open")
def views_open(ws: Workspace, args: dict[str, Any]) -> dict[str, Any]:
    trigger_id = str(args.get("trigger_id") or args.get("interactivity_pointer") or "")
    if not trigger_id:
        raise _invalid_arguments("[ERROR] missing required field: trigger_id")
    view = _view_arg(args, "modal")
    with ws.changed:
        if _external_id_taken(ws, view.get("external_id", "")):
            raise ApiError("duplicate_external_id")
        error, trigger = ws.exchange_trigger(trigger_id)
        if error == "invalid_trigger_id":
            raise _invalid_arguments("invalid `trigger_id`")
        if error:
            raise ApiError(error)
        assert trigger is not None
        view_id = ws.new_id("V")
        stored = _materialize_view(ws, view, view_id)
        ws.views[view_id] = stored
        ws.view_owner[view_id] = trigger.user
        ws.modal_stacks[trigger.user] = [view_id]
        ws.changed.notify_all()
        return {"ok": True, "view": copy.deepcopy(stored)}


@method("views.update")
def views_update(ws: Workspace, args: dict[str, Any]) -> dict[str, Any]:
    view_id, external_id = args.get("view_id"), args.get("external_id")
    if not view_id and not external_id:
        raise _invalid_arguments("[ERROR] either view_id or external_id is required")
    raw = _json_arg(args, "view", "invalid_arguments")
    kind = raw.get("type") if isinstance(raw, dict) else None
    view = _view_arg(args, kind if kind in ("modal", "home") else "modal")
    with ws.changed:
        if not view_id:
            view_id = next((vid for vid, v in ws.views.items()
                            if v.get("external_id") == external_id), None)
        current = ws.views.get(str(view_id)) if view_id else None
        if current is None:
            raise ApiError("not_found")
        if args.get("hash") and args["hash"] != current["hash"]:
            raise ApiError("hash_conflict")
        if _external_id_taken(ws, view.get("external_id", ""), except_id=current["id"]):
            raise ApiError("duplicate_external_id")
        stored = _materialize_view(ws, view, current["id"], previous=current)
        ws.views[current["id"]] = stored
        owner = ws.view_owner.get(current["id"])
        if stored["type"] == "home" and owner:
            ws.homes[owner] = stored
        ws.changed.notify_all()
        return {"ok": True, "view": copy.deepcopy(stored)}


@method("views.publish")
def views_publish(ws: Workspace, args: dict[str, Any]) -> dict[str, Any]:
    user_id = _required(args, "user_id")
    view = _view_arg(args, "home")
    if user_id not in ws.users:
        raise _invalid_arguments("[ERROR] invalid `user_id`")
    with ws.changed:
        current = ws.homes.get(user_id)
        if current and args.get("hash") and args["hash"] != current["hash"]:
            raise ApiError("hash_conflict")
        view_id = current["id"] if current else ws.new_id("V")
        stored = _materialize_view(ws, view, view_id)
        ws.views[view_id] = stored
        ws.view_owner[view_id] = user_id
        ws.homes[user_id] = stored
        ws.changed.notify_all()
        return {"ok": True, "view": copy.deepcopy(stored)}


# -- files --------------------------------------------------------------------------------------

@method("files.getUploadURLExternal")
def files_get_upload_url_external(ws: Workspace, args: dict[str, Any]) -> dict[str, Any]:
    filename = _required(args, "filename")
    try:
        length = int(_required(args, "length"))
    except ValueError:
        raise _invalid_arguments("[ERROR] invalid `length`") from None
    if length < 1:
        raise _invalid_arguments("[ERROR] `length` must be at least 1")
    file_id = ws.new_id("F")
    token = ws.new_id("u")
    with ws.lock:
        ws.files[file_id] = UploadedFile(file_id, filename, length, token,
                                         alt_txt=args.get("alt_txt"), created=int(time.time()))
    return {"ok": True, "upload_url": f"{ws.base_url}/upload/v1/{token}", "file_id": file_id}


@method("files.completeUploadExternal")
def files_complete_upload_external(ws: Workspace, args: dict[str, Any]) -> dict[str, Any]:
    entries = _json_arg(args, "files", "invalid_arguments")
    if not isinstance(entries, list) or not entries:
        raise _invalid_arguments("[ERROR] missing required field: files")
    channel_ids = [args["channel_id"]] if args.get("channel_id") else []
    channel_ids += [c for c in str(args.get("channels") or "").split(",") if c]
    channels = [_channel(ws, {"channel": c}) for c in channel_ids]
    with ws.changed:
        files = []
        for entry in entries:
            f = ws.files.get(str(entry.get("id") if isinstance(entry, dict) else ""))
            if f is None or f.data is None:
                raise ApiError("file_not_found")
            files.append((f, entry))
        for f, entry in files:
            f.title = entry.get("title") or f.title or f.filename
            f.completed = True
            f.channels = [c.id for c in channels]
    shared = [f.to_api(ws.base_url) for f, _ in files]
    blocks = None if args.get("initial_comment") else _json_arg(args, "blocks", "invalid_blocks")
    for ch in channels:
        ws.add_message(Message(channel=ch.id, ts=ws.next_ts(),
                               text=str(args.get("initial_comment") or ""), blocks=blocks or [],
                               thread_ts=args.get("thread_ts") or None, files=shared))
    return {"ok": True, "files": shared}


# -- HTTP layer ---------------------------------------------------------------------------------

class WebApi:
    """The Starlette app. ``WebApi(workspace, limiter).app`` is what gets served."""

    def __init__(self, workspace: Workspace, limiter: RateLimiter,
                 extra_routes: list[Route] | None = None):
        self.ws = workspace
        self.limiter = limiter
        self.app = Starlette(routes=[*(extra_routes or []),
            Route("/api/{method}", self.api, methods=["GET", "POST"]),
            Route("/upload/v1/{token}", self.upload, methods=["POST"]),
            Route("/files/{file_id}", self.download, methods=["GET"]),
            Route("/hooks/response/{team}/{token}", self.response_url, methods=["POST"]),
        ])

    async def _args(self, request: Request
                    ) -> tuple[dict[str, Any], str | None, str | None, list[str]]:
        """Merge query and body arguments; return (args, header token, any token, warnings)."""
        args: dict[str, Any] = dict(request.query_params)
        warnings: list[str] = []
        ctype = request.headers.get("content-type", "")
        body = await request.body()
        if body and ctype.startswith("application/json"):
            if "charset" not in ctype:
                warnings.append("missing_charset")
            try:
                data = json.loads(body)
            except ValueError:
                raise ApiError("invalid_json") from None
            if not isinstance(data, dict):
                raise ApiError("json_not_object")
            data.pop("token", None)  # Slack ignores a token inside a JSON body
            args.update(data)
        elif body:
            from urllib.parse import parse_qsl
            args.update(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        auth = request.headers.get("authorization", "")
        header = auth[7:].strip() if auth.lower().startswith("bearer ") else None
        token = header or args.get("token")
        args.pop("token", None)
        return args, header, token, warnings

    def _authenticate(self, method: str, header: str | None, token: str | None) -> None:
        app_level = method in APP_TOKEN_METHODS
        if app_level:
            token = header  # "passing it as a POST parameter will result in an error"
        if not token:
            raise ApiError("not_authed")
        wanted, other = ((self.ws.app_token, self.ws.bot_token) if app_level
                         else (self.ws.bot_token, self.ws.app_token))
        if token != wanted:
            raise ApiError("not_allowed_token_type" if other and token == other
                           else "invalid_auth")

    async def api(self, request: Request) -> Response:
        name = request.path_params["method"]
        args: dict[str, Any] = {}
        status, headers = 200, {}
        try:
            handler = METHODS.get(name)
            if handler is None:
                raise ApiError("unknown_method", req_method=name)
            args, header, token, warnings = await self._args(request)
            self._authenticate(name, header, token)
            retry_after = self.limiter.check(name, str(args.get("channel") or "") or None)
            if retry_after is not None:
                status, headers = 429, {"Retry-After": str(retry_after)}
                raise ApiError("ratelimited")
            body = handler(self.ws, args)
            if warnings:
                body["warning"] = ",".join(warnings)
                body.setdefault("response_metadata", {})["warnings"] = warnings
        except ApiError as exc:
            body = {"ok": False, "error": exc.error, **exc.extra}
        except Exception as exc:  # a stand-in bug: fail loudly, and still record the call
            log.exception("Slack stand-in failed on %s", name)
            status, body = 500, {"ok": False, "error": "fatal_error",
                                 "standin_bug": f"{type(exc).__name__}: {exc}"}
        self.ws.record(Call(name, args, time.time(), status, body))
        return JSONResponse(body, status_code=status, headers=headers)

    async def upload(self, request: Request) -> Response:
        token = request.path_params["token"]
        data = await request.body()
        with self.ws.changed:
            f = next((f for f in self.ws.files.values() if f.upload_token == token), None)
            if f is None or f.completed:
                return PlainTextResponse("Not Found", status_code=404)
            f.data = data
            self.ws.changed.notify_all()
        self.ws.record(Call("upload", {"file_id": f.id, "length": len(data)}, time.time(), 200,
                            {"ok": True}))
        return PlainTextResponse(f"OK - {len(data)}")

    async def download(self, request: Request) -> Response:
        auth = request.headers.get("authorization", "")
        if auth != f"Bearer {self.ws.bot_token}":
            return PlainTextResponse("Unauthorized", status_code=401)
        f = self.ws.files.get(request.path_params["file_id"])
        if f is None or f.data is None:
            return PlainTextResponse("Not Found", status_code=404)
        return Response(f.data, media_type="application/octet-stream")

    async def response_url(self, request: Request) -> Response:
        """Slack's response_url: up to 5 posts within 30 minutes of the interaction."""
        token = request.path_params["token"]
        raw = await request.body()
        status, body = self._respond(token, raw)
        try:
            args = json.loads(raw)
        except ValueError:
            args = {"raw": raw.decode("utf-8", "replace")}
        self.ws.record(Call("response_url", args, time.time(), status, body))
        return JSONResponse(body, status_code=status)

    def _respond(self, token: str, raw: bytes) -> tuple[int, dict[str, Any]]:
        ws = self.ws
        with ws.changed:
            target = ws.response_targets.get(token)
            if target is None or time.monotonic() - target.created > RESPONSE_URL_TTL:
                return 404, {"ok": False, "error": "expired_url"}
            if target.uses >= RESPONSE_URL_USES:
                return 404, {"ok": False, "error": "used_url"}
            try:
                data = json.loads(raw)
                if not isinstance(data, dict):
                    raise TypeError("response_url body must be a JSON object")
                text, blocks, attachments = _content(data)
            except (ValueError, TypeError, ApiError):
                return 400, {"ok": False, "error": "invalid_payload"}
            target.uses += 1
            source = ws.messages.get((target.channel, target.source_ts or ""))
            if _bool_arg(data, "delete_original"):
                if source is None:
                    target.uses -= 1
                    return 404, {"ok": False, "error": "message_not_found"}
                source.deleted = True
            elif _bool_arg(data, "replace_original") and source is not None:
                ws.edit_message(source, text=text or "", blocks=blocks or [],
                                attachments=attachments or [])
            else:
                if not text and not blocks and not attachments:
                    target.uses -= 1
                    return 400, {"ok": False, "error": "no_text"}
                in_channel = data.get("response_type") == "in_channel"
                ws.add_message(Message(
                    channel=target.channel, ts=ws.next_ts(), text=text or "",
                    blocks=blocks or [], attachments=attachments or [],
                    thread_ts=data.get("thread_ts") or None,
                    ephemeral_to=None if in_channel else target.user))
            ws.changed.notify_all()
            return 200, {"ok": True}
