"""REST/JSON connector: paginated, incremental reads into the canonical model; idempotent writes.

With no field mapping configured the connector expects canonical field names, which is what the
sandbox planning system and TMS serve, so ``RestSettings(base_url=url, demand=EndpointSettings())``
is enough to read them. Real systems get a mapping ``canonical_field -> source.dotted.path``.

OData V2 services (SAP Gateway, SAP IBP) are read with ``records_path: d.results``, paging by
next link at ``d.__next`` (which carries the ``$skiptoken``), ``values: odata_v2`` (``/Date(ms)/``
times) and ``select_param: $select`` (the columns the mapping reads). Query parameters may say
``{today}``, ``{today+91d}`` or ``{today-7d}`` (an ISO date), so a ``$filter`` window moves with
the calendar.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Annotated, Any, Literal
from urllib.parse import urljoin, urlsplit

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from canonical.model import Action, Quarantined, ReadResult
from connectors._mapping import (
    ENTITIES,
    MappingError,
    build_record,
    get_path,
    is_missing,
    raw_text,
    to_utc,
)
from connectors.base import ConnectorError, ExecuteResult, Health
from connectors.batch import record_key
from connectors.http_retry import ONE_ATTEMPT, SAFE_TO_REPEAT, RetryPolicy, retrying_client

log = logging.getLogger(__name__)


class _Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- auth -----------------------------------------------------------------------------------


class NoAuth(_Settings):
    kind: Literal["none"] = "none"


class BearerAuth(_Settings):
    kind: Literal["bearer"] = "bearer"
    token: SecretStr


class BasicAuth(_Settings):
    kind: Literal["basic"] = "basic"
    username: str
    password: SecretStr


class ApiKeyHeaderAuth(_Settings):
    kind: Literal["api_key_header"] = "api_key_header"
    header: str = "X-API-Key"
    api_key: SecretStr


class OAuth2ClientCredentials(_Settings):
    """RFC 6749 §4.4. The token is cached until shortly before it expires, or until a 401."""

    kind: Literal["oauth2_client_credentials"] = "oauth2_client_credentials"
    token_url: str  # absolute, or relative to base_url
    client_id: str
    client_secret: SecretStr
    scopes: list[str] = Field(default_factory=list)
    audience: str | None = None
    client_auth: Literal["basic", "body"] = "basic"  # how the client secret is sent
    expiry_margin_seconds: float = 30.0


AuthSettings = Annotated[
    NoAuth | BearerAuth | BasicAuth | ApiKeyHeaderAuth | OAuth2ClientCredentials,
    Field(discriminator="kind"),
]


# --- endpoints ------------------------------------------------------------------------------


class Pagination(_Settings):
    """How to get the next page. ``next_link``: a URL in the body (or a ``Link: rel=next``
    header); ``cursor``: an opaque token sent back as a parameter; ``page_number``: 1, 2, 3 ..."""

    style: Literal["none", "next_link", "cursor", "page_number"] = "next_link"
    next_link_path: str = "next"
    next_cursor_path: str = "next_cursor"
    cursor_param: str = "cursor"
    page_param: str = "page"
    first_page: int = 1
    page_size_param: str | None = "limit"
    page_size: int | None = 500
    max_pages: int = Field(default=10_000, ge=1)  # a bound, so a buggy server cannot loop us


class EndpointSettings(_Settings):
    """One canonical entity served by one collection endpoint."""

    path: str | None = None  # default: /<entity>
    records_path: str = "items"  # where the list is in the body; "" when the body is the list
    fields: dict[str, str] = Field(default_factory=dict)  # canonical field -> source path
    line_fields: dict[str, str] = Field(default_factory=dict)  # shipments: sku/qty of a line
    constants: dict[str, Any] = Field(default_factory=dict)  # values the source does not carry
    params: dict[str, str] = Field(default_factory=dict)  # query parameters ({today±Nd} dates)
    # a parameter listing the source fields the mapping reads (OData: "$select")
    select_param: str | None = None
    # how values are written: plain JSON, or OData V2 JSON (times as "/Date(1700000000000)/")
    values: Literal["json", "odata_v2"] = "json"
    pagination: Pagination = Field(default_factory=Pagination)
    incremental: Literal["none", "updated_since", "etag"] = "updated_since"
    updated_since_param: str = "updated_since"
    updated_at_field: str = "updated_at"  # source field whose maximum becomes the next since
    # re-read this much before the last change seen, for systems whose timestamps are coarse or
    # committed out of order; duplicates are harmless downstream (records are upserted)
    overlap_seconds: float = Field(default=0.0, ge=0)


class OperationSettings(_Settings):
    path: str | None = None
    method: Literal["POST", "PATCH", "PUT"] | None = None


class ActionsSettings(_Settings):
    """Where ``execute`` sends actions: ``{operation, params, idempotency_key}`` as JSON."""

    path: str = "/actions"
    method: Literal["POST", "PATCH", "PUT"] = "POST"
    operations: dict[str, OperationSettings] = Field(default_factory=dict)


class RetrySettings(_Settings):
    max_attempts: int = Field(default=4, ge=1, le=10)
    timeout_seconds: float = Field(default=10.0, gt=0)
    backoff_base_seconds: float = Field(default=0.5, ge=0)
    backoff_max_seconds: float = Field(default=10.0, ge=0)
    retry_after_cap_seconds: float = Field(default=60.0, ge=0)

    def policy(self, sleep: Callable[[float], None] = time.sleep) -> RetryPolicy:
        return RetryPolicy(max_attempts=self.max_attempts, backoff_base=self.backoff_base_seconds,
                           backoff_max=self.backoff_max_seconds,
                           retry_after_cap=self.retry_after_cap_seconds, sleep=sleep)


class RestSettings(_Settings):
    base_url: str
    demand: EndpointSettings | None = None
    shipments: EndpointSettings | None = None
    capacity: EndpointSettings | None = None
    inventory: EndpointSettings | None = None
    lanes: EndpointSettings | None = None
    auth: AuthSettings = Field(default_factory=NoAuth)
    actions: ActionsSettings = Field(default_factory=ActionsSettings)
    health_path: str = "/health"
    retry: RetrySettings = Field(default_factory=RetrySettings)
    read_only: bool = False  # a source only: execute refuses every action

    @field_validator("base_url")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if urlsplit(value).scheme not in ("http", "https") or not urlsplit(value).netloc:
            raise ValueError(f"{value!r} is not an absolute http(s) URL")
        return value

    def endpoints(self) -> list[tuple[str, EndpointSettings]]:
        return [(e, ep) for e in ENTITIES if (ep := getattr(self, e)) is not None]


# --- the connector --------------------------------------------------------------------------


class RestConnector:
    """Reads canonical records from a REST/JSON system and executes actions on it."""

    def __init__(self, name: str, settings: RestSettings,
                 transport: httpx.BaseTransport | None = None, *,
                 sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)):
        self.name = name
        self.settings = settings
        self._client = retrying_client(settings.retry.policy(sleep),
                                       settings.retry.timeout_seconds, transport)
        self._clock = clock
        self._base = settings.base_url.rstrip("/")
        self._token: str | None = None
        self._token_expires = 0.0
        self._token_lock = threading.Lock()

    # -- plumbing

    def _url(self, path: str) -> str:
        if path.startswith(("http://", "https://")):
            return path
        return self._base + "/" + path.lstrip("/")

    def _auth_headers(self, *, refresh: bool = False) -> dict[str, str]:
        auth = self.settings.auth
        if isinstance(auth, BearerAuth):
            return {"Authorization": f"Bearer {auth.token.get_secret_value()}"}
        if isinstance(auth, BasicAuth):
            pair = f"{auth.username}:{auth.password.get_secret_value()}".encode()
            return {"Authorization": "Basic " + base64.b64encode(pair).decode()}
        if isinstance(auth, ApiKeyHeaderAuth):
            return {auth.header: auth.api_key.get_secret_value()}
        if isinstance(auth, OAuth2ClientCredentials):
            return {"Authorization": f"Bearer {self._oauth_token(auth, refresh=refresh)}"}
        return {}

    def _oauth_token(self, auth: OAuth2ClientCredentials, *, refresh: bool) -> str:
        with self._token_lock:
            if not refresh and self._token and time.monotonic() < self._token_expires:
                return self._token
            data = {"grant_type": "client_credentials"}
            if auth.scopes:
                data["scope"] = " ".join(auth.scopes)
            if auth.audience:
                data["audience"] = auth.audience
            kwargs: dict[str, Any] = {"data": data}
            if auth.client_auth == "basic":
                kwargs["auth"] = (auth.client_id, auth.client_secret.get_secret_value())
            else:
                data["client_id"] = auth.client_id
                data["client_secret"] = auth.client_secret.get_secret_value()
            try:
                resp = self._client.post(self._url(auth.token_url), extensions=SAFE_TO_REPEAT,
                                         **kwargs)
            except httpx.HTTPError as exc:
                raise ConnectorError(f"{self.name}: token endpoint unreachable "
                                     f"({type(exc).__name__})", retryable=True) from None
            if resp.status_code != 200:
                raise ConnectorError(
                    f"{self.name}: token endpoint answered {resp.status_code}; check the OAuth2 "
                    f"client id, secret and scopes", retryable=resp.status_code >= 500)
            try:
                body = resp.json()
                token = body["access_token"]
                lifetime = float(body.get("expires_in", 3600))
            except (ValueError, KeyError, TypeError, OverflowError, RecursionError):
                raise ConnectorError(f"{self.name}: token endpoint sent no access_token",
                                     retryable=False) from None
            self._token = str(token)
            self._token_expires = time.monotonic() + max(0.0, lifetime - auth.expiry_margin_seconds)
            return self._token

    def _request(self, method: str, url: str, *, headers: dict[str, str] | None = None,
                 **kwargs: Any) -> httpx.Response:
        """One call with auth and retries; an OAuth2 401 refreshes the token and tries once more."""
        resp = self._client.request(method, url, headers={**(headers or {}),
                                                          **self._auth_headers()}, **kwargs)
        if resp.status_code == 401 and isinstance(self.settings.auth, OAuth2ClientCredentials):
            resp.close()
            resp = self._client.request(
                method, url, headers={**(headers or {}), **self._auth_headers(refresh=True)},
                **kwargs)
        return resp

    # -- read

    def read(self, since: str | None = None) -> ReadResult:
        state = self._load_cursor(since)
        result = ReadResult()
        new_state: dict[str, dict[str, str]] = {}
        for entity, endpoint in self.settings.endpoints():
            new_state[entity] = self._read_endpoint(entity, endpoint, state.get(entity, {}),
                                                    result)
        if result.quarantined:
            log.warning("%s: quarantined %d of %d records", self.name, len(result.quarantined),
                        len(result.quarantined) + len(result.records))
        result.cursor = json.dumps({"v": 1, "endpoints": new_state}, sort_keys=True)
        return result

    def _load_cursor(self, since: str | None) -> dict[str, dict[str, str]]:
        if not since:
            return {}
        try:
            data = json.loads(since)
            endpoints = data["endpoints"]
            if not isinstance(endpoints, dict):
                raise TypeError
            return {k: v for k, v in endpoints.items() if isinstance(v, dict)}
        except (ValueError, KeyError, TypeError):
            log.warning("%s: cursor %.40r is not one this connector wrote; reading everything",
                        self.name, since)
            return {}

    def _read_endpoint(self, entity: str, ep: EndpointSettings, state: dict[str, str],
                       result: ReadResult) -> dict[str, str]:
        path = ep.path or f"/{entity}"
        url = self._url(path)
        pg = ep.pagination
        today = self._clock().astimezone(UTC).date()
        params: dict[str, Any] | None = {k: _dates(v, today) for k, v in ep.params.items()}
        if ep.select_param and ep.select_param not in params:
            params[ep.select_param] = ",".join(_selected(ep))
        headers: dict[str, str] = {}
        if ep.incremental == "updated_since" and state.get("since"):
            params[ep.updated_since_param] = _minus(state["since"], ep.overlap_seconds)
        if ep.incremental == "etag" and state.get("etag"):
            headers["If-None-Match"] = state["etag"]
        if pg.style != "none" and pg.page_size_param and pg.page_size:
            params[pg.page_size_param] = pg.page_size
        if pg.style == "page_number":
            params[pg.page_param] = pg.first_page

        new_state = dict(state)
        newest: tuple[datetime, str] | None = None
        seen_tokens: set[str] = set()
        # A row that changes while the pages are read comes again on a later page (sources page
        # by update time): its newer version replaces the one read first. Same key, no newer
        # time: a true duplicate, left for the loop to quarantine.
        read_at: dict[tuple[Any, ...], tuple[int, tuple[datetime, str] | None]] = {}
        for page in range(1, pg.max_pages + 1):
            try:
                resp = self._request("GET", url, params=params, headers=headers)
            except httpx.HTTPError as exc:
                raise ConnectorError(f"{self.name}: GET {path} failed after retries "
                                     f"({type(exc).__name__})", retryable=True) from None
            if resp.status_code == 304 and page == 1:
                return state  # nothing new since the ETag we hold
            if resp.status_code >= 400 or resp.status_code == 304:
                raise ConnectorError(
                    f"{self.name}: GET {path} answered {resp.status_code}: {resp.text[:200]}",
                    retryable=resp.status_code >= 500 or resp.status_code == 429)
            try:
                body = resp.json()
            except ValueError:
                raise ConnectorError(f"{self.name}: GET {path} page {page} is not JSON",
                                     retryable=True) from None
            except RecursionError:
                raise ConnectorError(f"{self.name}: GET {path} page {page} is JSON nested too "
                                     "deeply to read") from None
            if page == 1 and ep.incremental == "etag" and resp.headers.get("ETag"):
                new_state["etag"] = resp.headers["ETag"]
            items = get_path(body, ep.records_path)
            if is_missing(items) or not isinstance(items, list):
                raise ConnectorError(f"{self.name}: GET {path} has no list at "
                                     f"records_path={ep.records_path!r}; fix the endpoint "
                                     f"settings", retryable=False)
            for index, item in enumerate(items):
                if ep.values == "odata_v2" and isinstance(item, dict):
                    item = _odata_v2(item)
                updated_at = get_path(item, ep.updated_at_field) if isinstance(item, dict) else None
                newest, stamp = _newer(newest, updated_at), _newer(None, updated_at)
                try:
                    record = build_record(entity, item, ep.fields, ep.constants, ep.line_fields)
                    key = record_key(record)
                    first = read_at.get(key) if key else None
                    if first is not None and stamp and (first[1] is None or stamp[0] > first[1][0]):
                        result.records[first[0]] = record
                        read_at[key] = (first[0], stamp)
                    else:
                        if key and first is None:
                            read_at[key] = (len(result.records), stamp)
                        result.records.append(record)
                except (MappingError, RecursionError) as exc:
                    reason = (str(exc) if isinstance(exc, MappingError)
                              else "record is nested too deeply to read")
                    result.quarantined.append(Quarantined(
                        source=f"{self.name}:{entity}", position=f"page {page} item {index}",
                        reason=reason, raw=raw_text(item)))
            headers = {}  # If-None-Match belongs to the first page only
            if pg.style == "none":
                break
            if pg.style == "next_link":
                link = get_path(body, pg.next_link_path)
                if is_missing(link) or not link:
                    link = resp.links.get("next", {}).get("url")
                if not link:
                    break
                url = urljoin(str(resp.url), str(link))
                if _origin(url) != _origin(self._base):
                    raise ConnectorError(f"{self.name}: next link {url!r} leaves "
                                         f"{self._base}; refusing to send credentials there")
                if url in seen_tokens:
                    raise ConnectorError(f"{self.name}: GET {path} repeated next link {url!r}")
                seen_tokens.add(url)
                params = None  # the link carries its own query (an empty dict would erase it)
            elif pg.style == "cursor":
                token = get_path(body, pg.next_cursor_path)
                if is_missing(token) or token in (None, "") or not items:
                    break
                if str(token) in seen_tokens:
                    raise ConnectorError(f"{self.name}: GET {path} repeated cursor {token!r}")
                seen_tokens.add(str(token))
                params[pg.cursor_param] = token  # type: ignore[index]
            else:  # page_number
                if not items or (pg.page_size and len(items) < pg.page_size):
                    break
                params[pg.page_param] += 1  # type: ignore[index]
        else:
            raise ConnectorError(f"{self.name}: GET {path} has more than {pg.max_pages} pages; "
                                 f"raise pagination.max_pages", retryable=False)
        if ep.incremental == "updated_since" and newest is not None:
            new_state["since"] = newest[1]
        return new_state

    # -- execute

    def execute(self, action: Action) -> ExecuteResult:
        if self.settings.read_only:
            return ExecuteResult(ok=False, status="rejected",
                                 detail=f"{self.name} is a read-only source (read_only: true); "
                                        f"route {action.operation} to a connector that can write")
        if not action.idempotency_key:
            return ExecuteResult(ok=False, status="rejected",
                                 detail="action has no idempotency key; refusing to send it")
        acts = self.settings.actions
        op = acts.operations.get(action.operation, OperationSettings())
        path = op.path or acts.path
        body = {"operation": action.operation, "params": action.params,
                "idempotency_key": action.idempotency_key}
        try:
            resp = self._request(op.method or acts.method, self._url(path), json=body,
                                 headers={"Idempotency-Key": action.idempotency_key})
        except httpx.HTTPError as exc:
            return ExecuteResult(ok=False, status="error", retryable=True,
                                 detail=f"{action.operation}: {type(exc).__name__} after "
                                        f"{self.settings.retry.max_attempts} attempts")
        except ConnectorError as exc:
            return ExecuteResult(ok=False, status="error", detail=str(exc),
                                 retryable=exc.retryable)
        return _classify(action.operation, resp)

    # -- health

    def health(self) -> Health:
        try:
            resp = self._request("GET", self._url(self.settings.health_path),
                                 extensions=ONE_ATTEMPT)
        except (httpx.HTTPError, ConnectorError) as exc:
            return Health(ok=False, detail=f"{self.name}: {type(exc).__name__}: {exc}"[:300])
        if resp.is_success:
            return Health(ok=True, detail=f"{self.name}: HTTP {resp.status_code}")
        return Health(ok=False, detail=f"{self.name}: HTTP {resp.status_code}")


def _classify(operation: str, resp: httpx.Response) -> ExecuteResult:
    try:
        body = resp.json()
    except (ValueError, RecursionError):
        body = None
    body = body if isinstance(body, dict) else {}
    external = body.get("id") or body.get("external_id")
    external = str(external) if external is not None else None
    code = resp.status_code
    if resp.is_success:
        duplicate = body.get("duplicate") is True or body.get("status") == "duplicate"
        return ExecuteResult(ok=True, status="duplicate" if duplicate else "done",
                             detail=f"{operation}: HTTP {code}", external_id=external)
    if code == 409:
        return ExecuteResult(ok=True, status="duplicate", external_id=external,
                             detail=f"{operation}: HTTP 409, already applied")
    detail = f"{operation}: HTTP {code}: {resp.text[:300]}"
    if code in (401, 403):
        detail += " (check the connector's credentials and their permissions)"
    if code in (408, 429) or code >= 500:
        return ExecuteResult(ok=False, status="error", detail=detail, retryable=True)
    return ExecuteResult(ok=False, status="rejected", detail=detail)


def _newer(current: tuple[datetime, str] | None, value: Any) -> tuple[datetime, str] | None:
    if not isinstance(value, str) or not value:
        return current
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        return current
    if when.tzinfo is None:
        return current  # cannot order naive and aware times safely
    try:
        to_utc(when, value)
    except ValueError:
        return current  # outside UTC's years: not a time to resume from
    if current is None or when > current[0]:
        return (when, value)
    return current


def _minus(since: str, seconds: float) -> str:
    if not seconds:
        return since
    try:
        when = datetime.fromisoformat(since) - timedelta(seconds=seconds)
    except OverflowError:  # within the overlap of year 1
        return since
    return when.isoformat().replace("+00:00", "Z")


_TODAY = re.compile(r"\{today(?:([+-])(\d{1,5})d)?\}")
_ODATA_DATE = re.compile(r"^/Date\((-?\d{1,15})(?:([+-])(\d{1,4}))?\)/$")


def _dates(value: str, today: Any) -> str:
    """``{today}``, ``{today+91d}``, ``{today-7d}`` in a parameter, as ISO dates."""
    def date_of(match: re.Match[str]) -> str:
        sign, days = match.group(1), int(match.group(2) or 0)
        return (today + timedelta(days=-days if sign == "-" else days)).isoformat()

    return _TODAY.sub(date_of, value) if "{today" in value else value


def _selected(ep: EndpointSettings) -> list[str]:
    """The source fields ``ep`` maps, top-level names, in mapping order (OData ``$select``)."""
    names = [path.split(".")[0] for path in ep.fields.values()]
    if ep.incremental == "updated_since" and ep.updated_at_field:
        names.append(ep.updated_at_field.split(".")[0])
    return list(dict.fromkeys(n for n in names if n))


def _odata_v2(item: dict[str, Any]) -> dict[str, Any]:
    """An OData V2 entry with its ``/Date(ms)/`` and ``/Date(ms+mmmm)/`` times as ISO date-times
    (UTC, or at the offset given in minutes); anything else is left as it is."""
    out = {}
    for key, value in item.items():
        if isinstance(value, str) and value.startswith("/Date("):
            match = _ODATA_DATE.match(value)
            if match:
                try:
                    moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(
                        milliseconds=int(match.group(1)))
                    if match.group(2):
                        minutes = int(match.group(3)) * (-1 if match.group(2) == "-" else 1)
                        moment = moment.astimezone(timezone(timedelta(minutes=minutes)))
                    value = moment.isoformat()
                except (OverflowError, ValueError):
                    pass  # left as written: the record's validation says why it is bad
        out[key] = value
    return out


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return (parts.scheme, parts.netloc)
