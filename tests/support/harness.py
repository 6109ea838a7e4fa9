"""An errbot-style harness: Slack requests pushed in, the worker's jobs stepped by hand, the
bot's posts popped out.

Everything is real but the timing: the sandbox planning system and TMS, the Slack stand-in, the
real ingress (signature check, inbox) and a ``Runtime`` on a SQLite file whose scheduler,
leadership and inbox threads are never started. A test pushes what a person does, calls
``step()`` (what the worker would do next) and reads what came out, with no waiting::

    with BotHarness() as bot:
        bot.poll_and_detect()                    # read both systems, detect, recommend
        bot.step()                               # the sync posts the recommendations
        message = bot.pop_post("#logistics")     # the first one posted there
        bot.pop_posts()                          # the others
        ack = bot.push_click(message, "Approve", as_user="U0LOG1")
        assert (ack.status, ack.body) == (200, "")
        bot.step()                               # handle the click, execute, edit the message
        edit = bot.pop_post("#logistics")
        assert edit.edit and "executed" in edit.content
"""

from __future__ import annotations

import asyncio
import secrets
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import httpx

from bot.demo import DEMO_GROUPS, DEMO_USERS, demo_config
from bot.ingress import PATH, Ingress
from bot.runtime import Runtime
from sandbox.slack import Delivery, Message, RateLimits, SigningClient, SlackStandin
from sandbox.systems import start_sandboxes
from store.migrate import upgrade

INGRESS_URL = "http://ingress.harness" + PATH  # answered in-process; no socket is opened
POSTS = ("chat.postMessage", "chat.update")


@dataclass(frozen=True)
class Post:
    """One message the bot posted, or one edit of it, as it read at that moment."""

    channel: str
    ts: str
    text: str
    blocks: list[dict[str, Any]]
    edit: bool  # chat.update rather than chat.postMessage
    thread_ts: str | None = None
    metadata: dict[str, Any] | None = None

    @property
    def buttons(self) -> list[str]:
        return [element.get("text", {}).get("text", "") for element in _elements(self.blocks)
                if element.get("type") == "button"]

    @property
    def content(self) -> str:
        """Every text a person sees in it: the text and each block's."""
        return "\n".join([self.text, *_texts(self.blocks)])


class Stepped(NamedTuple):
    """What one ``step()`` did."""

    handled: int  # Slack requests taken from the inbox
    executed: int  # outbox rows the executor worked through
    slack_writes: int  # posts and edits the sync made


