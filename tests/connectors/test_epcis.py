"""EPCIS 2.0: GS1's published examples parse, and the REST connector pages and resumes."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from canonical.model import UTC, Action
from connectors.base import ConnectorError
from connectors.epcis import (
    EpcisConnector,
    EpcisSettings,
    cbv_term,
    event_list,
    parse_document,
    parse_event_time,
)
from sandbox.serving import BackgroundServer

FIXTURES = Path("/work/shared/fixtures/epcis")
ALL_FIXTURES = sorted(FIXTURES.glob("*.jsonld"))


def test_fixture_set_is_present() -> None:
    assert len(ALL_FIXTURES) >= 20


@pytest.mark.parametrize("path", ALL_FIXTURES, ids=lambda p: p.name)
def test_every_gs1_example_parses_into_events_or_explained_leftovers(path: Path) -> None:
    parsed = parse_document(path.read_bytes(), path.name)
    total = len(event_list(json.loads(path.read_bytes())))
    accounted = len(parsed.events) + len(parsed.quarantined) + len(parsed.skipped)
    assert accounted == total
    for left in parsed.quarantined + parsed.skipped:
        assert left.position.startswith("event #") and len(left.reason) > 15
    for event in parsed.events:
        assert event.event_time.tzinfo is not None and event.event_time.utcoffset().total_seconds() == 0
        assert event.status in {"departed", "in_transit", "arrived", "delivered", "exception"}
    # GS1's examples are all valid: nothing should be called malformed.
    assert parsed.quarantined == []


def test_object_event_9_6_1_maps_bizstep_disposition_time_and_shipment_id() -> None:
    parsed = parse_document((FIXTURES / "Example_9.6.1-ObjectEvent.jsonld").read_bytes(), "x")
    shipping, receiving = parsed.events
    assert (shipping.status, shipping.status_code, shipping.reason_code) == (
        "departed", "shipping", "in_transit")
    # 20:33:31.116 at -06:00 is 02:33:31.116 UTC the next day
    assert shipping.event_time == datetime(2005, 4, 4, 2, 33, 31, 116000, tzinfo=UTC)
    assert shipping.shipment_id == "http://transaction.acme.com/po/12345678"
    assert shipping.location == "urn:epc:id:sgln:0614141.07346.1234"  # readPoint: no bizLocation
    assert receiving.status == "arrived"
    assert receiving.shipment_id == "urn:epcglobal:cbv:bt:0614141073467:1152"  # desadv beats po
    assert receiving.reference["shipment_id_from"] == "bizTransaction:desadv"
    assert receiving.location == "urn:epc:id:sgln:0012345.11111.0"  # bizLocation wins
    assert receiving.reference["time_zone_offset"] == "-06:00"


def test_aggregation_event_uses_parent_sscc_and_keeps_utc_despite_offset() -> None:
    parsed = parse_document((FIXTURES / "Example_9.6.3-AggregationEvent.jsonld").read_bytes(), "x")
    (event,) = parsed.events
    assert event.shipment_id == "urn:epc:id:sscc:0614141.1234567890"
    # eventTime carries Z; eventTimeZoneOffset (+02:00) is the local zone, not a correction
    assert event.event_time == datetime(2013, 6, 8, 14, 58, 56, 591000, tzinfo=UTC)


def test_sources_destinations_and_local_id_form() -> None:
    parsed = parse_document((FIXTURES / "PersistentDisposition-example.jsonld").read_bytes(),
                            "x", id_form="local")
    (event,) = parsed.events
    assert event.reference["source:owning_party"] == "urn:epc:id:pgln:9520001.11111"
    assert event.reference["destination:owning_party"] == "urn:epc:id:pgln:9520999.99999"
    assert event.reference["bt:inv"] == "urn:epcglobal:cbv:bt:9520011111116:A123"
    assert "retracted" not in " ".join(s.reason for s in parsed.skipped)
    assert parsed.skipped[0].reason.startswith("bizStep 'inspecting'")


def test_retracted_events_are_skipped_with_the_declared_reason() -> None:
    path = FIXTURES / "transaction_event_all_possible_fields.jsonld"
    parsed = parse_document(path.read_bytes(), "x")
    assert parsed.events == [] and parsed.quarantined == []
    assert "errorDeclaration" in parsed.skipped[0].reason
    assert "incorrect_data" in parsed.skipped[0].reason


@pytest.mark.parametrize("spelling", [
    "shipping", "urn:epcglobal:cbv:bizstep:shipping", "https://ref.gs1.org/cbv/BizStep-shipping",
    "cbv:BizStep-shipping"])
def test_cbv_spellings_are_equivalent(spelling: str) -> None:
    assert cbv_term(spelling, "bizstep") == "shipping"
    event = _event(bizStep=spelling, disposition="urn:epcglobal:cbv:disp:in_transit")
    (parsed,) = parse_document([event], "x").events
    assert (parsed.status, parsed.status_code, parsed.reason_code) == (
        "departed", "shipping", "in_transit")


def test_exception_disposition_wins_over_bizstep() -> None:
    event = _event(bizStep="receiving", disposition="https://ref.gs1.org/cbv/Disp-damaged")
    (parsed,) = parse_document([event], "x").events
    assert parsed.status == "exception" and parsed.reason_code == "damaged"


def test_zone_less_event_time_takes_event_time_zone_offset() -> None:
    event = _event(eventTime="2026-11-20T14:00:00", eventTimeZoneOffset="-06:00")
    assert parse_event_time(event) == datetime(2026, 11, 20, 20, 0, tzinfo=UTC)


def test_bad_events_are_quarantined_one_by_one() -> None:
    events = [
        _event(),
        {"type": "SensorEvent", "eventTime": "2026-11-20T14:00:00Z"},
        _event(eventTime="yesterday"),
        _event(eventTime="2026-11-20T14:00:00", eventTimeZoneOffset="CST"),
        {"type": "ObjectEvent", "eventTime": "2026-11-20T14:00:00Z", "bizStep": "shipping"},
        "not an event",
        _event(bizTransactionList=[{"type": "desadv", "bizTransaction": "ASN-7"}]),
    ]
    parsed = parse_document({"epcisBody": {"queryResults": {"resultsBody": {"eventList": events}}}},
                            "repo")
    assert [e.shipment_id for e in parsed.events] == ["urn:epc:id:sscc:0614141.1111", "ASN-7"]
    reasons = {q.position: q.reason for q in parsed.quarantined}
    assert reasons["event #2"].startswith("unknown event type 'SensorEvent'")
    assert "not an ISO 8601" in reasons["event #3"]
    assert "eventTimeZoneOffset 'CST'" in reasons["event #4"]
    assert reasons["event #5"].startswith("no shipment identifier")
    assert "JSON str" in reasons["event #6"]


def test_an_event_time_past_year_9999_in_utc_is_quarantined_and_the_rest_read() -> None:
    events = [_event(), _event(eventTime="9999-12-31T23:59:59-12:00"),
              _event(eventTime="9999-12-31T20:00:00", eventTimeZoneOffset="-06:00"),
              _event(bizTransactionList=[{"type": "desadv", "bizTransaction": "ASN-7"}])]
    parsed = parse_document(json.dumps({"epcisBody": {"eventList": events}}), "f")
    assert [e.shipment_id for e in parsed.events] == ["urn:epc:id:sscc:0614141.1111", "ASN-7"]
    reasons = {q.position: q.reason for q in parsed.quarantined}
    assert set(reasons) == {"event #2", "event #3"}
    assert reasons["event #2"] == "eventTime '9999-12-31T23:59:59-12:00' is out of range"
    assert reasons["event #3"] == "eventTime '9999-12-31T20:00:00' is out of range"


@pytest.mark.parametrize("payload,needle", [
    (b"{not json", "not valid JSON"),
    (b'{"hello": 1}', "not an EPCIS document"),
    (b'{"epcisBody": {"eventList": 5}}', "eventList is a int"),
    (b"42", "expected a JSON object or array"),
    (b"[" * 100_000 + b"]" * 100_000, "JSON nested too deeply"),
    (b'{"epcisBody":' * 5_000 + b"1" + b"}" * 5_000, "JSON nested too deeply"),
])
def test_unreadable_documents_are_one_quarantine(payload: bytes, needle: str) -> None:
    parsed = parse_document(payload, "f")
    assert parsed.events == [] and len(parsed.quarantined) == 1
    assert parsed.quarantined[0].position == "document" and needle in parsed.quarantined[0].reason


def _event(**overrides: object) -> dict[str, object]:
    event: dict[str, object] = {
        "type": "ObjectEvent", "action": "OBSERVE", "eventTime": "2026-11-17T16:30:00-06:00",
        "eventTimeZoneOffset": "-06:00", "bizStep": "shipping", "disposition": "in_transit",
        "parentID": "urn:epc:id:sscc:0614141.1111",
        "readPoint": {"id": "urn:epc:id:sgln:0614141.00777.0"},
    }
    event.update(overrides)
    return event


# --- a real EPCIS-like repository on 127.0.0.1 --------------------------------------------------


def _repository_events() -> list[dict]:
    events: list[dict] = []
    for path in ALL_FIXTURES:
        events.extend(e for e in event_list(json.loads(path.read_bytes())) if isinstance(e, dict))
    return events


class Repository:
    """Implements the slice of GET /events alignbot uses: filters, ordering, Link paging."""

    def __init__(self, events: list[dict]):
        self.events = events
        self.requests: list[dict[str, str]] = []
        self.fail_next = 0
        self.token = ""
        self.tokens: dict[str, tuple[dict[str, str], int]] = {}
        self.app = Starlette(routes=[Route("/epcis/events", self.events_endpoint)])

    async def events_endpoint(self, request: Request) -> Response:
        query = dict(request.query_params)
        self.requests.append(query)
        if self.token and request.headers.get("authorization") != f"Bearer {self.token}":
            return Response("unauthorized", status_code=401)
        if self.fail_next:
            self.fail_next -= 1
            return Response("overloaded", status_code=503)
        start = 0
        if "nextPageToken" in query:  # the token stands for the original query and an offset
            saved = self.tokens.get(query["nextPageToken"])
            if saved is None:
                return JSONResponse({"type": "epcisException:QueryParameterException",
                                     "title": "nextPageToken expired"}, status_code=404)
            query, start = {**saved[0], "perPage": query.get("perPage", "30")}, saved[1]
        selected = self.events
        if "GE_eventTime" in query:
            floor = datetime.fromisoformat(query["GE_eventTime"])
            selected = [e for e in selected if parse_event_time(e) >= floor]
        if "EQ_bizStep" in query:
            wanted = set(query["EQ_bizStep"].split("|"))
            selected = [e for e in selected if cbv_term(e.get("bizStep"), "bizstep") in wanted]
        if query.get("orderBy") == "eventTime":
            selected = sorted(selected, key=parse_event_time,
                              reverse=query.get("orderDirection", "DESC") == "DESC")
        per_page = int(query.get("perPage", 30))
        page = selected[start:start + per_page]
        headers = {}
        if start + per_page < len(selected):
            token = str(len(self.tokens) + 1)
            self.tokens[token] = (query, start + per_page)
            # the spec's Link header: only perPage and nextPageToken ride along
            headers["Link"] = (f'<{request.url.scheme}://{request.url.netloc}/epcis/events?'
                               f'perPage={per_page}&nextPageToken={token}>; rel="next"')
        body = {"@context": ["https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"],
                "type": "EPCISQueryDocument", "schemaVersion": "2.0",
                "epcisBody": {"queryResults": {"queryName": "SimpleEventQuery",
                                               "resultsBody": {"eventList": page}}}}
        return JSONResponse(body, headers=headers)


@pytest.fixture()
def repo():
    repository = Repository(_repository_events())
    with BackgroundServer(repository.app) as server:
        repository.url = server.url + "/epcis"
        yield repository


def _connector(repo: Repository, **settings: object) -> EpcisConnector:
    config = EpcisSettings(base_url=repo.url, timeout_s=5, **settings)
    return EpcisConnector("epcis-test", config, sleep=lambda seconds: None)


def test_reads_every_page_by_link_header_then_resumes_without_duplicates(repo: Repository) -> None:
    connector = _connector(repo, per_page=4)
    first = connector.read()
    # 27 stored events, 9 of them shipment news; the two 9.6.1 events appear in two GS1 files
    # with the same eventIDs, so the connector keeps each once
    assert len(first.records) == 7
    assert len({r.reference["event_id"] for r in first.records}) == 7
    assert len(repo.requests) == 7  # 27 events, 4 a page
    assert repo.requests[1] == {"perPage": "4", "nextPageToken": "1"}
    assert first.quarantined == []
    latest = max(e.event_time for e in first.records)

    repo.requests.clear()
    again = connector.read(first.cursor)
    assert again.records == []  # the newest event comes back (GE) but is de-duplicated
    assert repo.requests[0]["GE_eventTime"].startswith("2020-06-08T18:11:16")  # newest event
    assert json.loads(again.cursor)["t"] == json.loads(first.cursor)["t"]
    assert latest <= datetime.fromisoformat(json.loads(first.cursor)["t"])

    repo.events.append({"type": "ObjectEvent", "eventTime": "2026-11-18T07:45:00-06:00",
                        "eventTimeZoneOffset": "-06:00", "bizStep": "arriving",
                        "bizTransactionList": [{"type": "bol", "bizTransaction": "BOL-88121"}]})
    newer = connector.read(again.cursor)
    assert [(r.shipment_id, r.status) for r in newer.records] == [("BOL-88121", "arrived")]
    assert json.loads(newer.cursor)["t"] == "2026-11-18T13:45:00.000000Z"


def test_biz_step_filter_goes_to_the_repository(repo: Repository) -> None:
    result = _connector(repo, biz_steps=["shipping"], per_page=50).read()
    assert repo.requests[0]["EQ_bizStep"] == "shipping"
    assert {r.status_code for r in result.records} == {"shipping"}
    # the 9.6.1 shipping event: once for its eventID shared by two files, once for the
    # commented copy whose eventID differs
    assert len(result.records) == 2


def test_transient_503_is_retried_within_bound(repo: Repository) -> None:
    repo.fail_next = 1
    assert len(_connector(repo, per_page=100).read().records) == 7
    repo.fail_next = 5
    with pytest.raises(Exception) as info:
        _connector(repo, retries=2).read()
    assert getattr(info.value, "retryable", False) and "503" in str(info.value)
    assert "3 attempts" in str(info.value)


def test_execute_is_rejected_and_health_reports(repo: Repository) -> None:
    connector = _connector(repo)
    result = connector.execute(Action(system="logistics", operation="expedite_shipment",
                                      params={"shipment_id": "SHP-1"}, idempotency_key="k"))
    assert (result.ok, result.status) == (False, "rejected") and "read-only" in result.detail
    assert connector.health().ok
    dead = EpcisConnector("dead", EpcisSettings(base_url="http://127.0.0.1:9", timeout_s=1,
                                                retries=0))
    assert not dead.health().ok


def test_bearer_token_is_sent_and_a_refusal_is_explained(repo: Repository, monkeypatch) -> None:
    repo.token = "s3cret"
    assert len(_connector(repo, token="s3cret").read().records) == 7
    monkeypatch.setenv("EPCIS_TEST_TOKEN", "s3cret")
    assert len(_connector(repo, token_env="EPCIS_TEST_TOKEN").read().records) == 7
    with pytest.raises(ConnectorError) as info:
        _connector(repo, token="wrong").read()
    assert "HTTP 401" in str(info.value) and "wrong" not in str(info.value)
    assert not info.value.retryable


def test_bad_event_in_a_page_is_quarantined_at_its_page_position(repo: Repository) -> None:
    repo.events = [_event(eventTime="2026-11-17T10:00:00Z"),
                   {"type": "WeirdEvent", "eventTime": "2026-11-17T11:00:00Z"},
                   _event(eventTime="2026-11-17T12:00:00Z",
                          bizTransactionList=[{"type": "desadv", "bizTransaction": "ASN-9"}])]
    result = _connector(repo, per_page=2).read()
    assert [r.shipment_id for r in result.records] == ["urn:epc:id:sscc:0614141.1111", "ASN-9"]
    (bad,) = result.quarantined
    assert bad.position == "page 1 event #2" and bad.source == "epcis-test"
    assert json.loads(result.cursor)["t"] == "2026-11-17T12:00:00.000000Z"


def test_an_event_time_past_year_9999_in_a_page_is_quarantined(repo: Repository) -> None:
    repo.events = [_event(eventTime="2026-11-17T10:00:00Z"),
                   _event(eventTime="9999-12-31T23:59:59-12:00"),
                   _event(eventTime="2026-11-17T12:00:00Z",
                          bizTransactionList=[{"type": "desadv", "bizTransaction": "ASN-9"}])]
    # the repository cannot order by a time it cannot convert either: ask for stored order
    result = _connector(repo, per_page=2, order_by_event_time=False).read()
    assert [r.shipment_id for r in result.records] == ["urn:epc:id:sscc:0614141.1111", "ASN-9"]
    (bad,) = result.quarantined
    assert bad.position == "page 1 event #2"
    assert bad.reason == "eventTime '9999-12-31T23:59:59-12:00' is out of range"
    assert json.loads(result.cursor)["t"] == "2026-11-17T12:00:00.000000Z"


def test_a_page_nested_too_deeply_fails_the_read_with_a_clear_error() -> None:
    async def deep(request: Request) -> Response:
        return Response(b'{"epcisBody":' * 100_000, media_type="application/json")

    app = Starlette(routes=[Route("/epcis/events", deep)])
    with BackgroundServer(app) as server:
        connector = EpcisConnector("epcis-test", EpcisSettings(base_url=server.url + "/epcis",
                                                               timeout_s=5))
        with pytest.raises(ConnectorError, match="page 1 of .* is JSON nested too deeply"):
            connector.read()
        health = connector.health()
    assert not health.ok and "nested too deeply" in health.detail


def test_page_bound_stops_and_the_next_read_continues_at_the_next_page(repo: Repository) -> None:
    # six GS1 sensor examples share one eventTime: more than one bounded read can hold, so
    # resuming by GE_eventTime alone would never get past them
    connector = _connector(repo, per_page=3, max_pages=2)
    seen: list[str] = []
    cursor = None
    for _ in range(10):  # bounded: 27 events, 6 a read
        result = connector.read(cursor)
        seen.extend(r.reference["event_id"] for r in result.records)
        cursor = result.cursor
        if "next" not in json.loads(cursor):
            break
    assert len(seen) == len(set(seen)) == 7
    assert len(repo.requests) == 9  # 27 events / 3 a page, no page fetched twice
    assert json.loads(cursor)["t"].startswith("2020-06-08T18:11:16")


def test_expired_page_token_falls_back_to_event_time(repo: Repository) -> None:
    connector = _connector(repo, per_page=3, max_pages=1)
    first = connector.read()
    state = json.loads(first.cursor)
    repo.tokens.clear()  # the repository forgot its page tokens
    rest = connector.read(json.dumps(state))
    assert repo.requests[-1].get("GE_eventTime", "").startswith(state["t"][:19])
    assert rest.quarantined == []
