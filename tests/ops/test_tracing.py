"""OpenTelemetry traces: spans for a poll, a detection pass and a decision, sent to a real OTLP
receiver only when an endpoint is configured, and nothing at all (not even an import) when not."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from datetime import timedelta

import httpx
import pytest
from sqlmodel import select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bot import tracing
from bot.decisions import decide
from bot.loop import DecisionLoop
from connectors.registry import build_connector
from sandbox.serving import BackgroundServer
from store.db import make_engine, session_scope
from store.migrate import upgrade
from store.tables import RecommendationRow
from store.types import utcnow
from tests.support.builders import PLANNERS, config


def _needs_the_extra() -> None:
    pytest.importorskip("opentelemetry.sdk", reason="the otel extra is not installed "
                        "(uv sync installs it with the dev group)")


def _memory_exporter():  # type: ignore[no-untyped-def]
    _needs_the_extra()
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    return InMemorySpanExporter()


@pytest.fixture(autouse=True)
def tracing_off_afterwards(monkeypatch):
    for name in (*tracing.ENDPOINT_VARS, "OTEL_SERVICE_NAME", "OTEL_SDK_DISABLED"):
        monkeypatch.delenv(name, raising=False)
    yield
    tracing.configure({})  # the rest of the suite runs untraced


def _loop(tmp_path, planning, tms) -> DecisionLoop:
    url = f"sqlite:///{tmp_path / 'alignbot.db'}"
    upgrade(url)
    cfg = config(connectors=[
        {"name": "plan", "kind": "rest", "system": "planning",
         "settings": {"base_url": planning.url, "demand": {}, "inventory": {}}},
        {"name": "tms", "kind": "rest", "system": "logistics",
         "settings": {"base_url": tms.url, "shipments": {}, "capacity": {}, "lanes": {}}},
    ])
    connectors = {c.name: build_connector(c.name, c.kind, c.settings, {}, timeout=5)
                  for c in cfg.connectors}
    return DecisionLoop(cfg, make_engine(url), connectors)


def test_a_poll_a_detection_pass_and_a_decision_are_spans(tmp_path, sandboxes):
    planning, tms = sandboxes
    exporter = _memory_exporter()
    assert tracing.configure({}, exporter=exporter)
    loop = _loop(tmp_path, planning, tms)
    httpx.post(planning.url + "/scenario/step", timeout=5)  # drift to detect

    assert loop.poll_and_detect("plan").ok
    spans = exporter.get_finished_spans()
    assert [(s.name, s.attributes.get("alignbot.connector")) for s in spans] == [
        ("connector.poll", "plan"),
        ("connector.poll", "tms"),  # the pass reads the source not read yet first ...
        ("detection.pass", None),
    ]
    plan_poll, tms_poll, detection = spans
    assert plan_poll.parent is None and detection.parent is None  # two operations, two traces
    assert tms_poll.parent.span_id == detection.context.span_id  # ... as part of the pass
    assert {s.resource.attributes["service.name"] for s in spans} == {"alignbot"}
    assert all(s.status.is_ok for s in spans)

    with session_scope(loop.engine) as s:
        rec = s.exec(select(RecommendationRow).where(RecommendationRow.state == "open")
                     .order_by(RecommendationRow.id)).first()
        assert rec is not None, "the injected drift must produce a recommendation"
        rec_id, teams = rec.id, set(rec.teams)
    exporter.clear()
    with session_scope(loop.engine) as s:
        decide(s, rec_id, PLANNERS[0], teams, "snooze", now=utcnow(),
               snooze_for=timedelta(hours=1))
    (decision,) = exporter.get_finished_spans()
    assert decision.name == "decision"
    assert dict(decision.attributes) == {"alignbot.recommendation_id": rec_id,
                                         "alignbot.verdict": "snooze"}


def test_a_source_that_is_down_and_an_exception_mark_their_spans_failed(tmp_path, sandboxes):
    planning, tms = sandboxes
    exporter = _memory_exporter()
    tracing.configure({}, exporter=exporter)
    loop = _loop(tmp_path, planning, tms)
    tms.stop()
    assert not loop.poll("tms").ok  # handled, not raised: the span says so all the same
    with pytest.raises(ZeroDivisionError), tracing.span("detection.pass", isolated=0):
        1 / 0  # noqa: B018
    poll, failed = exporter.get_finished_spans()
    assert poll.name == "connector.poll" and not poll.status.is_ok
    assert "ConnectError" in poll.status.description
    assert not failed.status.is_ok and failed.events[0].name == "exception"
    assert failed.attributes["alignbot.isolated"] == 0


class Collector:
    """A real OTLP/HTTP trace receiver on loopback: what a collector would be sent."""

    def __init__(self) -> None:
        self.requests: list = []
        self.app = Starlette(routes=[Route("/v1/traces", self.receive, methods=["POST"])])

    async def receive(self, request: Request) -> Response:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
        )

        message = ExportTraceServiceRequest()
        message.ParseFromString(await request.body())
        self.requests.append(message)
        return Response(b"", media_type="application/x-protobuf")

    def span_names(self) -> list[str]:
        return [s.name for r in self.requests for rs in r.resource_spans
                for ss in rs.scope_spans for s in ss.spans]

    def services(self) -> set[str]:
        return {a.value.string_value for r in self.requests for rs in r.resource_spans
                for a in rs.resource.attributes if a.key == "service.name"}


def test_spans_reach_the_otlp_endpoint_only_when_it_is_set(monkeypatch):
    _needs_the_extra()
    collector = Collector()
    with BackgroundServer(collector.app) as server:
        assert not tracing.configure()  # no endpoint in the environment: off
        with tracing.span("unseen", connector="plan"):
            pass
        tracing.flush()
        assert collector.requests == []

        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", server.url)
        monkeypatch.setenv("OTEL_SERVICE_NAME", "alignbot-worker-2")
        assert tracing.configure()
        with tracing.span("connector.poll", connector="plan"):
            pass
        tracing.flush()
        assert collector.span_names() == ["connector.poll"]
        assert collector.services() == {"alignbot-worker-2"}

        monkeypatch.setenv("OTEL_SDK_DISABLED", "true")  # the standard off switch is honoured
        assert not tracing.configure()


def test_without_an_endpoint_opentelemetry_is_never_imported(tmp_path):
    """Off costs nothing: a poll, a pass and a decision run without loading the SDK at all."""
    script = textwrap.dedent("""
        import sys
        import bot.decisions, bot.loop
        from bot.tracing import span
        for _ in range(3):
            with span("connector.poll", connector="plan"):
                pass
        assert span("a") is span("b")  # one shared no-op, nothing built per call
        loaded = sorted(m for m in sys.modules if m.startswith("opentelemetry"))
        print(loaded)
        assert not loaded, loaded
    """)
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                          text=True, timeout=60, cwd=os.getcwd())
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_an_endpoint_without_the_extra_says_what_to_install():
    script = textwrap.dedent("""
        import logging, sys
        logging.basicConfig(format="%(levelname)s %(message)s")
        sys.modules["opentelemetry"] = None  # as if the otel extra were not installed
        from bot.tracing import span
        with span("connector.poll"):
            pass
        print("ran")
    """)
    env = {**os.environ, "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                          text=True, timeout=60, cwd=os.getcwd())
    assert done.returncode == 0 and done.stdout.strip() == "ran", done.stderr
    assert "pip install 'alignbot[otel]'" in done.stderr
