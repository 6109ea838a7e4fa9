"""Structured logs: one JSON object per line, with secrets masked before anything is written.

``configure_logging`` puts one handler on the root logger. Everything that propagates to the
root (alignbot, slack_sdk, slack_bolt, httpx, sqlalchemy, apscheduler, and uvicorn when it runs
with ``log_config=None``) goes through two filters on that handler:

* ``ContextFilter`` adds the fields bound with ``log_context(...)`` (a request id, the
  recommendation being decided) to every record logged inside that block, on that thread or
  task (``contextvars``). Fields passed as ``extra=`` win over bound ones.
* ``RedactingFilter`` masks every configured secret value (and its URL- and JSON-escaped forms)
  and, generically, Slack tokens (``xoxb-…``, ``xoxp-…``, ``xapp-…``, …), ``Bearer <token>``,
  ``Authorization:`` header values, Slack request signatures (``v0=<hex>``) and
  ``token=``/``secret=``-style key-value pairs, in the message, its arguments, the ``extra``
  fields, the exception text and the stack. The record is rewritten in place, so any other
  handler that sees it afterwards sees it masked too.

Each line carries ``ts`` (UTC, ISO 8601 with milliseconds and ``Z``), ``level``, ``logger``,
``message``, the context and ``extra`` fields, and ``exc_type``/``exc`` when an exception is
attached.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import re
import sys
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from types import MappingProxyType
from typing import IO, Any
from urllib.parse import quote, quote_plus

REDACTED = "[REDACTED]"
MIN_SECRET_LENGTH = 4  # shorter "secrets" would mask ordinary words

# Attributes every LogRecord has; anything else on a record came from ``extra=`` or a filter.
_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}
# Extras not written out: uvicorn's ``color_message`` is a copy of the message template with
# terminal colours, for its own formatter (which we do not use). It is still masked in place.
_NOT_WRITTEN = _STANDARD | {"color_message"}
# Terminal control sequences (colours, cursor moves: CSI; titles, links: OSC) that libraries
# such as click, rich or a remote system's error text may put in a message.
_TERMINAL_CODES = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-_]")

_GENERIC: list[tuple[re.Pattern[str], str]] = [
    # Authorization / Proxy-Authorization header values: "Authorization: Bearer x", dict reprs
    # like {'Authorization': 'Basic x'} and JSON. Runs first: the whole value goes.
    (re.compile(r"""(?i)((?:proxy-)?authorization['"]?\s*[:=]\s*['"]?)[^'"\r\n,;}]+"""),
     r"\1" + REDACTED),
    # Slack tokens: bot, user, app-level, refresh, configuration ... (xoxe.xoxp-1-…)
    (re.compile(r"\b(?:xox[abeoprs](?:\.xox[a-z])?|xapp)-[A-Za-z0-9-]+"), REDACTED),
    (re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]+"), r"\1 " + REDACTED),
    # Slack request signatures (X-Slack-Signature: v0=<hex>)
    (re.compile(r"\bv0=[0-9a-fA-F]{16,}"), "v0=" + REDACTED),
    # token=…, client_secret: "…", 'signing_secret': '…', password=… in URLs, forms and reprs
    (re.compile(r"""(?i)(\b[a-z_]*(?:token|secret|password|passwd|api_?key)['"]?\s*[:=]\s*"""
                r"""['"]?)(?!\[REDACTED\])[^'"\s&,;}]+"""),
     r"\1" + REDACTED),
]


class Redactor:
    """Masks known secret values and secret-looking patterns in text."""

    def __init__(self, secrets: Iterable[str] = ()):
        variants: set[str] = set()
        for secret in secrets:
            if not secret or len(secret) < MIN_SECRET_LENGTH:
                continue
            variants.update({secret, quote(secret, safe=""), quote_plus(secret),
                             json.dumps(secret)[1:-1]})
        # longest first, so a secret that contains another is masked whole
        ordered = sorted(variants, key=len, reverse=True)
        self._secrets = re.compile("|".join(map(re.escape, ordered))) if ordered else None

    def text(self, value: str) -> str:
        if self._secrets is not None:
            value = self._secrets.sub(REDACTED, value)
        for pattern, replacement in _GENERIC:
            value = pattern.sub(replacement, value)
        return value

    def value(self, value: Any) -> Any:
        """Mask strings anywhere inside ``value``; other leaves are kept (or stringified)."""
        if isinstance(value, str):
            return self.text(value)
        if value is None or isinstance(value, (bool, int, float)):
            return value
        if isinstance(value, Mapping):
            return {self.text(str(k)): self.value(v) for k, v in value.items()}
        if isinstance(value, (list, tuple, set, frozenset)):
            return [self.value(v) for v in value]
        return self.text(_to_text(value))


