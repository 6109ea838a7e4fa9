"""Structured logs: one JSON object per line, request context on every line, no secret ever."""

from __future__ import annotations

import asyncio
import contextvars
import io
import json
import logging
import re
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from urllib.parse import quote, urlencode

import click
import httpx
import pytest
import uvicorn
from rich.console import Console
from slack_bolt import App, BoltRequest
from slack_sdk.errors import SlackApiError
from sqlalchemy import text

from bot.logs import (
    REDACTED,
    UVICORN_LOGGERS,
    ContextThreadPoolExecutor,
    bolt_log_context_middleware,
    configure_logging,
    configured_secrets,
    dispatch_in_log_context,
    log_context,
)
from bot.metrics import Metrics, instrumented_web_client
from sandbox.serving import BackgroundServer
from sandbox.slack import RateLimits, SlackStandin, sign
from store.db import make_engine

BOT_TOKEN = "xoxb-2718281828-3141592653-OpsTestTokenValue"
APP_TOKEN = "xapp-1-A0ALIGN-1234567890-0a1b2c3d4e5f"
SIGNING_SECRET = "4c1f0e5d2b9a8f7e6d5c4b3a29180706"
WEBHOOK_SECRET = "whsec_Tms-Push-8842"
DB_PASSWORD = "pg-Pa55word!&x"  # needs URL-escaping in a database URL
SECRETS = [BOT_TOKEN, APP_TOKEN, SIGNING_SECRET, WEBHOOK_SECRET, DB_PASSWORD]
TS_FORMAT = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """configure_logging changes process-wide state: put it back for the rest of the suite."""
    root = logging.getLogger()
    saved = list(root.handlers), root.level
    hooks = threading.excepthook, sys.excepthook, sys.unraisablehook
    named = {n: (list(lg.handlers), list(lg.filters), lg.propagate, lg.level) for n in
             (*UVICORN_LOGGERS, "sqlalchemy.engine") for lg in [logging.getLogger(n)]}
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in saved[0]:
        root.addHandler(handler)
    root.setLevel(saved[1])
    for n, (handlers, filters, propagate, level) in named.items():
        lg = logging.getLogger(n)
        lg.handlers[:], lg.filters[:] = handlers, filters
        lg.propagate = propagate
        lg.setLevel(level)
    logging.captureWarnings(False)
    threading.excepthook, sys.excepthook, sys.unraisablehook = hooks


def _lines(buf: io.StringIO) -> list[dict]:
    text_ = buf.getvalue()
    assert text_.endswith("\n")
    return [json.loads(line) for line in text_.splitlines()]  # each line is one JSON object


def test_each_record_is_one_json_line_with_context_and_extras():
    buf = io.StringIO()
    configure_logging(stream=buf)
    log = logging.getLogger("bot.executor")
    before = datetime.now(UTC)
    with log_context(request_id="req-1", recommendation_id=42):
        log.info("executing %d actions", 2, extra={"connector": "tms"})
        with log_context(recommendation_id=43, team="planning"):
            log.warning("nested")
        try:
            raise ValueError("line one\nline two")
        except ValueError:
            log.exception("execution failed", extra={"attempt": 3,
                                                     "at": datetime(2026, 11, 18, tzinfo=UTC)})
    log.info("after the request")
    log.debug("not at INFO")

    executing, nested, failed, after = _lines(buf)
    assert executing["level"] == "INFO" and executing["logger"] == "bot.executor"
    assert executing["message"] == "executing 2 actions"
    assert executing["request_id"] == "req-1" and executing["recommendation_id"] == 42
    assert executing["connector"] == "tms"
    assert TS_FORMAT.match(executing["ts"])
    stamped = datetime.fromisoformat(executing["ts"])
    assert before - timedelta(seconds=1) <= stamped <= datetime.now(UTC) + timedelta(seconds=1)
    assert nested["recommendation_id"] == 43 and nested["team"] == "planning"
    assert nested["request_id"] == "req-1"
    assert failed["level"] == "ERROR" and failed["exc_type"] == "ValueError"
    assert "Traceback" in failed["exc"] and "line one\nline two" in failed["exc"]
    assert failed["attempt"] == 3 and failed["at"].startswith("2026-11-18")
    assert failed["recommendation_id"] == 42  # the outer value is back
    assert "request_id" not in after and "recommendation_id" not in after


