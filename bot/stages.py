"""Work as a list of stages, read top to bottom, as in Alertmanager's notify pipeline.

A stage takes one item's context and returns it to go on, or None to stop the item there; so
the list is the whole story of an item, and each stage can be read (and tested) alone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from sqlalchemy.engine import Engine

from store.db import session_scope

T = TypeVar("T")
Stage = Callable[[T], T | None]


def run(stages: Iterable[Stage[T]], item: T) -> T | None:
    """``item`` through each stage in turn; None if a stage stopped it."""
    for stage in stages:
        if (item := stage(item)) is None:  # type: ignore[assignment]
            return None
    return item


def in_transaction(engine: Engine, *stages: Stage[Any]) -> Stage[Any]:
    """One stage that runs ``stages`` in one transaction, open as ``item.s`` meanwhile."""

    def stage(item: Any) -> Any:
        with session_scope(engine) as item.s:
            return run(stages, item)

    return stage
