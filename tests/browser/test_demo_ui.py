"""The one-command demo in a real browser: `alignbot demo --fast`, walked as a newcomer would.

The page opens on the introduction; Start begins the story. Priya approves the demand spike
(each sandbox applies each of its actions exactly once); Sam is refused on the late truck and
Lena rejects it with a reason (then `/drift held` lists it); Luis modifies the capacity cut (the
system gets his quantity); the big demand move needs Priya and Lena; the last delay resolves on
its own; five recommendations in all. SIGTERM stops the demo cleanly. With
ALIGNBOT_UPDATE_SCREENSHOT=1 the screenshots become docs/demo*.png, for a person to compare by eye.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from sandbox.serving import free_port
from tests.support.waiting import wait_until

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
REPO = Path(__file__).resolve().parents[2]
PRIYA, LENA, LUIS, SAM = "U0PLAN1", "U0LOG1", "U0LOG2", "U0SALES"
PLANNING, LOGISTICS = "C0PLANNING", "C0LOGISTICS"
STARTUP = 120  # seconds for the demo to print its URL
WAIT = 60  # seconds for the bot's work
EXECUTED = re.compile("Executed in")
REASON = "The customer agreed to wait for the truck."


def _require_chromium() -> None:
    if Path(CHROMIUM).exists():
        return
    if os.environ.get("ALIGNBOT_REQUIRE_CHROMIUM") == "1":
        pytest.fail(f"{CHROMIUM} is required (ALIGNBOT_REQUIRE_CHROMIUM=1) but missing: "
                    "apt-get install chromium")
    pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium) — skipping the "
                "browser test")


def _alignbot() -> str:
    beside = Path(sys.executable).with_name("alignbot")
    found = str(beside) if beside.exists() else shutil.which("alignbot")
    if not found:
        pytest.fail("the `alignbot` command is not installed in this environment")
    return found


class Demo:
    """`alignbot demo --fast --port N` as a user starts it, its output kept in a log file."""

    def __init__(self, workdir: Path, *options: str):
        self.port = free_port()
        self.log_path = workdir / "demo.log"
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [_alignbot(), "demo", "--fast", "--port", str(self.port), *options], cwd=workdir,
            stdout=self._log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self.url = self.planning = self.tms = ""

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self) -> None:
        deadline = time.monotonic() + STARTUP
        while time.monotonic() < deadline:
            out = self.output()
            opened = re.search(r"open (http://127\.0\.0\.1:\d+)/", out)
            systems = re.search(r"sandbox planning (http://\S+?), TMS (http://\S+?),", out)
            if opened and systems:
                self.url, (self.planning, self.tms) = opened.group(1), systems.groups()
                assert self.url.endswith(f":{self.port}")
                return
            if self.proc.poll() is not None:
                pytest.fail(f"alignbot demo exited with {self.proc.returncode}:\n{out}")
            time.sleep(0.2)
        pytest.fail(f"alignbot demo did not print its URL in {STARTUP}s:\n{self.output()}")

    def terminate(self, timeout: float = 60) -> int:
        """SIGTERM, as a service manager (or `kill`) stops it; the exit code.

        Not SIGINT: a shell running the tests in the background makes children ignore it, and
        a Ctrl-C landing inside a polars query in a scheduler job prints that job's traceback.
        """
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        finally:
            self._log.close()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._log.close()


def _state(demo: Demo) -> dict:
    return httpx.get(demo.url + "/standin/state", timeout=10).json()


def _message(demo: Demo, channel: str, ts: str) -> dict | None:
    for ch in _state(demo)["channels"]:
        if ch["id"] == channel:
            return next((m for m in ch["messages"] if m["ts"] == ts), None)
    return None


def _has_buttons(message: dict) -> bool:
    return any(b.get("type") == "actions" for b in message.get("blocks") or [])


def _recommendations(demo: Demo) -> list[dict]:
    """The bot's recommendation messages (they carry its metadata), in both channels."""
    return [{**m, "channel": ch["id"]} for ch in _state(demo)["channels"] if not ch.get("is_im")
            for m in ch["messages"] if m.get("metadata", {}).get("event_payload", {}).get("id")]


