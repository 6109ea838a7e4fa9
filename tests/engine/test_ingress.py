"""The Slack ingress over real HTTP: what it stores before its ack, what it answers itself,
what it refuses. Requests are signed exactly as Slack signs them."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import NamedTuple
from urllib.parse import urlencode

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine

from bot.ingress import PATH, URGENT, Ingress
from bot.modal_input import MODIFY, MODIFY_CALLBACK, NO_REASON, REJECT, REJECT_CALLBACK
from sandbox.serving import BackgroundServer, free_port
from sandbox.slack.client import sign
from store.db import make_engine
from store.inbox import INBOX, open_inbox

SECRET = "ingress-signing-secret"
FORM = "application/x-www-form-urlencoded"
JSON = "application/json"


class Door(NamedTuple):
    url: str  # the server's root
    engine: Engine  # the inbox

    @property
    def events(self) -> str:
        return self.url + PATH

    def rows(self) -> list:
        with self.engine.connect() as conn:
            return conn.execute(select(INBOX).order_by(INBOX.c.id)).all()


@contextmanager
def _serve(engine: Engine) -> Iterator[Door]:
    app = Ingress(engine, SECRET)
    try:
        with BackgroundServer(app) as server:
            yield Door(server.url, engine)
    finally:
        app.stop()


@pytest.fixture
def door(db_url):
    """The ingress on each backend: for what it stores."""
    with _serve(open_inbox(db_url, make_engine(db_url))) as served:
        yield served


@pytest.fixture
def sqlite_door(tmp_path):
    """The ingress on a SQLite file: for what does not depend on the database."""
    url = f"sqlite:///{tmp_path / 'alignbot.db'}"
    with _serve(open_inbox(url, make_engine(url))) as served:
        yield served


def _headers(body: bytes, content_type: str = FORM, timestamp: int | None = None) -> dict:
    ts = str(int(time.time()) if timestamp is None else timestamp)
    return {"Content-Type": content_type, "X-Slack-Request-Timestamp": ts,
            "X-Slack-Signature": sign(SECRET, ts, body)}


def _post(url: str, body: bytes, content_type: str = FORM, client: httpx.Client | None = None,
          **headers: str) -> httpx.Response:
    sent = {**_headers(body, content_type), **headers}
    if client is not None:
        return client.post(url, content=body, headers=sent)
    return httpx.post(url, content=body, headers=sent, timeout=10)


def _interaction(payload: dict) -> bytes:
    """An interactive payload as Slack posts it: form-encoded JSON."""
    return urlencode({"payload": json.dumps(payload, ensure_ascii=False)}).encode()


def _click(action_id: str = "rec_approve", n: int = 0) -> bytes:
    # Slack sends UTF-8 (a user's name, a note with an accent): it must be stored byte for byte.
    return _interaction({"type": "block_actions", "user": {"id": "U1", "name": "Zoë Ørsted"},
                         "team": {"id": "T1"}, "trigger_id": f"trigger-{n}",
                         "actions": [{"action_id": action_id, "value": "42",
                                      "action_ts": f"1700000000.{n:06d}"}]})


def _submission(callback_id: str, values: dict) -> bytes:
    return _interaction({"type": "view_submission", "user": {"id": "U1"}, "team": {"id": "T1"},
                         "view": {"id": "V1", "type": "modal", "callback_id": callback_id,
                                  "private_metadata": "42", "state": {"values": values}}})


def _reject(reason: str) -> bytes:
    return _submission(REJECT_CALLBACK, {"reason": {"reason_input": {
        "type": "plain_text_input", "value": reason}}})


def _modify(**values: str) -> bytes:
    return _submission(MODIFY_CALLBACK, {block: {"value": {"type": "plain_text_input",
                                                           "value": value}}
                                         for block, value in values.items()})


def _no_errors_logged(caplog) -> bool:
    return not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]


# -- what is stored ---------------------------------------------------------------------------

def test_a_click_is_stored_with_its_priority_before_its_ack(door):
    click = _click()
    answer = _post(door.events, click)
    assert answer.status_code == 200 and answer.text == ""
    [row] = door.rows()  # durable by the time the 200 left
    assert row.body == click.decode() and row.content_type == FORM  # byte for byte (UTF-8)
    assert (row.priority, row.state, row.attempts) == (0, "pending", 0)


@pytest.mark.parametrize("action_id", [REJECT, MODIFY])
def test_a_click_that_opens_a_modal_is_stored_as_urgent(sqlite_door, action_id):
    """Slack's trigger for the modal expires 3 s after the click: workers take it first."""
    assert _post(sqlite_door.events, _click(action_id)).status_code == 200
    [row] = sqlite_door.rows()
    assert row.priority == URGENT and URGENT > 0


