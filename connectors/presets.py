"""Presets: connector settings for systems people already run, and the shapes they push.

A connector names a preset in its settings (``preset: sap_ibp``) and writes only what is its own
(its host, its user, the key figures its planning area names differently); the preset's settings
lie under them, merged key by key. ``settings.push`` (on any connector with a
``webhook_secret_env``) names the body its system POSTs to ``/hooks/<connector>``: ``canonical``
(``{"records": [...]}``, the default) or a vendor's own shape, mapped here to canonical records.
``alignbot connectors presets`` lists the presets; ``alignbot connectors presets NAME`` prints a
configuration block to start from. Each preset cites the public documentation it follows.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import typer
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from canonical.model import UTC, Quarantined, ShipmentEvent
from connectors._mapping import raw_text


class PresetError(ValueError):
    """A connector's ``preset`` that cannot be used; the message says why and what to write."""


@dataclass(frozen=True)
class Preset:
    name: str
    kind: str  # the connector kind it configures
    system: Literal["planning", "logistics"]
    title: str
    docs: tuple[str, ...]  # the public pages its shapes follow
    settings: dict[str, Any]  # lies under the connector's own settings
    needs: tuple[tuple[str, str], ...]  # (dotted setting, what to put there) the connector adds
    example: str  # an alignbot.yml connectors[] entry


# --- the presets --------------------------------------------------------------------------------

# SAP IBP's planning data API: OData V2 at /sap/opu/odata/IBP/PLANNING_DATA_API_SRV (communication
# arrangement SAP_COM_0720, a communication user with Basic authentication). Key figures are read
# per planning area — the entity set is the planning area's ID (SAPIBP1, the unified sample) —
# with $select (attributes and key figures) and $filter (here: the weeks ahead); the service
# pages with a __next link carrying $skiptoken. Times are OData V2 "/Date(ms)/", decimals
# strings. Key figures here are SAPIBP1's demand planning ones: CONSENSUSDEMAND (the consensus the
# plan in execution was built on) and DEMANDPLANNINGQTY (the demand planner's latest); week
# buckets are PERIODID4 in SAPIBP1. A planning area of your own maps its IDs in demand.fields.
# Sources:
#   https://community.sap.com/t5/supply-chain-management-blogs-by-members/integrate-sap-ibp-key-figure-delta-%CE%B4-data-with-external-systems/ba-p/13525071
#   https://community.sap.com/t5/supply-chain-management-blogs-by-sap/sap-ibp-data-extraction-via-cpi-ds-how-to-best-filter-data-by-time/ba-p/13404373
#   https://learning.sap.com/learning-journeys/discovering-sap-ibp-for-demand/describing-model-components-master-data-types-and-key-figures
#   https://www.odata.org/documentation/odata-version-2-0/json-format/ (d.results, __next)
IBP_SERVICE = "/sap/opu/odata/IBP/PLANNING_DATA_API_SRV"
SAP_IBP = Preset(
    name="sap_ibp", kind="rest", system="planning",
    title="SAP IBP key figures → demand (OData V2 planning data API, read only)",
    docs=("https://community.sap.com/t5/supply-chain-management-blogs-by-members/integrate-sap-"
          "ibp-key-figure-delta-%CE%B4-data-with-external-systems/ba-p/13525071",
          "https://learning.sap.com/learning-journeys/discovering-sap-ibp-for-demand/describing-"
          "model-components-master-data-types-and-key-figures",
          "https://www.odata.org/documentation/odata-version-2-0/json-format/"),
    settings={
        "read_only": True,  # alignbot reads the plan; approved forecast changes go elsewhere
        "auth": {"kind": "basic"},
        "health_path": "/$metadata",
        "demand": {
            "path": "/SAPIBP1",  # the planning area
            "records_path": "d.results",
            "values": "odata_v2",
            "select_param": "$select",
            "params": {
                "$format": "json",
                "$filter": "PERIODID4_TSTAMP ge datetime'{today-7d}T00:00:00' and "
                           "PERIODID4_TSTAMP lt datetime'{today+91d}T00:00:00'",
            },
            "fields": {"sku": "PRDID", "location": "LOCID", "period": "PERIODID4_TSTAMP",
                       "planned_qty": "CONSENSUSDEMAND", "latest_qty": "DEMANDPLANNINGQTY"},
            "constants": {"source": "sap_ibp"},
            "pagination": {"style": "next_link", "next_link_path": "d.__next",
                           "page_size_param": None},
            "incremental": "none",  # key figures carry no change time: the window is re-read
        },
    },
    needs=(("base_url", f"https://<your IBP API host>{IBP_SERVICE}"),
           ("auth.username", "the communication user of arrangement SAP_COM_0720"),
           ("auth.password", "a secret: secrets: {auth.password: IBP_PASSWORD}")),
    example=f"""\
- name: ibp
  kind: rest
  system: planning
  schedule: {{every: 15m}}
  executes: false   # read only: approved plan changes go to another planning connector
  settings:
    preset: sap_ibp
    base_url: https://my-ibp-api.example.com{IBP_SERVICE}
    auth: {{username: ALIGNBOT_COMM_USER}}
    # your planning area and key figures, if not SAPIBP1's:
    # demand: {{path: /ZMYAREA, fields: {{latest_qty: ZSENSEDDEMAND}}}}
  secrets: {{auth.password: IBP_PASSWORD}}
""")

