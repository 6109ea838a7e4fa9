"""The sandbox world in the shapes of systems people run: SAP IBP's planning data API (OData V2)
and project44's truckload notifications, so the connector presets are tested against them.

* ``ibp_routes(world)``: ``GET /sap/opu/odata/IBP/PLANNING_DATA_API_SRV/SAPIBP1`` serves the demand
  plan as key figures — PRDID, LOCID, PERIODID4_TSTAMP (the week), CONSENSUSDEMAND (planned),
  DEMANDPLANNINGQTY (latest), SALESFCSTPRICE (unit value) — with Basic authentication,
  ``$select`` (required), ``$filter`` (``and`` of ``eq ne gt ge lt le`` comparisons),
  ``$format=json``, ``$top`` and server paging by a ``__next`` link with ``$skiptoken``, in
  OData V2 JSON (``d.results``, ``/Date(ms)/`` times, decimals as strings); ``/$metadata``.
  The planning service serves them (``planning_service``).
* ``project44_notification(world, shipment_id)``: the body project44 POSTs for a truckload
  shipment, built from the world's shipment (its ETA, late or not against its planned arrival).

Shapes follow the public documentation cited in ``connectors/presets.py``.
"""

from __future__ import annotations

import base64
import re
from datetime import UTC, date, datetime, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sandbox.systems._world import World, parse_ts

IBP_SERVICE = "/sap/opu/odata/IBP/PLANNING_DATA_API_SRV"
IBP_PLANNING_AREA = "SAPIBP1"
IBP_USER, IBP_PASSWORD = "ALIGNBOT_COMM_USER", "ibp-sandbox-secret"
IBP_PAGE = 500  # rows a page before __next, as a Gateway service's server paging
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# key figure / attribute → how it is read off a demand row
_IBP_PROPERTIES = {
    "PRDID": lambda row: row["sku"],
    "LOCID": lambda row: row["location"],
    "PERIODID4_TSTAMP": lambda row: _odata_date(date.fromisoformat(row["period"])),
    "CONSENSUSDEMAND": lambda row: f"{row['planned_qty']:.6f}",
    "DEMANDPLANNINGQTY": lambda row: f"{row['latest_qty']:.6f}",
    "SALESFCSTPRICE": lambda row: f"{row['unit_value']:.2f}",
}
_CLAUSE = re.compile(r"^\s*([A-Z0-9_]+)\s+(eq|ne|gt|ge|lt|le)\s+(datetime'[^']*'|'[^']*'|-?[0-9.]+)"
                     r"\s*$")
_OPS = {"eq": lambda a, b: a == b, "ne": lambda a, b: a != b, "gt": lambda a, b: a > b,
        "ge": lambda a, b: a >= b, "lt": lambda a, b: a < b, "le": lambda a, b: a <= b}


def _odata_date(day: date) -> str:
    moment = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return f"/Date({int((moment - _EPOCH).total_seconds() * 1000)})/"


def _error(status: int, code: str, message: str, **headers: str) -> JSONResponse:
    """An OData V2 error body, as SAP Gateway writes one."""
    return JSONResponse({"error": {"code": code, "message": {"lang": "en", "value": message}}},
                        status_code=status, headers=headers)


def _filter(text: str) -> list[tuple[str, str, Any]]:
    """``PRDID eq 'A' and PERIODID4_TSTAMP ge datetime'2026-11-23T00:00:00'`` as clauses."""
    clauses = []
    for part in re.split(r"\s+and\s+", text.strip()):
        match = _CLAUSE.match(part)
        if not match or match.group(1) not in _IBP_PROPERTIES:
            raise ValueError(f"$filter clause {part!r} is not supported (use PROPERTY op value "
                             f"joined by 'and'; properties {', '.join(_IBP_PROPERTIES)})")
        name, op, literal = match.groups()
        if literal.startswith("datetime'"):
            value: Any = datetime.fromisoformat(literal[9:-1]).replace(tzinfo=UTC)
        elif literal.startswith("'"):
            value = literal[1:-1]
        else:
            value = float(literal)
        clauses.append((name, op, value))
    return clauses


