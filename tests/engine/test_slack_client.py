"""The Web API client's connection-error retries, against a real server on 127.0.0.1 that reads
each request and hangs up without answering (a reply lost after Slack did the work)."""

from __future__ import annotations

import socketserver
import threading
from collections import Counter
from http.client import RemoteDisconnected

import pytest

from bot.slack_client import make_web_client


class _HangsUp(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        head = b""
        while not head.endswith(b"\r\n\r\n"):
            if not (byte := self.rfile.read(1)):
                return
            head += byte
        lines = head.decode("latin-1").split("\r\n")
        length = next((int(line.split(":", 1)[1]) for line in lines
                       if line.lower().startswith("content-length:")), 0)
        self.rfile.read(length)
        with self.server.lock:  # type: ignore[attr-defined]
            self.server.seen[lines[0].split()[1].rsplit("/", 1)[-1]] += 1  # type: ignore[attr-defined]
        # no answer: the connection closes when the handler returns


@pytest.fixture
def hangs_up():
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _HangsUp)
    server.daemon_threads = True
    server.seen, server.lock = Counter(), threading.Lock()  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def _client(server):  # type: ignore[no-untyped-def]
    host, port = server.server_address
    return make_web_client("xoxb-retry-test", f"http://{host}:{port}/api/", timeout=5)


def test_a_post_whose_answer_was_lost_is_not_sent_again(hangs_up):
    with pytest.raises((RemoteDisconnected, ConnectionError)):
        _client(hangs_up).chat_postMessage(channel="C0PLANNING", text="Move 120 units")
    assert hangs_up.seen["chat.postMessage"] == 1  # a retry would have posted it twice


def test_a_read_whose_answer_was_lost_is_retried_a_bounded_number_of_times(hangs_up):
    with pytest.raises((RemoteDisconnected, ConnectionError)):
        _client(hangs_up).conversations_history(channel="C0PLANNING")
    assert hangs_up.seen["conversations.history"] == 3  # the call and two retries