def test_context_follows_work_handed_to_a_context_executor():
    buf = io.StringIO()
    configure_logging(stream=buf)
    log = logging.getLogger("bot.slack_app")
    with log_context(request_id="req-7"):
        with ContextThreadPoolExecutor(max_workers=1) as pool:
            pool.submit(log.info, "in a listener thread").result()
        with ThreadPoolExecutor(max_workers=1) as plain:
            plain.submit(log.info, "in a plain pool").result()
    listener, plain_line = _lines(buf)
    assert listener["request_id"] == "req-7"
    assert "request_id" not in plain_line


def test_reconfiguring_replaces_the_handler_and_text_mode_is_readable():
    first, second = io.StringIO(), io.StringIO()
    configure_logging(stream=first)
    configure_logging(level="DEBUG", json=False, stream=second, secrets=[WEBHOOK_SECRET])
    logging.getLogger("bot.hooks").debug("push refused for %s", WEBHOOK_SECRET,
                                         extra={"connector": "tms"})
    assert first.getvalue() == ""
    (line,) = second.getvalue().splitlines()
    assert re.match(r"^\d{4}-\d\d-\d\dT[\d:.]+Z DEBUG   bot\.hooks: push refused for "
                    r"\[REDACTED\] connector=tms$", line)


def _signed(body: str) -> BoltRequest:
    ts = str(int(time.time()))
    return BoltRequest(body=body, headers={
        "content-type": "application/x-www-form-urlencoded", "x-slack-request-timestamp": ts,
        "x-slack-signature": sign(SIGNING_SECRET, ts, body)})


APPROVE_CLICK = urlencode({"payload": json.dumps({
    "type": "block_actions", "user": {"id": "U0PLAN1"}, "team": {"id": "T1"},
    "channel": {"id": "C1"}, "container": {"type": "message"},
    "actions": [{"type": "button", "action_id": "approve", "block_id": "rec_actions:17",
                 "value": "17"}]})})
DRIFT_COMMAND = urlencode({"command": "/drift", "text": "", "user_id": "U0LOG1",
                           "channel_id": "C1", "team_id": "T1", "trigger_id": "1.2.3"})


@pytest.fixture
def bolt_app():
    """A Bolt app wired as the runtime should be: context executor, context middleware."""
    done = threading.Event()
    with SlackStandin(BOT_TOKEN, SIGNING_SECRET, channels=["C1"]) as slack:
        app = App(token=BOT_TOKEN, signing_secret=SIGNING_SECRET,
                  client=instrumented_web_client(BOT_TOKEN, slack.api_url, None, timeout=5),
                  token_verification_enabled=False,
                  listener_executor=ContextThreadPoolExecutor(max_workers=2))
        app.use(bolt_log_context_middleware)

        @app.action("approve")
        def approve(ack):
            ack()  # the listener goes on in Bolt's executor after the ack
            logging.getLogger("bot.slack_app").info("recording the decision")
            done.set()

        @app.command("/drift")
        def drift(ack):
            ack()
            logging.getLogger("bot.slack_app").info("listing drift")
            done.set()

        def run(dispatch, body: str) -> None:
            assert dispatch(_signed(body)).status == 200
            assert done.wait(5)
            done.clear()

        yield app, run


def _listener_lines(buf: io.StringIO) -> list[dict]:
    return [line for line in _lines(buf) if line["logger"] == "bot.slack_app"]


def test_http_requests_log_their_request_id_and_recommendation(bolt_app):
    buf = io.StringIO()
    configure_logging(stream=buf, secrets=[BOT_TOKEN, SIGNING_SECRET])
    app, run = bolt_app
    for body in (APPROVE_CLICK, APPROVE_CLICK, DRIFT_COMMAND):
        # the endpoint runs dispatch in a worker thread with a copy of the request's context
        run(lambda req: contextvars.copy_context().run(dispatch_in_log_context, app, req), body)
    logging.getLogger("bot.runtime").info("between requests")

    first, second, command = _listener_lines(buf)
    assert first["recommendation_id"] == 17 and first["slack_user"] == "U0PLAN1"
    assert first["slack_team"] == "T1" and first["slack_type"] == "block_actions"
    assert re.fullmatch(r"[0-9a-f]{16}", first["request_id"])
    assert first["request_id"] != second["request_id"]  # one id per Slack request
    assert command["slack_type"] == "slash_command" and command["slack_user"] == "U0LOG1"
    assert "recommendation_id" not in command
    assert "request_id" not in _lines(buf)[-1]  # nothing outlives the request


