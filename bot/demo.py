"""`alignbot demo`: the whole loop on one machine, with nothing but this repository.

Starts the sandbox planning system and TMS, the local Slack stand-in, and the bot in HTTP mode
against it (or over Socket Mode with ``socket_mode=True``), all on 127.0.0.1. ``run_demo`` tells
a story: the browser UI opens on an introduction, and once started, one drift at a time arrives
with a narrator's note saying what happened, so a newcomer sees a handful of decisions rather
than a flood. The end-to-end tests drive the very same ``DemoStack`` (without the story, with
the sandbox's random scenario steps).
"""

from __future__ import annotations

import re
import secrets
import shutil
import signal
import sys
import tempfile
import threading
import time
from datetime import date, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from bot.config import AlignbotConfig, load_config
from bot.ingress import Ingress, SocketModeIngress
from bot.runtime import Runtime
from bot.supervisor import alignbot_command, die_with_parent
from sandbox.serving import BackgroundServer
from sandbox.slack import SlackStandin
from sandbox.systems import start_sandboxes
from store.inbox import open_inbox
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
# Posts the story's notes; a bot user, so nobody picks it to act as.
NARRATOR = {"id": "U0NARRATOR", "name": "demo.narrator", "real_name": "Demo narrator",
            "is_bot": True}
STORY_SECONDS = 20.0  # between two beats of the story
FAST_STORY_SECONDS = 4.0

INTRO: dict[str, Any] = {
    "title": "Welcome to the alignbot demo",
    "about": (
        "Planning works in weekly cycles, logistics by the hour, and the two drift apart when "
        "reality leaves the plan. *alignbot* watches both systems — here a sandbox planning "
        "system and a sandbox TMS — finds the drift, works out what it costs, and posts *one "
        "recommendation*, with the changes for both systems, to the team that owns it. People "
        "approve, reject, modify or snooze it with a click; approved changes are made in both "
        "systems exactly once, and the message shows what happened. This page stands in for "
        "Slack, on your machine."),
    "people": [
        {"id": "U0PLAN1", "role": "planner: decides in #planning"},
        {"id": "U0PLAN2", "role": "planner: decides in #planning"},
        {"id": "U0HEADPLAN", "role": "head of planning: told when a planning decision "
                                    "expires; not on the team"},
        {"id": "U0LOG1", "role": "logistics (@logistics): decides in #logistics"},
        {"id": "U0LOG2", "role": "logistics lead: decides in #logistics, told when a "
                                "decision expires"},
        {"id": "U0SALES", "role": "sales, on no team: can look, cannot decide"},
    ],
    "try": [
        "*Approve* the demand spike in #planning as Priya: the message shows what was done in "
        "each system.",
        "*Reject* the late truck in #logistics as Lena, with a reason (as Sam first: refused).",
        "*Modify* the capacity cut as Luis: change a quantity, then submit to approve.",
        "*Snooze* one for an hour, a day or a week.",
        "*Two-team approval*: the big demand move needs Priya or Paul *and* Lena or Luis.",
        "Type `/drift`, `/drift mine` or `/drift held` (what a decision holds back) in the box "
        "at the bottom, and open *alignbot* under Apps for your Home.",
    ],
    "story": "About every {seconds:.0f} seconds something happens in one of the systems; a "
             "note from the demo narrator says what, and alignbot's recommendation follows. "
             "Five drifts in all, the last of which sorts itself out.",
    "narrator": NARRATOR["id"],
    "started": False,
}


def _day(period: str) -> str:
    day = date.fromisoformat(period)
    return f"{day.day} {day:%b}"


def _weeks(periods: list[str]) -> str:
    days = [_day(p) for p in periods]
    if len(days) == 1:
        return f"the week of {days[0]}"
    return "the weeks of " + ", ".join(days[:-1]) + " and " + days[-1]


