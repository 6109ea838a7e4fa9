"""RestConnector against real local servers: a vendor-shaped API and the sandbox systems."""

from __future__ import annotations

import base64
import json
import logging
from datetime import date
from urllib.parse import parse_qsl

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from canonical.model import Action, DemandRecord
from connectors.base import Connector, ConnectorError
from connectors.rest import (
    ActionsSettings,
    ApiKeyHeaderAuth,
    BasicAuth,
    BearerAuth,
    EndpointSettings,
    OAuth2ClientCredentials,
    OperationSettings,
    Pagination,
    RestConnector,
    RestSettings,
    RetrySettings,
)
from sandbox.serving import BackgroundServer, free_port
from sandbox.systems import start_sandboxes

# --- a vendor-shaped planning API -------------------------------------------------------------

ROWS = [
    {"item": {"code": f"SKU-{i}"}, "site": "DC-1", "week": "2026-11-30",
     "qty": {"plan": 100 + i, "latest": 110 + i}, "price": 2.5,
     "modified": f"2026-11-20T10:{i:02d}:00Z"}
    for i in range(7)
]
VENDOR_FIELDS = {"sku": "item.code", "location": "site", "period": "week",
                 "planned_qty": "qty.plan", "latest_qty": "qty.latest", "unit_value": "price"}