def test_socket_mode_requests_get_fresh_fields_each_time(bolt_app):
    """Socket Mode calls app.dispatch itself, request after request on the same thread."""
    buf = io.StringIO()
    configure_logging(stream=buf)
    app, run = bolt_app

    def socket_worker():
        for body in (APPROVE_CLICK, DRIFT_COMMAND):
            run(app.dispatch, body)

    worker = threading.Thread(target=socket_worker)
    worker.start()
    worker.join(10)
    click, command = _listener_lines(buf)
    assert click["recommendation_id"] == 17 and click["request_id"]
    assert "recommendation_id" not in command  # not left over from the click
    assert command["request_id"] != click["request_id"]


def test_no_secret_reaches_the_logs_at_debug_from_any_library(tmp_path):
    buf = io.StringIO()
    app_log = logging.getLogger("bot.runtime")
    with SlackStandin(BOT_TOKEN, SIGNING_SECRET, channels=["C1"], users=["U1"],
                      rate_limits=RateLimits.unlimited()) as slack:
        # as `alignbot run` would: logging first, then the bot's own work
        configure_logging(level="DEBUG", stream=buf, secrets=SECRETS,
                          levels={"sqlalchemy.engine": "DEBUG"})

        # slack_sdk at DEBUG: request and response logging around real Web API calls
        client = instrumented_web_client(BOT_TOKEN, slack.api_url, Metrics(None), timeout=5)
        client.auth_test()
        client.chat_postMessage(channel="C1", text="Approve the transfer?")
        try:
            client.chat_postMessage(channel="C404", text="nowhere")
        except SlackApiError:
            app_log.exception("posting failed with token %s", BOT_TOKEN)

        # httpx/httpcore: a secret in the query string and an Authorization header
        httpx.post(slack.api_url + "auth.test", params={"token": BOT_TOKEN, "probe":
                                                        WEBHOOK_SECRET},
                   headers={"Authorization": f"Bearer {BOT_TOKEN}"}, timeout=5)

        # slack_bolt at DEBUG: a signed slash command through the app with the same client
        bolt = App(token=BOT_TOKEN, signing_secret=SIGNING_SECRET, client=client,
                   token_verification_enabled=False, process_before_response=True)
        bolt.use(bolt_log_context_middleware)

        @bolt.command("/drift")
        def drift(ack, client, command):
            ack("Looking…")
            client.chat_postMessage(channel=command["channel_id"], text="drift list")

        body = urlencode({"command": "/drift", "text": "SKU-1", "user_id": "U1",
                          "channel_id": "C1", "team_id": "T1", "token": "legacy-verif-token",
                          "response_url": slack.url + "/response/x", "trigger_id": "1.2.3"})
        ts = str(int(time.time()))
        signature = sign(SIGNING_SECRET, ts, body)
        headers = {"content-type": "application/x-www-form-urlencoded",
                   "x-slack-request-timestamp": ts, "x-slack-signature": signature}
        forged = {**headers, "x-slack-signature": sign("wrong", ts, body)}

        def endpoint(request_headers: dict) -> int:  # what the HTTP endpoint does
            logging.getLogger("bot.slack_app").debug("request headers: %s", request_headers)
            return dispatch_in_log_context(bolt, BoltRequest(body=body,
                                                             headers=request_headers)).status

        assert contextvars.copy_context().run(endpoint, headers) == 200
        assert contextvars.copy_context().run(endpoint, forged) == 401

    # SQLAlchemy at DEBUG: statements, bound parameters and result rows
    engine = make_engine(f"sqlite:///{tmp_path / 'leak.db'}")
    with engine.connect() as conn:
        conn.execute(text("select :reason as reason"),
                     {"reason": f"signing secret rotated from {SIGNING_SECRET}"}).all()
    database_url = f"postgresql://alignbot:{quote(DB_PASSWORD, safe='')}@db.internal/alignbot"
    app_log.info("database %s", database_url)

    # uvicorn, run with log_config=None so its loggers propagate to ours
    uvicorn.Config(lambda *a: None, log_config=None, log_level="debug")
    logging.getLogger("uvicorn.error").debug("handshake with app token %s", APP_TOKEN)
    logging.getLogger("uvicorn.access").info(
        '%s - "%s %s HTTP/%s" %d', "127.0.0.1:5555", "POST",
        f"/hooks/tms?secret={WEBHOOK_SECRET}", "1.1", 401)

    # the app's own loggers: messages, args, extras and exceptions
    try:
        raise ConnectionError(f"postgresql://alignbot:{DB_PASSWORD}@db.internal refused; "
                              f"Authorization: Bearer {BOT_TOKEN}")
    except ConnectionError:
        logging.getLogger("bot.loop").exception("connector %s failed", "tms",
                                                extra={"connector": "tms"})
    logging.getLogger("bot.hooks").warning(
        "push refused", extra={"headers": {"X-Signature": signature,
                                           "X-Webhook-Secret": WEBHOOK_SECRET},
                               "env": {"SLACK_APP_TOKEN": APP_TOKEN}})
    app_log.debug(f"config loaded: signing_secret={SIGNING_SECRET} app_token={APP_TOKEN}")
    with log_context(request_id="r-1", note=f"token {BOT_TOKEN}"):
        app_log.info("context values are masked too")

    output = buf.getvalue()
    records = _lines(buf)  # and it is all valid JSON lines
    loggers = {r["logger"].split(".")[0] for r in records}
    assert {"slack_sdk", "slack_bolt", "httpx", "httpcore", "sqlalchemy", "uvicorn",
            "bot"} <= loggers, loggers  # the libraries really did log at DEBUG
    assert any("chat.postMessage" in r["message"] and r["logger"].startswith("slack_sdk")
               for r in records)
    assert any("select ? as reason" in r["message"] for r in records)  # SQL was logged

    for secret in SECRETS:
        for form in {secret, quote(secret, safe=""), json.dumps(secret)[1:-1]}:
            assert form not in output, f"{form!r} leaked"
    assert not re.search(r"xox[a-z]-[A-Za-z0-9]|xapp-[A-Za-z0-9]", output)
    assert signature.removeprefix("v0=") not in output
    assert REDACTED in output