def _to_text(value: Any) -> str:
    try:
        return str(value)
    except Exception:  # noqa: BLE001 — a broken __str__ must not lose the log line
        return f"<unprintable {type(value).__name__}>"


class RedactingFilter(logging.Filter):
    """Rewrites each record with secrets masked (message, args, extras, exception, stack)."""

    def __init__(self, secrets: Iterable[str] = ()):
        super().__init__()
        self.redactor = Redactor(secrets)

    def filter(self, record: logging.LogRecord) -> bool:
        r = self.redactor
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 — bad %-args: keep what we have rather than drop the line
            message = f"{_to_text(record.msg)} {_to_text(record.args)}"
        record.msg, record.args = r.text(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = r.text(record.exc_text)
        if record.stack_info:
            record.stack_info = r.text(record.stack_info)
        for key, value in list(record.__dict__.items()):
            if key not in _STANDARD:
                record.__dict__[key] = r.value(value)
        return True


# -- context ----------------------------------------------------------------------------------

_context: contextvars.ContextVar[Mapping[str, Any]] = contextvars.ContextVar(
    "alignbot_log_context", default=MappingProxyType({}))


@contextlib.contextmanager
def log_context(**fields: Any) -> Iterator[Mapping[str, Any]]:
    """Add ``fields`` (None values are skipped) to every log line inside the block.

    Nested blocks add to (and may override) the outer fields; leaving a block restores them.
    """
    merged = {**_context.get(), **{k: v for k, v in fields.items() if v is not None}}
    token = _context.set(MappingProxyType(merged))
    try:
        yield _context.get()
    finally:
        _context.reset(token)


def current_context() -> Mapping[str, Any]:
    return _context.get()


def new_request_id() -> str:
    return uuid.uuid4().hex[:16]


class ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in _context.get().items():
            if key not in record.__dict__:
                record.__dict__[key] = value
        return True


class ContextThreadPoolExecutor(ThreadPoolExecutor):
    """A thread pool whose tasks run in the submitter's context, so ``log_context`` follows.

    Bolt runs listeners on its ``listener_executor``; pass one of these
    (``App(..., listener_executor=ContextThreadPoolExecutor(max_workers=10))``) and the fields
    bound while a request is dispatched show up in the listener's log lines too.
    """

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        ctx = contextvars.copy_context()
        return super().submit(ctx.run, fn, *args, **kwargs)


_TRAILING_ID = re.compile(r"[^0-9](\d+)$")


def _number(text: str) -> int | None:
    """``text`` as a number to log, if it is ASCII digits of a sane length: ``isdigit()`` also
    accepts "²", and int() refuses that and anything of 4,300 digits or more."""
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 20 else None


def slack_request_fields(body: Mapping[str, Any]) -> dict[str, Any]:
    """Loggable fields of a Slack request body: who, where, and which recommendation."""
    fields: dict[str, Any] = {"slack_type": body.get("type") or
                              ("slash_command" if body.get("command") else None)}
    user = body.get("user")
    fields["slack_user"] = user.get("id") if isinstance(user, Mapping) else body.get("user_id")
    team = body.get("team")
    fields["slack_team"] = team.get("id") if isinstance(team, Mapping) else body.get("team_id")
    rec_id = None
    for action in body.get("actions") or []:
        value = str(action.get("value") or (action.get("selected_option") or {}).get("value")
                    or "")
        rec_id = _number(value)
        if rec_id is None and (tail := _TRAILING_ID.search(str(action.get("block_id") or ""))):
            rec_id = _number(tail.group(1))
        if rec_id is not None:
            break
    view = body.get("view")
    if rec_id is None and isinstance(view, Mapping):
        rec_id = _number(str(view.get("private_metadata") or ""))
    fields["recommendation_id"] = rec_id
    return {k: v for k, v in fields.items() if v is not None}


SLACK_FIELDS = ("request_id", "slack_type", "slack_user", "slack_team", "recommendation_id")
_REQUEST_ID_KEY = "alignbot_request_id"  # where the id travels in Bolt's per-request context


def dispatch_in_log_context(app: Any, request: Any) -> Any:
    """``app.dispatch(request)`` with a fresh ``request_id`` and the Slack request's fields
    bound for its duration: the HTTP endpoint calls this instead of ``app.dispatch``.

    Listeners that Bolt runs after the ack (on its ``listener_executor``) keep the fields when
    that executor is a ``ContextThreadPoolExecutor``.
    """
    request_id = new_request_id()
    request.context[_REQUEST_ID_KEY] = request_id
    with log_context(request_id=request_id, **slack_request_fields(request.body or {})):
        return app.dispatch(request)


def bolt_log_context_middleware(context: Any, body: dict, next: Callable[[], Any]) -> Any:
    """Bolt global middleware (``app.use(...)``) binding the Slack request's fields.

    Bolt calls middleware one after the other (``next()`` only marks the chain as continued),
    so this cannot scope a block; it *replaces* the Slack fields in the current context
    instead, so nothing from the previous request on the same thread survives. It is what
    covers Socket Mode, where the handler calls ``app.dispatch`` itself; over HTTP,
    ``dispatch_in_log_context`` has bound the same fields already and its request id is kept.
    """
    request_id = context.get(_REQUEST_ID_KEY) or new_request_id()
    context[_REQUEST_ID_KEY] = request_id
    base = {k: v for k, v in _context.get().items() if k not in SLACK_FIELDS}
    _context.set(MappingProxyType(
        {**base, "request_id": request_id, **slack_request_fields(body or {})}))
    return next()


# -- formatting -------------------------------------------------------------------------------

def _plain(value: Any) -> Any:
    """``value`` with terminal control sequences taken out of every string inside it."""
    if isinstance(value, str):
        return _TERMINAL_CODES.sub("", value) if "\x1b" in value else value
    if isinstance(value, Mapping):
        return {_plain(str(k)): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


class JsonFormatter(logging.Formatter):
    """One JSON object per line; never raises on odd ``extra`` values, and carries no terminal
    colour codes (a log collector would store them as text)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _NOT_WRITTEN and key not in entry:
                entry[key] = value
        if record.exc_info:
            entry["exc_type"] = getattr(record.exc_info[0], "__name__", None)
            entry["exc"] = record.exc_text or self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exc"] = record.exc_text
        if record.stack_info:
            entry["stack"] = record.stack_info
        return json.dumps(_plain(entry), default=lambda v: _plain(_to_text(v)),
                          ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """For people at a terminal: time, level, logger, message, then the context fields."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds") \
            .replace("+00:00", "Z")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        extras = {k: v for k, v in record.__dict__.items() if k not in _NOT_WRITTEN}
        if extras:
            first, nl, rest = text.partition("\n")
            text = first + " " + " ".join(f"{k}={_to_text(v)}" for k, v in extras.items()) \
                + nl + rest
        return text


class _Handler(logging.StreamHandler):  # type: ignore[type-arg]
    """Marks the handler ``configure_logging`` installed, so calling it again replaces it."""


_configure_lock = threading.Lock()


def configured_secrets(config: Any, environ: Mapping[str, str]) -> list[str]:
    """Every secret value the configuration names: Slack tokens and signing secret, each
    connector's ``secrets`` and webhook secret, and the database URL's password."""
    slack = config.slack
    names = [slack.bot_token_env, slack.signing_secret_env, slack.app_token_env]
    for conn in config.connectors:
        names += list(conn.secrets.values())
        if conn.webhook_secret_env:
            names.append(conn.webhook_secret_env)
    values = [environ.get(name) or "" for name in names]
    url = environ.get(config.database_url_env) or config.database_url_default
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    with contextlib.suppress(ArgumentError, ValueError):  # a bad URL fails later, loudly
        values.append(make_url(url).password or "")
    return [v for v in values if v]


UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi")

_uncaught = logging.getLogger("bot.uncaught")


def _log_thread_exception(args: threading.ExceptHookArgs) -> None:
    """``threading.excepthook``: a thread's unhandled exception as one masked log line, where
    Python would print a raw traceback (secrets and all) to stderr."""
    if args.exc_type is SystemExit:
        return  # as Python's own hook: a thread ending with sys.exit() is no failure
    name = args.thread.name if args.thread is not None else "unknown"
    _uncaught.error("unhandled exception in thread %s", name,
                    exc_info=(args.exc_type, args.exc_value, args.exc_traceback))


def _log_uncaught(exc_type: type[BaseException], exc: BaseException, tb: Any) -> None:
    """``sys.excepthook``: the same for the main thread (typer's hook would print locals)."""
    _uncaught.critical("unhandled exception", exc_info=(exc_type, exc, tb))


def _log_unraisable(unraisable: Any) -> None:
    """``sys.unraisablehook``: exceptions Python can only ignore (in ``__del__``, callbacks)."""
    where = unraisable.err_msg or "Exception ignored in"
    _uncaught.error("%s: %s", where, _to_text(unraisable.object),
                    exc_info=(unraisable.exc_type, unraisable.exc_value,
                              unraisable.exc_traceback))


def configure_logging(level: int | str = "INFO", json: bool = True,
                      stream: IO[str] | None = None, secrets: Iterable[str] = (), *,
                      levels: Mapping[str, int | str] | None = None) -> logging.Handler:
    """Send every log record to ``stream`` (stderr) as JSON lines (or text), secrets masked.

    Replaces the root logger's handlers with one handler; call it again to reconfigure.
    ``levels`` sets individual loggers (e.g. ``{"sqlalchemy.engine": "INFO"}`` for SQL, which
    SQLAlchemy otherwise keeps at WARNING whatever the root level).

    uvicorn's default logging config gives its loggers their own handlers and stops them
    propagating; this undoes that, but uvicorn re-applies it when a server is built with the
    default ``log_config``: build it with ``log_config=None``. As a second line of defence the
    redaction filter also sits on uvicorn's loggers themselves, where its own config keeps it,
    so even lines uvicorn writes through its own handlers are masked.

    Failures nobody catches go the same way rather than to stderr raw: it installs
    ``threading.excepthook``, ``sys.excepthook`` and ``sys.unraisablehook``. asyncio loops
    need nothing: their default exception handler logs to the ``asyncio`` logger.
    """
    redacting = RedactingFilter(secrets)
    handler = _Handler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if json else TextFormatter())
    handler.addFilter(ContextFilter())
    handler.addFilter(redacting)
    root = logging.getLogger()
    with _configure_lock:
        for old in list(root.handlers):
            root.removeHandler(old)
            if isinstance(old, _Handler):
                old.close()
        root.addHandler(handler)
        root.setLevel(_level(level))
        for name in UVICORN_LOGGERS:
            lg = logging.getLogger(name)
            for old in list(lg.handlers):
                lg.removeHandler(old)
            for old_filter in [f for f in lg.filters if isinstance(f, RedactingFilter)]:
                lg.removeFilter(old_filter)
            lg.addFilter(redacting)
            lg.propagate = True
            lg.setLevel(logging.NOTSET)
        for name, lvl in (levels or {}).items():
            logging.getLogger(name).setLevel(_level(lvl))
        threading.excepthook = _log_thread_exception
        sys.excepthook = _log_uncaught
        sys.unraisablehook = _log_unraisable
    logging.captureWarnings(True)
    return handler


def _level(level: int | str) -> int | str:
    return level.upper() if isinstance(level, str) else level


__all__ = [
    "REDACTED",
    "SLACK_FIELDS",
    "UVICORN_LOGGERS",
    "ContextFilter",
    "ContextThreadPoolExecutor",
    "JsonFormatter",
    "RedactingFilter",
    "Redactor",
    "TextFormatter",
    "bolt_log_context_middleware",
    "configure_logging",
    "current_context",
    "dispatch_in_log_context",
    "log_context",
    "new_request_id",
    "slack_request_fields",
]
