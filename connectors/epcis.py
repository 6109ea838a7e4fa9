"""GS1 EPCIS 2.0: event documents and the REST query interface, read as ShipmentEvents.

Parsing rules (what a reader of a quarantine or a Slack message needs to know):

* Documents: an ``EPCISDocument`` (``epcisBody.eventList``), an ``EPCISQueryDocument``
  (``epcisBody.queryResults.resultsBody.eventList``), an object with ``eventList``, a bare list
  of events, or a single event. All five event types are read (Object, Aggregation,
  Transformation, Transaction, Association); any other ``type`` is quarantined.
* Shipment id: the first ``bizTransaction`` of type ``desadv`` (despatch advice), then ``bol``,
  then ``po``; otherwise the ``parentID`` (e.g. the pallet SSCC); otherwise the first EPC
  (``epcList``/``childEPCs``/``outputEPCList``/``inputEPCList``); otherwise the first
  ``epcClass`` of a quantity list. readPoint is a place, never an identity. Where the id came
  from is kept in ``reference["shipment_id_from"]``. With ``shipment_id_form="local"`` a
  ``urn:epcglobal:cbv:bt:<GLN>:<id>`` becomes ``<id>`` and a URL its last path segment.
* Status: an exception disposition (damaged, stolen, recalled, ...) → ``exception``; else the
  bizStep (shipping/departing → departed, transporting → in_transit, arriving/receiving/
  unloading → arrived, accepting → delivered, void_shipping → exception); else disposition
  ``in_transit`` → in_transit. Events saying nothing about movement (commissioning,
  inspecting, ...) and events carrying an ``errorDeclaration`` (retractions) are *skipped*, not
  quarantined: they are valid EPCIS, just not shipment news.
* CBV values are accepted as bare words, ``urn:epcglobal:cbv:...`` URNs, ``cbv:`` CURIEs and
  ``https://ref.gs1.org/cbv/...`` URIs; ``status_code``/``reason_code`` hold the bare bizStep
  and disposition.
* Time: ``eventTime`` as an aware UTC datetime; a zone-less ``eventTime`` takes its zone from
  ``eventTimeZoneOffset`` (which is otherwise only kept in the reference).
* Location: ``bizLocation.id``, else ``readPoint.id``. Sources and destinations go into the
  reference as ``source:<type>`` / ``destination:<type>``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, BinaryIO, Literal

import httpx
import ijson
from pydantic import BaseModel, Field, SecretStr, ValidationError

from canonical.model import UTC, Action, Quarantined, ReadResult, ShipmentEvent
from connectors.base import ConnectorError, ExecuteResult, Health
from connectors.http_retry import RetryPolicy, retrying_client

EVENT_TYPES = (
    "ObjectEvent",
    "AggregationEvent",
    "TransformationEvent",
    "TransactionEvent",
    "AssociationEvent",
)

BIZSTEP_STATUS = {
    "shipping": "departed",
    "departing": "departed",
    "transporting": "in_transit",
    "arriving": "arrived",
    "receiving": "arrived",
    "unloading": "arrived",
    "accepting": "delivered",
    "void_shipping": "exception",
}
EXCEPTION_DISPOSITIONS = frozenset({
    "damaged", "destroyed", "disposed", "expired", "mismatch_instance", "mismatch_class",
    "mismatch_quantity", "needs_replacement", "no_pedigree_match", "non_conformant",
    "recalled", "returned", "stolen",
})
SHIPMENT_BIZ_TRANSACTION_TYPES = ("desadv", "bol", "po")

_CBV_URN = {
    "bizstep": "urn:epcglobal:cbv:bizstep:",
    "disp": "urn:epcglobal:cbv:disp:",
    "btt": "urn:epcglobal:cbv:btt:",
    "sdt": "urn:epcglobal:cbv:sdt:",
}
_CBV_WEB = {"bizstep": "BizStep", "disp": "Disp", "btt": "BTT", "sdt": "SDT"}
_OFFSET = re.compile(r"^([+-])(\d{2}):(\d{2})$")
_LONG_FRACTION = re.compile(r"(\.\d{6})\d+")
_BT_URN = re.compile(r"^urn:epcglobal:cbv:bt:[^:]+:(.+)$")
_RAW_LIMIT = 2000
log = logging.getLogger(__name__)


def cbv_term(value: Any, kind: Literal["bizstep", "disp", "btt", "sdt"]) -> str:
    """The bare CBV word for any of its spellings; custom (non-CBV) URIs come back unchanged."""
    if not isinstance(value, str):
        return ""
    text = value.strip()
    urn = _CBV_URN[kind]
    if text.lower().startswith(urn):
        return text[len(urn):]
    web = _CBV_WEB[kind]
    for prefix in (f"https://ref.gs1.org/cbv/{web}-", f"http://ref.gs1.org/cbv/{web}-",
                   f"cbv:{web}-", f"gs1:{web}-"):
        if text.startswith(prefix):
            return text[len(prefix):]
    return text


class EpcisDocumentError(ValueError):
    """The payload is not an EPCIS document or event list at all."""


def event_list(document: Any) -> list[Any]:
    """The events of an EPCISDocument, an EPCISQueryDocument, an eventList or a bare list."""
    if isinstance(document, list):
        return document
    if not isinstance(document, dict):
        raise EpcisDocumentError(
            f"expected a JSON object or array of events, got {type(document).__name__}")
    if document.get("type") in EVENT_TYPES:
        return [document]
    body = document.get("epcisBody")
    if isinstance(body, dict):
        if "eventList" in body:
            events = body["eventList"]
        else:
            results = body.get("queryResults")
            results_body = results.get("resultsBody") if isinstance(results, dict) else None
            if not isinstance(results_body, dict) or "eventList" not in results_body:
                raise EpcisDocumentError(
                    "epcisBody has neither eventList nor queryResults.resultsBody.eventList")
            events = results_body["eventList"]
    elif "eventList" in document:
        events = document["eventList"]
    else:
        raise EpcisDocumentError(
            "not an EPCIS document: no epcisBody, eventList or event 'type' "
            f"(top-level keys: {', '.join(sorted(map(str, document))[:8]) or 'none'})")
    if events is None:
        return []
    if not isinstance(events, list):
        raise EpcisDocumentError(f"eventList is a {type(events).__name__}, expected an array")
    return events


class _Skip(Exception):
    """A valid event that carries no shipment news."""


class _Bad(Exception):
    """A malformed event: quarantined with this message as the reason."""


def parse_event_time(event: dict[str, Any]) -> datetime:
    """eventTime as aware UTC; a zone-less time takes eventTimeZoneOffset."""
    raw = event.get("eventTime")
    if not isinstance(raw, str) or not raw.strip():
        raise _Bad("missing eventTime")
    try:
        moment = datetime.fromisoformat(_LONG_FRACTION.sub(r"\1", raw.strip()))
    except ValueError:
        raise _Bad(f"eventTime {raw!r} is not an ISO 8601 date-time") from None
    if moment.tzinfo is None:
        offset = event.get("eventTimeZoneOffset")
        match = _OFFSET.match(offset) if isinstance(offset, str) else None
        if not match:
            raise _Bad(f"eventTime {raw!r} has no zone and eventTimeZoneOffset "
                       f"{offset!r} is not of the form +HH:MM")
        sign, hours, minutes = match.groups()
        if int(hours) > 14 or int(minutes) > 59:
            raise _Bad(f"eventTimeZoneOffset {offset!r} is out of range")
        delta = timedelta(hours=int(hours), minutes=int(minutes))
        moment = moment.replace(tzinfo=timezone(delta if sign == "+" else -delta))
    try:
        return moment.astimezone(UTC)
    except (OverflowError, ValueError):
        raise _Bad(f"eventTime {raw!r} is out of range") from None


def _id_of(node: Any) -> str:
    if isinstance(node, dict) and isinstance(node.get("id"), str):
        return node["id"].strip()
    return ""


def _strings(value: Any) -> list[str]:
    return [v.strip() for v in value if isinstance(v, str) and v.strip()] if isinstance(
        value, list) else []


def _local_id(identifier: str) -> str:
    match = _BT_URN.match(identifier)
    if match:
        return match.group(1)
    if identifier.startswith(("http://", "https://")):
        tail = identifier.rstrip("/").rsplit("/", 1)[-1]
        return tail or identifier
    return identifier


def _shipment_id(event: dict[str, Any], reference: dict[str, str]) -> tuple[str, str]:
    transactions = event.get("bizTransactionList") or []
    if not isinstance(transactions, list):
        raise _Bad("bizTransactionList is not an array")
    by_type: dict[str, str] = {}
    for item in transactions:
        if not isinstance(item, dict) or not isinstance(item.get("bizTransaction"), str):
            raise _Bad("bizTransactionList entry without a bizTransaction string")
        kind = cbv_term(item.get("type"), "btt") or "untyped"
        value = item["bizTransaction"].strip()
        reference[f"bt:{kind}"] = (
            f"{reference[f'bt:{kind}']} {value}" if f"bt:{kind}" in reference else value)
        by_type.setdefault(kind, value)
    for kind in SHIPMENT_BIZ_TRANSACTION_TYPES:
        if by_type.get(kind):
            return by_type[kind], f"bizTransaction:{kind}"
    parent = event.get("parentID")
    if isinstance(parent, str) and parent.strip():
        return parent.strip(), "parentID"
    for key in ("epcList", "childEPCs", "outputEPCList", "inputEPCList"):
        epcs = _strings(event.get(key))
        if epcs:
            return epcs[0], key
    for key in ("quantityList", "childQuantityList", "outputQuantityList", "inputQuantityList"):
        items = event.get(key)
        for item in items if isinstance(items, list) else []:
            if isinstance(item, dict) and isinstance(item.get("epcClass"), str):
                return item["epcClass"].strip(), f"{key}.epcClass"
    raise _Bad("no shipment identifier: no desadv/bol/po bizTransaction, parentID or EPC")


def _status(biz_step: str, disposition: str) -> str:
    if disposition in EXCEPTION_DISPOSITIONS:
        return "exception"
    if biz_step in BIZSTEP_STATUS:
        return BIZSTEP_STATUS[biz_step]
    if disposition == "in_transit":
        return "in_transit"
    raise _Skip(f"bizStep {biz_step or 'none'!r} with disposition {disposition or 'none'!r} "
                "says nothing about a shipment's movement")


def _parties(event: dict[str, Any], list_key: str, item_key: str,
             reference: dict[str, str]) -> None:
    items = event.get(list_key)
    if items is None:
        return
    if not isinstance(items, list):
        raise _Bad(f"{list_key} is not an array")
    for item in items:
        if isinstance(item, dict) and isinstance(item.get(item_key), str):
            kind = cbv_term(item.get("type"), "sdt") or "untyped"
            reference[f"{item_key}:{kind}"] = item[item_key].strip()


def parse_event(event: Any, *, id_form: Literal["uri", "local"] = "uri") -> ShipmentEvent:
    """One EPCIS event as a ShipmentEvent; raises _Bad (quarantine) or _Skip (not news)."""
    if not isinstance(event, dict):
        raise _Bad(f"event is a JSON {type(event).__name__}, expected an object")
    kind = event.get("type")
    if kind not in EVENT_TYPES:
        raise _Bad(f"unknown event type {kind!r}; expected one of {', '.join(EVENT_TYPES)}")
    event_time = parse_event_time(event)
    declaration = event.get("errorDeclaration")
    if declaration is not None:
        reason = declaration.get("reason") if isinstance(declaration, dict) else None
        raise _Skip(f"retracted by errorDeclaration (reason {reason or 'unspecified'!r})")
    biz_step = cbv_term(event.get("bizStep"), "bizstep")
    disposition = cbv_term(event.get("disposition"), "disp")
    status = _status(biz_step, disposition)

    reference: dict[str, str] = {"event_type": kind}
    for key, name in (("eventID", "event_id"), ("action", "action"),
                      ("eventTimeZoneOffset", "time_zone_offset"), ("parentID", "parent_id")):
        if isinstance(event.get(key), str):
            reference[name] = event[key].strip()
    read_point, biz_location = _id_of(event.get("readPoint")), _id_of(event.get("bizLocation"))
    if read_point:
        reference["read_point"] = read_point
    if biz_location:
        reference["biz_location"] = biz_location
    shipment_id, origin = _shipment_id(event, reference)
    reference["shipment_id_from"] = origin
    _parties(event, "sourceList", "source", reference)
    _parties(event, "destinationList", "destination", reference)
    if id_form == "local":
        reference["shipment_uri"] = shipment_id
        shipment_id = _local_id(shipment_id)
    try:
        return ShipmentEvent(
            shipment_id=shipment_id, event_time=event_time, status=status,
            status_code=biz_step, reason_code=disposition,
            location=biz_location or read_point, reference=reference)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise _Bad(f"{'.'.join(map(str, first['loc']))}: {first['msg']}") from None


def event_key(event: Any) -> str:
    """Identity for de-duplication: eventID when present, else a hash of the event's content."""
    if isinstance(event, dict) and isinstance(event.get("eventID"), str) and event["eventID"]:
        return event["eventID"]
    body = json.dumps(event, sort_keys=True, default=str, ensure_ascii=True)
    return "sha256:" + hashlib.sha256(body.encode()).hexdigest()


