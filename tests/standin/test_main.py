"""``python -m sandbox.slack`` serves a workspace the demo can point a bot at."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import httpx
from slack_sdk import WebClient

from sandbox.serving import free_port


def test_standalone_process_serves_the_web_api():
    port = free_port()
    env = {**os.environ, "SLACK_BOT_TOKEN": "xoxb-demo", "SLACK_SIGNING_SECRET": "s3cret"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "sandbox.slack", "--port", str(port), "--channel", "C1:planning",
         "--user", "U1:alice"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                state = httpx.get(f"http://127.0.0.1:{port}/standin/state", timeout=1).json()
                break
            except httpx.HTTPError:
                assert proc.poll() is None, proc.stderr.read().decode()
                assert time.monotonic() < deadline, "stand-in did not come up"
                time.sleep(0.1)
        assert [c["name"] for c in state["channels"]] == ["planning"]
        client = WebClient("xoxb-demo", base_url=f"http://127.0.0.1:{port}/api/", timeout=5)
        assert client.chat_postMessage(channel="#planning", text="hi")["channel"] == "C1"
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0
    assert b"/api/" in out
    assert b"s3cret" not in out + err and b"xoxb-demo" not in out + err
