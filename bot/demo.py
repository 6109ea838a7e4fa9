"""`alignbot demo`: the whole loop on one machine, with nothing but this repository.

Starts the sandbox planning system and TMS (with a scenario clock that injects drift), the
local Slack stand-in, and the bot in HTTP mode against it (or over Socket Mode with
``socket_mode=True``), all on 127.0.0.1. The end-to-end tests drive the very same ``DemoStack``.
"""

from __future__ import annotations

import secrets
import shutil
import signal
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

from bot.config import AlignbotConfig, load_config
from bot.runtime import Runtime, freeze_startup_objects
from bot.standin import SlackStandin
from connectors.sandbox import start_sandboxes
from connectors.serving import BackgroundServer
from store.migrate import upgrade

EXAMPLE_CONFIG = Path(__file__).resolve().parent.parent / "alignbot.example.yml"

DEMO_USERS = [
    {"id": "U0PLAN1", "name": "priya.planner", "real_name": "Priya (planning)"},
    {"id": "U0PLAN2", "name": "paul.planner", "real_name": "Paul (planning)"},
    {"id": "U0LOG1", "name": "lena.logistics", "real_name": "Lena (logistics)"},
    {"id": "U0LOG2", "name": "luis.logistics", "real_name": "Luis (logistics)"},
    {"id": "U0HEADPLAN", "name": "hana.head", "real_name": "Hana (head of planning)"},
    {"id": "U0SALES", "name": "sam.sales", "real_name": "Sam (sales, not on a team)"},
]
DEMO_GROUPS = {"S0LOGISTICS": ["U0LOG1", "U0LOG2"], "S0LOGLEADS": ["U0LOG2"]}


def demo_config(planning_url: str, tms_url: str, *, fast: bool,
                path: Path = EXAMPLE_CONFIG) -> AlignbotConfig:
    """The example config, pointed at this run's sandbox ports and polling quickly."""
    config = load_config(path)
    urls = {"planning": planning_url, "logistics": tms_url}
    every = timedelta(seconds=2 if fast else 5)
    connectors = []
    for conn in config.connectors:
        settings = {**conn.settings, "base_url": urls[conn.system]}
        connectors.append(conn.model_copy(update={
            "settings": settings, "schedule": conn.schedule.model_copy(update={"every": every,
                                                                              "cron": None})}))
    return config.model_copy(update={"connectors": connectors})


class DemoStack:
    """Sandboxes + Slack stand-in + bot, started together and stopped together."""

    def __init__(self, *, fast: bool = True, database_url: str | None = None, seed: int = 7,
                 ui_port: int = 0, auto_step_seconds: float | None = None,
                 config_path: Path = EXAMPLE_CONFIG, socket_mode: bool = False,
                 checks_from: bool = True):
        self.fast = fast
        self.checks_from = checks_from
        self.socket_mode = socket_mode
        self.seed = seed
        self.ui_port = ui_port
        self.auto_step = auto_step_seconds
        self.config_path = config_path
        self._tmp: Path | None = None
        if database_url is None:
            self._tmp = Path(tempfile.mkdtemp(prefix="alignbot-demo-"))
            database_url = f"sqlite:///{self._tmp / 'alignbot.db'}"
        self.database_url = database_url
        self.bot_token = "xoxb-demo-" + secrets.token_hex(8)
        self.signing_secret = secrets.token_hex(16)
        self.webhook_secret = secrets.token_hex(16)
        self.app_token = "xapp-1-A0ALIGNBOT-" + secrets.token_hex(8) if socket_mode else None
        self._started: list = []

    def start(self) -> DemoStack:
        try:
            upgrade(self.database_url)
            self.planning, self.tms = start_sandboxes(seed=self.seed,
                                                      auto_step_seconds=self.auto_step,
                                                      checks_from=self.checks_from)
            self._started += [self.planning, self.tms]
            self.config = demo_config(self.planning.url, self.tms.url, fast=self.fast,
                                      path=self.config_path)
            members = [u["id"] for u in DEMO_USERS]
            self.slack = SlackStandin(
                self.bot_token, self.signing_secret, port=self.ui_port,
                channels=[{"id": t.channel, "name": t.name, "members": members}
                          for t in self.config.teams],
                users=DEMO_USERS, usergroups=DEMO_GROUPS, app_token=self.app_token)
            self.slack.start()
            self._started.append(self.slack)
            environ = {
                self.config.slack.bot_token_env: self.bot_token,
                self.config.slack.signing_secret_env: self.signing_secret,
                self.config.slack.api_url_env: self.slack.api_url,
                self.config.database_url_env: self.database_url,
                "TMS_WEBHOOK_SECRET": self.webhook_secret,
            }
            if self.app_token:
                environ[self.config.slack.app_token_env] = self.app_token
            self.runtime = Runtime(self.config, fast=self.fast, environ=environ)
            self.bot = BackgroundServer(self.runtime.asgi_app()).start()  # hooks, health
            self._started.append(self.bot)
            if not self.socket_mode:
                self.slack.app_url = self.bot.url + "/slack/events"
            self.runtime.start()
            self._started.append(self.runtime)
            if self.socket_mode:
                self._started.append(self._connect_socket_mode())
        except BaseException:
            self.stop()
            raise
        return self

    def _connect_socket_mode(self) -> SimpleNamespace:
        """Connect the bot to the stand-in over Socket Mode, as ``alignbot run`` does with
        SLACK_APP_TOKEN set (the handler's web client is the runtime's, so
        apps.connections.open goes to SLACK_API_URL too)."""
        handler = self.runtime.connect_socket_mode()
        self.slack.socket.wait_connected()
        self.socket_handler = handler

        def stop() -> None:
            # Slack closes the socket first: the client then stops without waiting out its
            # blocking read (up to 3 s), and must not reconnect.
            handler.client.auto_reconnect_enabled = False
            self.slack.socket.drop()
            self.runtime.disconnect_socket_mode()

        return SimpleNamespace(stop=stop)

    def step(self) -> dict:
        """Advance the scenario clock one step (inject the next drift) and poll at once."""
        import httpx

        injected = httpx.post(self.planning.url + "/scenario/step", timeout=10).json()
        self.runtime.jobs.wake(*(f"poll:{c.name}" for c in self.config.connectors))
        return injected

    def stop(self) -> None:
        for part in reversed(self._started):
            try:
                part.stop()
            except Exception:  # stopping must go on for the other parts
                pass
        self._started.clear()
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self) -> DemoStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def run_demo(*, fast: bool = False, ui_port: int = 8600, duration: float | None = None,
             socket_mode: bool = False) -> None:
    stack = DemoStack(fast=fast, ui_port=ui_port, auto_step_seconds=5 if fast else 20,
                      socket_mode=socket_mode).start()
    freeze_startup_objects()
    stack.runtime.freeze_when_warm()
    done = threading.Event()
    # Ctrl-C and SIGTERM both just say "stop": no KeyboardInterrupt lands inside a running job.
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    print(f"alignbot demo is running — open {stack.slack.url}/ in your browser", flush=True)
    print(f"  (sandbox planning {stack.planning.url}, TMS {stack.tms.url}, "
          f"bot {stack.bot.url}; Ctrl-C stops everything)", flush=True)
    if socket_mode:
        print("  Slack reaches the bot over Socket Mode (a WebSocket the bot opened), not HTTP",
              flush=True)
    started = time.monotonic()
    try:
        while not done.is_set():
            if duration is not None and time.monotonic() - started >= duration:
                break
            done.wait(0.5)
    finally:
        stack.stop()
        print("alignbot demo stopped.", flush=True)