def _raw(value: Any) -> str:
    try:
        text = json.dumps(value, default=str)
    except (TypeError, ValueError, RecursionError):
        text = repr(value)
    return text[:_RAW_LIMIT]


@dataclass
class EpcisParse:
    """Parsed events plus what was quarantined (bad) and skipped (valid but not shipment news)."""

    events: list[ShipmentEvent] = field(default_factory=list)
    quarantined: list[Quarantined] = field(default_factory=list)
    skipped: list[Quarantined] = field(default_factory=list)


def _parse_into(result: EpcisParse, event: Any, source: str, position: str,
                id_form: Literal["uri", "local"]) -> None:
    try:
        result.events.append(parse_event(event, id_form=id_form))
    except _Skip as skip:
        result.skipped.append(Quarantined(source=source, position=position,
                                          reason=str(skip), raw=_raw(event)))
    except _Bad as bad:
        result.quarantined.append(Quarantined(source=source, position=position,
                                              reason=str(bad), raw=_raw(event)))
    except RecursionError:
        result.quarantined.append(Quarantined(source=source, position=position,
                                              reason="event is nested too deeply"))


def parse_events(events: list[Any], source: str, *,
                 id_form: Literal["uri", "local"] = "uri") -> EpcisParse:
    """Map each event; a bad one is quarantined at ``event #i`` while the rest go on."""
    result = EpcisParse()
    for index, event in enumerate(events, start=1):
        _parse_into(result, event, source, f"event #{index}", id_form)
    return result


