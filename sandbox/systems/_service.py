"""The HTTP face both sandbox systems share: collections, actions, scenario, faults.

Collections are ordered by ``(updated_at, key)`` and paged by keyset, so a row changed while a
client pages through moves to the end and is still read; ``updated_since``, ``next`` links,
``cursor`` tokens, ``page`` numbers and ETags are all supported so every connector mode can be
tested against the same service.
"""

from __future__ import annotations

import asyncio
import base64
import bisect
import hashlib
import json
import random
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sandbox.systems._world import ActionError, World

Operation = Callable[[World, dict[str, Any]], dict[str, Any]]

DEFAULT_LIMIT = 500
MAX_LIMIT = 5000


class Faults:
    """Seeded fault injection: a fraction of calls fail with 500, 429, or answer too late."""

    def __init__(self, seed: int):
        self.error_rate = 0.0
        self.timeout_rate = 0.0
        self.rate_limit_rate = 0.0
        self.timeout_seconds = 15.0
        self.retry_after_seconds = 1
        self._rng = random.Random(seed)

    def configure(self, body: dict[str, Any]) -> None:
        rates = {}
        for name in ("error_rate", "timeout_rate", "rate_limit_rate"):
            value = float(body.get(name, 0.0))
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, got {value}")
            rates[name] = value
        if sum(rates.values()) > 1.0:
            raise ValueError("error_rate + timeout_rate + rate_limit_rate must not exceed 1")
        timeout_seconds = float(body.get("timeout_seconds", self.timeout_seconds))
        retry_after = int(body.get("retry_after_seconds", self.retry_after_seconds))
        for name, value in rates.items():
            setattr(self, name, value)
        self.timeout_seconds = timeout_seconds
        self.retry_after_seconds = retry_after
        if "seed" in body:
            self._rng = random.Random(int(body["seed"]))

    def roll(self) -> str | None:
        if not (self.error_rate or self.timeout_rate or self.rate_limit_rate):
            return None
        x = self._rng.random()
        if x < self.error_rate:
            return "error"
        if x < self.error_rate + self.rate_limit_rate:
            return "rate_limit"
        if x < self.error_rate + self.rate_limit_rate + self.timeout_rate:
            return "timeout"
        return None

    def as_dict(self) -> dict[str, Any]:
        return {"error_rate": self.error_rate, "timeout_rate": self.timeout_rate,
                "rate_limit_rate": self.rate_limit_rate, "timeout_seconds": self.timeout_seconds,
                "retry_after_seconds": self.retry_after_seconds}


def _token(updated_at: str, key: str) -> str:
    return base64.urlsafe_b64encode(json.dumps([updated_at, key]).encode()).decode()


def _untoken(token: str) -> tuple[str, str]:
    try:
        updated_at, key = json.loads(base64.urlsafe_b64decode(token.encode()))
        return str(updated_at), str(key)
    except (ValueError, TypeError):
        raise ValueError(f"cursor {token!r} is not one this server issued") from None


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