def test_our_servers_leave_logging_to_us_and_uvicorn_lines_are_masked():
    """BackgroundServer (stand-in, sandboxes, demo) builds uvicorn with log_config=None, so
    uvicorn's lines go through our JSON handler and its redaction instead of its own."""
    stream = io.StringIO()
    configure_logging(stream=stream, secrets=[WEBHOOK_SECRET])

    async def app(scope, receive, send):
        pass

    with BackgroundServer(app):
        assert not logging.getLogger("uvicorn").handlers  # nothing of its own installed
        logging.getLogger("uvicorn.error").warning("hook secret %s", WEBHOOK_SECRET)
        logging.getLogger("uvicorn.access").warning(
            '%s - "%s %s HTTP/%s" %d', "127.0.0.1:1", "POST",
            f"/hooks/tms?sig={WEBHOOK_SECRET}", "1.1", 401)
    out = stream.getvalue()
    assert "hook secret [REDACTED]" in out
    assert "/hooks/tms?sig=[REDACTED]" in out
    assert WEBHOOK_SECRET not in out
    # every line is one of ours (JSON); other tests' bots may still be logging meanwhile
    loggers = [json.loads(line)["logger"] for line in out.splitlines()]
    assert {"uvicorn.error", "uvicorn.access"} <= set(loggers)


def test_json_lines_carry_no_terminal_colour_codes():
    """uvicorn attaches a coloured copy of its start-up lines (``color_message``), and click,
    rich or a remote system's error text can put colour codes in a message: none reaches a
    JSON line, where a log collector would store the codes as text."""
    stream = io.StringIO()
    configure_logging(stream=stream)
    coloured = click.style("stale", fg="red", bold=True)
    console = Console(file=io.StringIO(), force_terminal=True, color_system="truecolor")
    with console.capture() as captured:
        console.print("[bold magenta]tms[/] is [link=https://tms.example]down[/link]")
    assert "\x1b[" in coloured and "\x1b]8;" in captured.get()  # real codes, links too

    async def app(scope, receive, send):
        pass

    # as serve() builds it: info level, uvicorn's own log config off
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="info",
                                           lifespan="off", log_config=None))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.01)
    server.should_exit = True
    thread.join(10)
    log = logging.getLogger("bot.loop")
    log.warning("connector %s is %s", "tms", coloured, extra={"detail": captured.get(),
                                                             "steps": [coloured]})
    try:
        raise RuntimeError(coloured)
    except RuntimeError:
        log.exception("poll failed")

    out = stream.getvalue()
    assert "\x1b" not in out and "\\u001b" not in out
    lines = [json.loads(line) for line in out.splitlines()]
    assert "Started server process [" in lines[0]["message"]
    assert not any("color_message" in line for line in lines)
    (warning,) = [line for line in lines if line["logger"] == "bot.loop" and
                  line["level"] == "WARNING"]
    assert warning["message"] == "connector tms is stale"  # the text stays, the codes go
    assert warning["detail"].strip() == "tms is down" and warning["steps"] == ["stale"]
    (failure,) = [line for line in lines if line["message"] == "poll failed"]
    assert failure["exc"].endswith("RuntimeError: stale")

    text = io.StringIO()  # for people at a terminal: no duplicate of uvicorn's line either
    configure_logging(stream=text, json=False)
    logging.getLogger("uvicorn.error").info("Started server process [%d]", 7,
                                            extra={"color_message": "Started [%d]"})
    assert "color_message" not in text.getvalue()