def parse_document(payload: bytes | str | dict[str, Any] | list[Any], source: str, *,
                   id_form: Literal["uri", "local"] = "uri") -> EpcisParse:
    """Parse a whole EPCIS JSON/JSON-LD payload; never raises, bad input becomes quarantine."""
    try:
        document = json.loads(payload) if isinstance(payload, (bytes, str)) else payload
        events = event_list(document)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return EpcisParse(quarantined=[Quarantined(
            source=source, position="document", reason=f"not valid JSON: {exc}",
            raw=(payload[:_RAW_LIMIT] if isinstance(payload, str) else repr(payload[:200])))])
    except EpcisDocumentError as exc:
        return EpcisParse(quarantined=[Quarantined(source=source, position="document",
                                                   reason=str(exc), raw=_raw(payload))])
    except RecursionError:
        return EpcisParse(quarantined=[Quarantined(source=source, position="document",
                                                   reason="JSON nested too deeply")])
    return parse_events(events, source, id_form=id_form)


# --- documents read as a stream ---------------------------------------------------------------

MAX_DEPTH = 512  # deeper JSON is refused as nested too deeply (json.loads gives up near 1,000)
CHUNK_EVENTS = 1_000
# where EPCIS documents keep their events: a bare list, an eventList, an EPCISDocument's or an
# EPCISQueryDocument's (ijson's prefixes: keys joined with dots, "" the document itself)
_EVENT_ARRAYS = frozenset({"", "eventList", "epcisBody.eventList",
                           "epcisBody.queryResults.resultsBody.eventList"})