def story_note(beat: dict[str, Any], channels: dict[str, str]) -> list[tuple[str, str]]:
    """(team, text) of the narrator's notes for one beat of the sandbox world's story;
    ``channels``: team name -> channel id."""
    kind = beat["kind"]
    if kind in ("demand_spike", "big_demand_move"):
        up = sum(beat["latest"][p] - beat["planned"][p] for p in beat["periods"])
        what = (f"Orders for {beat['sku']} at {beat['location']} came in at {beat['factor']:g}× "
                f"the forecast for {_weeks(beat['periods'])}: {up:,.0f} units more than the "
                "plan assumes.")
        if kind == "demand_spike":
            return [("planning", (
                f":chart_with_upwards_trend: *1/5 · A demand spike.* {what} This is planning's "
                "call. _Try:_ as Priya or Paul, *Approve* it."))]
        here = (f":rotating_light: *4/5 · A big demand move.* {what} Over 25,000 of stock "
                "value is at risk, so the rule _big demand moves need both sides_ asks one "
                "approval from planning *and* one from logistics. _Try:_ approve as Priya, "
                "then as Lena.")
        there = (f":rotating_light: *4/5 · A big demand move* in <#{channels['planning']}> "
                 "needs logistics too: one approval from planning and one from logistics. "
                 "_Try:_ as Lena, approve it there.")
        return [("planning", here), ("logistics", there)]
    if kind == "late_shipment":
        return [("logistics", (
            f":truck: *2/5 · A late truck.* {beat['shipment_id']} ({beat['carrier']}, "
            f"{beat['origin']} → {beat['destination']}) reports {beat['delay_hours']} hours late: "
            f"{beat['exception_code']}. It brings {beat['qty']:,.0f} units of {beat['sku']}, and "
            f"{beat['destination']} has only enough to last until the truck was due — so it "
            "runs short. _Try:_ as Sam, *Approve* (refused: only logistics decides); then as "
            "Lena, *Reject* it with a reason."))]
    if kind == "capacity_cut":
        return [("logistics", (
            f":scissors: *3/5 · A carrier cuts capacity.* {beat['carrier']} can move only "
            f"{beat['available_capacity']:,.0f} units in the week of {_day(beat['period'])}, "
            f"not the {beat['planned_capacity']:,.0f} it offered; {beat['planned_load']:,.0f} "
            "are planned on it. _Try:_ as Luis, *Modify* the recommendation — change a "
            "quantity — and submit."))]
    if kind == "delay":
        return [("logistics", (
            f":hourglass_flowing_sand: *5/5 · Another delay.* {beat['shipment_id']} "
            f"({beat['carrier']}, {beat['origin']} → {beat['destination']}) reports "
            f"{beat['delay_hours']} hours late: {beat['exception_code']}. "
            f"{beat['destination']} has stock enough. _Try:_ *Snooze* it — or wait a minute."))]
    if kind == "back_on_time":
        return [("logistics", (
            f":white_check_mark: *Back on time.* {beat['carrier']} now reports "
            f"{beat['shipment_id']} on schedule again. Nobody has to decide: alignbot marks its "
            "recommendation _Resolved on its own_."))]
    raise ValueError(f"no note for a story beat of kind {kind!r}")


OPENING = (":clapper: *The story starts.* Right now plan and execution agree: nothing to "
           "decide. About every {seconds:.0f} s something will happen in the sandbox planning "
           "system or TMS; I say what in the channel it concerns, and alignbot posts its "
           "recommendation right after. You act as the person picked at the top right.")
CLOSING = (":clapper: *That was the story.* Keep clicking: `/drift` lists what is open, "
           "`/drift held` what a decision holds back (reject something first), and *alignbot* "
           "under Apps shows your Home. Ctrl-C in the terminal stops the demo.")


