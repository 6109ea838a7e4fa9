"""RetryTransport: which answers and errors are retried, how long it waits, and its bounds.

The policy is checked over ``httpx.MockTransport`` with a recorded sleep (no test waits in real
backoff); timeouts and refused connections, which only a real socket produces, against a real
local server.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route

from connectors.http_retry import (
    ONE_ATTEMPT,
    SAFE_TO_REPEAT,
    RetryPolicy,
    RetryTransport,
    parse_retry_after,
    retrying_client,
)
from sandbox.serving import BackgroundServer, free_port

URL = "http://vendor.test/x"


class Script:
    """Answers each request with the next scripted step (a status and headers, or an error to
    raise); 200 when the script is empty."""

    def __init__(self, *steps: tuple[int, dict[str, str]] | Exception) -> None:
        self.steps = list(steps)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        step = self.steps.pop(0) if self.steps else (200, {})
        if isinstance(step, Exception):
            raise step
        status, headers = step
        return httpx.Response(status, headers=headers, text=f"answer {len(self.requests)}")


@pytest.fixture
def sleeps() -> list[float]:
    return []


def client_for(script: Script, sleeps: list[float], **policy: object) -> httpx.Client:
    policy = {"max_attempts": 4, "backoff_base": 0.1, "backoff_max": 1.0,
              "retry_after_cap": 5.0, **policy}
    return retrying_client(RetryPolicy(sleep=sleeps.append, **policy), 2.0,
                           httpx.MockTransport(script))


def test_429_waits_as_long_as_retry_after_says(sleeps):
    script = Script((429, {"Retry-After": "2"}))
    assert client_for(script, sleeps).get(URL).status_code == 200
    assert len(script.requests) == 2 and sleeps == [2.0]


def test_retry_after_as_http_date_is_honoured_but_capped(sleeps):
    later = format_datetime(datetime.now(UTC) + timedelta(minutes=10), usegmt=True)
    script = Script((503, {"Retry-After": later}))
    assert client_for(script, sleeps).get(URL).status_code == 200
    assert sleeps == [5.0]  # the cap, not ten minutes


def test_5xx_and_408_back_off_exponentially_with_jitter_then_succeed(sleeps):
    script = Script((503, {}), (502, {}), (408, {}))
    resp = client_for(script, sleeps).get(URL)
    assert resp.status_code == 200 and resp.text == "answer 4"
    assert len(sleeps) == 3
    for attempt, slept in enumerate(sleeps, start=1):
        base = 0.1 * 2 ** (attempt - 1)
        assert base * 0.5 <= slept <= base * 1.5  # jitter stays within +/- 50 %


def test_backoff_never_exceeds_its_cap(sleeps):
    script = Script(*[(500, {})] * 9)
    client_for(script, sleeps, max_attempts=10, backoff_base=1.0, backoff_max=2.0).get(URL)
    assert len(sleeps) == 9 and max(sleeps) <= 3.0  # 2 s, +50 % jitter


def test_retries_are_bounded_and_the_last_answer_is_returned(sleeps):
    script = Script(*[(500, {})] * 10)
    resp = client_for(script, sleeps).get(URL)
    assert resp.status_code == 500 and resp.text == "answer 4"
    assert len(script.requests) == 4 and len(sleeps) == 3


def test_client_errors_are_not_retried(sleeps):
    script = Script((400, {}))
    assert client_for(script, sleeps).get(URL).status_code == 400
    assert len(script.requests) == 1 and sleeps == []


def test_lost_connections_are_retried_and_the_last_error_raised(sleeps):
    script = Script(httpx.ConnectError("refused"), httpx.RemoteProtocolError("cut"),
                    httpx.ReadTimeout("slow"), httpx.ConnectError("refused"))
    with pytest.raises(httpx.ConnectError):
        client_for(script, sleeps).get(URL)
    assert len(script.requests) == 4 and len(sleeps) == 3


def test_an_answer_cut_off_mid_body_is_retried(sleeps):
    class CutOff(httpx.SyncByteStream):
        def __iter__(self):
            yield b'{"items": ['
            raise httpx.ReadError("connection reset")

    answers = [httpx.Response(200, stream=CutOff()), httpx.Response(200, json={"items": []})]
    client = retrying_client(RetryPolicy(sleep=sleeps.append), 2.0,
                             httpx.MockTransport(lambda request: answers.pop(0)))
    assert client.get(URL).json() == {"items": []}
    assert len(sleeps) == 1


def test_a_post_is_sent_once_unless_it_is_safe_to_repeat(sleeps):
    script = Script(*[(503, {})] * 3)
    client = client_for(script, sleeps)
    assert client.post(URL, json={"a": 1}).status_code == 503
    assert len(script.requests) == 1 and sleeps == []
    # an Idempotency-Key lets the server drop the duplicate; a marked request says it is harmless
    assert client.post(URL, json={"a": 1}, headers={"Idempotency-Key": "k"}).status_code == 200
    script.steps = [(503, {})]
    assert client.post(URL, data={"grant_type": "x"}, extensions=SAFE_TO_REPEAT).status_code == 200
    assert [r.content for r in script.requests[1:4]] == [b'{"a":1}'] * 3  # the body each time


def test_one_attempt_when_the_caller_asks(sleeps):
    script = Script(*[(503, {})] * 3)
    assert client_for(script, sleeps).get(URL, extensions=ONE_ATTEMPT).status_code == 503
    assert len(script.requests) == 1 and sleeps == []


def test_an_encoded_body_reaches_the_caller_decoded(sleeps):
    import gzip

    def gzipped(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"Content-Encoding": "gzip"},
                              content=gzip.compress(b"plain text"))

    client = retrying_client(RetryPolicy(sleep=sleeps.append), 2.0, httpx.MockTransport(gzipped))
    assert client.get(URL).text == "plain text"


# --- over a real socket -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def slow_first():
    calls = []

    async def endpoint(request):
        calls.append(1)
        if len(calls) == 1:
            await asyncio.sleep(1.0)  # the first answer comes too late
        return Response(f"answer {len(calls)}")

    with BackgroundServer(Starlette(routes=[Route("/x", endpoint)])) as srv:
        yield srv


def test_read_timeout_is_retried(slow_first, sleeps):
    policy = RetryPolicy(max_attempts=3, backoff_base=0.01, sleep=sleeps.append)
    with retrying_client(policy, 0.2) as client:
        resp = client.get(slow_first.url + "/x")
    assert resp.status_code == 200 and resp.text == "answer 2"
    assert len(sleeps) == 1


def test_connection_refused_raises_after_the_last_attempt(sleeps):
    transport = RetryTransport(policy=RetryPolicy(max_attempts=3, backoff_base=0.01,
                                                  sleep=sleeps.append))
    with httpx.Client(transport=transport, timeout=0.5) as client, \
            pytest.raises(httpx.ConnectError):
        client.get(f"http://127.0.0.1:{free_port()}/x")
    assert len(sleeps) == 2


def test_parse_retry_after_forms():
    now = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    assert parse_retry_after("7", now) == 7.0
    assert parse_retry_after("Fri, 20 Nov 2026 12:00:30 GMT", now) == 30.0
    assert parse_retry_after("Fri, 20 Nov 2026 11:00:00 GMT", now) == 0.0  # in the past
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after(None, now) is None