_HEAD = 5  # events kept of each such array while scanning: enough to tell what the file is


class NestedTooDeeply(ValueError):
    """JSON nested past ``MAX_DEPTH``."""


class _Streamed(list):
    """An event array met while scanning: its first few events, and how many it holds."""

    def __init__(self, prefix: str):
        super().__init__()
        self.prefix = prefix
        self.count = 0


def _skip_bom(fp: BinaryIO) -> BinaryIO:
    fp.seek(0)
    if fp.read(3) != b"\xef\xbb\xbf":
        fp.seek(0)
    return fp


def json_error(exc: Exception) -> str:
    """ijson's error, first line only (it draws the spot on the lines after)."""
    text = exc.args[0] if exc.args else exc
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return (str(text).strip().splitlines() or [type(exc).__name__])[0]


def scan_document(fp: BinaryIO) -> Any:
    """The JSON document in ``fp`` with each event array (where EPCIS keeps one) cut to its
    first few events, a ``_Streamed`` that knows how many there are, in one pass that holds
    one event at a time. The whole file is checked: raises ``ijson.JSONError`` if it is not
    JSON, ``NestedTooDeeply`` past ``MAX_DEPTH``. ``event_list`` reads the result."""
    root: Any = None
    stack: list[Any] = []  # the containers open around the current token
    keys: list[Any] = []  # per open container: the key being filled (maps)
    streams: list[_Streamed] = []  # the event arrays open, innermost last
    depth = skip = 0  # skip > 0: inside an event past an array's head, counted only

    def put(value: Any) -> None:
        nonlocal root
        if not stack:
            root = value
        elif isinstance(stack[-1], dict):
            stack[-1][keys[-1]] = value
        else:
            stack[-1].append(value)

    for prefix, event, value in ijson.parse(_skip_bom(fp), use_float=True):
        opens = event in ("start_map", "start_array")
        closes = event in ("end_map", "end_array")
        if opens:
            depth += 1
            if depth > MAX_DEPTH:
                raise NestedTooDeeply(f"JSON nested more than {MAX_DEPTH} levels deep")
        elif closes:
            depth -= 1
        if skip:
            skip += 1 if opens else -1 if closes else 0
            continue
        if streams and stack and stack[-1] is streams[-1] and event != "end_array":
            streams[-1].count += 1  # an event of an event array
            if streams[-1].count > _HEAD:
                skip = 1 if opens else 0
                continue
        if event == "map_key":
            keys[-1] = value
        elif opens:
            if event == "start_map":
                container: Any = {}
            elif prefix in _EVENT_ARRAYS and (not stack or isinstance(stack[-1], dict)):
                container = _Streamed(prefix)
                streams.append(container)
            else:
                container = []
            put(container)
            stack.append(container)
            keys.append(None)
        elif closes:
            done = stack.pop()
            keys.pop()
            if streams and done is streams[-1]:
                streams.pop()
        else:
            put(value)
    return root


