"""The contract every connector keeps: read incrementally, execute once, report health.

Connectors are the only code that talks to planning and logistics systems. They receive their
transport (an inner ``httpx`` transport, which they wrap in bounded retries, or a base path)
from the caller, so tests point them at real local servers or a ``MockTransport`` without
patching anything.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Literal, Protocol, runtime_checkable

from pydantic import BaseModel, Field

from canonical.model import UTC, Action, ReadResult


class ExecuteResult(BaseModel):
    """The outcome of one ``execute`` call as the target system reported it."""

    ok: bool
    status: Literal["done", "duplicate", "rejected", "error"]
    detail: str = ""
    external_id: str | None = None  # the id the target system gave the change, if any
    retryable: bool = False  # True only for transient failures (5xx, timeouts, 429)


class Health(BaseModel):
    ok: bool
    detail: str = ""
    checked_at: datetime = Field(default_factory=lambda: datetime.now(UTC))


class ConnectorError(Exception):
    """A source or target failed; ``retryable`` says whether trying again can help."""

    def __init__(self, message: str, *, retryable: bool = False):
        super().__init__(message)
        self.retryable = retryable


@runtime_checkable
class Connector(Protocol):
    name: str

    def read(self, since: str | None = None) -> ReadResult:
        """Records changed since the cursor ``since`` (None: everything), and the next cursor."""
        ...

    def execute(self, action: Action) -> ExecuteResult:
        """Perform one action; the same ``action.idempotency_key`` must never act twice."""
        ...

    def health(self) -> Health: ...


def collected(chunks: Iterable[ReadResult], since: str | None) -> ReadResult:
    """A chunked read as one result: every chunk's records, the last chunk's cursor."""
    result = ReadResult(cursor=since)
    for chunk in chunks:
        result.records.extend(chunk.records)
        result.quarantined.extend(chunk.quarantined)
        result.cursor = chunk.cursor
    return result