class SandboxService:
    """One sandbox system: named collections over world tables plus its own action ledger."""

    def __init__(self, world: World, system: str, collections: dict[str, str],
                 operations: dict[str, Operation], fault_seed: int = 0):
        self.world = world
        self.system = system
        self.collections = collections  # URL path -> world table
        self.operations = operations
        self.faults = Faults(world.seed * 31 + fault_seed)
        self.ledger: dict[str, dict[str, Any]] = {}
        self._order_cache: dict[str, tuple[int, list]] = {}
        self._applied = 0
        routes = [Route(path, self._collection(table), methods=["GET"])
                  for path, table in collections.items()]
        routes += [
            Route("/health", self.health, methods=["GET"]),
            Route("/actions", self.actions, methods=["POST", "PATCH", "PUT"]),
            Route("/received", self.received, methods=["GET"]),
            Route("/scenario", self.scenario, methods=["GET"]),
            Route("/scenario/step", self.step, methods=["POST"]),
            Route("/scenario/faults", self.set_faults, methods=["POST"]),
        ]
        self.app = Starlette(routes=routes)

    def _ordered(self, table: str) -> list[tuple[str, str, dict[str, Any]]]:
        """Rows by (updated_at, key), cached until the table changes; call under the lock."""
        version = self.world.versions[table]
        cached = self._order_cache.get(table)
        if cached is None or cached[0] != version:
            rows = sorted(((r["updated_at"], "|".join(k), r)
                           for k, r in self.world.tables[table].items()),
                          key=lambda t: (t[0], t[1]))
            cached = self._order_cache[table] = (version, rows)
        return cached[1]

    async def _fault(self) -> Response | None:
        """The injected fault for this call, if any; 'timeout' delays and then lets it through."""
        fault = self.faults.roll()
        if fault == "error":
            return _error(500, "injected fault")
        if fault == "rate_limit":
            return JSONResponse({"error": "slow down"}, status_code=429,
                                headers={"Retry-After": str(self.faults.retry_after_seconds)})
        if fault == "timeout":
            await asyncio.sleep(self.faults.timeout_seconds)
        return None

    def _collection(self, table: str) -> Callable:
        async def endpoint(request: Request) -> Response:
            if (fault := await self._fault()) is not None:
                return fault
            q = request.query_params
            try:
                limit = int(q.get("limit", DEFAULT_LIMIT))
                if not 1 <= limit <= MAX_LIMIT:
                    raise ValueError
            except ValueError:
                return _error(400, f"limit must be an integer from 1 to {MAX_LIMIT}")
            since = q.get("updated_since")
            if since:
                try:
                    when = datetime.fromisoformat(since)
                    if when.tzinfo is None:
                        raise ValueError
                except ValueError:
                    return _error(400, "updated_since must be an ISO date-time with a zone, "
                                       "e.g. 2026-11-20T14:00:00Z")
                since = when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            after_token = q.get("after") or q.get("cursor")
            try:
                after = _untoken(after_token) if after_token else None
                page = int(q["page"]) if "page" in q else None
                if page is not None and page < 1:
                    raise ValueError("page must be 1 or more")
            except ValueError as exc:
                return _error(400, str(exc))

            with self.world.lock:
                self.world.catch_up()
                version = self.world.versions[table]
                etag_basis = [table, version, since, limit, page, after_token,
                              self.world.seed]
                etag = 'W/"' + hashlib.sha256(json.dumps(etag_basis).encode()).hexdigest()[:20] + '"'
                if request.headers.get("if-none-match") == etag:
                    return Response(status_code=304, headers={"ETag": etag})
                rows = self._ordered(table)
                if since:
                    rows = rows[bisect.bisect_right(rows, since, key=lambda t: t[0]):]
                if page is not None:
                    chunk = rows[(page - 1) * limit: page * limit]
                    more = len(rows) > page * limit
                else:
                    if after:
                        rows = rows[bisect.bisect_right(rows, after, key=lambda t: (t[0], t[1])):]
                    chunk = rows[:limit]
                    more = len(rows) > limit
                next_url = next_cursor = None
                if more and page is not None:
                    next_url = str(request.url.include_query_params(page=page + 1))
                elif more:
                    next_cursor = _token(chunk[-1][0], chunk[-1][1])
                    next_url = str(request.url.remove_query_params("cursor")
                                   .include_query_params(after=next_cursor))
                payload = json.dumps({"items": [t[2] for t in chunk], "next": next_url,
                                      "next_cursor": next_cursor, "count": len(chunk)})
            return Response(payload, media_type="application/json", headers={"ETag": etag})

        return endpoint

    async def health(self, request: Request) -> Response:
        if (fault := await self._fault()) is not None:
            return fault
        return JSONResponse({"ok": True, "system": self.system, "step": self.world.step_count})

    async def actions(self, request: Request) -> Response:
        if (fault := self.faults.roll()) == "error":
            return _error(500, "injected fault")
        if fault == "rate_limit":
            return JSONResponse({"error": "slow down"}, status_code=429,
                                headers={"Retry-After": str(self.faults.retry_after_seconds)})
        try:
            body = json.loads(await request.body())
            if not isinstance(body, dict):
                raise TypeError
        except (ValueError, TypeError):
            return _error(400, "body must be a JSON object {operation, params, idempotency_key}")
        key = request.headers.get("idempotency-key") or body.get("idempotency_key")
        if not key:
            return _error(400, "an Idempotency-Key header is required")
        if body.get("idempotency_key") not in (None, key):
            return _error(400, "Idempotency-Key header and body idempotency_key differ")
        operation = body.get("operation")
        params = body.get("params") or {}
        response = self._apply(str(key), operation, params)
        if fault == "timeout":  # applied, but the answer comes too late: the retry must dedupe
            await asyncio.sleep(self.faults.timeout_seconds)
        return response

    def _apply(self, key: str, operation: Any, params: Any) -> Response:
        with self.world.lock:
            self.world.catch_up()
            entry = self.ledger.get(key)
            if entry is None:
                entry = self.ledger[key] = {
                    "idempotency_key": key, "operation": operation, "params": params,
                    "attempts": 0, "applied": 0, "status": "pending", "id": None,
                    "detail": "", "first_received_at": self.world.tick()}
            entry["attempts"] += 1
            if entry["applied"]:
                if (operation, params) != (entry["operation"], entry["params"]):
                    return _error(422, f"idempotency key {key} was used for a different action")
                return JSONResponse({"status": "duplicate", "duplicate": True, "id": entry["id"],
                                     "operation": operation, **entry["result"]})
            entry.update(operation=operation, params=params)
            handler = self.operations.get(operation) if isinstance(operation, str) else None
            if handler is None:
                entry.update(status="rejected", detail=f"unknown operation {operation!r}")
                return _error(422, f"{self.system} does not support operation {operation!r}; "
                                   f"supported: {', '.join(sorted(self.operations))}")
            if not isinstance(params, dict):
                entry.update(status="rejected", detail="params must be an object")
                return _error(422, "params must be a JSON object")
            try:
                result = handler(self.world, params)
            except ActionError as exc:
                entry.update(status="rejected", detail=str(exc))
                return _error(422, str(exc))
            self._applied += 1
            entry.update(status="done", applied=1, id=f"{self.system}-{self._applied}",
                         result=result, detail="")
            return JSONResponse({"status": "done", "duplicate": False, "id": entry["id"],
                                 "operation": operation, **result})

    async def received(self, request: Request) -> Response:
        with self.world.lock:
            entries = [{k: v for k, v in e.items() if k != "result"} for e in self.ledger.values()]
            messages = [m for m in self.world.messages if m["system"] == self.system]
        return JSONResponse({
            "system": self.system, "actions": entries, "messages": messages,
            "attempts": sum(e["attempts"] for e in entries),
            "applied": sum(e["applied"] for e in entries)})

    async def scenario(self, request: Request) -> Response:
        with self.world.lock:
            self.world.catch_up()
            return JSONResponse({"seed": self.world.seed, "step": self.world.step_count,
                                 "auto_step_seconds": self.world.auto_step_seconds,
                                 "injected": self.world.injected,
                                 "faults": self.faults.as_dict()})

    async def step(self, request: Request) -> Response:
        return JSONResponse(self.world.step())

    async def set_faults(self, request: Request) -> Response:
        try:
            body = json.loads(await request.body() or b"{}")
            if not isinstance(body, dict):
                raise TypeError("body must be a JSON object")
            self.faults.configure(body)
        except (ValueError, TypeError) as exc:
            return _error(400, str(exc))
        return JSONResponse(self.faults.as_dict())