def _events_of(fp: BinaryIO, events: list[Any]) -> Iterator[Any]:
    """Every event of ``events`` (from ``scan_document``), read again from ``fp`` when the scan
    kept only its head."""
    if isinstance(events, _Streamed) and events.count > len(events):
        prefix = "item" if events.prefix == "" else f"{events.prefix}.item"
        yield from ijson.items(_skip_bom(fp), prefix, use_float=True)
    else:
        yield from events


def stream_document(fp: BinaryIO, source: str, *, id_form: Literal["uri", "local"] = "uri",
                    chunk_events: int = CHUNK_EVENTS) -> Iterator[EpcisParse]:
    """``parse_document`` over a seekable binary file, a chunk of at most ``chunk_events``
    events at a time: one pass checks the JSON and finds the events, a second reads them one
    by one, so a document of any size is read in bounded memory. Never raises on bad input."""
    try:
        document = scan_document(fp)
        events = event_list(document)
    except ijson.JSONError as exc:
        fp.seek(0)
        yield EpcisParse(quarantined=[Quarantined(
            source=source, position="document", reason=f"not valid JSON: {json_error(exc)}",
            raw=repr(fp.read(200)))])
        return
    except NestedTooDeeply:
        yield EpcisParse(quarantined=[Quarantined(source=source, position="document",
                                                  reason="JSON nested too deeply")])
        return
    except EpcisDocumentError as exc:
        yield EpcisParse(quarantined=[Quarantined(source=source, position="document",
                                                  reason=str(exc), raw=_raw(document))])
        return
    chunk = EpcisParse()
    index = 0
    try:
        for index, event in enumerate(_events_of(fp, events), start=1):
            _parse_into(chunk, event, source, f"event #{index}", id_form)
            if len(chunk.events) + len(chunk.quarantined) + len(chunk.skipped) >= chunk_events:
                yield chunk
                chunk = EpcisParse()
    except ijson.JSONError as exc:  # the file changed between the two passes
        chunk.quarantined.append(Quarantined(
            source=source, position=f"after event #{index}",
            reason=f"not valid JSON: {json_error(exc)} (was the file being written?)"))
    yield chunk