class Narrator:
    """Tells the story in the channels: as each beat happens, a note from the narrator (not
    the bot) in the channel it concerns; then the bot polls at once rather than on its
    schedule, so its recommendation follows the note."""

    def __init__(self, stack: DemoStack):
        self.stack = stack
        self.told: list[dict[str, Any]] = []
        self._last_told = 0.0
        self._closed = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="demo-narrator", daemon=True)

    def start(self) -> Narrator:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)

    def begin(self) -> None:
        """The introduction's Start button: the story's clock starts."""
        if self.stack.world.start_story():
            text = OPENING.format(seconds=self.stack.story_seconds)
            self._say([("planning", text), ("logistics", text)])

    def _run(self) -> None:
        world = self.stack.world
        while not self._stop.wait(0.2):
            with world.lock:
                world.catch_up()
                told = {b["beat"] for b in self.told}
                new = [b for b in world.injected if "beat" in b and b["beat"] not in told]
            for beat in new:
                self.told.append(beat)
                self._say(story_note(beat, {t.name: t.channel for t in self.stack.config.teams}))
                self._last_told = time.monotonic()
                self.stack.wake_polls()
            if (not self._closed and len(self.told) == len(world.story)
                    and time.monotonic() - self._last_told >= self.stack.story_seconds):
                self._closed = True
                self._say([("planning", CLOSING), ("logistics", CLOSING)])

    def _say(self, notes: list[tuple[str, str]]) -> None:
        for team, text in notes:
            self.stack.slack.say(text, as_user=NARRATOR["id"],
                                 channel=self.stack.config.team(team).channel)


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
                 checks_from: bool = True, story_seconds: float | None = None,
                 ingress_process: bool = False):
        """``story_seconds``: tell the story (introduction, narrator, a beat every so many
        seconds once started) instead of random scenario steps. ``ingress_process``: run the
        ingress as its own process (``alignbot demo``); tests keep it in theirs."""
        self.ingress_process = ingress_process
        self.fast = fast
        self.story_seconds = story_seconds
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
                                                      checks_from=self.checks_from,
                                                      story_seconds=self.story_seconds)
            self._started += [self.planning, self.tms]
            self.config = demo_config(self.planning.url, self.tms.url, fast=self.fast,
                                      path=self.config_path)
            users = DEMO_USERS + ([NARRATOR] if self.story_seconds else [])
            members = [u["id"] for u in users]
            self.slack = SlackStandin(
                self.bot_token, self.signing_secret, port=self.ui_port,
                channels=[{"id": t.channel, "name": t.name, "members": members}
                          for t in self.config.teams],
                users=users, usergroups=DEMO_GROUPS, app_token=self.app_token)
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
            self.runtime.start()
            self._started.append(self.runtime)
            self._start_ingress(environ)
            if self.story_seconds:
                self.narrator = Narrator(self).start()
                self._started.append(self.narrator)
                self.slack.intro = {**INTRO, "story": INTRO["story"].format(
                    seconds=self.story_seconds)}
                self.slack.on_start = self.narrator.begin
        except BaseException:
            self.stop()
            raise
        return self

    def _start_ingress(self, environ: dict[str, str]) -> None:
        """The ingress, in this process (tests: it wakes the worker directly) or as a process
        of its own (``alignbot demo``: as ``alignbot run`` has it)."""
        if self.ingress_process:
            self.ingress = _IngressProcess(self.config, environ, self._folder()).start()
            self._started.append(self.ingress)
        else:
            app = Ingress(open_inbox(self.database_url, self.runtime.engine),
                          self.signing_secret, on_stored=self.runtime.inbox.wake)
            self._started.append(app)
            self.ingress = BackgroundServer(app).start()  # /healthz; /slack/events over HTTP
            self._started.append(self.ingress)
            if self.socket_mode:
                self._started.append(self._connect_socket_mode(app))
        if self.socket_mode:
            self.slack.socket.wait_connected()
        else:
            self.slack.app_url = self.ingress.url + "/slack/events"

    def _connect_socket_mode(self, ingress: Ingress) -> SimpleNamespace:
        """Hold the stand-in's Socket Mode WebSocket here, as ``alignbot ingress`` does with
        SLACK_APP_TOKEN set."""
        socket = SocketModeIngress(ingress.commit, self.app_token,
                                   self.slack.api_url).connect()

        def stop() -> None:
            # Slack closes the socket first: the client then stops without waiting out its
            # blocking read (up to 3 s), and must not reconnect.
            socket.client.auto_reconnect_enabled = False
            self.slack.socket.drop()
            socket.stop()

        return SimpleNamespace(stop=stop)

    def _folder(self) -> Path:
        if self._tmp is None:
            self._tmp = Path(tempfile.mkdtemp(prefix="alignbot-demo-"))
        return self._tmp

    @property
    def world(self) -> Any:
        """The sandbox world both systems serve (``sandbox.systems.World``)."""
        return self.planning.world  # type: ignore[attr-defined]

    def wake_polls(self) -> None:
        """Poll every connector now rather than on its schedule."""
        self.runtime.jobs.wake(*(f"poll:{c.name}" for c in self.config.connectors))

    def step(self) -> dict:
        """Advance the scenario clock one step (inject the next drift) and poll at once."""
        import httpx

        injected = httpx.post(self.planning.url + "/scenario/step", timeout=10).json()
        self.wake_polls()
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
            self._tmp = None

    def __enter__(self) -> DemoStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _IngressProcess:
    """``alignbot ingress`` as a child process, on a free port, until ``stop``."""

    def __init__(self, config: AlignbotConfig, environ: dict[str, str], folder: Path):
        import os

        import yaml

        from sandbox.serving import free_port

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        path = folder / "ingress.yml"
        path.write_text(yaml.safe_dump(config.model_dump(mode="json", by_alias=True)))
        self.argv = alignbot_command("ingress", "--config", str(path), "--host", "127.0.0.1",
                                     "--port", str(self.port))
        self.env = {**os.environ, **environ, "ALIGNBOT_LOG_LEVEL": "WARNING"}

    def start(self) -> _IngressProcess:
        import subprocess

        import httpx

        # dies with the demo, even when the demo is killed
        self.process = subprocess.Popen(self.argv, env=self.env, preexec_fn=die_with_parent)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("the demo's ingress process did not start (see its output above)")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except Exception:
            self.process.kill()


