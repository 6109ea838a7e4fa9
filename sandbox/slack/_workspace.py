"""The stand-in's memory of a Slack workspace: who and what exists, and everything the app did.

One lock guards it all; every change notifies waiters so tests can ``wait_for`` the bot's work
that happens after the ack.
"""

from __future__ import annotations

import copy
import itertools
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

TEAM_ID = "T0ALIGN01"
TEAM_DOMAIN = "alignbot-demo"
TEAM_NAME = "alignbot demo"
BOT_USER_ID = "U0ALIGNBOT"
BOT_ID = "B0ALIGNBOT"
APP_ID = "A0ALIGNBOT"
BOT_NAME = "alignbot"


@dataclass
class User:
    id: str
    name: str
    real_name: str = ""
    email: str | None = None
    tz: str = "UTC"
    is_bot: bool = False
    deleted: bool = False

    def to_api(self) -> dict[str, Any]:
        real = self.real_name or self.name
        return {
            "id": self.id, "team_id": TEAM_ID, "name": self.name, "deleted": self.deleted,
            "real_name": real, "tz": self.tz, "tz_label": self.tz, "tz_offset": 0,
            "is_admin": False, "is_owner": False, "is_bot": self.is_bot,
            "is_app_user": False, "updated": 1700000000,
            "profile": {"real_name": real, "display_name": self.name, "email": self.email,
                        "team": TEAM_ID},
        }


@dataclass
class Channel:
    id: str
    name: str
    is_private: bool = False
    is_archived: bool = False
    is_member: bool = True
    members: list[str] | None = None  # None: every workspace user is a member
    is_im: bool = False
    im_user: str | None = None
    created: int = 1700000000

    def has_member(self, user_id: str) -> bool:
        if self.is_im:
            return user_id == self.im_user
        return self.members is None or user_id in self.members

    def to_api(self, num_members: int) -> dict[str, Any]:
        if self.is_im:
            return {"id": self.id, "created": self.created, "is_im": True, "is_org_shared": False,
                    "user": self.im_user, "is_user_deleted": False, "priority": 0}
        return {
            "id": self.id, "name": self.name, "name_normalized": self.name,
            "is_channel": not self.is_private, "is_group": self.is_private, "is_im": False,
            "is_mpim": False, "is_private": self.is_private, "is_archived": self.is_archived,
            "is_general": False, "is_shared": False, "is_ext_shared": False,
            "is_org_shared": False, "is_member": self.is_member, "created": self.created,
            "creator": "U0CREATOR", "context_team_id": TEAM_ID,
            "topic": {"value": "", "creator": "", "last_set": 0},
            "purpose": {"value": "", "creator": "", "last_set": 0},
            "num_members": num_members,
        }


@dataclass
class Message:
    """A message as Slack stores it; ``edits`` keeps every earlier version, oldest first."""

    channel: str
    ts: str
    text: str = ""
    blocks: list[dict[str, Any]] = field(default_factory=list)
    attachments: list[dict[str, Any]] = field(default_factory=list)
    user: str = BOT_USER_ID
    bot_id: str | None = BOT_ID
    thread_ts: str | None = None
    metadata: dict[str, Any] | None = None
    files: list[dict[str, Any]] = field(default_factory=list)
    edits: list[dict[str, Any]] = field(default_factory=list)
    edited_ts: str | None = None
    deleted: bool = False
    ephemeral_to: str | None = None  # set for ephemeral messages: the only user who sees it
    broadcast: bool = False  # a thread reply also sent to the channel (reply_broadcast)
    replies: list[str] = field(default_factory=list)  # ts of replies, for a thread parent

    @property
    def is_ephemeral(self) -> bool:
        return self.ephemeral_to is not None

    def buttons(self) -> list[tuple[str, dict[str, Any]]]:
        """(block_id, element) for every button in the message, in display order."""
        return list(iter_buttons(self.blocks))

    def to_api(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "message", "user": self.user, "text": self.text,
                               "ts": self.ts, "team": TEAM_ID}
        if self.bot_id:
            out.update(bot_id=self.bot_id, app_id=APP_ID)
        if self.blocks:
            out["blocks"] = copy.deepcopy(self.blocks)
        if self.attachments:
            out["attachments"] = copy.deepcopy(self.attachments)
        if self.thread_ts:
            out["thread_ts"] = self.thread_ts
            if self.broadcast:
                out["subtype"] = "thread_broadcast"
        if self.replies:
            out.update(thread_ts=self.ts, reply_count=len(self.replies),
                       latest_reply=self.replies[-1])
        if self.metadata:
            out["metadata"] = copy.deepcopy(self.metadata)
        if self.files:
            out["files"] = copy.deepcopy(self.files)
        if self.edited_ts:
            out["edited"] = {"user": self.user, "ts": self.edited_ts}
        return out