# --- the REST query interface -----------------------------------------------------------------


class EpcisSettings(BaseModel):
    """Where the EPCIS 2.0 repository is and how to query it."""

    base_url: str = Field(description="root of the REST binding; events are GET {base_url}/events")
    per_page: int = Field(default=100, ge=1, le=10_000)
    biz_steps: list[str] = Field(default_factory=list,
                                 description="EQ_bizStep filter (bare CBV words); empty: all")
    max_pages: int = Field(default=500, ge=1, description="bound on pages followed per read")
    timeout_s: float = Field(default=10.0, gt=0)
    retries: int = Field(default=2, ge=0, le=10)
    backoff_s: float = Field(default=0.5, ge=0)
    token: SecretStr | None = Field(default=None, description="bearer token (a secret the "
                                    "caller resolves, e.g. registry secrets {'token': ...})")
    token_env: str | None = Field(default=None,
                                  description="else: env var holding the bearer token")
    shipment_id_form: Literal["uri", "local"] = "uri"
    order_by_event_time: bool = True  # ask for orderBy=eventTime ASC so a bounded read resumes


def _parse_cursor(since: str | None) -> tuple[datetime | None, set[str], str | None]:
    """Cursor = JSON {"t": newest eventTime, "seen": keys at that time, "next": the page to
    continue from when a read stopped at max_pages}; a bare ISO time works too."""
    if not since:
        return None, set(), None
    try:
        data = json.loads(since)
    except json.JSONDecodeError:
        data = {"t": since, "seen": []}
    if not isinstance(data, dict) or not isinstance(data.get("t"), str):
        raise ConnectorError(f"EPCIS cursor {since!r} is not one this connector wrote")
    try:
        moment = datetime.fromisoformat(data["t"])
    except ValueError:
        raise ConnectorError(f"EPCIS cursor time {data['t']!r} is not ISO 8601") from None
    if moment.tzinfo is None:
        raise ConnectorError(f"EPCIS cursor time {data['t']!r} has no time zone")
    next_page = data.get("next") if isinstance(data.get("next"), str) else None
    return moment.astimezone(UTC), set(map(str, data.get("seen") or [])), next_page