def _value(name: str, row: dict[str, Any]) -> Any:
    """A row's property as ``$filter`` compares it."""
    if name == "PERIODID4_TSTAMP":
        day = date.fromisoformat(row["period"])
        return datetime(day.year, day.month, day.day, tzinfo=UTC)
    raw = _IBP_PROPERTIES[name](row)
    return float(raw) if name not in ("PRDID", "LOCID") else raw


def ibp_routes(world: World, *, page_size: int = IBP_PAGE) -> list[Route]:
    """SAP IBP's planning data API over ``world``'s demand plan (see the module's docstring)."""

    async def metadata(request: Request) -> Response:
        if (refused := _refused(request)) is not None:
            return refused
        names = "".join(f'<Property Name="{n}" Type="Edm.String"/>' for n in _IBP_PROPERTIES)
        return Response(f'<?xml version="1.0" encoding="utf-8"?><edmx:Edmx Version="1.0" '
                        f'xmlns:edmx="http://schemas.microsoft.com/ado/2007/06/edmx">'
                        f'<edmx:DataServices><Schema Namespace="IBP.PLANNING_DATA_API_SRV">'
                        f'<EntityType Name="{IBP_PLANNING_AREA}Type">{names}</EntityType>'
                        f'</Schema></edmx:DataServices></edmx:Edmx>',
                        media_type="application/xml")

    async def planning_area(request: Request) -> Response:
        if (refused := _refused(request)) is not None:
            return refused
        q = request.query_params
        if q.get("$format") != "json" and "json" not in request.headers.get("accept", ""):
            return _error(400, "SY/530", "the sandbox answers JSON only: add $format=json")
        selected = [s.strip() for s in q.get("$select", "").split(",") if s.strip()]
        if not selected:
            return _error(400, "/IBP/PLANNING_DATA_API/001",
                          "specify the attributes and key figures to read in $select")
        unknown = [s for s in selected if s not in _IBP_PROPERTIES]
        if unknown:
            return _error(400, "/IBP/PLANNING_DATA_API/002",
                          f"{', '.join(unknown)} not in planning area {IBP_PLANNING_AREA}")
        try:
            clauses = _filter(q["$filter"]) if q.get("$filter") else []
            offset = int(q.get("$skiptoken", "0"))
            top = int(q["$top"]) if "$top" in q else None
        except ValueError as exc:
            return _error(400, "SY/530", str(exc))
        with world.lock:
            world.catch_up()
            rows = [row for _key, row in sorted(world.tables["demand"].items())
                    if all(_OPS[op](_value(name, row), value) for name, op, value in clauses)]
            if top is not None:
                rows = rows[:top]
            page = rows[offset:offset + page_size]
            results = [{"__metadata": {"type": f"IBP.PLANNING_DATA_API_SRV.{IBP_PLANNING_AREA}"
                                               "Type"},
                        **{name: _IBP_PROPERTIES[name](row) for name in selected}}
                       for row in page]
        body: dict[str, Any] = {"results": results}
        if offset + page_size < len(rows):
            body["__next"] = str(request.url.include_query_params(
                **{"$skiptoken": str(offset + page_size)}))
        return JSONResponse({"d": body})

    async def other_area(request: Request) -> Response:
        return _error(404, "/IWFND/MED/170", f"no planning area "
                      f"{request.path_params['area']!r}; this service has {IBP_PLANNING_AREA}")

    return [Route(f"{IBP_SERVICE}/$metadata", metadata, methods=["GET"]),
            Route(f"{IBP_SERVICE}/{IBP_PLANNING_AREA}", planning_area, methods=["GET"]),
            Route(IBP_SERVICE + "/{area}", other_area, methods=["GET"])]


def _refused(request: Request) -> Response | None:
    header = request.headers.get("authorization", "")
    expected = "Basic " + base64.b64encode(f"{IBP_USER}:{IBP_PASSWORD}".encode()).decode()
    if header != expected:
        return _error(401, "/IWFND/CM_CONSUMER/001", "logon failed",
                      **{"WWW-Authenticate": 'Basic realm="SAP NetWeaver Application Server"'})
    return None