def iter_buttons(blocks: list[dict[str, Any]]):
    for block in blocks or []:
        block_id = block.get("block_id", "")
        elements = list(block.get("elements") or []) if block.get("type") == "actions" else []
        if isinstance(block.get("accessory"), dict):
            elements.append(block["accessory"])
        for element in elements:
            if element.get("type") == "button":
                yield block_id, element


@dataclass
class UploadedFile:
    id: str
    filename: str
    length: int
    upload_token: str
    alt_txt: str | None = None
    title: str | None = None
    data: bytes | None = None
    completed: bool = False
    channels: list[str] = field(default_factory=list)
    created: int = 0

    def to_api(self, base_url: str) -> dict[str, Any]:
        return {
            "id": self.id, "created": self.created, "timestamp": self.created,
            "name": self.filename, "title": self.title or self.filename,
            "mimetype": "application/octet-stream", "filetype": self.filename.rsplit(".", 1)[-1],
            "user": BOT_USER_ID, "user_team": TEAM_ID, "size": len(self.data or b""),
            "is_external": False, "is_public": bool(self.channels), "alt_txt": self.alt_txt,
            "url_private": f"{base_url}/files/{self.id}",
            "url_private_download": f"{base_url}/files/{self.id}?download=1",
            "permalink": f"{base_url}/files/{self.id}", "channels": list(self.channels),
            "groups": [], "ims": [],
        }


@dataclass
class Trigger:
    id: str
    user: str
    issued: float
    used: bool = False


@dataclass
class ResponseTarget:
    """Where a response_url posts: the conversation, the user, and the message it came from."""

    token: str
    channel: str
    user: str
    source_ts: str | None
    created: float
    uses: int = 0


@dataclass
class Call:
    """One request the app made to the stand-in, as the stand-in answered it."""

    method: str
    args: dict[str, Any]
    time: float
    status: int
    response: dict[str, Any]

    @property
    def ok(self) -> bool:
        return bool(self.response.get("ok"))


