"""``GET /healthz``: is the database migrated, does Slack accept the token, is data fresh?"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from sqlalchemy.engine import Engine
from sqlmodel import select

from bot.config import AlignbotConfig
from store.db import read_scope
from store.migrate import ensure_migrated
from store.tables import ConnectorHealth
from store.types import utcnow

if TYPE_CHECKING:
    from bot.loop import PassOutcome


def health_report(engine: Engine, client: WebClient, config: AlignbotConfig, *, worker: str,
                  leader: bool, last_pass: PassOutcome | None,
                  inbox_waiting: Callable[[], int]) -> dict[str, Any]:
    """The worker's health: what each part it depends on says, and whether all are well."""
    checks: dict[str, Any] = {}
    try:
        ensure_migrated(engine)
        checks["database"] = {"ok": True}
    except Exception as exc:  # unreachable or behind: either way not healthy
        checks["database"] = {"ok": False, "error": str(exc)[:300]}
    try:
        client.auth_test()
        checks["slack"] = {"ok": True}
    except SlackApiError as exc:
        checks["slack"] = {"ok": False, "error": exc.response.get("error")}
    except Exception as exc:
        checks["slack"] = {"ok": False, "error": type(exc).__name__}
    now = utcnow()
    connectors = {}
    if checks["database"]["ok"]:
        with read_scope(engine) as s:
            rows = {h.connector: h for h in s.exec(select(ConnectorHealth))}
        for conn in config.connectors:
            row = rows.get(conn.name)
            last = row.last_success_at if row else None
            age = (now - last).total_seconds() if last else None
            stale = bool(row and row.stale) or (
                age is not None and age > conn.stale_after.total_seconds())
            connectors[conn.name] = {
                "ok": last is not None and not stale, "last_success": last.isoformat()
                if last else None, "age_seconds": round(age, 1) if age is not None else None,
                "stale": stale, "last_error": row.last_error if row else ""}
    checks["connectors"] = connectors
    checks["detection"] = _detection(last_pass)
    try:
        checks["inbox"] = {"waiting": inbox_waiting()}
    except Exception as exc:  # the inbox's own SQLite file can fail on its own
        checks["inbox"] = {"error": str(exc)[:300]}
    ok = checks["database"]["ok"] and checks["slack"]["ok"] and checks["detection"]["ok"] and all(
        c["ok"] for c in connectors.values())
    return {"ok": ok, "worker": worker, "leader": leader, **checks}


def _detection(last: PassOutcome | None) -> dict[str, Any]:
    """The last detection pass this replica ran: failing passes make the bot unhealthy; key
    groups left out of a pass that went on are listed (they are in ``quarantined_records``)."""
    if last is None:
        return {"ok": True, "last_pass": None}
    return {"ok": last.ok, "last_pass": last.at.isoformat(), "isolated": last.isolated,
            **({"error": last.error} if last.error else {})}