def _format_time(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


class EpcisConnector:
    """Reads ShipmentEvents from an EPCIS 2.0 repository; executes nothing (read-only source)."""

    def __init__(self, name: str, settings: EpcisSettings,
                 transport: httpx.BaseTransport | None = None, *,
                 sleep: Callable[[float], None] = time.sleep):
        self.name = name
        self.settings = settings
        self._client = retrying_client(
            RetryPolicy(max_attempts=settings.retries + 1, backoff_base=settings.backoff_s,
                        sleep=sleep), settings.timeout_s, transport)
        self._events_url = httpx.URL(settings.base_url.rstrip("/") + "/events")

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json, application/ld+json",
                   "GS1-EPCIS-Min": "2.0.0"}
        if self.settings.token is not None:
            headers["Authorization"] = f"Bearer {self.settings.token.get_secret_value()}"
        elif self.settings.token_env:
            token = os.environ.get(self.settings.token_env)
            if not token:
                raise ConnectorError(f"{self.name}: environment variable "
                                     f"{self.settings.token_env} (EPCIS token) is not set")
            headers["Authorization"] = f"Bearer {token}"
        return headers

    def _token_origin(self) -> str:
        if self.settings.token is not None:
            return "settings token"
        if self.settings.token_env:
            return f"environment variable {self.settings.token_env}"
        return "none configured: set token or token_env"

    def _get(self, url: httpx.URL, params: dict[str, str] | None) -> httpx.Response:
        """GET through the shared bounded retry policy (timeouts, 429 with Retry-After, 5xx)."""
        attempts = self.settings.retries + 1
        try:
            response = self._client.get(url, params=params, headers=self._headers())
        except httpx.TimeoutException:
            raise ConnectorError(f"{self.name}: GET {url} timed out after "
                                 f"{self.settings.timeout_s}s ({attempts} attempts)",
                                 retryable=True) from None
        except httpx.TransportError as exc:
            raise ConnectorError(f"{self.name}: GET {url} could not connect "
                                 f"({type(exc).__name__}, {attempts} attempts)",
                                 retryable=True) from None
        status = response.status_code
        if status == 429 or status >= 500:
            raise ConnectorError(f"{self.name}: GET {url} answered HTTP {status} "
                                 f"({attempts} attempts)", retryable=True)
        if status in (401, 403):
            raise ConnectorError(
                f"{self.name}: EPCIS repository refused the request (HTTP {status}); check "
                f"the bearer token ({self._token_origin()})")
        if status >= 400:
            raise ConnectorError(f"{self.name}: GET {url} answered HTTP {status}: "
                                 f"{response.text[:200]}")
        return response

    def _first_params(self, since_time: datetime | None) -> dict[str, str]:
        params = {"perPage": str(self.settings.per_page)}
        if since_time is not None:
            params["GE_eventTime"] = _format_time(since_time)
        if self.settings.biz_steps:
            params["EQ_bizStep"] = "|".join(self.settings.biz_steps)
        if self.settings.order_by_event_time:
            params.update(orderBy="eventTime", orderDirection="ASC")
        return params

    def _next_url(self, response: httpx.Response) -> httpx.URL | None:
        link = response.links.get("next", {}).get("url")
        if not link:
            return None
        return self._same_origin(response.url.join(link))

    def _same_origin(self, url: httpx.URL) -> httpx.URL:
        if (url.scheme, url.host, url.port) != (self._events_url.scheme, self._events_url.host,
                                                self._events_url.port):
            raise ConnectorError(f"{self.name}: next-page link {url} leaves {self._events_url.host};"
                                 " refusing to send credentials there")
        return url

    def read(self, since: str | None = None) -> ReadResult:
        """Events since the cursor, following ``Link: rel="next"`` pages up to ``max_pages``.

        A read cut short by ``max_pages`` keeps the next page's link in the cursor and goes on
        from there; if the repository no longer honours that token (it may expire), the read
        starts again from ``GE_eventTime`` = the newest time seen, de-duplicated by eventID.
        """
        since_time, seen_at_cursor, continue_at = _parse_cursor(since)
        result = ReadResult(cursor=since)
        newest, newest_keys = since_time, set(seen_at_cursor)
        read_keys: set[str] = set()
        visited: set[str] = set()
        url: httpx.URL | None = self._events_url
        params: dict[str, str] | None = self._first_params(since_time)
        response: httpx.Response | None = None
        if continue_at:
            url, params = self._same_origin(httpx.URL(continue_at)), None
            try:
                response = self._get(url, None)
            except ConnectorError as exc:
                if exc.retryable:
                    raise
                log.info("%s: saved next-page link refused (%s); querying by eventTime",
                         self.name, exc)
                url, params, continue_at = self._events_url, self._first_params(since_time), None
        page = 0
        while url is not None and page < self.settings.max_pages:
            page += 1
            visited.add(str(url.copy_merge_params(params or {})))
            if response is None:
                response = self._get(url, params)
            try:
                events = event_list(response.json())
            except (json.JSONDecodeError, UnicodeDecodeError, EpcisDocumentError) as exc:
                raise ConnectorError(f"{self.name}: page {page} of {self._events_url} is not "
                                     f"an EPCIS query document: {exc}") from None
            except RecursionError:
                raise ConnectorError(f"{self.name}: page {page} of {self._events_url} is JSON "
                                     "nested too deeply to read") from None
            parsed = EpcisParse()
            for index, event in enumerate(events, start=1):
                key = event_key(event)
                when = _safe_time(event)
                already = key in read_keys or (
                    when is not None and since_time is not None and when == since_time
                    and key in seen_at_cursor)
                # a repository ignoring GE_eventTime would resend old events (not so when
                # continuing a paged query, whose later pages need not be newer)
                stale = (not continue_at and when is not None and since_time is not None
                         and when < since_time)
                if already or stale:
                    continue
                read_keys.add(key)
                _parse_into(parsed, event, self.name, f"page {page} event #{index}",
                            self.settings.shipment_id_form)
                if when is not None:
                    if newest is None or when > newest:
                        newest, newest_keys = when, {key}
                    elif when == newest:
                        newest_keys.add(key)
            result.records.extend(parsed.events)
            result.quarantined.extend(parsed.quarantined)
            url, params = self._next_url(response), None
            response = None
            if url is not None and str(url) in visited:
                raise ConnectorError(f"{self.name}: next-page link repeats {url}; "
                                     "the repository's paging is looping")
        cursor: dict[str, Any] = {}
        if newest is not None:
            cursor = {"t": _format_time(newest), "seen": sorted(newest_keys)}
        if url is not None:
            log.info("%s: stopped after max_pages=%d; the next read continues at the next page",
                     self.name, page)
            cursor["next"] = str(url)
            cursor.setdefault("t", _format_time(datetime(1970, 1, 1, tzinfo=UTC)))
        if cursor:
            result.cursor = json.dumps(cursor, separators=(",", ":"))
        return result

    def execute(self, action: Action) -> ExecuteResult:
        """EPCIS repositories record what happened; they take no carrier or plan changes."""
        return ExecuteResult(
            ok=False, status="rejected",
            detail=f"{self.name} is an EPCIS 2.0 repository (read-only for alignbot); "
                   f"'{action.operation}' must target a TMS/ERP connector instead")

    def health(self) -> Health:
        try:
            response = self._get(self._events_url, {"perPage": "1"})
            event_list(response.json())
        except ConnectorError as exc:
            return Health(ok=False, detail=str(exc))
        except (ValueError, EpcisDocumentError) as exc:
            return Health(ok=False, detail=f"{self._events_url} does not answer EPCIS: {exc}")
        except RecursionError:
            return Health(ok=False, detail=f"{self._events_url} answers JSON nested too deeply "
                                           "to read")
        return Health(ok=True, detail=f"{self._events_url} answers")


def _safe_time(event: Any) -> datetime | None:
    try:
        return parse_event_time(event) if isinstance(event, dict) else None
    except _Bad:
        return None
