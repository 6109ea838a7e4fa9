"""The one-command demo in a real browser: `alignbot demo --fast`, then people click in its UI.

Sam (sales, on no team) clicks Approve and is refused; Lena (logistics) approves the same
recommendation; the message turns to "executed" and each sandbox system applied each of its
actions exactly once. SIGTERM stops the demo cleanly. With ALIGNBOT_UPDATE_SCREENSHOT=1 the
screenshot becomes docs/demo.png.
"""

from __future__ import annotations

import contextlib
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

from connectors.serving import free_port
from tests.support.waiting import wait_until

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
REPO = Path(__file__).resolve().parents[2]
SAM, LENA = "U0SALES", "U0LOG1"
LOGISTICS = "C0LOGISTICS"
STARTUP = 120  # seconds for the demo to print its URL
WAIT = 60  # seconds for the bot's work (the scenario clock keeps injecting drift meanwhile)
OUTCOMES = ("Executed in both systems", "Execution failed", "Partially executed")
ACTION_LINE = re.compile(r"^\s*(?::[a-z0-9_+-]+:\s*)?\d+\.\s")


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


def _texts(message: dict) -> list[str]:
    out = []
    for block in message.get("blocks") or []:
        if isinstance(block.get("text"), dict):
            out.append(block["text"].get("text", ""))
        out += [f.get("text", "") for f in block.get("fields") or []]
        out += [e.get("text", "") for e in block.get("elements") or []
                if isinstance(e.get("text"), str)]
    return out


def _has_buttons(message: dict) -> bool:
    return any(b.get("type") == "actions" for b in message.get("blocks") or [])


def _actions_per_system(message: dict) -> dict[str, int]:
    """The numbered action lines under the message's *Planning* / *Logistics* sections."""
    counts: dict[str, int] = {}
    for text in _texts(message):
        head, _, rest = text.partition("\n")
        system = {"*Planning*": "planning", "*Logistics*": "logistics"}.get(head.strip())
        if system:
            counts[system] = sum(1 for line in rest.splitlines() if ACTION_LINE.match(line))
    return counts


def _logistics_only_candidates(demo: Demo) -> list[dict]:
    """Open #logistics recommendations one logistics approval decides, both systems first."""
    found = []
    for ch in _state(demo)["channels"]:
        if ch["id"] != LOGISTICS:
            continue
        for m in ch["messages"]:
            text = " ".join(_texts(m))
            if (_has_buttons(m) and "approval needed: 1 from logistics" in text
                    and " and " not in text.split("approval needed:")[1].split("·")[0]
                    and "still needed" not in text and _actions_per_system(m)):
                found.append(m)
    return sorted(found, key=lambda m: (-len(_actions_per_system(m)),
                                        sum(_actions_per_system(m).values())))


def _received(url: str) -> dict[str, dict]:
    return {e["idempotency_key"]: e
            for e in httpx.get(url + "/received", timeout=10).json()["actions"]}


def test_demo_ui_refuses_an_outsider_and_executes_a_members_approval_once(tmp_path):
    _require_chromium()
    from playwright.sync_api import expect, sync_playwright

    started = time.monotonic()
    demo = Demo(tmp_path)
    try:
        demo.wait_ready()
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            try:
                errors: list[str] = []
                page.on("pageerror", lambda exc: errors.append(str(exc)))
                page.goto(demo.url + "/")
                expect(page.get_by_test_id("app-title")).to_have_text(
                    "alignbot demo — local Slack stand-in")
                expect(page.get_by_test_id("live")).to_have_text("live", timeout=15_000)

                # -- Sam from sales, on no team, tries to approve -------------------------------
                candidates = wait_until(lambda: _logistics_only_candidates(demo), WAIT,
                                   "a #logistics recommendation one logistics approval decides")
                rec = candidates[0]
                ts, per_system = rec["ts"], _actions_per_system(rec)
                page.get_by_test_id("user-picker").select_option(SAM)
                page.get_by_test_id("channel-logistics").click()
                message = page.get_by_test_id(f"message-{ts}")
                message.scroll_into_view_if_needed()
                message.get_by_test_id("button-Approve").click()
                refusal = page.locator('[data-ephemeral="true"]', has_text="Only members of")
                expect(refusal.last).to_be_visible(timeout=WAIT * 1000)
                expect(refusal.last).to_contain_text("Only visible to you")
                expect(refusal.last).to_contain_text("logistics")
                expect(message.get_by_test_id("button-Approve")).to_be_visible()
                assert _has_buttons(_message(demo, LOGISTICS, ts)), "the refusal changed nothing"
                refusal.last.scroll_into_view_if_needed()
                page.screenshot(path=tmp_path / "1-refused.png")

                # -- Lena from logistics approves the same one ----------------------------------
                before = {"planning": _received(demo.planning), "logistics": _received(demo.tms)}
                page.get_by_test_id("user-picker").select_option(LENA)
                message.scroll_into_view_if_needed()
                message.evaluate("node => node.scrollIntoView({block: 'end'})")
                expect(message.get_by_test_id("button-Approve")).to_be_enabled()
                page.mouse.move(5, 890)  # no hover highlight in the picture
                shot = tmp_path / "2-recommendation.png"
                page.screenshot(path=shot)
                # The README's picture is refreshed on request, so test runs leave the tree clean.
                if os.environ.get("ALIGNBOT_UPDATE_SCREENSHOT") == "1":
                    docs = REPO / "docs" / "demo.png"
                    docs.parent.mkdir(exist_ok=True)
                    shutil.copy(shot, docs)
                message.get_by_test_id("button-Approve").click()

                outcome = re.compile("|".join(map(re.escape, OUTCOMES)))
                expect(message).to_contain_text(outcome, timeout=WAIT * 1000)
                page.screenshot(path=tmp_path / "3-decided.png")
                expect(message).to_contain_text("Executed in both systems")
                expect(message).not_to_contain_text("Execution failed")
                expect(message.get_by_test_id("button-Approve")).to_have_count(0)
                expect(message).to_contain_text("@lena.logistics")

                # -- each sandbox applied each of its actions exactly once -----------------------
                time.sleep(2)  # anything duplicated would have landed by now
                for system, url in (("planning", demo.planning), ("logistics", demo.tms)):
                    after = _received(url)
                    new = {k: e for k, e in after.items() if k not in before[system]}
                    assert len(new) == per_system.get(system, 0), (system, new, per_system)
                    for key, entry in new.items():
                        assert entry["applied"] == 1 and entry["status"] == "done", (key, entry)
                    assert all(after[k]["applied"] == e["applied"]
                               for k, e in before[system].items()), "an older action re-ran"
                assert sum(per_system.values()) >= 1

                # -- the thread keeps the history ----------------------------------------------
                replies = page.get_by_test_id(f"replies-{ts}")
                expect(replies).to_be_visible(timeout=WAIT * 1000)
                replies.click()
                expect(page.get_by_test_id("thread-replies")).to_contain_text(
                    "xecuted", timeout=WAIT * 1000)
                page.screenshot(path=tmp_path / "4-thread.png")
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
