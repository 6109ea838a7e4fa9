"""Group drifts that share a cause into one recommendation (like Alertmanager's ``group_by``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from operator import attrgetter

from canonical.model import Drift, DriftKind
from detectors._common import fast_fingerprint


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
    fields_of = {kind: group_by.get(kind.value) for kind in DriftKind}
    for d in drifts:
        kind = d.kind
        fields = fields_of[kind]
        if fields:  # the same fields in the same order for every drift of a kind
            cause, dkey = d.cause, d.key
            key = {f: cause[f] if f in cause else dkey.get(f, "") for f in fields}
            ident = (kind, tuple(key.values()))
        else:
            key = {**d.key}
            ident = (kind, tuple(sorted(key.items())))
        group = groups.get(ident)
        if group is None:
            group = groups[ident] = Group(kind=kind, key=key)
        group.drifts.append(d)
    by_fingerprint = attrgetter("fingerprint")
    out = sorted(groups.values(), key=lambda g: (g.kind.value, g.fingerprint))
    for g in out:
        g.drifts.sort(key=by_fingerprint)
    return out