def test_a_slash_command_and_an_event_are_stored_and_acked_empty(sqlite_door):
    command = b"command=%2Fdrift&text=mine&user_id=U1&team_id=T1&trigger_id=t1"
    event = json.dumps({"type": "event_callback", "team_id": "T1", "event_id": "Ev1",
                        "event": {"type": "app_mention", "user": "U1", "text": "hi"}}).encode()
    for body, content_type in ((command, FORM), (event, JSON)):
        answer = _post(sqlite_door.events, body, content_type)
        assert answer.status_code == 200 and answer.text == ""
    stored = [(r.body, r.content_type, r.priority) for r in sqlite_door.rows()]
    assert stored == [(command.decode(), FORM, 0), (event.decode(), JSON, 0)]


def test_fifty_concurrent_clicks_and_five_retries_are_stored_once_each(door):
    clicks = [_click(n=n) for n in range(50)]
    sent = clicks + clicks[:5]  # Slack retrying five of them resends the same bodies
    with httpx.Client(timeout=10) as client, ThreadPoolExecutor(max_workers=20) as pool:
        answers = list(pool.map(lambda body: _post(door.events, body, client=client), sent))
    assert [a.status_code for a in answers] == [200] * len(sent)
    assert sorted(r.body for r in door.rows()) == sorted(c.decode() for c in clicks)


def test_a_retried_delivery_is_stored_once(sqlite_door):
    event = json.dumps({"type": "event_callback", "team_id": "T1", "event_id": "Ev2",
                        "event": {"type": "app_mention", "user": "U1"}}).encode()
    assert _post(sqlite_door.events, event, JSON).status_code == 200
    retry = _post(sqlite_door.events, event, JSON, **{"X-Slack-Retry-Num": "1",
                                                      "X-Slack-Retry-Reason": "http_timeout"})
    assert retry.status_code == 200 and retry.text == ""
    assert len(sqlite_door.rows()) == 1


# -- what the ingress answers itself ----------------------------------------------------------

def test_url_verification_is_answered_with_the_challenge_and_not_stored(sqlite_door):
    body = json.dumps({"type": "url_verification", "token": "t", "challenge": "3eZbrw1aB"})
    answer = _post(sqlite_door.events, body.encode(), JSON)
    assert answer.status_code == 200 and answer.json() == {"challenge": "3eZbrw1aB"}
    assert sqlite_door.rows() == []


@pytest.mark.parametrize("reason", ["", "   \n"])
def test_a_reject_without_a_reason_keeps_the_modal_open_with_the_error(sqlite_door, reason):
    answer = _post(sqlite_door.events, _reject(reason))
    assert answer.status_code == 200
    assert answer.json() == {"response_action": "errors", "errors": {"reason": NO_REASON}}
    assert sqlite_door.rows() == []  # nothing for a worker to do: the modal is still open


def test_a_reject_with_a_reason_is_stored_and_closes_the_modal(sqlite_door):
    body = _reject("Supplier confirmed the old date.")
    answer = _post(sqlite_door.events, body)
    assert answer.status_code == 200 and answer.text == ""
    assert [(r.body, r.priority) for r in sqlite_door.rows()] == [(body.decode(), 0)]


def test_a_modify_with_a_negative_quantity_gets_an_error_for_that_block(sqlite_door):
    answer = _post(sqlite_door.events, _modify(**{"0.to_qty": "-5", "1.to_date": "2026-12-01"}))
    assert answer.status_code == 200
    reply = answer.json()
    assert reply["response_action"] == "errors" and list(reply["errors"]) == ["0.to_qty"]
    assert "number" in reply["errors"]["0.to_qty"] and "-5" in reply["errors"]["0.to_qty"]
    assert sqlite_door.rows() == []

    fixed = _modify(**{"0.to_qty": "5", "1.to_date": "2026-12-01"})
    answer = _post(sqlite_door.events, fixed)
    assert answer.status_code == 200 and answer.text == ""
    assert [r.body for r in sqlite_door.rows()] == [fixed.decode()]


# -- what is refused --------------------------------------------------------------------------

def test_refusals(sqlite_door, caplog):
    events, click = sqlite_door.events, _click()
    wrong_method = httpx.get(events, timeout=5)
    assert wrong_method.status_code == 405 and wrong_method.headers["allow"] == "POST"
    forged = _post(events, click, **{"X-Slack-Signature": "v0=" + "0" * 64})
    assert forged.status_code == 401 and forged.text == "invalid request signature or timestamp"
    six_minutes_ago = int(time.time()) - 360  # signed, but outside Slack's five-minute window
    replayed = httpx.post(events, content=click, timeout=10,
                          headers=_headers(click, timestamp=six_minutes_ago))
    assert replayed.status_code == 401
    unsigned = httpx.post(events, content=click, headers={"Content-Type": FORM}, timeout=10)
    assert unsigned.status_code == 401
    assert _post(events, b"payload=" + b"x" * (2 << 20)).status_code == 413
    assert _post(sqlite_door.url + "/slack/other", click).status_code == 404
    assert sqlite_door.rows() == []
    assert _no_errors_logged(caplog)


