"""Optional OpenTelemetry traces: a poll, a detection pass, a decision, an execution.

Tracing is on only when ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``…_TRACES_ENDPOINT``) is set and
the ``otel`` extra is installed; spans then go to that collector over OTLP/HTTP, batched off
the calling thread. The exporter reads the standard ``OTEL_EXPORTER_OTLP_*`` variables
(headers, timeout, certificate) itself, and ``OTEL_SERVICE_NAME`` names the service
(``alignbot`` by default). Off, ``span`` hands back one shared do-nothing context and
opentelemetry is never imported, so the calls can stay in the hot paths.

Every attribute is recorded as ``alignbot.<name>``; a decision's and an execution's
``alignbot.recommendation_id`` is what links the spans of one recommendation's life.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import logging
import os
import threading
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from typing import Any, TypeVar

log = logging.getLogger(__name__)

ENDPOINT_VARS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
SERVICE_NAME = "alignbot"

F = TypeVar("F", bound=Callable[..., Any])

_OFF: AbstractContextManager[None] = contextlib.nullcontext()
_lock = threading.Lock()
_tracer: Any = None  # None: not decided yet (decided at the first span); False: off
_provider: Any = None


def wanted(environ: Mapping[str, str] | None = None) -> bool:
    """Whether the environment asks for traces (an OTLP endpoint, and the SDK not disabled)."""
    env = os.environ if environ is None else environ
    return any(env.get(name) for name in ENDPOINT_VARS) \
        and env.get("OTEL_SDK_DISABLED", "").strip().lower() != "true"


def configure(environ: Mapping[str, str] | None = None, *, exporter: Any = None) -> bool:
    """Decide now whether to trace; True if spans will be exported.

    ``exporter`` (an opentelemetry ``SpanExporter``) replaces OTLP and receives each span as
    it ends, whatever the environment says: for tests. Calling again replaces the previous
    set-up, flushing what it still held.
    """
    global _tracer, _provider
    env = os.environ if environ is None else environ
    with _lock:
        if _provider is not None:
            _provider.shutdown()
        _tracer, _provider = False, None
        if exporter is None and not wanted(env):
            return False
        try:
            from opentelemetry.sdk.resources import Resource
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
        except ImportError:
            log.warning("an OTLP endpoint is set but the otel extra is not installed "
                        "(pip install 'alignbot[otel]'): no traces are exported")
            return False
        if exporter is None:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            processor: Any = BatchSpanProcessor(OTLPSpanExporter())
        else:
            processor = SimpleSpanProcessor(exporter)
        # OTEL_SERVICE_NAME, when set, wins: Resource.create lets passed attributes override it
        resource = Resource.create({} if env.get("OTEL_SERVICE_NAME")
                                   else {"service.name": SERVICE_NAME})
        provider = TracerProvider(resource=resource)  # flushes its spans at exit
        provider.add_span_processor(processor)
        _provider, _tracer = provider, provider.get_tracer("alignbot")
        return True


def flush(timeout_seconds: float = 5.0) -> None:
    """Send the spans still batched (before a process ends, or in a test)."""
    if _provider is not None:
        _provider.force_flush(int(timeout_seconds * 1000))


def span(name: str, **attributes: Any) -> AbstractContextManager[Any]:
    """A span around a ``with`` block (an exception in it is recorded and marks it failed);
    a shared no-op when tracing is off. ``None`` attributes are left out."""
    tracer = _tracer
    if tracer is None:
        configure()
        tracer = _tracer
    if tracer is False:
        return _OFF
    return tracer.start_as_current_span(
        name, attributes={f"alignbot.{key}": _attribute(value)
                          for key, value in attributes.items() if value is not None})


def mark_failed(reason: str) -> None:
    """Mark the current span failed, for a failure handled rather than raised (a source down)."""
    if _tracer:
        from opentelemetry.trace import Status, StatusCode, get_current_span

        get_current_span().set_status(Status(StatusCode.ERROR, reason[:500]))


def traced(name: str, *params: str) -> Callable[[F], F]:
    """Decorator: each call of the function is a span, with the named parameters' values as
    attributes (for functions with many return paths, where a ``with`` would re-indent all)."""
    def wrap(fn: F) -> F:
        signature = inspect.signature(fn)

        @functools.wraps(fn)
        def call(*args: Any, **kwargs: Any) -> Any:
            if _tracer is False:
                return fn(*args, **kwargs)
            bound = signature.bind_partial(*args, **kwargs).arguments
            with span(name, **{p: bound.get(p) for p in params}):
                return fn(*args, **kwargs)
        return call  # type: ignore[return-value]
    return wrap


def _attribute(value: Any) -> Any:
    """A value OpenTelemetry accepts: str, bool, int, float (anything else as its text)."""
    return value if isinstance(value, (str, bool, int, float)) else str(value)


__all__ = ["ENDPOINT_VARS", "configure", "flush", "mark_failed", "span", "traced", "wanted"]