def _leaky_error() -> ConnectionError:
    return ConnectionError(f"postgresql://alignbot:{DB_PASSWORD}@db.internal refused; "
                           f"Authorization: Bearer {BOT_TOKEN}")


def _only_json_lines(err: str) -> list[dict]:
    """Every line of stderr is one JSON object: no raw traceback outside them, no secret."""
    assert err.endswith("\n")
    for secret in (DB_PASSWORD, BOT_TOKEN):
        assert secret not in err
    return [json.loads(line) for line in err.splitlines()]


def test_a_failure_in_a_background_thread_is_one_masked_json_line(capsys):
    configure_logging(secrets=[DB_PASSWORD, BOT_TOKEN])  # to sys.stderr, as the bot does

    def poll() -> None:
        raise _leaky_error()

    worker = threading.Thread(target=poll, name="connector-poll")
    worker.start()
    worker.join(5)
    (line,) = _only_json_lines(capsys.readouterr().err)
    assert line["level"] == "ERROR" and line["logger"] == "bot.uncaught"
    assert line["message"] == "unhandled exception in thread connector-poll"
    assert line["exc_type"] == "ConnectionError"
    assert "Traceback" in line["exc"] and "in poll" in line["exc"]
    assert f"alignbot:{REDACTED}@db.internal" in line["exc"]


def test_asyncio_and_main_thread_and_ignored_failures_go_through_the_log_too(capsys):
    configure_logging(secrets=[DB_PASSWORD, BOT_TOKEN])

    def callback() -> None:
        raise _leaky_error()

    async def serve() -> None:  # as uvicorn's loop would meet a failing callback
        asyncio.get_running_loop().call_soon(callback)
        await asyncio.sleep(0.01)

    asyncio.run(serve())
    try:
        raise _leaky_error()
    except ConnectionError:
        sys.excepthook(*sys.exc_info())  # what Python calls when the main thread dies

    class Leaky:
        def __del__(self) -> None:
            raise _leaky_error()

    Leaky()  # dropped at once: __del__'s exception can only be reported
    in_loop, uncaught, ignored = _only_json_lines(capsys.readouterr().err)
    assert in_loop["logger"] == "asyncio" and in_loop["level"] == "ERROR"
    assert "Exception in callback" in in_loop["message"]
    assert uncaught["level"] == "CRITICAL" and uncaught["message"] == "unhandled exception"
    assert ignored["logger"] == "bot.uncaught" and "Leaky.__del__" in ignored["message"]
    for line in (in_loop, uncaught, ignored):
        assert line["exc_type"] == "ConnectionError" and REDACTED in line["exc"]


def test_configured_secrets_collects_every_secret_the_config_names():
    from tests.support.builders import config

    cfg = config(connectors=[
        {"name": "plan", "kind": "rest", "system": "planning",
         "settings": {"base_url": "http://127.0.0.1:1", "auth": {"kind": "bearer"}},
         "secrets": {"auth.token": "PLAN_API_TOKEN"}, "webhook_secret_env": "PLAN_HOOK"},
        {"name": "tms", "kind": "rest", "system": "logistics",
         "settings": {"base_url": "http://127.0.0.1:1"}},
    ])
    env = {"SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_SIGNING_SECRET": SIGNING_SECRET,
           "SLACK_APP_TOKEN": APP_TOKEN, "PLAN_API_TOKEN": "plan-api-token-1",
           "PLAN_HOOK": WEBHOOK_SECRET,
           "DATABASE_URL": f"postgresql://alignbot:{quote(DB_PASSWORD, safe='')}@db/alignbot"}
    assert sorted(configured_secrets(cfg, env)) == sorted(
        [BOT_TOKEN, SIGNING_SECRET, APP_TOKEN, "plan-api-token-1", WEBHOOK_SECRET, DB_PASSWORD])
    assert configured_secrets(cfg, {}) == []  # sqlite default, nothing set
