"""RetryPolicy against a real local server that answers from a script."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route

from connectors.http_retry import RetryPolicy, parse_retry_after
from sandbox.serving import BackgroundServer, free_port


class Script:
    """Answers each request with the next (status, headers, delay) step; 200 when empty."""

    def __init__(self) -> None:
        self.steps: list[tuple[int, dict[str, str], float]] = []
        self.calls = 0

    async def endpoint(self, request):
        self.calls += 1
        status, headers, delay = self.steps.pop(0) if self.steps else (200, {}, 0.0)
        if delay:
            await asyncio.sleep(delay)
        return Response(f"answer {self.calls}", status_code=status, headers=headers)


@pytest.fixture(scope="module")
def server():
    script = Script()
    app = Starlette(routes=[Route("/x", script.endpoint, methods=["GET", "POST"])])
    with BackgroundServer(app) as srv:
        srv.script = script
        yield srv


@pytest.fixture
def script(server):
    server.script.steps.clear()
    server.script.calls = 0
    return server.script


@pytest.fixture
def sleeps():
    return []


@pytest.fixture
def policy(sleeps):
    return RetryPolicy(max_attempts=4, timeout=2.0, backoff_base=0.1, backoff_max=1.0,
                       retry_after_cap=5.0, sleep=sleeps.append, rng=random.Random(1))


def test_429_waits_as_long_as_retry_after_says(server, script, policy, sleeps):
    script.steps = [(429, {"Retry-After": "2"}, 0.0)]
    with httpx.Client() as client:
        resp = policy.send(client, "GET", server.url + "/x")
    assert resp.status_code == 200
    assert script.calls == 2
    assert sleeps == [2.0]


def test_retry_after_as_http_date_is_honoured_but_capped(server, script, policy, sleeps):
    later = format_datetime(datetime.now(UTC) + timedelta(minutes=10), usegmt=True)
    script.steps = [(429, {"Retry-After": later}, 0.0)]
    with httpx.Client() as client:
        assert policy.send(client, "GET", server.url + "/x").status_code == 200
    assert sleeps == [5.0]  # the cap, not ten minutes


def test_5xx_backs_off_exponentially_then_succeeds(server, script, policy, sleeps):
    script.steps = [(503, {}, 0.0), (502, {}, 0.0), (500, {}, 0.0)]
    with httpx.Client() as client:
        resp = policy.send(client, "POST", server.url + "/x", json={"a": 1})
    assert resp.status_code == 200 and resp.text == "answer 4"
    assert len(sleeps) == 3
    for attempt, slept in enumerate(sleeps, start=1):
        base = 0.1 * 2 ** (attempt - 1)
        assert base * 0.5 <= slept <= base * 1.5  # jitter stays within +/- 50 %


def test_retries_are_bounded_and_the_last_answer_is_returned(server, script, policy, sleeps):
    script.steps = [(500, {}, 0.0)] * 10
    with httpx.Client() as client:
        resp = policy.send(client, "GET", server.url + "/x")
    assert resp.status_code == 500
    assert script.calls == 4 and len(sleeps) == 3


def test_client_errors_are_not_retried(server, script, policy, sleeps):
    script.steps = [(400, {}, 0.0)]
    with httpx.Client() as client:
        assert policy.send(client, "GET", server.url + "/x").status_code == 400
    assert script.calls == 1 and sleeps == []


def test_read_timeout_is_retried(server, script, sleeps):
    policy = RetryPolicy(max_attempts=3, timeout=0.2, backoff_base=0.01, sleep=sleeps.append)
    script.steps = [(200, {}, 1.0)]  # the first answer comes too late
    with httpx.Client() as client:
        resp = policy.send(client, "GET", server.url + "/x")
    assert resp.status_code == 200 and resp.text == "answer 2"
    assert len(sleeps) == 1


def test_connection_refused_raises_after_the_last_attempt(sleeps):
    policy = RetryPolicy(max_attempts=3, timeout=0.5, backoff_base=0.01, sleep=sleeps.append)
    with httpx.Client() as client, pytest.raises(httpx.ConnectError):
        policy.send(client, "GET", f"http://127.0.0.1:{free_port()}/x")
    assert len(sleeps) == 2


def test_parse_retry_after_forms():
    now = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    assert parse_retry_after("7", now) == 7.0
    assert parse_retry_after("Fri, 20 Nov 2026 12:00:30 GMT", now) == 30.0
    assert parse_retry_after("Fri, 20 Nov 2026 11:00:00 GMT", now) == 0.0  # in the past
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after(None, now) is None
