"""Compare-and-set state changes with their audit row.

A transition names the states it may start from; if another writer moved the row first, the
UPDATE matches nothing and the caller learns it lost, instead of overwriting a decision.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import update
from sqlmodel import Session

from store.tables import AuditEvent, RecommendationRow
from store.types import utcnow


def transition(
    session: Session,
    recommendation_id: int,
    *,
    from_states: Iterable[str],
    to_state: str,
    actor: str,
    reason: str = "",
    expected_version: int | None = None,
    changes: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> bool:
    """Move a recommendation to ``to_state`` if it is still in ``from_states``; True if it moved."""
    now = now or utcnow()
    allowed = [str(s) for s in from_states]
    row = RecommendationRow
    conditions = [row.id == recommendation_id, row.state.in_(allowed)]  # type: ignore[union-attr,attr-defined]
    if expected_version is not None:
        conditions.append(row.version == expected_version)
    statement = (
        update(row)
        .where(*conditions)
        .values(state=str(to_state), version=row.version + 1, updated_at=now, **(changes or {}))
        .returning(row.version)
    )
    moved = session.execute(statement).first()
    if moved is None:
        return False
    session.add(AuditEvent(
        entity="recommendation", entity_id=str(recommendation_id), actor=actor,
        from_state=",".join(allowed) if len(allowed) > 1 else allowed[0], to_state=str(to_state),
        reason=reason, at=now, details={"version": moved[0]},
    ))
    return True