@pytest.mark.parametrize(("body", "content_type", "reason"), [
    (b"payload={not json", FORM, "not valid JSON"),
    (b"payload=[1,2]", FORM, "not a JSON object"),
    (b"payload=null", FORM, "not a JSON object"),
    (b"[1,2]", JSON, "not a JSON object"),
    (b"{not json", JSON, "not valid JSON"),
    (b"payload=%FF%FE", FORM, "not valid JSON"),
    (b"payload=" + b"[" * 100_000, FORM, "nested too deeply"),
    (b'{"type":"event_callback","event":' + b"[" * 100_000, JSON, "nested too deeply"),
], ids=["form-not-json", "form-list", "form-null", "json-list", "json-not-json",
        "form-bad-escapes", "form-deep", "json-deep"])
def test_a_signed_body_that_is_not_a_slack_request_gets_400_with_the_reason(
        sqlite_door, caplog, body, content_type, reason):
    answer = _post(sqlite_door.events, body, content_type)
    assert answer.status_code == 400, answer.text
    assert answer.headers["content-type"].startswith("text/plain")
    assert reason in answer.text and len(answer.text) < 100
    assert sqlite_door.rows() == []
    assert _no_errors_logged(caplog)


@pytest.mark.parametrize("headers", [
    # latin-1 superscripts: str.isdigit() says yes, int() says no
    {"X-Slack-Request-Timestamp": "¹²³".encode("latin-1")},
    # Arabic-Indic digits as a client sends them (UTF-8), and a non-ASCII signature
    {"X-Slack-Request-Timestamp": "١٧٠٠٠٠٠٠٠٠".encode()},
    {"X-Slack-Signature": "v0=ÿ".encode("latin-1") + b"0" * 63},
], ids=["superscript-timestamp", "arabic-indic-timestamp", "non-ascii-signature"])
def test_non_ascii_signature_headers_get_401(sqlite_door, caplog, headers):
    click = _click()
    answer = httpx.post(sqlite_door.events, content=click, headers={**_headers(click), **headers},
                        timeout=10)
    assert answer.status_code == 401 and answer.text == "invalid request signature or timestamp"
    assert sqlite_door.rows() == []
    assert _no_errors_logged(caplog)


def test_a_body_that_is_not_utf8_cannot_be_verified(sqlite_door, caplog):
    """Slack signs UTF-8; the signature of other bytes is not checked, let alone stored."""
    body = b"payload=\xff\xfe"
    answer = _post(sqlite_door.events, body)
    assert answer.status_code == 401 and sqlite_door.rows() == []
    assert _no_errors_logged(caplog)


def test_a_timestamp_in_other_digits_is_refused_even_when_signed_with_them():
    """``int()`` reads Arabic-Indic digits: a header that decoded to them (say, a proxy's
    UTF-8) must still not pass for Slack's timestamp."""
    ingress = Ingress(make_engine("sqlite://"), SECRET)
    try:
        body = _click()
        arabic = str(int(time.time())).translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩"))
        assert not ingress._verified({"x-slack-request-timestamp": arabic,
                                      "x-slack-signature": sign(SECRET, arabic, body)}, body)
        ascii_ts = str(int(time.time()))
        assert ingress._verified({"x-slack-request-timestamp": ascii_ts,
                                  "x-slack-signature": sign(SECRET, ascii_ts, body)}, body)
    finally:
        ingress.stop()


def test_a_store_that_cannot_write_answers_503_instead_of_pretending(tmp_path):
    """Slack does not resend a request it got a 200 for: one not stored must not get one."""
    never_migrated = make_engine(f"sqlite:///{tmp_path / 'no-tables.db'}")
    with _serve(never_migrated) as door:
        answer = _post(door.events, _click())
        assert answer.status_code == 503 and "try again" in answer.text
        # what needs no storing is still answered
        challenge = json.dumps({"type": "url_verification", "challenge": "c"}).encode()
        assert _post(door.events, challenge, JSON).json() == {"challenge": "c"}


# -- health -----------------------------------------------------------------------------------

def test_healthz_says_whether_the_inbox_is_reachable(sqlite_door):
    answer = httpx.get(sqlite_door.url + "/healthz", timeout=5)
    assert answer.status_code == 200
    assert answer.json() == {"ok": True, "role": "ingress", "inbox": {"ok": True}}

    nobody_there = make_engine(f"postgresql://alignbot@127.0.0.1:{free_port('127.0.0.1')}/x")
    with _serve(nobody_there) as door:
        answer = httpx.get(door.url + "/healthz", timeout=10)
        assert answer.status_code == 503
        report = answer.json()
        assert report["ok"] is False and report["inbox"]["ok"] is False
        assert report["inbox"]["error"]
