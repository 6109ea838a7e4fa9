# syntax=docker/dockerfile:1
# The alignbot image: the wheel, installed with the locked dependency versions, run as a non-root
# user. compose.yaml runs it as `alignbot ingress` and `alignbot worker` on PostgreSQL;
# docs/operations.md walks through it. tests/ops/test_wheel.py runs these RUN commands.

FROM python:3.12-slim AS build
WORKDIR /src
COPY . .
RUN --mount=from=ghcr.io/astral-sh/uv:0.13.9,source=/uv,target=/bin/uv \
    uv build --wheel --out-dir /dist \
    && uv export --frozen --no-dev --all-extras --no-emit-project --no-hashes --output-file /dist/constraints.txt

FROM python:3.12-slim
# Optional extras, e.g. --build-arg EXTRAS=otel for OpenTelemetry traces.
ARG EXTRAS=""
ENV UV_NO_CACHE=1 \
    PATH=/opt/alignbot/bin:$PATH \
    ALIGNBOT_CONFIG=/etc/alignbot/alignbot.yml
RUN --mount=from=ghcr.io/astral-sh/uv:0.13.9,source=/uv,target=/bin/uv \
    --mount=from=build,source=/dist,target=/dist \
    uv venv /opt/alignbot \
    && uv pip install --python /opt/alignbot/bin/python --compile-bytecode \
        --constraint /dist/constraints.txt "$(echo /dist/alignbot-*.whl)${EXTRAS:+[$EXTRAS]}"
RUN useradd --system --uid 10001 --home-dir /data --create-home alignbot
USER alignbot
# SQLite (the default database, one container) keeps alignbot.db and alignbot.inbox.db here.
WORKDIR /data
VOLUME /data
# 3000: ingress (POST /slack/events, GET /healthz); 3001: worker (POST /hooks/*, /healthz, /metrics)
EXPOSE 3000 3001
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:3001/healthz', timeout=4)"]
CMD ["alignbot", "run"]