class BotHarness:
    """Sandboxes + Slack stand-in + an unstarted ``Runtime``, started and stopped together."""

    def __init__(self, *, seed: int = 7, database_url: str | None = None):
        self.seed = seed
        self.database_url = database_url
        self.bot_token = "xoxb-harness-" + secrets.token_hex(6)
        self.signing_secret = secrets.token_hex(16)
        self._tmp: Path | None = None
        self._popped: set[int] = set()  # indexes into the stand-in's calls
        self._started: list[Any] = []

    # -- life --------------------------------------------------------------------------------

    def start(self) -> BotHarness:
        try:
            if self.database_url is None:
                self._tmp = Path(tempfile.mkdtemp(prefix="alignbot-harness-"))
                self.database_url = f"sqlite:///{self._tmp / 'alignbot.db'}"
            upgrade(self.database_url)
            self.planning, self.tms = start_sandboxes(seed=self.seed)
            self._started += [self.planning, self.tms]
            self.config = demo_config(self.planning.url, self.tms.url, fast=True)
            members = [u["id"] for u in DEMO_USERS]
            self.slack = SlackStandin(
                self.bot_token, self.signing_secret,
                channels=[{"id": t.channel, "name": t.name, "members": members}
                          for t in self.config.teams],
                users=DEMO_USERS, usergroups=DEMO_GROUPS, rate_limits=RateLimits.unlimited())
            self.slack.start()
            self._started.append(self.slack)
            self.runtime = Runtime(self.config, environ={
                self.config.slack.bot_token_env: self.bot_token,
                self.config.slack.signing_secret_env: self.signing_secret,
                self.config.slack.api_url_env: self.slack.api_url,
                self.config.database_url_env: self.database_url,
                "TMS_WEBHOOK_SECRET": secrets.token_hex(8),
            })
            self._started.append(self.runtime)  # stop() releases its SQLite lock
            self.ingress = Ingress(self.runtime.inbox.engine, self.signing_secret)
            self._started.append(self.ingress)
            # What people do in the stand-in reaches the real ingress app in this thread.
            self.slack.signer.close()
            self.slack.signer = SigningClient(self.signing_secret, INGRESS_URL,
                                              http=_asgi_client(self.ingress))
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        # together: each server takes a moment to notice it should exit
        with ThreadPoolExecutor(max_workers=len(self._started) or 1) as pool:
            list(pool.map(_stop_quietly, self._started))
        self._started.clear()
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def __enter__(self) -> BotHarness:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the world -----------------------------------------------------------------------------

    @property
    def world(self) -> Any:
        """The sandbox world both systems serve (``sandbox.systems.World``)."""
        return self.planning.world

    def scenario_step(self) -> dict[str, Any]:
        """Inject the scenario's next drift: a demand spike, delayed shipments, a capacity cut."""
        return self.world.step()

    def applied(self) -> dict[str, int]:
        """Per system, how many actions the sandbox has applied."""
        with self.world.lock:
            return {system: sum(e["applied"] for e in server.service.ledger.values())
                    for system, server in (("planning", self.planning), ("logistics", self.tms))}

    # -- what people do ------------------------------------------------------------------------

    def push_click(self, target: Post | Message | Mapping[str, Any], button: str,
                   as_user: str) -> Delivery:
        """Click ``button`` (its text or action_id) on a message or an open modal; the ack."""
        return self.slack.click(self._live(target), button, as_user=as_user)

    def push_choice(self, target: Post | Message, select: str, option: str,
                    as_user: str) -> Delivery:
        """Pick ``option`` in the select menu ``select`` (e.g. the snooze menu); the ack."""
        return self.slack.choose(self._live(target), select, option, as_user=as_user)

    def push_command(self, text: str, as_user: str, channel: str | None = None) -> Delivery:
        """Type a slash command, e.g. ``/drift mine``; the ack."""
        return self.slack.command(text, as_user=as_user, channel=channel)

    def push_submission(self, values: Mapping[str, Any] | None = None, as_user: str | None = None,
                        view: Mapping[str, Any] | None = None) -> Delivery:
        """Press Submit on the user's open modal (``values`` by action_id or block_id); the
        ack, whose ``extra["errors"]`` holds what the modal shows when it stays open."""
        return self.slack.submit(view, values=values, as_user=as_user)

    def _live(self, target: Post | Message | Mapping[str, Any]) -> Message | Mapping[str, Any]:
        if isinstance(target, Post):
            live = self.slack.message(target.channel, target.ts)
            if live is None:
                raise LookupError(f"message {target.ts} in {target.channel} no longer exists")
            return live
        return target

    # -- the worker's jobs, by hand ------------------------------------------------------------

    def step(self) -> Stepped:
        """What the worker does next: handle the stored Slack requests, execute what was
        approved, then bring Slack's messages up to date."""
        handled = 0
        while claimed := self.runtime.inbox.step():
            handled += claimed
        executed = 0
        while drained := self.runtime.loop.drain():
            executed += drained
        return Stepped(handled, executed, self.runtime.sync.run())

    def poll_and_detect(self) -> Any:
        """Read every connector, then run one detection pass; its ``LifecycleReport``."""
        for name in self.runtime.connectors:
            self.runtime.loop.poll(name)
        return self.runtime.loop.detect()

    # -- what people see -----------------------------------------------------------------------

    def pop_post(self, channel: str | None = None) -> Post:
        """The oldest post or edit by the bot (in ``channel``: an id, ``#name`` or a user's id
        for their DM) that this test has not popped yet."""
        posts = self._unpopped(channel)
        if not posts:
            where = f" in {channel}" if channel else ""
            raise AssertionError(f"alignbot posted nothing new{where}; posts not popped yet: "
                                 f"{[(p.channel, p.text[:60]) for _, p in self._unpopped(None)]}")
        index, post = posts[0]
        self._popped.add(index)
        return post

    def pop_posts(self, channel: str | None = None) -> list[Post]:
        """Every post or edit not popped yet (in ``channel``), oldest first."""
        posts = self._unpopped(channel)
        self._popped.update(index for index, _ in posts)
        return [post for _, post in posts]

    def ephemerals(self, user: str) -> list[Message]:
        """What only ``user`` saw (refusals, /drift answers), oldest first."""
        return self.slack.ephemeral_for(user)

    def modal(self, user: str) -> dict[str, Any] | None:
        """The modal ``user`` is looking at, or None."""
        return self.slack.modal(user)

    def _unpopped(self, channel: str | None) -> list[tuple[int, Post]]:
        wanted = None if channel is None else self._channel_id(channel)
        found = []
        for index, call in enumerate(self.slack.calls()):
            if index in self._popped or call.method not in POSTS or not call.ok:
                continue
            message = call.response["message"]
            post = Post(call.response["channel"], call.response["ts"], message.get("text", ""),
                        message.get("blocks", []), call.method == "chat.update",
                        message.get("thread_ts"), message.get("metadata"))
            if wanted is None or post.channel == wanted:
                found.append((index, post))
        return found

    def _channel_id(self, channel: str) -> str:
        ws = self.slack.workspace
        if channel in ws.users:
            return ws.im_for(channel).id
        if channel.startswith("#"):
            for ch in ws.channels.values():
                if ch.name == channel[1:]:
                    return ch.id
            raise LookupError(f"no channel {channel}; have {sorted(c.name for c in ws.channels.values())}")
        return channel


def _stop_quietly(part: Any) -> None:
    try:
        part.stop()
    except Exception:  # the other parts must stop too
        pass


def _asgi_client(app: Any) -> httpx.Client:
    """A client whose requests the ASGI ``app`` answers in the calling thread, without a
    socket (httpx's ASGI transport is async only, so each request runs its own event loop)."""

    async def answer(request: httpx.Request) -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app)) as client:
            return await client.request(request.method, request.url, headers=request.headers,
                                        content=request.content)

    def handle(request: httpx.Request) -> httpx.Response:
        response = asyncio.run(answer(request))
        return httpx.Response(response.status_code, headers=response.headers,
                              content=response.content)

    return httpx.Client(transport=httpx.MockTransport(handle), timeout=10)


def _elements(blocks: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for block in blocks:
        yield from block.get("elements", []) if block.get("type") == "actions" else []
        if isinstance(block.get("accessory"), dict):
            yield block["accessory"]


def _texts(value: Any) -> Iterator[str]:
    """Every ``text`` string inside blocks, depth first."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "text" and isinstance(item, str):
                yield item
            else:
                yield from _texts(item)
    elif isinstance(value, list):
        for item in value:
            yield from _texts(item)