# --- project44 ------------------------------------------------------------------------------------


def _p44_time(moment: datetime, offset_hours: int = -6) -> str:
    """project44's timestamps: ISO 8601 with a ±HHMM offset (2023-12-12T00:48:02-0500)."""
    local = moment.astimezone(UTC) + timedelta(hours=offset_hours)
    sign = "-" if offset_hours < 0 else "+"
    return local.strftime("%Y-%m-%dT%H:%M:%S") + f"{sign}{abs(offset_hours):02d}00"


def project44_notification(world: World, shipment_id: str, *, status_code: str = "IN_TRANSIT",
                           eta: datetime | None = None) -> dict[str, Any]:
    """What project44 would push for ``shipment_id`` now: its stops (origin, destination), the
    latest status, and the destination's arrival estimate — ``eta`` (project44's prediction,
    which the TMS may not have yet; default the world's), LATE when past the planned arrival.
    The shipment id travels as its BILL_OF_LADING identifier."""
    with world.lock:
        world.catch_up()
        row = dict(world.tables["shipments"][(shipment_id,)])
        now = world.clock()
    planned = parse_ts(row["planned_arrival"], "planned_arrival")
    eta = eta or parse_ts(row["eta"] or row["planned_arrival"], "eta")
    ship = parse_ts(row["planned_ship"], "planned_ship")
    late = eta - planned > timedelta(minutes=30)

    def appointment(moment: datetime) -> dict[str, str]:  # local wall time and its zone
        local = moment.astimezone(UTC) - timedelta(hours=6)
        return {"startDateTime": local.strftime("%Y-%m-%dT%H:%M:%S"),
                "endDateTime": (local + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%S"),
                "localTimeZoneIdentifier": "America/Chicago"}

    return {
        "shipment": {
            "id": 40_000_000 + int(re.sub(r"\D", "", shipment_id) or 0),
            "carrierIdentifier": {"type": "SCAC", "value": row["carrier"]},
            "shipmentIdentifiers": [{"type": "BILL_OF_LADING", "value": shipment_id},
                                    {"type": "ORDER", "value": f"PO-{shipment_id[-5:]}"}],
            "shipmentStops": [
                {"stopNumber": 1, "stopName": row["origin"], "appointmentWindow": appointment(ship),
                 "location": {"address": {"postalCode": "75001", "addressLines": ["1 Plant Rd"],
                                          "city": "Dallas", "state": "TX", "country": "US"},
                              "contact": {"companyName": row["origin"]}}},
                {"stopNumber": 2, "stopName": row["destination"],
                 "appointmentWindow": appointment(planned),
                 "location": {"address": {"postalCode": "08817", "addressLines": ["2 DC Way"],
                                          "city": "Edison", "state": "NJ", "country": "US"},
                              "contact": {"companyName": row["destination"]}}},
            ],
        },
        "latestStatusUpdate": {
            "timestamp": _p44_time(now), "statusCode": status_code,
            "statusReason": {"code": "IN_MOTION" if status_code == "IN_TRANSIT" else "",
                             "description": ""},
            "stopNumber": 2 if status_code == "AT_STOP" else None,
            "geoCoordinates": {"latitude": 39.656254, "longitude": -84.61627},
        },
        "latestStopStatuses": [
            {"stopNumber": 1, "statusCode": "DEPARTED", "arrivalCode": "ON_TIME"},
            {"stopNumber": 2, "statusCode": "ARRIVED" if status_code == "AT_STOP" else "EN_ROUTE",
             "arrivalCode": "LATE" if late else "ON_TIME",
             "arrivalEstimate": {"estimatedArrivalWindow": {
                 "startDateTime": _p44_time(eta - timedelta(hours=1)),
                 "endDateTime": _p44_time(eta)},
                 "lastCalculatedDateTime": _p44_time(now)}},
        ],
        "statusUpdates": [],
    }
