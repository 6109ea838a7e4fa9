"""Group drifts that share a cause into one recommendation (like Alertmanager's ``group_by``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from detectors._common import fast_fingerprint
from detectors.model import Drift, DriftKind


@dataclass
class Group:
    kind: DriftKind
    key: dict[str, str]
    drifts: list[Drift] = field(default_factory=list)
    absorbed: list[Drift] = field(default_factory=list)  # drifts of another kind this group answers

    fingerprint: str = ""  # stable id of the recommendation: same cause, same id

    def __post_init__(self) -> None:
        if not self.fingerprint:
            self.fingerprint = fast_fingerprint(f"rec:{self.kind.value}", self.key)


def group_drifts(drifts: list[Drift], group_by: dict[str, list[str]]) -> list[Group]:
    """Drifts of one kind with equal values of its ``group_by`` cause fields form one group.

    A kind missing from ``group_by`` is not grouped: one recommendation per drift.
    """
    groups: dict[tuple, Group] = {}
    for d in drifts:
        fields = group_by.get(d.kind.value)
        if fields:
            key = {f: d.cause.get(f, d.key.get(f, "")) for f in fields}
        else:
            key = {**d.key}
        ident = (d.kind.value, tuple(sorted(key.items())))
        group = groups.get(ident)
        if group is None:
            group = groups[ident] = Group(kind=d.kind, key=key)
        group.drifts.append(d)
    out = sorted(groups.values(), key=lambda g: (g.kind.value, g.fingerprint))
    for g in out:
        g.drifts.sort(key=lambda d: d.fingerprint)
    return out