def _recommendation(demo: Demo, channel: str, *needles: str) -> dict | None:
    """The recommendation message in ``channel`` that mentions every one of ``needles``."""
    for m in _recommendations(demo):
        if m["channel"] == channel and all(n in json.dumps(m) for n in needles):
            return m
    return None


def _beat(demo: Demo, kind: str) -> dict:
    """A played beat of the sandbox world's story: what it changed, and where."""
    def played() -> dict | None:
        injected = httpx.get(demo.planning + "/scenario", timeout=10).json()["injected"]
        return next((b for b in injected if b.get("kind") == kind), None)
    return wait_until(played, WAIT, f"the story's {kind} beat")


def _received(url: str) -> dict[str, dict]:
    return {e["idempotency_key"]: e
            for e in httpx.get(url + "/received", timeout=10).json()["actions"]}


def _new_actions(before: dict[str, dict], url: str) -> dict[str, dict]:
    after = _received(url)
    assert all(after[k]["applied"] == e["applied"] for k, e in before.items()), \
        "an older action ran again"
    return {k: e for k, e in after.items() if k not in before}


def test_the_demo_tells_its_story_and_people_decide_in_the_browser(tmp_path):
    _require_chromium()
    from playwright.sync_api import expect, sync_playwright

    started = time.monotonic()
    demo = Demo(tmp_path)
    shots: dict[str, Path] = {}
    try:
        demo.wait_ready()
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 900})

            def shot(name: str) -> None:
                page.mouse.move(5, 890)  # no hover highlight in the picture
                page.wait_for_timeout(1700)  # nor an edited message's flash
                shots[name] = tmp_path / f"{name}.png"
                page.screenshot(path=shots[name])

            def act_as(user: str) -> None:
                page.get_by_test_id("user-picker").select_option(user)

            def modal_submit() -> None:
                page.get_by_test_id("modal-submit").click()
                expect(page.get_by_test_id("modal")).to_have_count(0, timeout=WAIT * 1000)

            try:
                errors: list[str] = []
                page.on("pageerror", lambda exc: errors.append(str(exc)))
                page.goto(demo.url + "/")
                expect(page.get_by_test_id("live")).to_have_text("live", timeout=15_000)

                # -- the page opens on the introduction ---------------------------------------
                intro = page.get_by_test_id("intro")
                expect(intro).to_be_visible()
                for words in ("alignbot", "Who you can be", "Priya", "Lena", "Sam", "Hana",
                              "What to try", "Reject", "Modify", "Snooze", "/drift held", "Home"):
                    expect(intro).to_contain_text(words)
                expect(page.get_by_test_id("intro-start")).to_have_text("Start the story")
                shot("demo-intro")
                page.get_by_test_id(f"intro-as-{PRIYA}").click()
                expect(page.get_by_test_id("user-picker")).to_have_value(PRIYA)
                page.get_by_test_id("intro-start").click()
                expect(intro).to_have_count(0)
                expect(page.get_by_test_id("channel-title")).to_have_text("planning")

                # -- 1. a demand spike: Priya approves ----------------------------------------
                spike = _beat(demo, "demand_spike")
                expect(page.locator(".msg.narrator", has_text="1/5")).to_be_visible(
                    timeout=WAIT * 1000)
                rec = wait_until(lambda: _recommendation(demo, PLANNING, spike["sku"],
                                                         spike["location"]),
                                 WAIT, "the demand spike's recommendation")
                message = page.get_by_test_id(f"message-{rec['ts']}")
                expect(message.get_by_test_id("button-Approve")).to_be_visible(
                    timeout=WAIT * 1000)
                shot("demo-decision")
                before = {"planning": _received(demo.planning), "tms": _received(demo.tms)}
                message.get_by_test_id("button-Approve").click()
                expect(message).to_contain_text(EXECUTED, timeout=WAIT * 1000)
                expect(message).to_contain_text("@priya.planner")
                expect(message.get_by_test_id("button-Approve")).to_have_count(0)
                message.scroll_into_view_if_needed()
                shot("demo-approved")
                time.sleep(2)  # anything duplicated would have landed by now
                done = {system: _new_actions(before[system], url)
                        for system, url in (("planning", demo.planning), ("tms", demo.tms))}
                assert done["planning"], "the forecast change reached the planning system"
                for system, entries in done.items():
                    for key, entry in entries.items():
                        assert entry["applied"] == 1 and entry["status"] == "done", \
                            (system, key, entry)

                # -- 2. a late truck: Sam is refused, Lena rejects with a reason --------------
                late = _beat(demo, "late_shipment")
                rec = wait_until(lambda: _recommendation(
                    demo, LOGISTICS, f"from {late['origin']} with {late['carrier']}"),
                    WAIT, "the late truck's recommendation")
                act_as(SAM)
                page.get_by_test_id("channel-logistics").click()
                message = page.get_by_test_id(f"message-{rec['ts']}")
                message.scroll_into_view_if_needed()
                message.get_by_test_id("button-Approve").click()
                refusal = page.locator('[data-ephemeral="true"]', has_text="Only members of")
                expect(refusal.last).to_be_visible(timeout=WAIT * 1000)
                expect(refusal.last).to_contain_text("logistics")
                assert _has_buttons(_message(demo, LOGISTICS, rec["ts"])), \
                    "the refusal changed nothing"
                act_as(LENA)
                message.scroll_into_view_if_needed()
                message.get_by_test_id("button-Reject").click()
                expect(page.get_by_test_id("modal")).to_be_visible(timeout=WAIT * 1000)
                page.get_by_test_id("input-reason").fill(REASON)
                modal_submit()
                expect(message).to_contain_text("Rejected", timeout=WAIT * 1000)
                expect(message).to_contain_text(REASON)

                # -- 3. a capacity cut: Luis modifies a quantity, the system gets his ---------
                cut = _beat(demo, "capacity_cut")
                rec = wait_until(lambda: _recommendation(demo, LOGISTICS,
                                                         f"Carrier {cut['carrier']}"),
                                 WAIT, "the capacity cut's recommendation")
                act_as(LUIS)
                message = page.get_by_test_id(f"message-{rec['ts']}")
                message.scroll_into_view_if_needed()
                message.get_by_test_id("button-Modify").click()
                expect(page.get_by_test_id("modal")).to_be_visible(timeout=WAIT * 1000)
                field = page.locator('[data-input-type][data-testid$=".qty"]').first
                field.fill("1000")
                before_cut = _received(demo.planning)
                modal_submit()
                expect(message).to_contain_text(EXECUTED, timeout=WAIT * 1000)
                new = _new_actions(before_cut, demo.planning)
                assert [e["params"]["qty"] for e in new.values()
                        if e["operation"] == "rephase_plan"] == [1000], new

                # -- 4. a big demand move: Priya, then Lena --------------------------------------
                big = _beat(demo, "big_demand_move")
                rec = wait_until(lambda: _recommendation(demo, PLANNING, big["sku"],
                                                         big["location"]),
                                 WAIT, "the big demand move's recommendation")
                act_as(PRIYA)
                page.get_by_test_id("channel-planning").click()
                message = page.get_by_test_id(f"message-{rec['ts']}")
                message.scroll_into_view_if_needed()
                expect(message).to_contain_text("logistics")
                message.get_by_test_id("button-Approve").click()
                expect(message).to_contain_text("still needed", timeout=WAIT * 1000)
                expect(message.get_by_test_id("button-Approve")).to_be_visible()
                message.scroll_into_view_if_needed()
                shot("demo-two-teams")
                act_as(LENA)
                message.scroll_into_view_if_needed()
                message.get_by_test_id("button-Approve").click()
                expect(message).to_contain_text(EXECUTED, timeout=WAIT * 1000)
                expect(message).to_contain_text("@priya.planner")
                expect(message).to_contain_text("@lena.logistics")

                # -- 5. a delay that sorts itself out -------------------------------------------
                delay = _beat(demo, "back_on_time")
                rec = wait_until(lambda: _recommendation(
                    demo, LOGISTICS, f"from {delay['origin']} with {delay['carrier']}"),
                    WAIT, "the delay's recommendation")
                page.get_by_test_id("channel-logistics").click()
                message = page.get_by_test_id(f"message-{rec['ts']}")
                expect(message).to_contain_text("Resolved on its own", timeout=WAIT * 1000)
                expect(message.get_by_test_id("button-Approve")).to_have_count(0)

                # -- /drift held: the rejected truck is held back, with its reason ------------
                def held() -> bool:
                    page.get_by_test_id("command-box").fill("/drift held")
                    page.get_by_test_id("command-send").click()
                    answer = page.locator('[data-ephemeral="true"]').last
                    expect(answer).to_be_visible(timeout=WAIT * 1000)
                    return REASON in answer.inner_text()
                wait_until(held, WAIT, "/drift held listing the rejected truck")

                expect(page.locator(".msg.narrator", has_text="That was the story")).to_have_count(
                    1, timeout=WAIT * 1000)
                assert len(_recommendations(demo)) == 5, [
                    (m["channel"], m["text"][:80]) for m in _recommendations(demo)]
                assert not errors, f"JavaScript errors in the page: {errors}"
            except BaseException:
                with contextlib.suppress(Exception):
                    page.screenshot(path=tmp_path / "failure.png")
                raise
            finally:
                browser.close()

        running = len(demo.output())
        code = demo.terminate()
        out = demo.output()
        assert code == 0, f"alignbot demo exited with {code} on SIGTERM:\n{out[-4000:]}"
        assert "alignbot demo stopped." in out[running:]
        assert "Traceback" not in out[running:], out[running:]
    finally:
        demo.kill()
    # The pictures in docs/ are refreshed on request, so test runs leave the tree clean.
    if os.environ.get("ALIGNBOT_UPDATE_SCREENSHOT") == "1":
        (REPO / "docs").mkdir(exist_ok=True)
        for name, path in shots.items():
            shutil.copy(path, REPO / "docs" / f"{name}.png")
        shutil.copy(shots["demo-decision"], REPO / "docs" / "demo.png")
    print(f"browser demo test took {time.monotonic() - started:.1f}s; screenshots in {tmp_path}")


def test_demo_over_socket_mode_answers_a_command_through_the_socket(tmp_path):
    """`alignbot demo --socket-mode`: no request URL; people's requests reach the bot as
    envelopes on the WebSocket it opened, and its answers come back through the Web API."""
    demo = Demo(tmp_path, "--socket-mode")
    try:
        demo.wait_ready()
        assert "over Socket Mode" in demo.output()
        state = wait_until(lambda: (s := _state(demo))["socket_mode"]["connections"] == 1 and s,
                           WAIT, "the bot's Socket Mode connection")
        assert state["app_url"] is None  # Slack has no URL to reach the bot at
        sent = httpx.post(demo.url + "/standin/command", timeout=30, json={
            "user": "U0PLAN1", "channel": "C0PLANNING", "text": "/drift help"})
        assert sent.status_code == 200, sent.text
        wait_until(lambda: any("/drift mine" in str(m.get("blocks") or m.get("text"))
                               for m in _state(demo)["ephemeral"].get("U0PLAN1", [])),
                   WAIT, "the /drift help answer")
        assert demo.terminate() == 0
        assert "Traceback" not in demo.output()
    finally:
        demo.kill()