def keep_folder(folder: Path) -> str:
    """Make ``folder`` hold the demo's database and an ``alignbot.yml`` naming it (the example
    configuration otherwise), so the CLI works on the demo's history; the database URL."""
    folder.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{(folder / 'alignbot.db').resolve()}"
    text = EXAMPLE_CONFIG.read_text(encoding="utf-8")
    # Its own variable: a DATABASE_URL set for other work must not point this file elsewhere.
    text = re.sub(r"(?m)^database_url_env:.*$", "database_url_env: ALIGNBOT_DEMO_DATABASE_URL",
                  text)
    text = re.sub(r"(?m)^database_url_default:.*$", f"database_url_default: {url}", text)
    header = ("# Written by `alignbot demo --keep`: the example configuration, pointed at the\n"
              "# demo's database in this folder. The sandbox ports are gone once the demo stops.\n")
    (folder / "alignbot.yml").write_text(header + text, encoding="utf-8")
    return url


def _command() -> str:
    """How this shell runs alignbot: the path it was started by, if that is alignbot."""
    exe = Path(sys.argv[0])
    if exe.name != "alignbot":
        return "alignbot"
    try:
        return str(exe.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(exe)


def run_demo(*, fast: bool = False, ui_port: int = 8600, duration: float | None = None,
             socket_mode: bool = False, keep: Path | None = None) -> None:
    """``alignbot demo``: the story, in the browser UI, until Ctrl-C (or ``duration``)."""
    database_url = keep_folder(keep) if keep else None
    stack = DemoStack(fast=fast, ui_port=ui_port, socket_mode=socket_mode,
                      database_url=database_url, ingress_process=True,
                      story_seconds=FAST_STORY_SECONDS if fast else STORY_SECONDS).start()
    done = threading.Event()
    # Ctrl-C and SIGTERM both just say "stop": no KeyboardInterrupt lands inside a running job.
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    print(f"alignbot demo is running — open {stack.slack.url}/ in your browser and press "
          "Start", flush=True)
    print(f"  (sandbox planning {stack.planning.url}, TMS {stack.tms.url}, "
          f"ingress {stack.ingress.url}, worker {stack.bot.url}; Ctrl-C stops everything)",
          flush=True)
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
        if keep:
            _print_kept(keep)


def _print_kept(folder: Path) -> None:
    shown = folder / "alignbot.yml"
    exe = _command()
    print(f"The demo's history is kept in {folder}/ (alignbot.db, and alignbot.yml naming it):",
          flush=True)
    print(f"  {exe} drift --config {shown}", flush=True)
    print(f"  {exe} digest --team planning --dry-run --config {shown}", flush=True)
    print(f"  {exe} digest --team logistics --dry-run --config {shown}", flush=True)
