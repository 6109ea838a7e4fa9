"""Send an app exactly what Slack sends, signed exactly as Slack signs.

Slack signs ``v0:{timestamp}:{raw body}`` with HMAC-SHA256 under the app's signing secret and
sends ``X-Slack-Signature: v0=<hex>`` and ``X-Slack-Request-Timestamp``. Retries resend the same
body with ``X-Slack-Retry-Num`` and ``X-Slack-Retry-Reason``. Deliberately bad signatures and
stale timestamps are available for security tests.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from dataclasses import dataclass, field, replace
from typing import Any, Protocol
from urllib.parse import urlencode

import httpx

SLACK_ACK_TIMEOUT = 3.0  # Slack shows the user an error if the app has not answered by then


@dataclass(frozen=True)
class Envelope:
    """One delivery over the socket, exactly as sent (so it can be sent again)."""

    type: str  # "slash_commands" | "interactive" | "events_api"
    payload: dict[str, Any]
    accepts_response_payload: bool
    envelope_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    retry_attempt: int = 0  # sent for events_api only
    retry_reason: str = ""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"envelope_id": self.envelope_id, "type": self.type,
                               "payload": self.payload,
                               "accepts_response_payload": self.accepts_response_payload}
        if self.type == "events_api":
            out.update(retry_attempt=self.retry_attempt, retry_reason=self.retry_reason)
        return out

    def again(self, retry_attempt: int, retry_reason: str) -> Envelope:
        """The same payload as a new envelope (Slack gives every delivery its own id)."""
        return replace(self, envelope_id=str(uuid.uuid4()), retry_attempt=retry_attempt,
                       retry_reason=retry_reason)


def sign(signing_secret: str, timestamp: str | int, body: bytes | str) -> str:
    """The ``X-Slack-Signature`` value for this body at this timestamp."""
    raw = body.encode() if isinstance(body, str) else body
    base = b"v0:" + str(timestamp).encode() + b":" + raw
    return "v0=" + hmac.new(signing_secret.encode(), base, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class SignedRequest:
    """What was sent, so it can be resent as a Slack retry."""

    url: str
    body: bytes
    content_type: str


@dataclass
class Delivery:
    """The app's answer: HTTP status, body, headers, and how long it took to answer.

    Over Socket Mode ``request`` is the envelope, ``status`` 200 once acked and ``body`` the
    ack's ``payload`` as JSON (what the app would have answered over HTTP).
    """

    request: SignedRequest | Envelope
    status: int
    body: str
    headers: dict[str, str]
    elapsed: float
    timed_out: bool = False
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.timed_out and 200 <= self.status < 300

    def json(self) -> Any:
        return json.loads(self.body) if self.body.strip() else None


class Transport(Protocol):
    """How what people do reaches the app: ``SigningClient`` (HTTP request URL) or
    ``socket_mode.SocketModeServer`` (the app's WebSocket). Keyword options are per transport."""

    def send_form(self, fields: dict[str, Any], **options: Any) -> Delivery: ...

    def send_interaction(self, payload: dict[str, Any], **options: Any) -> Delivery: ...

    def send_event(self, envelope: dict[str, Any], **options: Any) -> Delivery: ...

    def retry(self, previous: Delivery, retry_num: int = 1, reason: str = ...,
              **options: Any) -> Delivery: ...


class SigningClient:
    """Posts signed requests to an app's request URL; every send has a timeout."""

    def __init__(self, signing_secret: str, app_url: str | None = None, *,
                 timeout: float = SLACK_ACK_TIMEOUT, http: httpx.Client | None = None):
        self.signing_secret = signing_secret
        self.app_url = app_url
        self.timeout = timeout
        # A fresh connection per delivery, as Slack makes: reusing a kept-alive connection the
        # app's server is just closing gets "connection reset" for a request it never read.
        self._http = http or httpx.Client(timeout=timeout,
                                          limits=httpx.Limits(max_keepalive_connections=0))

    def close(self) -> None:
        self._http.close()

    def send(self, body: bytes | str, content_type: str, *, url: str | None = None,
             timestamp: int | str | None = None, signature: str | None = None,
             retry_num: int | None = None, retry_reason: str | None = None,
             headers: dict[str, str] | None = None) -> Delivery:
        """Sign and POST ``body``. ``timestamp``/``signature`` override for security tests."""
        target = url or self.app_url
        if not target:
            raise ValueError("No app request URL: set SlackStandin.app_url (or pass url=) first")
        raw = body.encode() if isinstance(body, str) else body
        ts = str(int(time.time()) if timestamp is None else timestamp)
        sent_headers = {
            "Content-Type": content_type,
            "X-Slack-Request-Timestamp": ts,
            "X-Slack-Signature": signature or sign(self.signing_secret, ts, raw),
            "User-Agent": "Slackbot 1.0 (+https://api.slack.com/robots)",
        }
        if retry_num is not None:
            sent_headers["X-Slack-Retry-Num"] = str(retry_num)
            sent_headers["X-Slack-Retry-Reason"] = retry_reason or "http_timeout"
        sent_headers.update(headers or {})
        request = SignedRequest(target, raw, content_type)
        started = time.monotonic()
        try:
            resp = self._http.post(target, content=raw, headers=sent_headers,
                                   timeout=self.timeout)
        except httpx.TimeoutException:
            return Delivery(request, 0, "", {}, time.monotonic() - started, timed_out=True,
                            error="operation_timeout")
        except httpx.HTTPError as exc:
            return Delivery(request, 0, "", {}, time.monotonic() - started,
                            error=f"{type(exc).__name__}: {exc}")
        return Delivery(request, resp.status_code, resp.text, dict(resp.headers),
                        time.monotonic() - started)

    def retry(self, previous: Delivery | SignedRequest, retry_num: int = 1,
              reason: str = "http_timeout", **kw: Any) -> Delivery:
        """Resend the same body as Slack's retry number ``retry_num`` (freshly signed)."""
        req = previous.request if isinstance(previous, Delivery) else previous
        if not isinstance(req, SignedRequest):
            raise TypeError("That delivery went over Socket Mode; retry it with the socket")
        return self.send(req.body, req.content_type, url=req.url, retry_num=retry_num,
                         retry_reason=reason, **kw)

    def send_form(self, fields: dict[str, Any], **kw: Any) -> Delivery:
        """A slash command: form-encoded fields."""
        return self.send(urlencode({k: "" if v is None else str(v) for k, v in fields.items()}),
                         "application/x-www-form-urlencoded", **kw)

    def send_interaction(self, payload: dict[str, Any], **kw: Any) -> Delivery:
        """Interactivity (block_actions, view_submission): form-encoded ``payload=<json>``."""
        return self.send(urlencode({"payload": json.dumps(payload)}),
                         "application/x-www-form-urlencoded", **kw)

    def send_event(self, envelope: dict[str, Any], **kw: Any) -> Delivery:
        """Events API: a JSON body."""
        return self.send(json.dumps(envelope), "application/json", **kw)