# project44's truckload notifications: project44 POSTs one JSON body per update to the webhook
# configured for the account — shipment (carrierIdentifier, shipmentIdentifiers, shipmentStops
# with stopNumber and appointmentWindow), latestStatusUpdate (timestamp, statusCode, statusReason,
# stopNumber), latestStopStatuses (per stop: statusCode, arrivalCode EARLY/ON_TIME/LATE,
# arrivalEstimate.estimatedArrivalWindow) and statusUpdates. The connector reads nothing itself
# (no endpoints): the pushes are its data.
# Sources:
#   https://support.p-44.com/hc/en-us/articles/16959116737181-Truckload-Notifications
#   https://support.p-44.com/hc/en-us/articles/16959132508317-Truckload-Notifications-FAQs
#   https://developers.project44.com/guides/shippers/visibility/ftl/get-tracking-updates
PROJECT44 = Preset(
    name="project44", kind="rest", system="logistics",
    title="project44 truckload status notifications → shipment events (webhook, push only)",
    docs=("https://support.p-44.com/hc/en-us/articles/16959116737181-Truckload-Notifications",
          "https://support.p-44.com/hc/en-us/articles/16959132508317-Truckload-Notifications-FAQs"),
    settings={
        "base_url": "https://na12.api.project44.com",  # not called: nothing is polled
        "read_only": True,
        "push": {"payload": "project44_tl"},
    },
    needs=(),
    example="""\
- name: p44
  kind: rest
  system: logistics
  executes: false
  webhook_secret_env: P44_WEBHOOK_SECRET   # project44 → POST /hooks/p44
  settings:
    preset: project44
    # which of the shipment's identifiers is your TMS's shipment id, tried in order:
    # push: {shipment_id_types: [BILL_OF_LADING, ORDER]}
""")

PRESETS: dict[str, Preset] = {p.name: p for p in (SAP_IBP, PROJECT44)}


