"""``POST /hooks/<connector>``: events pushed by logistics or planning systems.

The sender signs ``{timestamp}.{body}`` with HMAC-SHA256 and the connector's shared secret and
sends ``X-Alignbot-Timestamp`` and ``X-Alignbot-Signature: v1=<hex>``. Requests older than five
minutes or with a bad signature are refused before the body is parsed. Accepted records run
through detection for the keys they touch at once, not at the next poll. A connector whose
``settings.push`` names a vendor's shape (``connectors.presets``) is sent that shape instead of
``{"records": [...]}``; it is mapped to canonical records there.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import TypeAdapter, ValidationError
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse

from canonical.model import (
    CapacityRecord,
    DemandRecord,
    InventoryRecord,
    Quarantined,
    ShipmentEvent,
    ShipmentRecord,
)
from connectors.batch import split_duplicates
from connectors.presets import PushSettings, parse_push

MAX_AGE_SECONDS = 300
MAX_BODY_BYTES = 5 * 1024 * 1024
RECORD_TYPES: dict[str, Any] = {
    "shipment_event": ShipmentEvent, "shipment": ShipmentRecord, "demand": DemandRecord,
    "capacity": CapacityRecord, "inventory": InventoryRecord,
}


def sign(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "v1=" + mac.hexdigest()


def verify(secret: str, timestamp: str | None, signature: str | None, body: bytes,
           now: float | None = None) -> str | None:
    """None if the request is authentic and fresh, else the reason to refuse it."""
    if not timestamp or not signature:
        return "missing X-Alignbot-Timestamp or X-Alignbot-Signature"
    # ASCII digits only: int() also reads "١٢٣" and " +123 ", none of which a sender signs
    if not (timestamp.isascii() and timestamp.isdigit()):
        return "X-Alignbot-Timestamp must be Unix seconds"
    if abs((now or time.time()) - int(timestamp)) > MAX_AGE_SECONDS:
        return "stale request (timestamp more than 5 minutes off)"
    # (compare_digest raises TypeError on a non-ASCII str)
    if not signature.isascii() or not hmac.compare_digest(sign(secret, timestamp, body),
                                                           signature):
        return "bad signature"
    return None


def parse_records(payload: Any, source: str) -> tuple[list[Any], list[Quarantined]]:
    """``{"records": [{"type": "shipment_event", ...}, ...]}`` → canonical records + rejects
    (invalid records, and the second and later with a business key already in the push)."""
    if not isinstance(payload, dict) or not isinstance(payload.get("records"), list):
        raise ValueError('body must be a JSON object with a "records" list')
    good, bad, positions = [], [], []
    for i, item in enumerate(payload["records"]):
        kind = item.get("type") if isinstance(item, dict) else None
        model = RECORD_TYPES.get(kind)
        if model is None:
            bad.append(Quarantined(source=source, position=f"record #{i}",
                                   reason=f"unknown type {kind!r}; use one of "
                                          + ", ".join(RECORD_TYPES),
                                   raw=json.dumps(item, default=str)[:2000]))
            continue
        fields = {k: v for k, v in item.items() if k != "type"}
        try:
            good.append(TypeAdapter(model).validate_python(fields))
            positions.append(f"record #{i}")
        except ValidationError as exc:
            reason = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}"
                               for e in exc.errors())
            bad.append(Quarantined(source=source, position=f"record #{i}", reason=reason,
                                   raw=json.dumps(item, default=str)[:2000]))
    kept, duplicates = split_duplicates(good, source, positions)  # two records for one key: keep the first
    return kept, bad + duplicates


def webhook_endpoint(secrets: Mapping[str, str],
                     accept: Callable[[str, list[Any], list[Quarantined]], None],
                     payloads: Mapping[str, PushSettings] | None = None):  # type: ignore[no-untyped-def]
    """A Starlette endpoint; ``accept(connector, records, quarantined)`` runs after the reply.
    ``payloads``: connector → the vendor shape it pushes (``connectors.presets.push_payloads``)."""

    async def endpoint(request: Request) -> JSONResponse:
        name = request.path_params["connector"]
        secret = secrets.get(name)
        if secret is None:
            return JSONResponse({"error": f"no webhook configured for {name!r}"}, 404)
        body = await _read_body(request)
        if body is None:
            return JSONResponse({"error": f"body too large (over {MAX_BODY_BYTES} bytes)"}, 413)
        problem = verify(secret, request.headers.get("x-alignbot-timestamp"),
                         request.headers.get("x-alignbot-signature"), body)
        if problem:
            return JSONResponse({"error": problem}, 401)
        push, skipped = (payloads or {}).get(name), []
        try:
            if push is None:
                records, quarantined = parse_records(json.loads(body), f"webhook:{name}")
            else:
                pushed = parse_push(push, json.loads(body), f"webhook:{name}")
                records, quarantined, skipped = pushed.records, pushed.quarantined, pushed.skipped
        except (ValueError, UnicodeDecodeError) as exc:
            return JSONResponse({"error": f"unreadable body: {exc}"}, 400)
        except RecursionError:  # json.loads or the quarantine's json.dumps, past Python's limit
            return JSONResponse({"error": "unreadable body: JSON nested too deeply"}, 400)
        reply: dict[str, Any] = {"accepted": len(records),
                                 "quarantined": [q.model_dump() for q in quarantined]}
        if skipped:  # valid, with no news for the picture (a vendor's "tracking started")
            reply["skipped"] = [q.model_dump() for q in skipped]
        return JSONResponse(reply, 202,
                            background=BackgroundTask(accept, name, records, quarantined))

    return endpoint


async def _read_body(request: Request) -> bytes | None:
    """The body, or None once it is known to be over ``MAX_BODY_BYTES``: at once from its
    ``Content-Length``, or while reading one sent without (chunked), so an unsigned sender
    cannot make the bot take in more than the limit."""
    try:
        declared = int(request.headers.get("content-length", "0"))
    except ValueError:  # (the HTTP server refuses a malformed one before we see it)
        declared = 0
    if declared > MAX_BODY_BYTES:
        return None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return None
        chunks.append(chunk)
    return b"".join(chunks)