class Workspace:
    """State of one fake workspace. All public methods are thread-safe."""

    def __init__(self, bot_token: str, channels: list[Channel], users: list[User],
                 usergroups: dict[str, list[str]], trigger_ttl: float = 3.0,
                 app_token: str | None = None):
        self.bot_token = bot_token
        self.app_token = app_token  # app-level token (xapp-...): Socket Mode only
        self.trigger_ttl = trigger_ttl
        self.base_url = ""
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self.channels: dict[str, Channel] = {c.id: c for c in channels}
        self.users: dict[str, User] = {u.id: u for u in users}
        self.users.setdefault(BOT_USER_ID, User(BOT_USER_ID, BOT_NAME, is_bot=True))
        self.usergroups = {k: list(v) for k, v in usergroups.items()}
        self.messages: dict[tuple[str, str], Message] = {}
        self.order: list[tuple[str, str]] = []
        self.views: dict[str, dict[str, Any]] = {}
        self.view_owner: dict[str, str] = {}
        self.modal_stacks: dict[str, list[str]] = {}
        self.homes: dict[str, dict[str, Any]] = {}
        self.files: dict[str, UploadedFile] = {}
        self.triggers: dict[str, Trigger] = {}
        self.response_targets: dict[str, ResponseTarget] = {}
        self.socket_tickets: dict[str, bool] = {}  # ticket -> redeemed
        self.calls: list[Call] = []
        self._last_ts = 0.0
        self._ids = itertools.count(1)

    # -- identifiers -------------------------------------------------------------------------
    def next_ts(self) -> str:
        with self.lock:
            now = max(time.time(), self._last_ts + 0.000001)
            self._last_ts = now
            return f"{now:.6f}"

    def new_id(self, prefix: str) -> str:
        return f"{prefix}0{next(self._ids):07d}{secrets.token_hex(2).upper()}"

    def notify(self) -> None:
        with self.changed:
            self.changed.notify_all()

    # -- conversations -----------------------------------------------------------------------
    def resolve_channel(self, channel_id: str) -> Channel | None:
        """Channel by id or ``#name``; a user id opens (or finds) the DM with that user."""
        with self.lock:
            if channel_id in self.channels:
                return self.channels[channel_id]
            if channel_id in self.users:
                return self.im_for(channel_id)
            if channel_id.startswith("#"):
                return next((c for c in self.channels.values()
                             if not c.is_im and c.name == channel_id[1:]), None)
            return None

    def im_for(self, user_id: str) -> Channel:
        with self.lock:
            for ch in self.channels.values():
                if ch.is_im and ch.im_user == user_id:
                    return ch
            ch = Channel(id="D" + user_id[1:], name=user_id, is_im=True, im_user=user_id)
            self.channels[ch.id] = ch
            return ch

    def member_count(self, channel: Channel) -> int:
        if channel.is_im:
            return 2
        return len(channel.members) if channel.members is not None else len(self.users)

    # -- messages ----------------------------------------------------------------------------
    def add_message(self, msg: Message) -> Message:
        with self.changed:
            self.messages[(msg.channel, msg.ts)] = msg
            self.order.append((msg.channel, msg.ts))
            if msg.thread_ts and (parent := self.messages.get((msg.channel, msg.thread_ts))):
                parent.replies.append(msg.ts)
            self.changed.notify_all()
            return msg

    def get_message(self, channel: str, ts: str) -> Message | None:
        with self.lock:
            msg = self.messages.get((channel, ts))
            return None if msg is None or msg.deleted else msg

    def edit_message(self, msg: Message, *, text: str | None, blocks: list | None,
                     attachments: list | None) -> Message:
        """Edit in place, keeping the previous version in ``msg.edits``."""
        with self.changed:
            msg.edits.append({"text": msg.text, "blocks": copy.deepcopy(msg.blocks),
                              "attachments": copy.deepcopy(msg.attachments),
                              "ts": msg.edited_ts or msg.ts})
            if text is not None:
                msg.text = text
            if blocks is not None:
                msg.blocks = blocks
            if attachments is not None:
                msg.attachments = attachments
            msg.edited_ts = self.next_ts()
            self.changed.notify_all()
            return msg

    def all_messages(self) -> list[Message]:
        with self.lock:
            return [self.messages[k] for k in self.order if not self.messages[k].deleted]

    # -- triggers, response urls ---------------------------------------------------------------
    def issue_trigger(self, user: str) -> str:
        tid = f"{next(self._ids)}.{int(time.time())}.{secrets.token_hex(16)}"
        with self.lock:
            self.triggers[tid] = Trigger(tid, user, time.monotonic())
        return tid

    def exchange_trigger(self, trigger_id: str) -> tuple[str | None, Trigger | None]:
        """Use a trigger once: (error, trigger). Errors are Slack's names for each failure."""
        with self.lock:
            trig = self.triggers.get(trigger_id)
            if trig is None:
                return "invalid_trigger_id", None
            if trig.used:
                return "exchanged_trigger_id", trig
            if time.monotonic() - trig.issued > self.trigger_ttl:
                return "expired_trigger_id", trig
            trig.used = True
            return None, trig

    def issue_response_url(self, channel: str, user: str, source_ts: str | None) -> str:
        token = secrets.token_urlsafe(18)
        with self.lock:
            self.response_targets[token] = ResponseTarget(token, channel, user, source_ts,
                                                          time.monotonic())
        return f"{self.base_url}/hooks/response/{TEAM_ID}/{token}"

    def issue_socket_ticket(self) -> str:
        """A ticket for one Socket Mode connection (apps.connections.open hands out its URL)."""
        ticket = str(uuid.uuid4())
        with self.lock:
            self.socket_tickets[ticket] = False
        return ticket

    def redeem_socket_ticket(self, ticket: str) -> bool:
        """True once per ticket issued: each URL opens one connection."""
        with self.lock:
            if self.socket_tickets.get(ticket) is not False:
                return False
            self.socket_tickets[ticket] = True
            return True

    # -- call log ----------------------------------------------------------------------------
    def record(self, call: Call) -> None:
        with self.changed:
            self.calls.append(call)
            self.changed.notify_all()