def _merge(under: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(under)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def preset_of(settings: dict[str, Any]) -> Preset | None:
    name = settings.get("preset")
    if name is None:
        return None
    if not isinstance(name, str) or name not in PRESETS:
        raise PresetError(f"unknown preset {name!r}; use one of {', '.join(PRESETS)} "
                          "(alignbot connectors presets lists them)")
    return PRESETS[name]


def expand(kind: str, settings: dict[str, Any]) -> dict[str, Any]:
    """A connector's settings with its preset's under them (without ``preset``)."""
    preset = preset_of(settings)
    own = {k: v for k, v in settings.items() if k != "preset"}
    if preset is None:
        return copy.deepcopy(own)
    if preset.kind != kind:
        raise PresetError(f"preset {preset.name} configures a {preset.kind} connector; set "
                          f"kind: {preset.kind} (this one is {kind})")
    return _merge(preset.settings, own)


def missing_needs(settings: dict[str, Any], secret_settings: Iterable[str] = ()) -> list[str]:
    """``path: what to put there`` for each setting the preset needs that the connector lacks
    (a setting filled from ``secrets`` counts as given)."""
    preset = preset_of(settings)
    if preset is None:
        return []
    given = set(secret_settings)
    missing = []
    for path, hint in preset.needs:
        node: Any = settings
        for part in path.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if node in (None, "") and path not in given:
            missing.append(f"{path}: preset {preset.name} needs it ({hint})")
    return missing


# --- pushes ---------------------------------------------------------------------------------------


class PushSettings(BaseModel):
    """``settings.push``: the body the system POSTs to ``/hooks/<connector>``."""

    model_config = ConfigDict(extra="forbid")

    payload: Literal["canonical", "project44_tl"] = "canonical"
    # project44: the identifier types that carry your shipment id, tried in order
    shipment_id_types: list[str] = Field(
        default_factory=lambda: ["BILL_OF_LADING", "ORDER", "PURCHASE_ORDER", "PRO",
                                 "CUSTOMER_REFERENCE"], min_length=1)
    # project44: the ETA is the end of the estimated arrival window (late as it may be) or its start
    eta: Literal["window_end", "window_start"] = "window_end"


def push_settings(kind: str, settings: dict[str, Any]) -> PushSettings | None:
    """The connector's ``push`` (its preset's, under its own), or None for canonical bodies."""
    push = expand(kind, settings).get("push")
    if push is None:
        return None
    parsed = PushSettings.model_validate(push)
    return None if parsed.payload == "canonical" else parsed


def push_payloads(connectors: Iterable[Any]) -> dict[str, PushSettings]:
    """Connector name → how its pushes are read, for those that push a vendor's own shape
    (``connectors`` are configuration entries: ``name``, ``kind``, ``settings``)."""
    payloads = {}
    for conn in connectors:
        push = push_settings(conn.kind, conn.settings)
        if push is not None:
            payloads[conn.name] = push
    return payloads


class Pushed(BaseModel):
    """What one push held: records to use, records refused (with why) and records skipped
    (valid, with no news for the picture)."""

    records: list[Any] = Field(default_factory=list)
    quarantined: list[Quarantined] = Field(default_factory=list)
    skipped: list[Quarantined] = Field(default_factory=list)


def parse_push(push: PushSettings, payload: Any, source: str) -> Pushed:
    """Canonical records from a vendor's push body; raises ValueError if it is not that
    vendor's shape at all (the hook answers 400)."""
    if push.payload == "project44_tl":
        return _project44_tl(payload, source, push)
    raise ValueError(f"no reader for pushed payload {push.payload!r}")


# project44's truckload statusCode → the canonical status (None: nothing about movement,
# skipped; "at_stop": arrived at the last stop, else under way).
PROJECT44_TL_STATUS: dict[str, str | None] = {
    "DISPATCHED": None, "IN_TRANSIT": "in_transit", "AT_STOP": "at_stop",
    "COMPLETED": "delivered", "CANCELED": "exception", "CANCELLED": "exception",
    "TRACKING_FAILED": None, "INFO": None, "DELETED": None,
}
PROJECT44_LATE = frozenset({"LATE"})  # latestStopStatuses[].arrivalCode


class _Bad(Exception):
    pass


class _Skip(Exception):
    pass


def _project44_tl(payload: Any, source: str, push: PushSettings) -> Pushed:
    if isinstance(payload, dict) and "shipment" in payload:
        notifications = [payload]
    elif isinstance(payload, list):
        notifications = payload
    else:
        raise ValueError("body is not a project44 truckload notification (a JSON object with "
                         "shipment and latestStatusUpdate, or a list of them)")
    out = Pushed()
    for i, notification in enumerate(notifications):
        where = f"notification #{i}"
        try:
            out.records.append(_p44_event(notification, push))
        except _Skip as skip:
            out.skipped.append(Quarantined(source=source, position=where, reason=str(skip),
                                           raw=raw_text(notification)))
        except _Bad as bad:
            out.quarantined.append(Quarantined(source=source, position=where, reason=str(bad),
                                               raw=raw_text(notification)))
    return out


def _obj(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _Bad(f"{what} is missing or not an object")
    return value


def _objects(value: Any, what: str) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise _Bad(f"{what} is not an array")
    return [v for v in value if isinstance(v, dict)]


def _when(value: Any, what: str, zone: str | None = None) -> datetime:
    if not isinstance(value, str) or not value.strip():
        raise _Bad(f"{what} is missing")
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise _Bad(f"{what} {value!r} is not an ISO 8601 date-time") from None
    if moment.tzinfo is None:
        try:
            moment = moment.replace(tzinfo=ZoneInfo(zone)) if zone else moment
        except (ZoneInfoNotFoundError, ValueError):
            raise _Bad(f"{what} {value!r} has no zone and localTimeZoneIdentifier {zone!r} "
                       "is not one") from None
        if moment.tzinfo is None:
            raise _Bad(f"{what} {value!r} has no zone (and its stop no "
                       "localTimeZoneIdentifier)")
    try:
        return moment.astimezone(UTC)
    except (OverflowError, ValueError):
        raise _Bad(f"{what} {value!r} is out of range") from None


def _p44_event(notification: Any, push: PushSettings) -> ShipmentEvent:
    note = _obj(notification, "notification")
    shipment = _obj(note.get("shipment"), "shipment")
    latest = _obj(note.get("latestStatusUpdate"), "latestStatusUpdate")
    identifiers = {}
    for ident in _objects(shipment.get("shipmentIdentifiers"), "shipment.shipmentIdentifiers"):
        if isinstance(ident.get("type"), str) and isinstance(ident.get("value"), str):
            identifiers.setdefault(ident["type"], ident["value"].strip())
    id_type = next((t for t in push.shipment_id_types if identifiers.get(t)), None)
    if id_type is None:
        raise _Bad(f"no shipment identifier of type {', '.join(push.shipment_id_types)} "
                   f"(it has {', '.join(identifiers) or 'none'}); set push.shipment_id_types")
    code = latest.get("statusCode")
    if code not in PROJECT44_TL_STATUS:
        raise _Bad(f"latestStatusUpdate.statusCode {code!r} is not a truckload status alignbot "
                   f"knows ({', '.join(PROJECT44_TL_STATUS)})")
    event_time = _when(latest.get("timestamp"), "latestStatusUpdate.timestamp")
    status = PROJECT44_TL_STATUS[code]
    if status is None:
        raise _Skip(f"statusCode {code} says nothing about the shipment's movement")

    stops = {s.get("stopNumber"): s for s in _objects(shipment.get("shipmentStops"),
                                                      "shipment.shipmentStops")}
    numbers = [n for n in stops if isinstance(n, int)]
    last = max(numbers) if numbers else None
    final = next((s for s in _objects(note.get("latestStopStatuses"), "latestStopStatuses")
                  if s.get("stopNumber") == last), {})
    late = final.get("arrivalCode") in PROJECT44_LATE
    eta = None
    window = final.get("arrivalEstimate", {}) if isinstance(final.get("arrivalEstimate"),
                                                             dict) else {}
    window = window.get("estimatedArrivalWindow")
    if isinstance(window, dict):
        key = "endDateTime" if push.eta == "window_end" else "startDateTime"
        zone = ((stops.get(last) or {}).get("appointmentWindow") or {}).get(
            "localTimeZoneIdentifier")
        if window.get(key) or window.get("startDateTime"):
            eta = _when(window.get(key) or window.get("startDateTime"),
                        f"estimatedArrivalWindow.{key}", zone)
    at_stop = latest.get("stopNumber")
    if status == "at_stop":  # at the last stop (per-stop status ARRIVED there): arrived
        arrived = at_stop == last or final.get("statusCode") == "ARRIVED"
        status = "arrived" if arrived else "in_transit"
    if late and status == "in_transit":
        status = "delayed"
    reason = latest.get("statusReason")
    reason_code = reason.get("code") if isinstance(reason, dict) else None
    carrier = shipment.get("carrierIdentifier")
    reference = {"id_type": id_type, "arrival_code": str(final.get("arrivalCode") or "")}
    if shipment.get("id") is not None:
        reference["p44_shipment_id"] = str(shipment["id"])
    if at_stop is not None:
        reference["stop_number"] = str(at_stop)
    try:
        return ShipmentEvent(
            shipment_id=identifiers[id_type], event_time=event_time, status=status,
            status_code=code, reason_code=str(reason_code or ("LATE" if late else "")),
            location=str((stops.get(at_stop) or {}).get("stopName") or ""), eta=eta,
            carrier=str(carrier.get("value") or "") if isinstance(carrier, dict) else "",
            reference=reference)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise _Bad(f"{'.'.join(map(str, first['loc']))}: {first['msg']}") from None


# --- alignbot connectors presets ----------------------------------------------------------------

connectors_app = typer.Typer(help="Connectors: presets for systems you already run.",
                             no_args_is_help=True)


@connectors_app.command("presets")
def presets_command(
    name: Annotated[str | None, typer.Argument(help="A preset: print its configuration "
                                                    "block")] = None,
    json_output: Annotated[bool, typer.Option("--json", help="JSON instead of a table")]
    = False,
) -> None:
    """List the connector presets, or print one's alignbot.yml block to start from."""
    from rich.console import Console
    from rich.table import Table

    out = Console(highlight=False, soft_wrap=True)
    if name is not None:
        preset = PRESETS.get(name)
        if preset is None:
            Console(stderr=True).print(f"error: no preset {name!r}; presets: "
                                       f"{', '.join(PRESETS)}", markup=False, highlight=False)
            raise typer.Exit(2)
        out.print(f"# {preset.title}\n# docs: " + "\n#       ".join(preset.docs), markup=False)
        out.print("connectors:\n" + _indent(preset.example), markup=False)
        return
    if json_output:
        out.print(json.dumps([{"name": p.name, "kind": p.kind, "system": p.system,
                               "title": p.title, "docs": list(p.docs),
                               "needs": [path for path, _ in p.needs],
                               "settings": p.settings} for p in PRESETS.values()], indent=2),
                  markup=False)
        return
    table = Table(title="Connector presets (alignbot connectors presets NAME prints one's "
                        "block)")
    for column in ("name", "kind", "system", "what", "you add"):
        table.add_column(column, overflow="fold")
    for p in PRESETS.values():
        table.add_row(p.name, p.kind, p.system, p.title,
                      ", ".join(path for path, _ in p.needs) or "webhook_secret_env")
    out.print(table)


def _indent(text: str) -> str:
    return "".join(f"  {line}\n" if line.strip() else "\n" for line in text.splitlines())
