"""What ``alignbot inspect`` shows, written as it is read, so a file is never held whole.

An inspection is a stream of items: canonical records, and ``Flagged`` ones (quarantined or
skipped, with the reason). ``show`` writes each as it comes — JSON lines on stdout, or tables of
at most ``TABLE_ROWS`` rows per record kind — and the reasons on stderr, and returns the counts
for the summary line. Any reader can feed it: a generator over a file, or lists it already has
(``from_lists``).
"""

from __future__ import annotations

import json
import sys
import textwrap
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Literal, TextIO

from pydantic import BaseModel
from rich.console import Console

from canonical.model import Quarantined

TABLE_ROWS = 1_000  # rows per table: a table is laid out whole, so a long file is shown in parts
WIDTH = 200


@dataclass(frozen=True)
class Flagged:
    """A record that was not read (``quarantined``: bad; ``skipped``: valid, nothing to read)."""

    label: Literal["quarantined", "skipped"]
    item: Quarantined


Item = BaseModel | Flagged


@dataclass
class Counts:
    records: int = 0
    quarantined: int = 0
    skipped: int = 0


def from_lists(records: Iterable[BaseModel], quarantined: Iterable[Quarantined] = (),
               skipped: Iterable[Quarantined] = ()) -> Iterator[Item]:
    yield from records
    for item in quarantined:
        yield Flagged("quarantined", item)
    for item in skipped:
        yield Flagged("skipped", item)


def show(items: Iterable[Item], *, json_output: bool, err: Console) -> Counts:
    """Write every item as it comes (records to stdout, the others to ``err``); the counts."""
    counts = Counts()
    tables = _Tables(sys.stdout) if not json_output else None
    for item in items:
        if isinstance(item, Flagged):
            setattr(counts, item.label, getattr(counts, item.label) + 1)
            q = item.item
            if json_output:
                sys.stderr.write(json.dumps({item.label: True, "source": q.source,
                                             "position": q.position, "reason": q.reason}) + "\n")
            else:
                err.print(f"{item.label}: {q.position}: {q.reason}", markup=False)
            continue
        counts.records += 1
        if tables is None:
            line = {"kind": type(item).__name__, **item.model_dump(mode="json")}
            sys.stdout.write(json.dumps(line, sort_keys=False) + "\n")
        else:
            tables.add(item)
    if tables is not None:
        tables.finish()
    sys.stdout.flush()
    sys.stderr.flush()
    return counts


class _Tables:
    """One table per record kind, printed every ``TABLE_ROWS`` rows and at the end: titled
    ``Kind (n)`` when it all fits in one, ``Kind (rows a–b)`` when it is shown in parts."""

    def __init__(self, out: TextIO):
        self.out = out
        self.rows: dict[str, list[BaseModel]] = {}
        self.shown: dict[str, int] = {}

    def add(self, record: BaseModel) -> None:
        kind = type(record).__name__
        rows = self.rows.setdefault(kind, [])
        rows.append(record)
        if len(rows) >= TABLE_ROWS:
            self._print(kind, final=False)

    def finish(self) -> None:
        for kind in list(self.rows):
            if self.rows[kind]:
                self._print(kind, final=True)

    def _print(self, kind: str, *, final: bool) -> None:
        rows, before = self.rows[kind], self.shown.get(kind, 0)
        title = (f"{kind} ({len(rows)})" if final and not before
                 else f"{kind} (rows {before + 1}–{before + len(rows)})")
        self.out.write(_table(title, rows))
        self.shown[kind] = before + len(rows)
        self.rows[kind] = []


def _table(title: str, rows: list[BaseModel]) -> str:
    columns = [name for name in type(rows[0]).model_fields if name != "reference"]
    cells = []
    for row in rows:
        values = row.model_dump(mode="json")
        cells.append([_cell(values.get(name)) for name in columns])
    return render_table(title, columns, cells)


def render_table(title: str, columns: list[str], rows: list[list[str]],
                 width: int = WIDTH) -> str:
    """The table as text, drawn as rich draws one (heavy head, light body), cells folded to
    fit ``width``. Laid out by hand: rich takes ~0.5 ms a row, too slow for a million rows."""
    widths = [max([len(name), *(max(map(len, cell.splitlines() or [""])) for cell in column)])
              for name, column in zip(columns, zip(*rows))] if rows else [len(c) for c in columns]
    room = width - 3 * len(columns) - 1  # "│ " before each cell, " │" after the last
    while sum(widths) > room and max(widths) > 1:
        widths[widths.index(max(widths))] -= 1

    def lines(cells: list[str], left: str, mid: str, right: str) -> list[str]:
        folded = [_fold(cell, w) for cell, w in zip(cells, widths)]
        height = max(len(f) for f in folded)
        return [left + mid.join(f"{(f[i] if i < len(f) else ''):<{w}}"
                                for f, w in zip(folded, widths)) + right
                for i in range(height)]

    def rule(left: str, mid: str, right: str, fill: str) -> str:
        return left + mid.join(fill * (w + 2) for w in widths) + right

    out = [rule("┏", "┳", "┓", "━"), *lines(columns, "┃ ", " ┃ ", " ┃"),
           rule("┡", "╇", "┩", "━")]
    for row in rows:
        out.extend(lines(row, "│ ", " │ ", " │"))
    out.append(rule("└", "┴", "┘", "─"))
    return "\n".join([title.center(len(out[0])).rstrip(), *out]) + "\n"


def _fold(text: str, width: int) -> list[str]:
    """``text`` in lines of at most ``width``: at spaces where it can, within words where not."""
    if len(text) <= width and "\n" not in text:
        return [text]
    folded = []
    for line in text.splitlines() or [""]:
        folded.extend(textwrap.wrap(line, width, break_on_hyphens=False) or [""])
    return folded


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return ", ".join(f"{v['sku']}×{v['qty']:g}" if isinstance(v, dict) and "sku" in v
                         else str(v) for v in value)
    return str(value)
