"""JSON routes under ``/standin/`` so a browser UI can watch the workspace and act in it.

They drive the same facade the tests use (as a person would: type a command, click, choose,
submit). The stand-in serves on 127.0.0.1 only; these routes are for the local demo, not for the
bot. The browser UI itself (``sandbox/slack/ui/``) is served at ``/`` and ``/ui/``.

Watching: ``GET /standin/watch?since=<etag>`` answers at once with ``{"etag", "state"}`` when
the workspace differs from what the caller last saw, or waits for the next change (at most a
few seconds, so a server stopping never waits long on a browser) and answers
``{"etag": since, "state": null}`` when nothing changed.

The demo gives the stand-in an introduction (``state["intro"]``); ``POST /standin/start`` is its
Start button.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import mimetypes
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from sandbox.slack._workspace import APP_ID, TEAM_DOMAIN, TEAM_ID
from sandbox.slack.client import Delivery
from sandbox.slack.payloads import VERIFICATION_TOKEN

if TYPE_CHECKING:
    from sandbox.slack import SlackStandin
    from sandbox.slack._workspace import Workspace

UI_DIR = Path(__file__).resolve().parent / "ui"
WATCH_MAX_WAIT = 5.0  # seconds a watch may hold its request open
_NO_STORE = {"Cache-Control": "no-store"}


def _delivery(d: Delivery) -> dict[str, Any]:
    return {"status": d.status, "body": d.body, "elapsed": round(d.elapsed, 4),
            "timed_out": d.timed_out, "error": d.error, **d.extra}


class ChangeFeed:
    """Counts workspace changes so that any number of watchers can wait without a thread each.

    One daemon thread waits on ``workspace.changed`` while someone is watching and stops after
    a quiet spell. It holds the condition's lock between waits, so no notification is missed.
    """

    IDLE_EXIT = 30.0

    def __init__(self, workspace: Workspace):
        self._ws = workspace
        self.generation = 0
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._interest = 0.0

    def touch(self) -> None:
        """Someone is watching: make sure the counting thread runs."""
        with self._lock:
            self._interest = time.monotonic()
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="standin-ui-feed",
                                                daemon=True)
                self._thread.start()

    def _run(self) -> None:
        with self._ws.changed:
            while True:
                if self._ws.changed.wait(1.0):
                    self.generation += 1
                    continue
                with self._lock:
                    if time.monotonic() - self._interest > self.IDLE_EXIT:
                        self._thread = None
                        return

    async def wait_past(self, generation: int, timeout: float) -> bool:
        """Wait until something changed after ``generation`` was read; False on timeout."""
        deadline = time.monotonic() + timeout
        while self.generation == generation:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            await asyncio.sleep(min(0.05, remaining))
        return True


def _ui_state(standin: SlackStandin) -> tuple[str, bytes]:
    """(etag, JSON body) of what the UI shows; the call counter is left out as it never rests."""
    snap = standin.snapshot()
    snap.pop("calls", None)
    body = json.dumps(snap, sort_keys=True, separators=(",", ":"), default=str).encode()
    return hashlib.sha256(body).hexdigest()[:20], body


def _close_modal(standin: SlackStandin, user_id: str | None, view_id: str | None,
                 close_all: bool) -> Delivery | None:
    """Cancel (or the ✕) on a modal: it leaves the user's stack; view_closed if asked for."""
    user = standin._user(user_id)
    ws = standin.workspace
    with ws.changed:
        stack = ws.modal_stacks.get(user.id) or []
        target = view_id or (stack[-1] if stack else None)
        if target is None or target not in stack:
            raise LookupError(f"No open modal {target or ''} for {user.id}")
        view = ws.views[target]
        closed = list(stack) if close_all else [target]
        if close_all:
            stack.clear()
        else:
            stack.remove(target)
        ws.changed.notify_all()
    if not view.get("notify_on_close"):
        return None
    payload = {
        "type": "view_closed", "team": {"id": TEAM_ID, "domain": TEAM_DOMAIN},
        "user": {"id": user.id, "username": user.name, "name": user.name,
                 "team_id": TEAM_ID},
        "api_app_id": APP_ID, "token": VERIFICATION_TOKEN,
        "view": view, "is_cleared": close_all and len(closed) > 1,
        "is_enterprise_install": False, "enterprise": None,
    }
    return standin.signer.send_interaction(payload)


