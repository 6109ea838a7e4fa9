"""JSON routes under ``/standin/`` so a browser UI can watch the workspace and act in it.

They drive the same facade the tests use (as a person would: type a command, click, submit).
The stand-in serves on 127.0.0.1 only; these routes are for the local demo, not for the bot.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bot.standin.client import Delivery

if TYPE_CHECKING:
    from bot.standin import SlackStandin


def _delivery(d: Delivery) -> dict[str, Any]:
    return {"status": d.status, "body": d.body, "elapsed": round(d.elapsed, 4),
            "timed_out": d.timed_out, "error": d.error, **d.extra}


def control_routes(standin: SlackStandin) -> list[Route]:
    async def state(request: Request) -> JSONResponse:
        return JSONResponse(await run_in_threadpool(standin.snapshot))

    async def act(request: Request) -> JSONResponse:
        try:
            body = await request.json()
            if not isinstance(body, dict):
                raise TypeError("expected a JSON object")
        except (ValueError, TypeError) as exc:
            return JSONResponse({"ok": False, "error": f"invalid_json: {exc}"}, 400)
        action = request.path_params["action"]
        user = body.get("user")
        try:
            if action == "command":
                d = await run_in_threadpool(standin.command, str(body["text"]), user,
                                            body.get("channel"))
            elif action == "click":
                target: Any = ({"id": body["view_id"]} if body.get("view_id") else
                               standin.message(str(body["channel"]), str(body["ts"])))
                if target is None:
                    raise LookupError(f"No message {body.get('ts')} in {body.get('channel')}")
                d = await run_in_threadpool(standin.click, target, str(body["button"]), user)
            elif action == "submit":
                view = {"id": body["view_id"]} if body.get("view_id") else None
                d = await run_in_threadpool(standin.submit, view, body.get("values") or {},
                                            user)
            elif action == "home":
                d = await run_in_threadpool(standin.open_home, user)
            else:
                return JSONResponse({"ok": False, "error": f"unknown action {action!r}"}, 404)
        except KeyError as exc:
            return JSONResponse({"ok": False, "error": f"missing or unknown {exc}"}, 400)
        except (LookupError, PermissionError, ValueError) as exc:
            return JSONResponse({"ok": False, "error": str(exc)}, 400)
        return JSONResponse({"ok": True, "delivery": _delivery(d)})

    return [Route("/standin/state", state, methods=["GET"]),
            Route("/standin/{action}", act, methods=["POST"])]
