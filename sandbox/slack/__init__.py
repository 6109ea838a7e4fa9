"""A local Slack: the Web API over real HTTP, plus a signed sender for what Slack sends the app.

Tests and the demo talk to it like a person in a Slack workspace::

    with SlackStandin("xoxb-test", "secret", channels=["C1"], users=["U1", "U2"]) as slack:
        bot = start_bot(slack_api_url=slack.api_url)      # WebClient(base_url=slack.api_url)
        slack.app_url = bot.url + "/slack/events"
        slack.command("/drift SKU-1", as_user="U1", channel="C1")
        msg = slack.wait_for(lambda: slack.last_message("C1"))
        slack.click(msg, "Approve", as_user="U2")

Messages returned are live: an edit changes them in place and ``msg.edits`` keeps the earlier
versions. ``slack.calls("chat.update")`` lists what the app called, with args and responses.

Socket Mode: give the stand-in an app-level token and deliveries go over the WebSocket the app
opens (``apps.connections.open``) instead of to ``app_url`` — the same helpers, either way::

    with SlackStandin("xoxb-test", "secret", app_token="xapp-test", ...) as slack:
        SocketModeHandler(bolt_app, "xapp-test").connect()   # bolt_app's client -> slack.api_url
        slack.socket.wait_connected()
        slack.click(msg, "Approve", as_user="U2")            # an ``interactive`` envelope
        slack.socket.disconnect("refresh_requested")         # the app must reconnect
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Self, TypeVar

from sandbox.serving import BackgroundServer
from sandbox.slack import payloads
from sandbox.slack._control import control_routes
from sandbox.slack._ratelimit import Limit, RateLimiter, RateLimits
from sandbox.slack._workspace import (
    APP_ID,
    BOT_ID,
    BOT_USER_ID,
    TEAM_ID,
    Call,
    Channel,
    Message,
    UploadedFile,
    User,
    Workspace,
    iter_buttons,
)
from sandbox.slack.client import Delivery, SignedRequest, SigningClient, Transport, sign
from sandbox.slack.socket_mode import Envelope, SocketModeServer
from sandbox.slack.webapi import WebApi

__all__ = [
    "APP_ID", "BOT_ID", "BOT_USER_ID", "TEAM_ID", "Call", "Channel", "Delivery", "Envelope",
    "Limit", "Message", "RateLimits", "SignedRequest", "SigningClient", "SlackStandin",
    "SocketModeServer", "Transport", "UploadedFile", "User", "sign",
]

T = TypeVar("T")


def _as_user(spec: str | Mapping[str, Any] | User) -> User:
    if isinstance(spec, User):
        return spec
    if isinstance(spec, str):
        return User(id=spec, name=spec.lower())
    return User(**spec)


def _as_channel(spec: str | Mapping[str, Any] | Channel) -> Channel:
    if isinstance(spec, Channel):
        return spec
    if isinstance(spec, str):
        return Channel(id=spec, name=spec.lower())
    return Channel(**spec)


class SlackStandin:
    """One fake workspace with one installed app (the bot), served on 127.0.0.1."""

    def __init__(self, bot_token: str, signing_secret: str, app_url: str | None = None, *,
                 channels: Iterable[str | Mapping[str, Any] | Channel] = (),
                 users: Iterable[str | Mapping[str, Any] | User] = (),
                 usergroups: Mapping[str, Iterable[str]] | None = None,
                 rate_limits: RateLimits | None = None, trigger_ttl: float = 3.0,
                 ack_timeout: float = 3.0, port: int = 0, app_token: str | None = None,
                 event_retry_delays: Iterable[float] | None = None):
        self.workspace = Workspace(
            bot_token, [_as_channel(c) for c in channels], [_as_user(u) for u in users],
            {k: list(v) for k, v in (usergroups or {}).items()}, trigger_ttl=trigger_ttl,
            app_token=app_token)
        self.limiter = RateLimiter(rate_limits or RateLimits())
        self.signer = SigningClient(signing_secret, app_url, timeout=ack_timeout)
        self.socket = SocketModeServer(self.workspace, ack_timeout=ack_timeout,
                                       **({} if event_retry_delays is None else
                                          {"event_retry_delays": event_retry_delays}))
        self.webapi = WebApi(self.workspace, self.limiter,
                             extra_routes=[*control_routes(self), self.socket.route])
        self._server = BackgroundServer(self.webapi.app, port=port)
        self.workspace.base_url = self._server.url
        # The demo's introduction for the browser UI (None: the UI opens straight on the
        # channels), and what its Start button does.
        self.intro: dict[str, Any] | None = None
        self.on_start: Callable[[], None] | None = None

    # -- life ------------------------------------------------------------------------------
    def start(self) -> Self:
        self._server.start()
        self._started = True
        return self

    def stop(self) -> None:
        self.socket.close()
        if getattr(self, "_started", False):
            self._server.stop()
            self._started = False
        self.signer.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return self._server.url

    @property
    def api_url(self) -> str:
        """Pass as ``WebClient(base_url=...)``; ends with ``/api/`` as slack_sdk requires."""
        return self._server.url + "/api/"

    @property
    def app_url(self) -> str | None:
        """The app's request URL (commands, interactivity and events all go here)."""
        return self.signer.app_url

    @app_url.setter
    def app_url(self, value: str | None) -> None:
        self.signer.app_url = value

    @property
    def socket_mode(self) -> bool:
        """Socket Mode is on when the app has an app-level token: then nothing goes to app_url."""
        return self.workspace.app_token is not None

    @property
    def transport(self) -> Transport:
        """How deliveries reach the app: the WebSocket in Socket Mode, else signed HTTP."""
        return self.socket if self.socket_mode else self.signer

    @property
    def rate_limits(self) -> RateLimits:
        return self.limiter.limits

    @rate_limits.setter
    def rate_limits(self, limits: RateLimits) -> None:
        self.limiter.limits = limits
        self.limiter.reset()

    # -- what people do ------------------------------------------------------------------------
    def command(self, line: str, as_user: str | None = None, channel: str | None = None,
                **send: Any) -> Delivery:
        """Type a slash command. An immediate reply in the ack shows up as Slack shows it."""
        command, _, text = line.strip().partition(" ")
        if not command.startswith("/"):
            raise ValueError(f"A slash command starts with '/': {line!r}")
        user = self._user(as_user)
        ch = self._channel(channel)
        if not ch.has_member(user.id):
            raise PermissionError(f"{user.id} is not in {ch.id} and cannot type there")
        fields = payloads.slash_command(
            command, text.strip(), user, ch.id, ch.name,
            self.workspace.issue_response_url(ch.id, user.id, None),
            self.workspace.issue_trigger(user.id))
        delivery = self.transport.send_form(fields, **send)
        if delivery.ok and delivery.body.strip():
            self._show_ack_reply(delivery, ch.id, user.id)
        elif not delivery.ok:
            # What Slack shows the user when the app did not answer in time or failed.
            error = delivery.error or "dispatch_failed"
            delivery.error = error
            ws = self.workspace
            ws.add_message(Message(channel=ch.id, ts=ws.next_ts(), user="USLACKBOT",
                                   bot_id=None, ephemeral_to=user.id,
                                   text=f'{command} failed with the error "{error}"'))
        return delivery

    def click(self, target: Message | Mapping[str, Any], button: str,
              as_user: str | None = None, **send: Any) -> Delivery:
        """Click the button whose text or action_id is ``button`` in a message or view."""
        user = self._user(as_user)
        ws = self.workspace
        trigger_id = ws.issue_trigger(user.id)
        if isinstance(target, Message):
            msg = ws.get_message(target.channel, target.ts)
            if msg is None:
                raise LookupError(f"Message {target.ts} in {target.channel} no longer exists")
            if msg.ephemeral_to not in (None, user.id):
                raise PermissionError(f"{user.id} cannot see an ephemeral message for "
                                      f"{msg.ephemeral_to}")
            ch = ws.resolve_channel(msg.channel)
            if ch is not None and not ch.has_member(user.id):
                raise PermissionError(f"{user.id} is not in {ch.id} and cannot see the message")
            block_id, element = self._find_button(msg.blocks, button)
            payload = payloads.block_actions_on_message(
                user, msg, ch.name if ch else msg.channel,
                payloads.button_action(block_id, element),
                ws.issue_response_url(msg.channel, user.id, msg.ts), trigger_id)
        else:
            view = ws.views.get(str(target.get("id")))
            if view is None:
                raise LookupError(f"View {target.get('id')!r} is not open")
            block_id, element = self._find_button(view.get("blocks", []), button)
            payload = payloads.block_actions_on_view(
                user, view, payloads.button_action(block_id, element), trigger_id)
        return self.transport.send_interaction(payload, **send)

    def choose(self, target: Message, select: str, option: str, as_user: str | None = None,
               **send: Any) -> Delivery:
        """Pick ``option`` (its text or value) in the select menu whose action_id is ``select``."""
        user = self._user(as_user)
        ws = self.workspace
        msg = ws.get_message(target.channel, target.ts)
        if msg is None:
            raise LookupError(f"Message {target.ts} in {target.channel} no longer exists")
        ch = ws.resolve_channel(msg.channel)
        if ch is not None and not ch.has_member(user.id):
            raise PermissionError(f"{user.id} is not in {ch.id} and cannot see the message")
        for block in msg.blocks:
            for element in block.get("elements", []) if block.get("type") == "actions" else []:
                if element.get("action_id") != select or "options" not in element:
                    continue
                for opt in element["options"]:
                    if option in (opt.get("value"), opt.get("text", {}).get("text")):
                        payload = payloads.block_actions_on_message(
                            user, msg, ch.name if ch else msg.channel,
                            payloads.select_action(block["block_id"], element, opt),
                            ws.issue_response_url(msg.channel, user.id, msg.ts),
                            ws.issue_trigger(user.id))
                        return self.transport.send_interaction(payload, **send)
                raise LookupError(f"No option {option!r} in {select}")
        raise LookupError(f"No select menu {select!r} in the message")

    def double_click(self, target: Message | Mapping[str, Any], button: str,
                     as_user: str | None = None, times: int = 2) -> list[Delivery]:
        """Click the same button ``times`` times at once, as impatient people do."""
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=times) as pool:
            futures = [pool.submit(self.click, target, button, as_user) for _ in range(times)]
            return [f.result() for f in futures]

    def submit(self, view: Mapping[str, Any] | None = None,
               values: Mapping[str, Any] | None = None, as_user: str | None = None,
               **send: Any) -> Delivery:
        """Press Submit on a modal (default: the user's topmost open modal).

        ``values`` maps action_id or block_id to what the user entered (text, an option's value
        or text, a list for multi-selects). The app's ``response_action`` is applied as Slack
        does: errors keep the modal open (``delivery.extra["errors"]``), update/push/clear change
        the stack, an empty ack closes the modal.
        """
        user = self._user(as_user)
        ws = self.workspace
        with ws.lock:
            stack = ws.modal_stacks.get(user.id) or []
            view_id = str(view["id"]) if view is not None else (stack[-1] if stack else None)
            if view_id is None or view_id not in stack:
                raise LookupError(f"No open modal {view_id or ''} for {user.id}")
            current = ws.views[view_id]
        payload = payloads.view_submission(
            user, current, payloads.input_values(current, dict(values or {})),
            ws.issue_trigger(user.id))
        delivery = self.transport.send_interaction(payload, **send)
        if delivery.ok:
            self._apply_response_action(delivery, user.id, view_id)
        return delivery

    def say(self, text: str, as_user: str, channel: str | None = None) -> Message:
        """A person writes a plain message in a channel (the app is not told)."""
        user = self._user(as_user)
        ch = self._channel(channel)
        ws = self.workspace
        return ws.add_message(Message(channel=ch.id, ts=ws.next_ts(), text=text, user=user.id,
                                      bot_id=None))

    def press_start(self) -> bool:
        """The introduction's Start button: runs ``on_start`` once; False if it ran before."""
        ws = self.workspace
        with ws.changed:
            if self.intro is None or self.intro.get("started"):
                return False
            self.intro = {**self.intro, "started": True}
            ws.changed.notify_all()
        if self.on_start is not None:
            self.on_start()
        return True

    def open_home(self, as_user: str | None = None, **send: Any) -> Delivery:
        """Open the app's Home tab: Slack sends ``app_home_opened``."""
        user = self._user(as_user)
        ws = self.workspace
        envelope = payloads.app_home_opened(user, ws.im_for(user.id).id, ws.homes.get(user.id))
        return self.transport.send_event(envelope, **send)

    def send_event(self, event: Mapping[str, Any], **send: Any) -> Delivery:
        """Deliver any Events API event in its ``event_callback`` envelope."""
        return self.transport.send_event(payloads.event_callback(dict(event)), **send)

    def verify_url(self, challenge: str | None = None) -> Delivery:
        """Slack's url_verification handshake; the app must echo the challenge."""
        return self.transport.send_event(payloads.url_verification(challenge))

    def retry(self, delivery: Delivery, retry_num: int = 1, reason: str | None = None,
              **send: Any) -> Delivery:
        """Deliver it again as Slack's retry: over HTTP the same body with X-Slack-Retry-Num and
        -Reason; over Socket Mode the same payload in a new envelope (see ``SocketModeServer``)."""
        if isinstance(delivery.request, Envelope):
            return self.socket.retry(delivery, retry_num, reason or "timeout", **send)
        return self.signer.retry(delivery, retry_num, reason or "http_timeout", **send)

    # -- what people see -------------------------------------------------------------------------
    def messages(self, channel: str) -> list[Message]:
        """Channel messages everyone sees, oldest first: no ephemerals, and thread replies
        only when they were also sent to the channel (reply_broadcast)."""
        return [m for m in self.workspace.all_messages()
                if m.channel == self._channel_id(channel) and not m.is_ephemeral
                and (not m.thread_ts or m.broadcast)]

    def last_message(self, channel: str) -> Message | None:
        msgs = self.messages(channel)
        return msgs[-1] if msgs else None

    def message(self, channel: str, ts: str) -> Message | None:
        """The current version of a message (after edits)."""
        return self.workspace.get_message(self._channel_id(channel), ts)

    def thread(self, message: Message) -> list[Message]:
        """Replies under ``message``, oldest first."""
        root = message.thread_ts or message.ts
        return [m for m in self.workspace.all_messages()
                if m.channel == message.channel and m.thread_ts == root and not m.is_ephemeral]

    def ephemeral_for(self, user: str, channel: str | None = None) -> list[Message]:
        """Ephemeral messages only ``user`` saw, oldest first."""
        return [m for m in self.workspace.all_messages()
                if m.ephemeral_to == user
                and (channel is None or m.channel == self._channel_id(channel))]

    def dms(self, user: str) -> list[Message]:
        """Messages the app sent to ``user``'s DM with it."""
        return self.messages(self.workspace.im_for(user).id)

    def modal(self, user: str) -> dict[str, Any] | None:
        """The modal ``user`` is looking at, or None."""
        with self.workspace.lock:
            stack = self.workspace.modal_stacks.get(user) or []
            return self.workspace.views[stack[-1]] if stack else None

    def home(self, user: str) -> dict[str, Any] | None:
        """The Home tab the app published for ``user``, or None."""
        return self.workspace.homes.get(user)

    def files(self) -> list[UploadedFile]:
        return [f for f in self.workspace.files.values() if f.completed]

    def calls(self, method: str | None = None) -> list[Call]:
        """Every Web API call (and response_url post) the app made, oldest first."""
        with self.workspace.lock:
            return [c for c in self.workspace.calls if method is None or c.method == method]

    def ratelimited(self, method: str | None = None) -> int:
        """How many calls got HTTP 429."""
        if method is None:
            return sum(self.limiter.rejected.values())
        return self.limiter.rejected[method]

    def wait_for(self, predicate: Callable[[], T], timeout: float = 5.0,
                 message: str | None = None) -> T:
        """Wait until ``predicate()`` is truthy and return it; the bot works after its ack."""
        deadline = time.monotonic() + timeout
        while True:
            result = predicate()
            if result:
                return result
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(message or f"Slack stand-in: condition not met in {timeout}s")
            with self.workspace.changed:
                self.workspace.changed.wait(min(remaining, 0.05))

    def snapshot(self) -> dict[str, Any]:
        """Everything a person could see, as JSON (for the demo UI and for debugging)."""
        ws = self.workspace
        with ws.lock:
            channels = []
            for ch in ws.channels.values():
                top = [m for m in ws.all_messages()
                       if m.channel == ch.id and not m.thread_ts and not m.is_ephemeral]
                channels.append({
                    **ch.to_api(ws.member_count(ch)),
                    "messages": [{**m.to_api(), "edit_count": len(m.edits),
                                  "thread": [r.to_api() for r in self.thread(m)]}
                                 for m in top],
                })
            ephemeral: dict[str, list] = {}
            for m in ws.all_messages():
                if m.ephemeral_to:
                    ephemeral.setdefault(m.ephemeral_to, []).append(
                        {**m.to_api(), "channel": m.channel})
            return {
                "team": {"id": TEAM_ID, "bot_user_id": BOT_USER_ID, "app_id": APP_ID},
                "app_url": self.app_url,
                "socket_mode": {"enabled": self.socket_mode,
                                "connections": len(self.socket.connections)},
                "users": [u.to_api() for u in ws.users.values()],
                "usergroups": {k: list(v) for k, v in ws.usergroups.items()},
                "channels": channels,
                "ephemeral": ephemeral,
                "homes": dict(ws.homes),
                "modals": {u: ws.views[s[-1]] for u, s in ws.modal_stacks.items() if s},
                "files": [f.to_api(ws.base_url) for f in ws.files.values() if f.completed],
                "ratelimited": dict(self.limiter.rejected),
                "intro": self.intro,
                "calls": len(ws.calls),
            }

    # -- helpers ---------------------------------------------------------------------------
    def _user(self, user_id: str | None) -> User:
        ws = self.workspace
        if user_id is None:
            humans = [u for u in ws.users.values() if not u.is_bot]
            if not humans:
                raise LookupError("No users configured; pass users=[...] to SlackStandin")
            return humans[0]
        if user_id not in ws.users:
            raise LookupError(f"Unknown user {user_id!r}; configured: {sorted(ws.users)}")
        return ws.users[user_id]

    def _channel(self, channel: str | None) -> Channel:
        ws = self.workspace
        if channel is None:
            named = [c for c in ws.channels.values() if not c.is_im]
            if not named:
                raise LookupError("No channels configured; pass channels=[...] to SlackStandin")
            return named[0]
        found = ws.resolve_channel(self._channel_id(channel))
        if found is None:
            raise LookupError(f"Unknown channel {channel!r}; configured: {sorted(ws.channels)}")
        return found

    def _channel_id(self, channel: str) -> str:
        """Accept an id, ``#name``, or a user id (meaning the app's DM with that user)."""
        if channel in self.workspace.users:
            return self.workspace.im_for(channel).id
        name = channel.lstrip("#")
        for c in self.workspace.channels.values():
            if c.id == channel or (channel.startswith("#") and c.name == name):
                return c.id
        return channel

    @staticmethod
    def _find_button(blocks: list[dict[str, Any]], label: str) -> tuple[str, dict[str, Any]]:
        buttons = list(iter_buttons(blocks))
        for block_id, element in buttons:
            if element.get("text", {}).get("text") == label:
                return block_id, element
        for block_id, element in buttons:
            if element.get("action_id") == label:
                return block_id, element
        have = [e.get("text", {}).get("text") for _, e in buttons]
        raise LookupError(f"No button {label!r}; buttons here: {have}")

    def _show_ack_reply(self, delivery: Delivery, channel: str, user: str) -> None:
        """A command's ack body is shown to the user (or the channel with in_channel)."""
        try:
            body = delivery.json()
        except ValueError:
            body = {"text": delivery.body}
        if not isinstance(body, dict) or not (body.get("text") or body.get("blocks")):
            return
        ws = self.workspace
        in_channel = body.get("response_type") == "in_channel"
        ws.add_message(Message(channel=channel, ts=ws.next_ts(), text=body.get("text", ""),
                               blocks=body.get("blocks") or [],
                               ephemeral_to=None if in_channel else user))

    def _apply_response_action(self, delivery: Delivery, user: str, view_id: str) -> None:
        from sandbox.slack.webapi import _materialize_view
        try:
            body = delivery.json() or {}
        except ValueError:
            body = {}
        action = body.get("response_action") if isinstance(body, dict) else None
        ws = self.workspace
        with ws.changed:
            stack = ws.modal_stacks.setdefault(user, [])
            if action == "errors":
                delivery.extra["errors"] = body.get("errors", {})
            elif action == "update" and isinstance(body.get("view"), dict):
                ws.views[view_id] = _materialize_view(ws, body["view"], view_id,
                                                      previous=ws.views[view_id])
            elif action == "push" and isinstance(body.get("view"), dict):
                new_id = ws.new_id("V")
                pushed = _materialize_view(ws, body["view"], new_id, root_id=stack[0])
                pushed["previous_view_id"] = view_id
                ws.views[new_id] = pushed
                ws.view_owner[new_id] = user
                stack.append(new_id)
            elif action == "clear":
                stack.clear()
            elif view_id in stack:
                stack.remove(view_id)
            ws.changed.notify_all()