def control_routes(standin: SlackStandin) -> list[Route | Mount]:
    feed = ChangeFeed(standin.workspace)

    async def state(request: Request) -> JSONResponse:
        return JSONResponse(await run_in_threadpool(standin.snapshot))

    async def watch(request: Request) -> Response:
        since = request.query_params.get("since", "")
        try:
            wait = min(max(float(request.query_params.get("wait", WATCH_MAX_WAIT)), 0.0),
                       WATCH_MAX_WAIT)
        except ValueError:
            return JSONResponse({"ok": False, "error": "wait must be a number"}, 400)
        feed.touch()
        deadline = time.monotonic() + wait
        while True:
            generation = feed.generation  # read first: a change after this wakes us below
            etag, body = await run_in_threadpool(_ui_state, standin)
            if etag != since:
                return Response(b'{"etag":"' + etag.encode() + b'","state":' + body + b"}",
                                media_type="application/json", headers=_NO_STORE)
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not await feed.wait_past(generation, remaining):
                return JSONResponse({"etag": since, "state": None}, headers=_NO_STORE)

    async def file(request: Request) -> Response:
        """An uploaded file's bytes for the browser (Slack's url_private needs the bot token)."""
        f = standin.workspace.files.get(request.path_params["file_id"])
        if f is None or f.data is None or not f.completed:
            return JSONResponse({"ok": False, "error": "file_not_found"}, 404)
        kind = mimetypes.guess_type(f.filename)[0] or "application/octet-stream"
        return Response(f.data, media_type=kind, headers=_NO_STORE)

    async def act(request: Request) -> JSONResponse:
        if not request.headers.get("content-type", "").startswith("application/json"):
            # A page on another origin cannot send JSON without a CORS preflight we never grant.
            return JSONResponse({"ok": False, "error": "send application/json"}, 415)
        try:
            body = await request.json()
            if not isinstance(body, dict):
                raise TypeError("expected a JSON object")
        except (ValueError, TypeError) as exc:
            return JSONResponse({"ok": False, "error": f"invalid_json: {exc}"}, 400)
        action = request.path_params["action"]
        user = body.get("user")
        d: Delivery | None
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
            elif action == "choose":
                message = standin.message(str(body["channel"]), str(body["ts"]))
                if message is None:
                    raise LookupError(f"No message {body.get('ts')} in {body.get('channel')}")
                d = await run_in_threadpool(standin.choose, message, str(body["action_id"]),
                                            str(body["option"]), user)
            elif action == "submit":
                view = {"id": body["view_id"]} if body.get("view_id") else None
                d = await run_in_threadpool(standin.submit, view, body.get("values") or {},
                                            user)
            elif action == "close":
                d = await run_in_threadpool(_close_modal, standin, user, body.get("view_id"),
                                            bool(body.get("all")))
            elif action == "home":
                d = await run_in_threadpool(standin.open_home, user)
            elif action == "start":  # the demo introduction's Start button
                started = await run_in_threadpool(standin.press_start)
                return JSONResponse({"ok": True, "started": started, "delivery": None})
            else:
                return JSONResponse({"ok": False, "error": f"unknown action {action!r}"}, 404)
        except KeyError as exc:
            return JSONResponse({"ok": False, "error": f"missing or unknown {exc}"}, 400)
        except (LookupError, PermissionError, ValueError) as exc:
            return JSONResponse({"ok": False, "error": str(exc)}, 400)
        return JSONResponse({"ok": True, "delivery": _delivery(d) if d is not None else None})

    async def index(request: Request) -> Response:
        return FileResponse(UI_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    return [Route("/", index, methods=["GET"]),
            Mount("/ui", StaticFiles(directory=UI_DIR), name="ui"),
            Route("/standin/state", state, methods=["GET"]),
            Route("/standin/watch", watch, methods=["GET"]),
            Route("/standin/files/{file_id}", file, methods=["GET"]),
            Route("/standin/{action}", act, methods=["POST"])]