class Vendor:
    """Serves ROWS three ways (next link, cursor, page number) behind a chosen auth scheme."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.auth = "none"
        self.calls: list[Request] = []
        self.token_requests: list[dict[str, str]] = []
        self.token_lifetime = 3600
        self.valid_tokens: set[str] = set()
        self.accept_tokens = True
        self.fail_next: list[int] = []
        self.rows = list(ROWS)
        self.actions: list[tuple[str, str, dict, str | None]] = []
        self.action_status = 201

    def _authorised(self, request: Request) -> bool:
        header = request.headers.get("authorization", "")
        if self.auth == "bearer":
            return header == "Bearer s3cret-token"
        if self.auth == "basic":
            return header == "Basic " + base64.b64encode(b"planner:pa55word").decode()
        if self.auth == "api_key":
            return request.headers.get("x-api-key") == "k3y"
        if self.auth == "oauth2":
            return self.accept_tokens and header.removeprefix("Bearer ") in self.valid_tokens
        return True

    def _gate(self, request: Request) -> Response | None:
        self.calls.append(request)
        if self.fail_next:
            status = self.fail_next.pop(0)
            return JSONResponse({"error": "try later"}, status_code=status,
                                headers={"Retry-After": "1"} if status == 429 else {})
        if not self._authorised(request):
            return JSONResponse({"error": "unauthorised"}, status_code=401)
        return None

    def _since(self, request: Request) -> list[dict]:
        since = request.query_params.get("changed_after")
        return [r for r in self.rows if not since or r["modified"] > since]

    async def next_link(self, request: Request) -> Response:
        if (denied := self._gate(request)) is not None:
            return denied
        rows, start = self._since(request), int(request.query_params.get("offset", 0))
        size = int(request.query_params.get("size", 3))
        nxt = None
        if start + size < len(rows):
            nxt = str(request.url.include_query_params(offset=start + size))
            nxt = nxt.removeprefix(f"{request.url.scheme}://{request.url.netloc}")  # relative
        return JSONResponse({"data": {"rows": rows[start:start + size]}, "links": {"next": nxt}})

    async def cursor(self, request: Request) -> Response:
        if (denied := self._gate(request)) is not None:
            return denied
        start = int(request.query_params.get("token", "0"))
        chunk = self.rows[start:start + 3]
        more = start + 3 < len(self.rows)
        return JSONResponse({"results": chunk, "meta": {"next": str(start + 3) if more else None}})

    async def pages(self, request: Request) -> Response:
        if (denied := self._gate(request)) is not None:
            return denied
        page, size = int(request.query_params["p"]), int(request.query_params["per_page"])
        return JSONResponse(self.rows[(page - 1) * size: page * size])

    async def link_header(self, request: Request) -> Response:
        if (denied := self._gate(request)) is not None:
            return denied
        start = int(request.query_params.get("offset", 0))
        headers = {}
        if start + 4 < len(self.rows):
            headers["Link"] = f'<{request.url.path}?offset={start + 4}>; rel="next"'
        return JSONResponse({"items": self.rows[start:start + 4]}, headers=headers)

    async def deep(self, request: Request) -> Response:
        return Response('{"items": ' + "[" * 100_000 + "]" * 100_000 + "}",
                        media_type="application/json")

    async def escape(self, request: Request) -> Response:
        return JSONResponse({"items": self.rows[:1], "next": "http://attacker.invalid/steal"})

    async def token(self, request: Request) -> Response:
        form = dict(parse_qsl((await request.body()).decode()))
        self.token_requests.append({**form, "authorization": request.headers.get("authorization")})
        expected = "Basic " + base64.b64encode(b"alignbot:cl1ent-secret").decode()
        in_body = (form.get("client_id"), form.get("client_secret")) == ("alignbot",
                                                                         "cl1ent-secret")
        if request.headers.get("authorization") != expected and not in_body:
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        token = f"tok-{len(self.token_requests)}"
        self.valid_tokens.add(token)
        return JSONResponse({"access_token": token, "token_type": "Bearer",
                             "expires_in": self.token_lifetime})

    async def action(self, request: Request) -> Response:
        if (denied := self._gate(request)) is not None:
            return denied
        body = await request.json()
        self.actions.append((request.method, request.url.path, body,
                             request.headers.get("idempotency-key")))
        return JSONResponse({"external_id": "chg-1"}, status_code=self.action_status)

    async def health(self, request: Request) -> Response:
        return JSONResponse({"ok": True})


@pytest.fixture(scope="module")
def vendor_server():
    vendor = Vendor()
    app = Starlette(routes=[
        Route("/v2/plan", vendor.next_link), Route("/v2/plan-cursor", vendor.cursor),
        Route("/v2/plan-pages", vendor.pages), Route("/v2/plan-linked", vendor.link_header),
        Route("/v2/escape", vendor.escape), Route("/v2/deep", vendor.deep),
        Route("/oauth/token", vendor.token, methods=["POST"]),
        Route("/v2/changes", vendor.action, methods=["POST", "PATCH"]),
        Route("/v2/changes/{op}", vendor.action, methods=["POST", "PATCH"]),
        Route("/status", vendor.health),
    ])
    with BackgroundServer(app) as server:
        server.vendor = vendor
        yield server


@pytest.fixture
def vendor(vendor_server):
    vendor_server.vendor.reset()
    return vendor_server.vendor


@pytest.fixture
def sleeps():
    return []


FAST = RetrySettings(max_attempts=3, timeout_seconds=2.0, backoff_base_seconds=0.01)


@pytest.fixture
def client():
    with httpx.Client() as c:
        yield c


def vendor_endpoint(path: str, records_path: str, pagination: Pagination,
                    **kw) -> EndpointSettings:
    return EndpointSettings(path=path, records_path=records_path, fields=VENDOR_FIELDS,
                            pagination=pagination, updated_since_param="changed_after",
                            updated_at_field="modified", **kw)


def connector(url: str, sleeps: list[float], endpoint: EndpointSettings,
              **settings) -> RestConnector:
    settings.setdefault("retry", FAST)
    return RestConnector("vendor", RestSettings(base_url=url, demand=endpoint, **settings),
                         sleep=sleeps.append)


# --- pagination -------------------------------------------------------------------------------


def expected_records() -> list[DemandRecord]:
    return [DemandRecord(sku=f"SKU-{i}", location="DC-1", period=date(2026, 11, 30),
                         planned_qty=100 + i, latest_qty=110 + i, unit_value=2.5)
            for i in range(7)]


def test_next_link_pagination_with_nested_mapping(vendor_server, vendor, sleeps):
    ep = vendor_endpoint("/v2/plan", "data.rows",
                         Pagination(style="next_link", next_link_path="links.next",
                                    page_size_param="size", page_size=3))
    result = connector(vendor_server.url, sleeps, ep).read()
    assert result.records == expected_records()
    assert result.quarantined == []
    assert len(vendor.calls) == 3  # 3 + 3 + 1


def test_cursor_pagination(vendor_server, vendor, sleeps):
    ep = vendor_endpoint("/v2/plan-cursor", "results",
                         Pagination(style="cursor", next_cursor_path="meta.next",
                                    cursor_param="token", page_size_param=None),
                         incremental="none")
    result = connector(vendor_server.url, sleeps, ep).read()
    assert result.records == expected_records()
    assert [c.query_params.get("token") for c in vendor.calls] == [None, "3", "6"]


def test_page_number_pagination_stops_on_a_short_page(vendor_server, vendor, sleeps):
    ep = vendor_endpoint("/v2/plan-pages", "",
                         Pagination(style="page_number", page_param="p",
                                    page_size_param="per_page", page_size=2),
                         incremental="none")
    result = connector(vendor_server.url, sleeps, ep).read()
    assert result.records == expected_records()
    assert [c.query_params["p"] for c in vendor.calls] == ["1", "2", "3", "4"]


def test_link_header_pagination(vendor_server, vendor, sleeps):
    ep = vendor_endpoint("/v2/plan-linked", "items", Pagination(style="next_link"),
                         incremental="none")
    assert connector(vendor_server.url, sleeps, ep).read().records == expected_records()
    assert len(vendor.calls) == 2


def test_next_link_to_another_host_is_refused(vendor_server, vendor, sleeps):
    ep = vendor_endpoint("/v2/escape", "items", Pagination(), incremental="none")
    with pytest.raises(ConnectorError, match="refusing to send credentials"):
        connector(vendor_server.url, sleeps, ep,
                  auth=BearerAuth(token="s3cret-token")).read()


# --- incremental reads ------------------------------------------------------------------------


def test_updated_since_reads_only_what_changed(vendor_server, vendor, sleeps):
    ep = vendor_endpoint("/v2/plan", "data.rows",
                         Pagination(next_link_path="links.next", page_size_param="size"))
    conn = connector(vendor_server.url, sleeps, ep)
    first = conn.read()
    assert len(first.records) == 7
    assert conn.read(first.cursor).records == []
    assert vendor.calls[-1].query_params["changed_after"] == "2026-11-20T10:06:00Z"
    vendor.rows.append({**ROWS[0], "qty": {"plan": 5, "latest": 50},
                        "modified": "2026-11-21T08:00:00Z"})
    third = conn.read(first.cursor)
    assert [(r.sku, r.latest_qty) for r in third.records] == [("SKU-0", 50.0)]


def test_overlap_re_reads_a_margin_before_the_last_change(vendor_server, vendor, sleeps):
    ep = vendor_endpoint("/v2/plan", "data.rows", Pagination(next_link_path="links.next"),
                         overlap_seconds=120)
    conn = connector(vendor_server.url, sleeps, ep)
    first = conn.read()
    second = conn.read(first.cursor)
    assert vendor.calls[-1].query_params["changed_after"] == "2026-11-20T10:04:00Z"
    assert [r.sku for r in second.records] == ["SKU-5", "SKU-6"]  # read again, harmlessly
    assert json.loads(second.cursor) == json.loads(first.cursor)


# --- quarantine -------------------------------------------------------------------------------


def test_malformed_records_are_quarantined_and_the_rest_read(vendor_server, vendor, sleeps):
    vendor.rows = [ROWS[0], {**ROWS[1], "qty": {"plan": -4, "latest": 1}}, "not an object",
                   {**ROWS[2], "item": {}}, {**ROWS[3], "week": "next tuesday"}, ROWS[4]]
    ep = vendor_endpoint("/v2/plan", "data.rows",
                         Pagination(next_link_path="links.next", page_size_param="size",
                                    page_size=3))
    result = connector(vendor_server.url, sleeps, ep).read()
    assert [r.sku for r in result.records] == ["SKU-0", "SKU-4"]
    bad = {q.position: q for q in result.quarantined}
    assert set(bad) == {"page 1 item 1", "page 1 item 2", "page 2 item 0", "page 2 item 1"}
    assert "planned_qty" in bad["page 1 item 1"].reason
    assert "JSON object" in bad["page 1 item 2"].reason
    assert "sku" in bad["page 2 item 0"].reason
    assert "period" in bad["page 2 item 1"].reason and "next tuesday" in bad["page 2 item 1"].raw
    assert all(q.source == "vendor:demand" for q in result.quarantined)


def test_a_time_past_year_9999_in_utc_is_quarantined_and_the_page_read(vendor_server, vendor,
                                                                      sleeps):
    vendor.rows = [{"id": "S1", "from": "P1", "to": "DC1", "eta": "2026-12-01T08:00:00Z",
                    "modified": "2026-11-20T10:00:00Z"},
                   {"id": "S2", "from": "P1", "to": "DC1", "eta": "9999-12-31T23:59:59-12:00",
                    "modified": "2026-11-20T10:01:00Z"},
                   {"id": "S3", "from": "P1", "to": "DC1", "eta": None,
                    "modified": "9999-12-31T23:59:59-12:00"}]
    ep = EndpointSettings(path="/v2/plan", records_path="data.rows",
                          fields={"shipment_id": "id", "origin": "from", "destination": "to",
                                  "eta": "eta"},
                          pagination=Pagination(next_link_path="links.next",
                                                page_size_param="size", page_size=3),
                          updated_since_param="changed_after", updated_at_field="modified")
    conn = RestConnector("vendor", RestSettings(base_url=vendor_server.url, shipments=ep,
                                                retry=FAST), sleep=sleeps.append)
    result = conn.read()
    assert [r.shipment_id for r in result.records] == ["S1", "S3"]
    (bad,) = result.quarantined
    assert bad.position == "page 1 item 1" and bad.source == "vendor:shipments"
    assert "eta" in bad.reason and "9999-12-31T23:59:59-12:00" in bad.reason
    assert "out of range" in bad.reason
    # nor does such a time become the cursor, which would skip every later change
    assert json.loads(result.cursor)["endpoints"]["shipments"]["since"] == "2026-11-20T10:01:00Z"


def test_a_body_nested_too_deeply_fails_the_read_with_a_clear_error(vendor_server, vendor,
                                                                   sleeps):
    ep = vendor_endpoint("/v2/deep", "items", Pagination(style="none"), incremental="none")
    with pytest.raises(ConnectorError, match="GET /v2/deep page 1 is JSON nested too deeply"):
        connector(vendor_server.url, sleeps, ep).read()


# --- auth -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("scheme", "auth", "wrong"), [
    ("bearer", BearerAuth(token="s3cret-token"), BearerAuth(token="nope")),
    ("basic", BasicAuth(username="planner", password="pa55word"),
     BasicAuth(username="planner", password="nope")),
    ("api_key", ApiKeyHeaderAuth(api_key="k3y"), ApiKeyHeaderAuth(api_key="nope")),
])
def test_static_auth_schemes(vendor_server, vendor, sleeps, scheme, auth, wrong):
    vendor.auth = scheme
    ep = vendor_endpoint("/v2/plan", "data.rows", Pagination(next_link_path="links.next"))
    assert len(connector(vendor_server.url, sleeps, ep, auth=auth).read().records) == 7
    with pytest.raises(ConnectorError, match="401") as err:
        connector(vendor_server.url, sleeps, ep, auth=wrong).read()
    assert err.value.retryable is False


def oauth(**kw) -> OAuth2ClientCredentials:
    return OAuth2ClientCredentials(token_url="/oauth/token", client_id="alignbot",
                                   client_secret=kw.pop("secret", "cl1ent-secret"),
                                   scopes=["plan.read", "plan.write"], **kw)


def test_oauth2_token_is_fetched_once_and_reused(vendor_server, vendor, sleeps):
    vendor.auth = "oauth2"
    ep = vendor_endpoint("/v2/plan", "data.rows", Pagination(next_link_path="links.next"))
    conn = connector(vendor_server.url, sleeps, ep, auth=oauth())
    conn.read()
    conn.read()
    assert len(vendor.token_requests) == 1
    assert vendor.token_requests[0]["grant_type"] == "client_credentials"
    assert vendor.token_requests[0]["scope"] == "plan.read plan.write"


def test_oauth2_client_secret_in_the_form_body(vendor_server, vendor, sleeps):
    vendor.auth = "oauth2"
    ep = vendor_endpoint("/v2/plan", "data.rows", Pagination(next_link_path="links.next"))
    conn = connector(vendor_server.url, sleeps, ep,
                     auth=oauth(client_auth="body", audience="https://plan.example"))
    assert len(conn.read().records) == 7
    [sent] = vendor.token_requests
    assert sent["authorization"] is None and sent["audience"] == "https://plan.example"


def test_oauth2_token_is_refreshed_when_it_expires(vendor_server, vendor, sleeps):
    vendor.auth = "oauth2"
    vendor.token_lifetime = 10  # shorter than the 30 s safety margin: expired at once
    ep = vendor_endpoint("/v2/plan", "data.rows", Pagination(next_link_path="links.next"))
    conn = connector(vendor_server.url, sleeps, ep, auth=oauth())
    conn.read()
    conn.read()
    assert len(vendor.token_requests) >= 2


def test_oauth2_refreshes_once_on_401(vendor_server, vendor, sleeps):
    vendor.auth = "oauth2"
    ep = vendor_endpoint("/v2/plan", "data.rows", Pagination(next_link_path="links.next"))
    conn = connector(vendor_server.url, sleeps, ep, auth=oauth())
    conn.read()
    vendor.valid_tokens.clear()  # the server revoked every token
    assert len(conn.read().records) == 7
    assert len(vendor.token_requests) == 2


def test_oauth2_refreshes_only_once_when_the_api_keeps_refusing(vendor_server, vendor, sleeps):
    vendor.auth = "oauth2"
    ep = vendor_endpoint("/v2/plan", "data.rows", Pagination(next_link_path="links.next"))
    conn = connector(vendor_server.url, sleeps, ep, auth=oauth(),
                     actions=ActionsSettings(path="/v2/changes"))
    vendor.accept_tokens = False  # issued tokens are never accepted
    with pytest.raises(ConnectorError, match="401"):
        conn.read()
    assert len(vendor.token_requests) == 2 and len(vendor.calls) == 2
    result = conn.execute(Action(system="planning", operation="x", params={},
                                 idempotency_key="k"))
    assert result.status == "rejected" and "credentials" in result.detail
    assert len(vendor.token_requests) == 3  # one refresh per call, never a loop


def test_oauth2_bad_client_secret_is_a_clear_error(vendor_server, vendor, sleeps):
    vendor.auth = "oauth2"
    ep = vendor_endpoint("/v2/plan", "data.rows", Pagination(next_link_path="links.next"))
    conn = connector(vendor_server.url, sleeps, ep, auth=oauth(secret="wrong"))
    with pytest.raises(ConnectorError, match="token endpoint answered 401") as err:
        conn.read()
    assert not err.value.retryable


def test_secrets_never_reach_logs_or_reprs(vendor_server, vendor, sleeps, caplog):
    caplog.set_level(logging.DEBUG)
    vendor.auth = "oauth2"
    vendor.fail_next = [503]
    ep = vendor_endpoint("/v2/plan", "data.rows", Pagination(next_link_path="links.next"))
    settings = RestSettings(base_url=vendor_server.url, demand=ep, auth=oauth(), retry=FAST)
    RestConnector("vendor", settings, sleep=sleeps.append).read()
    text = caplog.text + repr(settings) + str(settings.model_dump())
    assert "503" in caplog.text  # the retry was logged ...
    assert "cl1ent-secret" not in text  # ... without the secret
    assert "tok-1" not in caplog.text


# --- retries ----------------------------------------------------------------------------------


def test_read_survives_429_and_5xx(vendor_server, vendor, sleeps):
    vendor.fail_next = [429, 503]
    ep = vendor_endpoint("/v2/plan", "data.rows", Pagination(next_link_path="links.next"))
    assert len(connector(vendor_server.url, sleeps, ep).read().records) == 7
    assert sleeps[0] == 1.0  # Retry-After: 1


def test_read_gives_up_after_bounded_retries(vendor_server, vendor, sleeps):
    vendor.fail_next = [500] * 10
    ep = vendor_endpoint("/v2/plan", "data.rows", Pagination(next_link_path="links.next"))
    with pytest.raises(ConnectorError, match="500") as err:
        connector(vendor_server.url, sleeps, ep).read()
    assert err.value.retryable
    assert len(vendor.calls) == 3


def test_token_and_keyed_action_requests_are_retried_over_any_transport(sleeps):
    failures = {"/oauth/token": [503], "/actions": [503, 502]}
    seen: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        if failures.get(request.url.path):
            return httpx.Response(failures[request.url.path].pop(0))
        if request.url.path == "/oauth/token":
            return httpx.Response(200, json={"access_token": "t", "expires_in": 60})
        return httpx.Response(200, json={"id": "X-1"})

    conn = RestConnector("vendor", RestSettings(base_url="https://vendor.test", auth=oauth(),
                                                retry=FAST),
                         httpx.MockTransport(answer), sleep=sleeps.append)
    result = conn.execute(Action(system="planning", operation="x", params={},
                                 idempotency_key="k"))
    assert (result.status, result.external_id) == ("done", "X-1")
    assert seen == ["/oauth/token"] * 2 + ["/actions"] * 3 and len(sleeps) == 3


def test_unreachable_system_is_a_retryable_error(sleeps):
    ep = EndpointSettings()
    conn = connector(f"http://127.0.0.1:{free_port()}", sleeps, ep)
    with pytest.raises(ConnectorError) as err:
        conn.read()
    assert err.value.retryable
    assert conn.health().ok is False


# --- execute ----------------------------------------------------------------------------------


def test_execute_uses_configured_method_path_and_idempotency_header(vendor_server, vendor,
                                                                    sleeps):
    actions = ActionsSettings(path="/v2/changes", operations={
        "update_forecast": OperationSettings(path="/v2/changes/forecast", method="PATCH")})
    conn = connector(vendor_server.url, sleeps, EndpointSettings(), actions=actions,
                     health_path="/status")
    action = Action(system="planning", operation="update_forecast", idempotency_key="k-1",
                    params={"sku": "SKU-1", "qty": 5})
    result = conn.execute(action)
    assert (result.ok, result.status, result.external_id) == (True, "done", "chg-1")
    other = conn.execute(action.model_copy(update={"operation": "note", "idempotency_key": "k-2"}))
    assert other.status == "done"
    assert vendor.actions == [
        ("PATCH", "/v2/changes/forecast",
         {"operation": "update_forecast", "params": {"sku": "SKU-1", "qty": 5},
          "idempotency_key": "k-1"}, "k-1"),
        ("POST", "/v2/changes", {"operation": "note", "params": {"sku": "SKU-1", "qty": 5},
                                 "idempotency_key": "k-2"}, "k-2"),
    ]
    assert conn.health().ok


@pytest.mark.parametrize(("status", "expected", "retryable"), [
    (409, ("duplicate", True), False), (422, ("rejected", False), False),
    (503, ("error", False), True),
])
def test_execute_maps_status_codes(vendor_server, vendor, sleeps, status, expected,
                                   retryable):
    vendor.action_status = status
    conn = connector(vendor_server.url, sleeps, EndpointSettings(),
                     actions=ActionsSettings(path="/v2/changes"))
    result = conn.execute(Action(system="planning", operation="x", params={},
                                 idempotency_key="k"))
    assert (result.status, result.ok) == expected
    assert result.retryable is retryable
    assert len(vendor.actions) == (3 if status == 503 else 1)  # only 5xx is retried


def test_execute_without_idempotency_key_sends_nothing(vendor_server, vendor, sleeps):
    conn = connector(vendor_server.url, sleeps, EndpointSettings())
    result = conn.execute(Action(system="planning", operation="x", params={}))
    assert result.status == "rejected" and not result.retryable
    assert vendor.calls == []


# --- against the sandbox systems --------------------------------------------------------------


@pytest.fixture(scope="module")
def sandboxes():
    planning, tms = start_sandboxes(seed=11)
    yield planning, tms
    planning.stop()
    tms.stop()


def test_sandbox_updated_since_returns_exactly_the_spiked_rows(sandboxes, client, sleeps):
    planning, _ = sandboxes
    conn = RestConnector("planning", RestSettings(base_url=planning.url, retry=FAST,
                                                  demand=EndpointSettings()), sleep=sleeps.append)
    assert isinstance(conn, Connector)
    first = conn.read()
    assert len(first.records) == 300 * 4 * 8
    assert conn.read(first.cursor).records == []
    spike = client.post(planning.url + "/scenario/step").json()["injected"][0]
    changed = conn.read(first.cursor).records
    assert {(r.sku, r.location, r.period.isoformat()) for r in changed} == {
        (s, spike["location"], p) for s in spike["skus"] for p in spike["periods"]}
    assert all(r.latest_qty > 1.5 * r.planned_qty for r in changed)


def test_sandbox_etag_answers_304_until_something_changes(sandboxes, client, sleeps):
    _, tms = sandboxes
    ep = EndpointSettings(incremental="etag", pagination=Pagination(page_size=20))
    conn = RestConnector("tms", RestSettings(base_url=tms.url, shipments=ep, retry=FAST),
                         sleep=sleeps.append)
    first = conn.read()
    assert len(first.records) >= 48
    second = conn.read(first.cursor)
    assert second.records == [] and second.cursor == first.cursor
    client.post(tms.url + "/scenario/step")
    third = conn.read(second.cursor)
    assert len(third.records) == len(first.records)  # ETag mode re-reads the whole set
    assert any(r.status == "delayed" for r in third.records)


def test_sandbox_execute_is_applied_once_per_idempotency_key(sandboxes, client, sleeps):
    _, tms = sandboxes
    conn = RestConnector("tms", RestSettings(base_url=tms.url, shipments=EndpointSettings(),
                                             retry=FAST), sleep=sleeps.append)
    before = {r.shipment_id: r for r in conn.read().records}
    target = next(r for r in before.values() if r.status == "in_transit")
    action = Action(system="logistics", operation="create_transfer", idempotency_key="trf-1",
                    params={"origin": "DC-NJ", "destination": "DC-OH", "sku": "SKU-00001",
                            "qty": 40})
    first, again = conn.execute(action), conn.execute(action)
    assert (first.status, again.status) == ("done", "duplicate")
    assert first.external_id == again.external_id
    received = client.get(tms.url + "/received").json()
    entry = next(a for a in received["actions"] if a["idempotency_key"] == "trf-1")
    assert (entry["attempts"], entry["applied"]) == (2, 1)
    after = {r.shipment_id: r for r in conn.read().records}
    transfers = [r for r in after.values() if r.origin == "DC-NJ" and r.destination == "DC-OH"]
    assert len(transfers) == 1 and transfers[0].lines[0].qty == 40

    expedite = Action(system="logistics", operation="expedite_shipment", idempotency_key="exp-1",
                      params={"shipment_id": target.shipment_id, "days": 2})
    assert conn.execute(expedite).status == "done"
    assert conn.read().records and {r.shipment_id: r for r in conn.read().records}[
        target.shipment_id].eta < target.eta

    bad = conn.execute(Action(system="logistics", operation="teleport", params={},
                              idempotency_key="t-1"))
    assert bad.status == "rejected" and "teleport" in bad.detail and not bad.retryable


def test_sandbox_lost_response_is_retried_and_still_applied_once(sandboxes, client):
    planning, _ = sandboxes
    retry = RetrySettings(max_attempts=2, timeout_seconds=0.3, backoff_base_seconds=0.01)
    conn = RestConnector("planning", RestSettings(base_url=planning.url, retry=retry),
                         sleep=lambda s: None)
    client.post(planning.url + "/scenario/faults", json={"timeout_rate": 1.0,
                                                         "timeout_seconds": 0.6})
    demand = client.get(planning.url + "/demand", params={"limit": 1}).json()["items"][0]
    action = Action(system="planning", operation="update_forecast", idempotency_key="uf-lost",
                    params={"sku": demand["sku"], "location": demand["location"],
                            "period": demand["period"], "qty": 1234})
    try:
        lost = conn.execute(action)
    finally:
        client.post(planning.url + "/scenario/faults", json={})
    assert lost.status == "error" and lost.retryable  # every answer came too late
    assert conn.execute(action).status == "duplicate"  # the outbox retry: no second effect
    received = client.get(planning.url + "/received").json()
    entry = next(a for a in received["actions"] if a["idempotency_key"] == "uf-lost")
    assert (entry["attempts"], entry["applied"]) == (3, 1)
    reader = RestConnector("planning", RestSettings(base_url=planning.url,
                                                    demand=EndpointSettings()))
    replanned = [r for r in reader.read().records if r.planned_qty == 1234]
    assert [(r.sku, r.location, r.period.isoformat()) for r in replanned] == [
        (demand["sku"], demand["location"], demand["period"])]
