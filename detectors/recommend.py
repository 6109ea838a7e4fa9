"""Turn grouped drifts into recommendations a planner can sign.

Every sku × location short of safety stock is answered by exactly one recommendation (a late
shipment's before a demand change's before a plain stock-out's), so a delay and the stock-out
it causes are one decision. For each such shortfall the options are built and run on the
projection (``detectors.options``): transfer (one global model over lanes, only stock that
arrives in time), expedite an inbound shipment, re-source from the SKU's supply, and those
combined; the cheapest that acts is recommended. Capacity cuts are answered by one global
reassignment onto other carriers (never a cut one) and rephasing what no carrier takes.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np
import polars as pl

from canonical.model import Action, DriftKind, Impact, Recommendation, trusted
from detectors._common import severity_of
from detectors.capacity_shift import next_period_with_room, resource_loads
from detectors.grouping import Group
from detectors.options import Evaluated, Plan, as_option, evaluate, nothing, why_lost
from detectors.projection import Projection, Receipts
from detectors.settings import DetectorSettings
from detectors.transfers import plan_reassignment, plan_transfers

# who answers a shortfall at a sku × location when several groups touch it
_OWNER_PRECEDENCE = {DriftKind.DISRUPTION: 0, DriftKind.DEMAND_CHANGE: 1, DriftKind.STOCKOUT_RISK: 2}


@dataclass(frozen=True)
class Context:
    """The tables recommendations need besides the drifts themselves."""

    projection: Projection
    figures: pl.DataFrame  # stockout_risk.figures_frame(projection): one row per position
    shipments: pl.DataFrame
    capacity: pl.DataFrame
    lanes: pl.DataFrame
    settings: DetectorSettings
    now: datetime
    loads: pl.DataFrame | None = None  # resource_loads of the capacity drifts


@dataclass
class Need:
    """One sku × location below safety stock, and the group that answers it."""

    pos: int
    sku: str
    location: str
    units: float  # whole units below safety stock at the lowest point
    first_below: float  # days from now
    last_below: float
    owner: Group


class Lookup:
    """What recommendations read, gathered once per pass: positions of the keys groups name,
    the projection's figures as arrays, inbound receipts and shipments by id."""

    FIGURES = ("on_hand", "safety_stock", "unit_value", "daily_demand", "inbound_qty", "min_projected",
               "units_short", "days_below_safety", "below_safety_in_days", "last_below_safety", "spare")

    def __init__(self, groups: list[Group], ctx: Context) -> None:
        self.ctx = ctx
        self.pos: dict[tuple[str, str], int] = {}
        self.key: dict[int, tuple[str, str]] = {}
        self.add([k for g in groups for k in _keys_of(g)])
        self.col = {name: ctx.figures.get_column(name).to_numpy() for name in self.FIGURES}
        self._rounded: dict[str, np.ndarray] = {}
        self._order = ctx.projection.receipt_order()
        self._sorted_pos = ctx.projection.receipts.pos[self._order]

    def add(self, keys: list[tuple[str, str]]) -> None:
        """Look up the positions of more keys (one query for all of them)."""
        missing = [k for k in dict.fromkeys(keys) if k not in self.pos]
        if not missing:
            return
        found = (pl.DataFrame({"sku": [k[0] for k in missing], "location": [k[1] for k in missing]},
                              schema={"sku": pl.Utf8, "location": pl.Utf8})
                 .join(self.ctx.figures.select("sku", "location").with_row_index("pos"), on=["sku", "location"]))
        for sku, loc, p in found.iter_rows():
            self.pos[(sku, loc)] = int(p)
            self.key[int(p)] = (sku, loc)

    def receipts_at(self, pos: int) -> np.ndarray:
        """Indices (into the projection's receipts) of the receipts at ``pos``."""
        lo, hi = np.searchsorted(self._sorted_pos, [pos, pos + 1])
        return self._order[lo:hi]

    def receipts_of(self, shipment_ids: list[str]) -> dict[str, np.ndarray]:
        """Indices of each shipment's receipts (its lines within the horizon)."""
        if not shipment_ids:
            return {}
        refs = pl.Series("ref", self.ctx.projection.receipts.ref.tolist(), dtype=pl.Utf8)
        rows = pl.DataFrame({"ref": refs}).with_row_index("i").filter(pl.col("ref").is_in(shipment_ids))
        out: dict[str, list[int]] = defaultdict(list)
        for i, ref in rows.iter_rows():
            out[ref].append(i)
        return {k: np.asarray(v) for k, v in out.items()}

    def shipments(self, shipment_ids: list[str]) -> dict[str, dict[str, Any]]:
        """Mode, carrier, current arrival and total units of each shipment."""
        if not shipment_ids:
            return {}
        rows = (self.ctx.shipments.filter(pl.col("shipment_id").is_in(shipment_ids))
                .group_by("shipment_id", maintain_order=True)
                .agg(pl.col("mode").first(), pl.col("carrier").first(),
                     pl.coalesce("eta", "planned_arrival").first().alias("arrival"), pl.col("qty").sum()))
        return {r["shipment_id"]: r for r in rows.iter_rows(named=True)}

    def figure(self, pos: int, name: str) -> float:
        value = self.col[name][pos]
        return float("nan") if value is None else float(value)

    def shown(self, pos: int, name: str) -> float:
        """A figure as a message shows it: two decimals."""
        rounded = self._rounded.get(name)
        if rounded is None:
            rounded = self._rounded[name] = np.round(self.col[name].astype(float), 2)
        return float(rounded[pos])


def _keys_of(g: Group) -> list[tuple[str, str]]:
    """Every sku × location a group's drifts name."""
    out = []
    for d in g.drifts:
        if g.kind is DriftKind.DISRUPTION:
            out += [(ln["sku"], d.evidence["destination"]) for ln in d.evidence.get("lines") or []]
        elif "sku" in d.key and "location" in d.key:
            out.append((d.key["sku"], d.key["location"]))
    return out


def _u(x: float) -> str:
    return f"{x:,.0f}"


def _units(x: float) -> str:
    return f"{x:,.0f} unit" + ("" if round(x) == 1 else "s")


def _q(x: float) -> str:
    """A quantity or a number of days as a calculator shows it: whole, or with its decimals."""
    if abs(x - round(x)) < 0.005:
        return f"{round(x):,}"
    return f"{x:,.2f}".rstrip("0").rstrip(".")


def _money(x: float) -> str:
    return f"{x:,.2f}"


def _day(ctx: Context, days: float) -> str:
    return (ctx.now + timedelta(days=float(days))).date().isoformat()


def recommend(groups: list[Group], ctx: Context) -> list[Recommendation]:
    """One recommendation per group; shortfalls another group answers join that group."""
    look = Lookup(groups, ctx)
    needs = _needs(groups, look, ctx)
    kept = _absorb(groups, needs)
    transfers = _transfers(needs, look, ctx)
    plans = _need_plans(needs, transfers, look, ctx)
    flat = [p for n in needs for p in plans[id(n)]]
    scored = evaluate(flat, [[n.pos] for n in needs for _ in plans[id(n)]], ctx.projection, ctx.settings)
    chosen: dict[int, Evaluated] = {}
    options: dict[int, list[Evaluated]] = {}
    at = 0
    for n in needs:
        mine = scored[at:at + len(plans[id(n)])]
        at += len(mine)
        options[id(n)] = mine
        chosen[id(n)] = min((e for e in mine if e.plan.acts), key=lambda e: (e.total, e.plan.name),
                            default=mine[0])
    by_owner: dict[int, list[Need]] = defaultdict(list)
    for n in needs:
        by_owner[id(n.owner)].append(n)
    reassigned = _reassignment([g for g in kept if g.kind is DriftKind.CAPACITY_SHIFT], look, ctx)
    down = _planned_inbound([g for g in kept if _is_down(g)], look, ctx)
    drafts = []
    for g in kept:
        if g.kind is DriftKind.CAPACITY_SHIFT:
            drafts.append(_capacity(g, reassigned, look, ctx))
        elif _is_down(g):
            drafts.append(_demand_down(g, down, look, ctx))
        else:
            drafts.append(_shortage_group(g, by_owner.get(id(g), []), chosen, options, look, ctx))
    return _finish_all(drafts, ctx)


def _is_down(g: Group) -> bool:
    return g.kind is DriftKind.DEMAND_CHANGE and g.drifts[0].cause.get("direction") == "down"


# --- who answers which shortfall --------------------------------------------------------------


def _needs(groups: list[Group], look: Lookup, ctx: Context) -> list[Need]:
    """Positions short of safety stock, each owned by one group."""
    claims: dict[tuple[str, str], Group] = {}
    for g in groups:
        if g.kind not in _OWNER_PRECEDENCE:
            continue
        for key in _positions_of(g):
            current = claims.get(key)
            if current is None or _OWNER_PRECEDENCE[g.kind] < _OWNER_PRECEDENCE[current.kind]:
                claims[key] = g
    least = max(ctx.settings.stockout.min_units_short, 1e-6)
    out = []
    for key in sorted(claims):
        pos = look.pos.get(key)
        if pos is None or look.figure(pos, "units_short") < least:
            continue
        first, last = look.figure(pos, "below_safety_in_days"), look.figure(pos, "last_below_safety")
        out.append(Need(pos, key[0], key[1], float(math.ceil(look.figure(pos, "units_short") - 1e-9)),
                        0.0 if math.isnan(first) else first,
                        ctx.projection.horizon if math.isnan(last) else last, claims[key]))
    return out


def _positions_of(g: Group) -> list[tuple[str, str]]:
    """The sku × locations a group could answer a shortfall at."""
    out = []
    for d in g.drifts:
        if g.kind is DriftKind.DISRUPTION:
            out += [(ln["sku"], d.evidence["destination"]) for ln in d.evidence.get("lines") or []]
        elif g.kind is DriftKind.DEMAND_CHANGE:
            if d.cause.get("direction") == "up":
                out.append((d.key["sku"], d.key["location"]))
        else:
            out.append((d.key["sku"], d.key["location"]))
    return out


def _absorb(groups: list[Group], needs: list[Need]) -> list[Group]:
    """Stock-out drifts whose shortfall another group answers join that group."""
    owner = {(n.sku, n.location): n.owner for n in needs}
    kept = []
    for g in groups:
        if g.kind is DriftKind.STOCKOUT_RISK:
            own = []
            for d in g.drifts:
                o = owner.get((d.key["sku"], d.key["location"]))
                if o is not None and o is not g:
                    o.absorbed.append(d)
                else:
                    own.append(d)
            g.drifts = own
            if not own:
                continue
        kept.append(g)
    return kept


# --- the options for one shortfall -------------------------------------------------------------


def _transfers(needs: list[Need], look: Lookup, ctx: Context) -> dict[int, list[dict[str, Any]]]:
    """The global transfer model's answer, per need position."""
    if not needs:
        return {}
    frame = pl.DataFrame({"sku": [n.sku for n in needs], "location": [n.location for n in needs],
                          "qty": [n.units for n in needs], "pos": [n.pos for n in needs],
                          "first_below": [n.first_below for n in needs]},
                         schema={"sku": pl.Utf8, "location": pl.Utf8, "qty": pl.Float64, "pos": pl.Int64,
                                 "first_below": pl.Float64})
    moves = plan_transfers(frame, ctx.figures, ctx.projection, ctx.lanes, ctx.settings)
    if moves.is_empty():
        return {}
    rows = list(moves.iter_rows(named=True))
    look.add([(m["sku"], m["from"]) for m in rows])
    by_need = {(n.sku, n.location): n.pos for n in needs}
    out: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for m in rows:
        out[by_need[(m["sku"], m["to"])]].append({**m, "source_pos": look.pos[(m["sku"], m["from"])]})
    return out


def _need_plans(needs: list[Need], transfers: dict[int, list[dict[str, Any]]], look: Lookup,
                ctx: Context) -> dict[int, list[Plan]]:
    """Per shortfall: do nothing, transfer, expedite, re-source, and transfer or expedite with the
    rest re-sourced (what is still short when re-sourced stock would land, if it lands in time)."""
    candidates = _expedite_candidates(needs, look, ctx)
    ids = sorted({sid for c in candidates.values() for sid in c})
    info, lines = look.shipments(ids), look.receipts_of(ids)
    lead = ctx.settings.recommend.resource_lead_time_days
    firsts: dict[int, list[Plan]] = {}
    variants: list[tuple[Need, list]] = []
    for n in needs:
        moved = _transfer_plan(n, transfers.get(n.pos, []), ctx)
        fast = [_expedite_plan(sid, info, lines, ctx) for sid in candidates[id(n)] if sid in info]
        firsts[id(n)] = [p for p in [moved, *fast] if p is not None]
        if lead < n.last_below:
            variants += [(n, [])] + [(n, p.changes) for p in firsts[id(n)]]
    rest = _rest_after(variants, lead, ctx)
    out: dict[int, list[Plan]] = {}
    at = 0
    for n in needs:
        plans = [nothing(f"{n.sku} at {n.location} stays {_units(n.units)} below safety stock"), *firsts[id(n)]]
        if lead < n.last_below:
            alone, after = rest[at], rest[at + 1:at + 1 + len(firsts[id(n)])]
            at += 1 + len(firsts[id(n)])
            if alone >= 1:
                plans.append(_resource_plan(n, alone, ctx))
            plans += [p + _resource_plan(n, units, ctx) for p, units in zip(firsts[id(n)], after, strict=True)
                      if units >= 1]
        out[id(n)] = plans
    return out


def _rest_after(variants: list[tuple[Need, list]], lead: float, ctx: Context) -> list[float]:
    """Whole units still short at each variant's need after ``lead`` days, under its changes."""
    if not variants:
        return []
    rows = [(i, t, q, ref) for i, (n, changes) in enumerate(variants) for p, t, q, ref in changes if p == n.pos]
    still = ctx.projection.deficits_after(np.array([n.pos for n, _ in variants]), np.full(len(variants), lead),
                                          Receipts.of(rows))
    return [float(math.ceil(x - 1e-9)) for x in still]


def _expedite_candidates(needs: list[Need], look: Lookup, ctx: Context, most: int = 2) -> dict[int, list[str]]:
    """Per need, the first inbound shipments that land after its shortfall begins."""
    r = ctx.projection.receipts
    out: dict[int, list[str]] = {}
    for n in needs:
        mine = look.receipts_at(n.pos)
        if not len(mine):
            out[id(n)] = []
            continue
        late = mine[(r.t[mine] > n.first_below + 1e-9) & (r.qty[mine] > 0)]
        late = late[np.argsort(r.t[late], kind="stable")]
        out[id(n)] = list(dict.fromkeys(r.ref[late].tolist()))[:most]
    return out


def _transfer_plan(n: Need, moves: list[dict[str, Any]], ctx: Context) -> Plan | None:
    if not moves:
        return None
    today = ctx.now.date()
    actions, changes, cost = [], [], 0.0
    for m in moves:
        actions.append(Action.unchecked(system="logistics", operation="create_transfer", params={
            "sku": m["sku"], "from": m["from"], "to": m["to"], "qty": m["qty"], "carrier": m["carrier"],
            "ship_date": today.isoformat(), "arrive_by": _day(ctx, m["transit_days"])}))
        changes += [(n.pos, float(m["transit_days"]), m["qty"], f"transfer from {m['from']}"),
                    (m["source_pos"], 0.0, -m["qty"], f"transfer to {m['to']}")]
        cost += m["qty"] * m["cost_per_unit"]
    sources = ", ".join(f"{m['from']} ({_u(m['qty'])})" for m in moves)
    return Plan("Transfer", f"transfer {_units(sum(m['qty'] for m in moves))} of {n.sku} to {n.location} from "
                f"{sources}", actions, changes, round(cost, 2))


def _expedite_plan(shipment: str, info: dict[str, dict[str, Any]], lines: dict[str, np.ndarray],
                   ctx: Context) -> Plan:
    """Expedite one shipment: all its lines land ``days_faster`` sooner (not before now)."""
    r = ctx.projection.receipts
    ship = info[shipment]
    mode = ctx.settings.recommend.expedite_mode(ship["mode"] or "")
    changes = []
    for i in lines.get(shipment, []):
        sooner = max(0.0, float(r.t[i]) - mode.days_faster)
        changes += [(int(r.pos[i]), float(r.t[i]), -float(r.qty[i]), shipment),
                    (int(r.pos[i]), sooner, float(r.qty[i]), shipment)]
    target = ship["arrival"] - timedelta(days=mode.days_faster) if ship["arrival"] is not None else None
    days = f"{mode.days_faster:g} day" + ("" if mode.days_faster == 1 else "s")
    return Plan("Expedite", f"expedite {shipment} ({_units(ship['qty'])}) to land {days} sooner",
                [Action.unchecked(system="logistics", operation="expedite_shipment", params={
                    "shipment_id": shipment, "carrier": ship["carrier"],
                    "target_arrival": max(target, ctx.now).isoformat() if target else None})],
                changes, round(ship["qty"] * mode.cost_per_unit, 2))


def _resource_plan(n: Need, units: float, ctx: Context) -> Plan:
    rc = ctx.settings.recommend
    by = _day(ctx, rc.resource_lead_time_days)
    return Plan("Re-source", f"order {_u(units)} more units of {n.sku} for {n.location}, arriving by {by}",
                [Action.unchecked(system="planning", operation="update_replenishment_plan", params={
                    "sku": n.sku, "location": n.location, "qty": units, "need_by": by})],
                [(n.pos, rc.resource_lead_time_days, units, "re-source")],
                round(units * rc.resource_cost_per_unit, 2))


# --- shortfall groups: stock-out, demand change, late shipments ------------------------------


@dataclass
class Draft:
    """A recommendation before its figures: all drafts are evaluated on the projection at once.

    ``candidates``: the ways to act (the cheapest is recommended); ``idle``: doing nothing;
    ``interest``: the positions its figures are read at; ``relative``: figures are what the
    drift adds to the projection there (a capacity cut), not the projection itself.
    """

    group: Group
    candidates: list[Plan]
    idle: Plan
    interest: list[int]
    summary: str
    rationale: str
    affected: list[dict[str, Any]]
    relative: bool = False
    decide_by: datetime | None = None
    first_below: dict[int, float] | None = None  # shortfalls' first dip, days from now, by position
    fixed: Impact | None = None  # figures not from the projection (spare capacity)
    scored: list[Evaluated] | None = None  # figures already known (candidates, then idle)


def _shortage_group(g: Group, needs: list[Need], chosen: dict[int, Evaluated],
                    options: dict[int, list[Evaluated]], look: Lookup, ctx: Context) -> Draft:
    """Each shortfall answered its cheapest way; the same way for all of them as alternatives."""
    base = _base_plan(g, ctx)
    interest = list(dict.fromkeys([n.pos for n in needs] + _watched(g, look)))
    best = _combine(base, [chosen[id(n)].plan for n in needs])
    candidates, reuse = [best], [chosen[id(needs[0])]] if needs else []
    for kind in sorted({e.plan.name for n in needs for e in options[id(n)] if e.plan.acts}):
        per_need = [next((e for e in options[id(n)] if e.plan.name == kind), None) for n in needs]
        plan = _combine(base, [e.plan for e in per_need if e is not None])
        if _same(plan, best):
            continue
        if None in per_need:
            plan.summary += f" (for {sum(e is not None for e in per_need)} of the {len(needs)} SKUs)"
        candidates.append(plan)
        reuse.append(per_need[0])
    if base.actions and needs:
        candidates.append(base)  # only the plan follows reality
        reuse.append(options[id(needs[0])][0])  # the same figures as doing nothing
    idle = nothing(_nothing_text(g))
    summary, rationale = _texts(g, needs, look)
    draft = Draft(g, candidates, idle, interest, summary, rationale, _affected(g, interest, look),
                  first_below={n.pos: n.first_below for n in needs})
    if len(needs) == 1 and interest == [needs[0].pos]:
        # one shortfall, read where it was evaluated: the plan's own figures are the group's (the
        # forecast or receipt-date change moves no stock)
        draft.scored = [Evaluated(plan, e.figures, e.shortage_cost, e.holding_cost, e.index)
                        for plan, e in zip([*candidates, idle], [*reuse, options[id(needs[0])][0]], strict=True)]
    return draft


def _planned_inbound(groups: list[Group], look: Lookup, ctx: Context
                     ) -> dict[tuple[str, str], list[tuple[dict[str, Any], float, float]]]:
    """For the demand-down groups' sku × locations: inbound lines not yet shipped, latest first,
    each with when it lands (days from now) and the lowest stock after that."""
    keys = list(dict.fromkeys((g.drifts[0].key["sku"], g.drifts[0].key["location"]) for g in groups))
    keys = [k for k in keys if k in look.pos]
    if not keys:
        return {}
    wanted = pl.DataFrame({"sku": [k[0] for k in keys], "destination": [k[1] for k in keys]},
                          schema={"sku": pl.Utf8, "destination": pl.Utf8})
    lines = list(ctx.shipments.join(wanted, on=["sku", "destination"], how="semi")
                 .filter(pl.col("status") == "planned")
                 .with_columns(pl.coalesce("eta", "planned_arrival").alias("arrival"))
                 .filter(pl.col("arrival").is_not_null())
                 .sort(["arrival", "shipment_id"], descending=[True, False]).iter_rows(named=True))
    when = [max(ctx.projection.days_from_now(ln["arrival"]), 0.0) for ln in lines]
    lows = ctx.projection.lows_after(np.array([look.pos[(ln["sku"], ln["destination"])] for ln in lines], np.int64),
                                     np.array(when)) if lines else []
    out: dict[tuple[str, str], list[tuple[dict[str, Any], float, float]]] = defaultdict(list)
    for line, t, low in zip(lines, when, lows, strict=True):
        out[(line["sku"], line["destination"])].append((line, t, float(low)))
    return out


def _demand_down(g: Group, inbound: dict[tuple[str, str], list[tuple[dict[str, Any], float, float]]],
                 look: Lookup, ctx: Context) -> Draft:
    """Lower the forecast, and cut inbound not yet shipped by what stock can spare: never so much
    that the projection would fall below safety stock after the cut line would have landed."""
    base = _base_plan(g, ctx)
    d0 = g.drifts[0]
    sku, loc = d0.key["sku"], d0.key["location"]
    excess = -sum(d.evidence["delta"] for d in g.drifts)
    pos = look.pos.get((sku, loc))
    value = (look.figure(pos, "unit_value") if pos is not None else 0.0) or float(d0.evidence.get("unit_value") or 0)
    safety = look.figure(pos, "safety_stock") if pos is not None else 0.0
    left, given = excess, 0.0
    cut = Plan("Reduce inbound", "")
    for line, t, low in inbound.get((sku, loc), []):
        qty = float(min(line["qty"], math.floor(left), math.floor(min(low, 1e12) - safety - given)))
        if qty < 1:
            continue
        cut.actions.append(Action.unchecked(system="logistics", operation="reduce_inbound", params={
            "shipment_id": line["shipment_id"], "sku": sku, "destination": loc, "reduce_by": qty,
            "from_qty": line["qty"]}))
        if t < ctx.projection.horizon:
            cut.changes.append((pos, t, -qty, line["shipment_id"]))
        left -= qty
        given += qty
    reduced = given
    cut.summary = f"cut {_units(reduced)} from inbound not yet shipped"
    base.excess, base.excess_unit_value = excess, value
    idle = nothing("the plan keeps the old forecast")
    idle.excess, idle.excess_unit_value = excess, value
    candidates = [base]
    if reduced >= 1:
        both = _combine(base, [cut])
        both.excess, both.excess_unit_value = excess - reduced, value
        candidates.insert(0, both)
    head, _ = _texts(g, [], look)
    rationale = (f"Latest demand is {_units(excess)} below the plan; without a change that stock piles up at "
                 f"{loc}. Only shipments not yet shipped are cut, latest first, and each only by what stock "
                 "keeps above safety stock after it would have landed")
    interest = [pos] if pos is not None else []
    # figures relative to the projection as it is: a shortfall there is another recommendation's
    # to count; here only a shortfall a cut would cause counts (it never does, by construction)
    return Draft(g, candidates, idle, interest, head, rationale, _affected(g, interest, look), relative=True)


def _combine(base: Plan, plans: list[Plan]) -> Plan:
    """``base`` and ``plans`` as one plan, named and summarised by what they do."""
    actions = [a for p in plans for a in p.actions]
    said = [p.summary for p in plans] if len(plans) == 1 else (_describe(actions) or [p.summary for p in plans])
    return Plan(" + ".join(dict.fromkeys([base.name] * bool(base.actions) + [p.name for p in plans])) or base.name,
                "; ".join([base.summary] * bool(base.actions) + said) or base.summary,
                base.actions + actions, [c for p in plans for c in p.changes],
                round(sum(p.action_cost for p in plans), 2))


def _describe(actions: list[Action]) -> list[str]:
    """Shortfall actions in a few words each kind: totals, SKUs, places and dates."""
    out = []
    moves = [a.params for a in actions if a.operation == "create_transfer"]
    if moves:
        skus = sorted({m["sku"] for m in moves})
        to = sorted({m["to"] for m in moves})
        by_source: dict[str, float] = defaultdict(float)
        for m in moves:
            by_source[m["from"]] += m["qty"]
        what = skus[0] if len(skus) == 1 else f"{len(skus)} SKUs"
        out.append(f"transfer {_units(sum(m['qty'] for m in moves))} of {what} to {', '.join(to)} from "
                   + ", ".join(f"{src} ({_u(q)})" for src, q in sorted(by_source.items())))
    fast = [a.params["shipment_id"] for a in actions if a.operation == "expedite_shipment"]
    if fast:
        out.append(f"expedite {', '.join(fast[:3])}" + (f" and {len(fast) - 3} more" if len(fast) > 3 else ""))
    orders = [a.params for a in actions if a.operation == "update_replenishment_plan"]
    if orders:
        skus = sorted({o["sku"] for o in orders})
        what = skus[0] if len(skus) == 1 else f"{len(skus)} SKUs"
        out.append(f"order {_units(sum(o['qty'] for o in orders))} more of {what}, arriving by "
                   f"{min(o['need_by'] for o in orders)}")
    return out


def _same(a: Plan, b: Plan) -> bool:
    return [(x.operation, x.params) for x in a.actions] == [(x.operation, x.params) for x in b.actions]


def _decide_by(dr: Draft, plan: Plan, ctx: Context) -> datetime | None:
    """When the recommended receipts stop landing before stock first dips below safety.

    Only a receipt has a lead time to beat: a plan that moves no stock (a date in the plan, a
    forecast) can be decided any time, and a group without shortfalls keeps its own deadline.
    """
    if not dr.first_below:
        return dr.decide_by
    slack = [dr.first_below[pos] - t for pos, t, qty, _ref in plan.changes if qty > 0 and pos in dr.first_below]
    return ctx.now + timedelta(days=max(0.0, min(slack))) if slack else None


def _base_plan(g: Group, ctx: Context) -> Plan:
    """What a group's recommendation does whatever the shortfall: the plan follows reality."""
    actions: list[Action] = []
    if g.kind is DriftKind.DEMAND_CHANGE:
        for d in g.drifts:
            actions.append(Action.unchecked(system="planning", operation="update_forecast", params={
                "sku": d.key["sku"], "location": d.key["location"], "period": d.key["period"],
                "from_qty": d.evidence["planned_qty"], "to_qty": d.evidence["latest_qty"]}))
        delta = sum(d.evidence["delta"] for d in g.drifts)
        return Plan("Update forecast", f"set the forecast to the latest demand ({'+' if delta > 0 else ''}"
                    f"{_units(delta)} over {len(g.drifts)} period{'s' * (len(g.drifts) != 1)})", actions)
    if g.kind is DriftKind.DISRUPTION:
        for d in g.drifts:
            ev = d.evidence
            if ev.get("eta") and ev.get("eta") != ev.get("planned_arrival"):
                actions.append(Action.unchecked(system="planning", operation="reschedule_receipt", params={
                    "shipment_id": d.key["shipment_id"], "location": ev["destination"],
                    "from_date": ev.get("planned_arrival"), "to_date": ev["eta"],
                    "lines": [{"sku": ln["sku"], "qty": ln["qty"]} for ln in ev["lines"]]}))
            if "stopped_reporting" in (ev.get("reasons") or []):
                actions.append(Action.unchecked(system="logistics", operation="request_status", params={
                    "shipment_id": d.key["shipment_id"], "carrier": ev["carrier"]}))
        n = sum(1 for a in actions if a.operation == "reschedule_receipt")
        parts = ([f"move {n} planned receipt{'s' * (n != 1)} to the new ETA"] if n else []) + (
            ["ask the carrier for a status"] if any(a.operation == "request_status" for a in actions) else [])
        return Plan("Reschedule receipts", "; ".join(parts) or "no plan change", actions)
    return Plan("", "", [])


def _nothing_text(g: Group) -> str:
    if g.kind is DriftKind.DEMAND_CHANGE:
        return "the plan keeps the old forecast"
    if g.kind is DriftKind.DISRUPTION:
        return "receipts stay on the old dates and orders get promised stock that is not there"
    return "stock stays below safety stock"


def _watched(g: Group, look: Lookup) -> list[int]:
    """Positions a group's figures are read at besides its shortfalls: a late shipment's
    destinations, short or not. (A demand change's own position counts only while it answers
    its shortfall: when a late shipment answers it, that recommendation shows it.)"""
    if g.kind is not DriftKind.DISRUPTION:
        return []
    return [look.pos[k] for k in dict.fromkeys(_positions_of(g)) if k in look.pos]


def _affected(g: Group, positions: list[int], look: Lookup) -> list[dict[str, Any]]:
    """The figures of the positions a recommendation is about, straight from the projection (the
    same numbers in every recommendation that names them), and its drifts' own keys."""
    out: list[dict[str, Any]] = []
    for d in g.drifts:
        if g.kind is DriftKind.DEMAND_CHANGE:
            out.append({"sku": d.key["sku"], "location": d.key["location"], "period": d.key["period"],
                        "planned_qty": d.evidence["planned_qty"], "latest_qty": d.evidence["latest_qty"]})
        elif g.kind is DriftKind.DISRUPTION:
            ev = d.evidence
            out.append({"shipment_id": d.key["shipment_id"], "destination": ev["destination"],
                        "reasons": ev.get("reasons"), "eta": ev.get("eta"),
                        "planned_arrival": ev.get("planned_arrival"),
                        "units": sum(ln["qty"] for ln in ev.get("lines") or []),
                        "service_days_at_risk": d.impact.service_days_at_risk})
    for pos in positions:
        sku, loc = look.key[pos]
        first = look.figure(pos, "below_safety_in_days")
        out.append({"sku": sku, "location": loc, **{name: look.shown(pos, name) for name in _SHOWN},
                    "below_safety_in_days": None if math.isnan(first) else round(first, 2)})
    return out


_SHOWN = ("on_hand", "safety_stock", "daily_demand", "min_projected", "units_short", "days_below_safety")


def _texts(g: Group, needs: list[Need], look: Lookup) -> tuple[str, str]:
    """What happened, in one line (the decision is appended once chosen), and the projection
    behind it in a planner's words."""
    if g.kind is DriftKind.DEMAND_CHANGE:
        d0 = g.drifts[0]
        delta = sum(d.evidence["delta"] for d in g.drifts)
        word = "up" if delta > 0 else "down"
        head = (f"Demand for {d0.key['sku']} at {d0.key['location']} is {word} {_units(abs(delta))} over "
                f"{len(g.drifts)} period{'s' * (len(g.drifts) != 1)}")
    elif g.kind is DriftKind.DISRUPTION:
        n = len(g.drifts)
        carrier, origin = g.key.get("carrier") or "an unknown carrier", g.key.get("origin", "")
        head = f"{n} shipment{'s' * (n != 1)} from {origin} with {carrier} {'are' if n != 1 else 'is'} late"
    else:
        first = g.drifts[0]
        units = sum(d.impact.units_short for d in g.drifts)
        soonest = min((d.evidence.get("below_safety_in_days") or 0.0) for d in g.drifts)
        what = (f"{first.key['sku']} at {first.key['location']}" if len(g.drifts) == 1
                else f"{len(g.drifts)} SKUs at {first.key['location']}")
        head = (f"{what} drop{'s' * (len(g.drifts) == 1)} {_units(units)} below safety stock in "
                f"{_q(soonest)} day{'s' * (_q(soonest) != '1')}")
    lines = []
    for n in needs[:3]:
        r = {name: look.figure(n.pos, name) for name in look.FIGURES}
        lines.append(
            f"{n.sku} at {n.location}: {_q(r['on_hand'])} on hand, {_q(r['daily_demand'])} a day of demand and "
            f"{_q(r['inbound_qty'])} inbound take stock down to {_q(r['min_projected'])} against "
            f"{_q(r['safety_stock'])} safety stock — {_q(r['units_short'])} below it, from day {_q(n.first_below)} "
            f"for {_q(r['days_below_safety'])} days")
    if len(needs) > 3:
        lines.append(f"and {len(needs) - 3} more positions")
    return head, ". ".join(lines)


# --- capacity ----------------------------------------------------------------------------------


def _reassignment(groups: list[Group], look: Lookup, ctx: Context) -> dict[str, Any]:
    """One global reassignment for every capacity cut, the load on each cut, the next period
    with room for it, and where the load's lines sit in the projection."""
    cuts = [d for g in groups for d in g.drifts if d.cause.get("direction") == "cut"]
    if not cuts:
        return {"moves": {}, "loads": {}, "room": {}, "lines": {}}
    drifts = pl.DataFrame({
        "fingerprint": [d.fingerprint for d in cuts],
        "resource_type": [d.key["resource_type"] for d in cuts],
        "resource_id": [d.key["resource_id"] for d in cuts],
        "period": [date.fromisoformat(d.key["period"]) for d in cuts],
        "overflow": [float(d.evidence["overflow"]) for d in cuts],
    })
    on = ["resource_type", "resource_id", "period"]
    loads = (resource_loads(drifts, ctx.shipments, ctx.settings) if ctx.loads is None
             else ctx.loads.join(drifts.select(on), on=on, how="semi"))
    loads = loads.join(drifts.select(*on, "fingerprint"), on=on)
    items = loads.group_by("fingerprint", "origin", "destination", "carrier").agg(pl.col("qty").sum()).sort(
        "fingerprint", "origin", "destination", "carrier")
    on_cut = loads.group_by("fingerprint").agg(pl.col("carrier").unique().alias("on_cut"))
    cut_frame = drifts.join(on_cut, on="fingerprint", how="left").with_columns(
        pl.when(pl.col("resource_type") == "carrier").then(pl.concat_list(pl.col("resource_id")))
        .otherwise(pl.col("on_cut").fill_null([])).alias("excluded"))
    moves = plan_reassignment(items, cut_frame.select("fingerprint", "overflow", "excluded"), ctx.lanes, ctx.settings)
    by_fp: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for m in moves.iter_rows(named=True):
        by_fp[m["fingerprint"]].append(m)
    return {"moves": by_fp, "loads": loads.partition_by("fingerprint", as_dict=True),
            "room": next_period_with_room(drifts, ctx.capacity),
            "lines": look.receipts_of(loads.get_column("shipment_id").unique().to_list())}


def _capacity(g: Group, plan: dict[str, Any], look: Lookup, ctx: Context) -> Draft:
    rtype, res = g.key.get("resource_type", ""), g.key.get("resource", "")
    drifts = sorted(g.drifts, key=lambda d: d.key["period"])
    affected = [{"resource_type": d.key["resource_type"], "resource_id": d.key["resource_id"],
                 "period": d.key["period"], "planned_load": d.evidence["planned_load"],
                 "available_capacity": d.evidence["available_capacity"], "overflow": d.evidence["overflow"]}
                for d in drifts]
    if g.key.get("direction", drifts[0].cause.get("direction")) != "cut":
        return _spare_capacity(g, drifts, affected)
    moves_all: list[dict[str, Any]] = []
    reassign, rephase = Plan("Reassign carrier", ""), Plan("Rephase", "")
    moved_total = rephased_total = overflow_total = 0.0
    for d in drifts:
        period = d.key["period"]
        mine = plan["loads"].get((d.fingerprint,))
        moved_ids: set[str] = set()
        moved = 0.0
        for m in plan["moves"].get(d.fingerprint, []):
            ids = _shipments_for(mine, m) if mine is not None else []
            moved_ids |= set(ids)
            moved += m["qty"]
            reassign.action_cost += m["qty"] * m["cost_per_unit"]
            moves_all.append({**m, "shipments": ids})
            reassign.actions.append(Action.unchecked(system="logistics", operation="reassign_carrier", params={
                "from_carrier": m["from_carrier"], "to_carrier": m["to_carrier"], "origin": m["origin"],
                "destination": m["destination"], "period": period, "qty": m["qty"], "shipments": ids}))
        overflow = float(math.ceil(d.evidence["overflow"] - 1e-9))
        left = max(0.0, overflow - moved)
        target = plan["room"].get(d.fingerprint)
        delay = (target - date.fromisoformat(period)).days if target else None
        if left >= 1:
            reassign.actions.append(_rephase(d, left, target))
        reassign.changes += _slip(mine, moved_ids, left, delay, plan["lines"], ctx)
        rephase.actions.append(_rephase(d, overflow, target))
        rephase.changes += _slip(mine, set(), overflow, delay, plan["lines"], ctx)
        moved_total += moved
        rephased_total += left
        overflow_total += overflow
    reassign.action_cost = round(reassign.action_cost, 2)
    reassign.summary = (f"move {_units(moved_total)} to other carriers ({_names(moves_all)})"
                        + (f" and rephase {_u(rephased_total)}" if rephased_total >= 1 else ""))
    rephase.summary = f"move {_units(overflow_total)} of load to the next period with room"
    idle = nothing(f"{_units(overflow_total)} miss their period while the plan still counts on them")
    idle.changes = list(rephase.changes)
    candidates = [reassign, rephase] if moves_all else [rephase]
    interest = sorted({c[0] for p in candidates for c in p.changes})
    head = f"{rtype.capitalize()} {res} lost capacity: {_units(overflow_total)} do not fit"
    rationale = ("Planned load exceeds the capacity now available. The load that does not fit (the shipments "
                 "planned to leave last) leaves a period later unless another carrier on the same lane takes "
                 "it; one model over every cut and lane finds the cheapest carriers, never a cut one")
    return Draft(g, candidates, idle, interest, head, rationale, affected, relative=True,
                 decide_by=_period_start(drifts[0], ctx))


def _spare_capacity(g: Group, drifts: list[Any], affected: list[dict[str, Any]]) -> Draft:
    rtype, res = g.key.get("resource_type", ""), g.key.get("resource", "")
    actions = []
    for d in drifts:
        ev = d.evidence
        actions += [
            Action.unchecked(system="planning", operation="update_capacity_plan", params={
                "resource_type": d.key["resource_type"], "resource_id": d.key["resource_id"],
                "period": d.key["period"], "from_capacity": ev["planned_capacity"],
                "to_capacity": ev["available_capacity"]}),
            Action.unchecked(system="logistics", operation="confirm_capacity", params={
                "resource_type": d.key["resource_type"], "resource_id": d.key["resource_id"],
                "period": d.key["period"], "qty": ev["spare_capacity"]})]
    spare = sum(d.evidence["spare_capacity"] for d in drifts)
    use = Plan("Use the spare capacity", f"plan with the {_units(spare)} of capacity now available", actions)
    return Draft(g, [use], nothing("the extra capacity expires unused"), [],
                 f"{rtype.capitalize()} {res} has {_units(spare)} of capacity the plan does not use",
                 "Available capacity grew well above the planned load; the plan can pull work forward",
                 affected, fixed=trusted(Impact, {**Impact().model_dump(), "units_excess": round(spare, 4)}))


def _names(moves: list[dict[str, Any]]) -> str:
    return ", ".join(f"{_u(m['qty'])} {m['origin']}>{m['destination']} {m['from_carrier']}→{m['to_carrier']}"
                     for m in moves[:4]) + (f" and {len(moves) - 4} more" if len(moves) > 4 else "")


def _shipments_for(loads: pl.DataFrame, move: dict[str, Any]) -> list[str]:
    """Whole shipments on the moved lane and carrier carrying the moved units: the smallest one
    that carries them all, else the largest first until they do."""
    rows = (loads.filter((pl.col("origin") == move["origin"]) & (pl.col("destination") == move["destination"])
                         & (pl.col("carrier") == move["from_carrier"]))
            .group_by("shipment_id").agg(pl.col("qty").sum()).sort(["qty", "shipment_id"]))
    need = move["qty"] - 1e-9
    enough = rows.filter(pl.col("qty") >= need)
    if enough.height:
        return [enough.get_column("shipment_id")[0]]
    out, carried = [], 0.0
    for sid, qty in reversed(list(rows.iter_rows())):
        if carried >= need:
            break
        out.append(sid)
        carried += qty
    return out


def _slip(loads: pl.DataFrame | None, moved: set[str], units: float, delay: int | None,
          lines: dict[str, np.ndarray], ctx: Context) -> list[tuple[int, float, float, str]]:
    """Changes on the projection when ``units`` of a cut's load (the shipments planned to leave
    last, not those moved) leave ``delay`` days later (None: beyond the horizon)."""
    if loads is None or units < 1:
        return []
    per_ship = (loads.filter(~pl.col("shipment_id").is_in(sorted(moved)))
                .group_by("shipment_id").agg(pl.col("qty").sum(), pl.col("planned_ship").max())
                .sort(["planned_ship", "shipment_id"], descending=[True, False]))
    r = ctx.projection.receipts
    changes, carried = [], 0.0
    for sid, qty, _ in per_ship.iter_rows():
        if carried >= units - 1e-9:
            break
        carried += qty
        for i in lines.get(sid, []):
            changes.append((int(r.pos[i]), float(r.t[i]), -float(r.qty[i]), sid))
            if delay is not None:
                changes.append((int(r.pos[i]), float(r.t[i]) + delay, float(r.qty[i]), sid))
    return changes


def _rephase(d: Any, qty: float, target: date | None) -> Action:
    params = {"resource_type": d.key["resource_type"], "resource_id": d.key["resource_id"],
              "from_period": d.key["period"], "to_period": target.isoformat() if target else None, "qty": qty}
    if target is None:
        params["note"] = "no capacity found within the planning horizon"
    return Action.unchecked(system="planning", operation="rephase_plan", params=params)


def _period_start(d: Any, ctx: Context) -> datetime:
    start = date.fromisoformat(d.key["period"])
    when = datetime(start.year, start.month, start.day, tzinfo=ctx.now.tzinfo)
    return max(when, ctx.now)


# --- figures for every draft at once, and the recommendation ----------------------------------


def _finish_all(drafts: list[Draft], ctx: Context) -> list[Recommendation]:
    plans, interest, relative, slots = [], [], [], {}
    for i, dr in enumerate(drafts):
        if dr.scored is not None:
            continue
        todo = [*dr.candidates, dr.idle]
        slots[i] = (len(plans), len(todo))
        plans += todo
        interest += [dr.interest] * len(todo)
        relative += [dr.relative] * len(todo)
    scored = evaluate(plans, interest, ctx.projection, ctx.settings, relative)
    return [_recommendation(dr, dr.scored if dr.scored is not None
                            else scored[slots[i][0]:slots[i][0] + slots[i][1]], ctx)
            for i, dr in enumerate(drafts)]


def _recommendation(dr: Draft, scored: list[Evaluated], ctx: Context) -> Recommendation:
    g = dr.group
    idle = scored[-1]
    acting = sorted(scored[:-1], key=lambda e: (e.total, e.plan.name))
    best = acting[0]
    ignored = dr.fixed if dr.fixed is not None else idle.impact
    approved = Impact() if dr.fixed is not None else best.impact
    # the recommended option, the next best two, and doing nothing
    others = [e for e in acting[1:] if e.plan.summary != best.plan.summary][:2] + [idle]
    options = [as_option(best, True)] + [as_option(e, False, why_lost(e, best))
                                         for e in sorted(others, key=lambda e: (e.total, e.plan.name))]
    rationale = dr.rationale
    if dr.fixed is None and idle.total < best.total - 0.005:
        rationale += (f". Doing nothing costs less ({_money(idle.total)} against {_money(best.total)} for "
                      f"{best.plan.name.lower()}): approve only if the service is worth more than the figures say")
    elif dr.fixed is None:
        rationale += (f". {best.plan.name} is the cheapest way: {_breakdown(best)}, against "
                      f"{_money(idle.total)} doing nothing")
    drifts = g.drifts + g.absorbed
    return trusted(Recommendation, {
        "fingerprint": g.fingerprint,
        "kind": g.kind,
        "drift_fingerprints": [d.fingerprint for d in drifts],
        "summary": f"{dr.summary}: {best.plan.summary}" if best.plan.summary else dr.summary,
        "actions": _ordered(best.plan.actions),
        "impact_if_approved": approved,
        "impact_if_ignored": ignored,
        "severity": severity_of(ignored, ctx.settings.severity),
        "cost": round(best.plan.action_cost, 2),
        "decide_by": _decide_by(dr, best.plan, ctx),
        "rationale": rationale.strip(". ") + ".",
        "options": options,
        "alternatives": [f"{o.name} — {o.summary}: {o.total_cost:,.2f} in all, leaves "
                         f"{o.impact.units_short:,.0f} units below safety stock ({o.why_not})" for o in options[1:4]],
        "affected": dr.affected,
        "cause": dict(g.key),
    })


def _breakdown(e: Evaluated) -> str:
    parts = [f"{_money(e.plan.action_cost)} in actions", f"{_money(e.shortage_cost)} shortage penalty"]
    if e.holding_cost:
        parts.append(f"{_money(e.holding_cost)} to carry excess stock")
    return " + ".join(parts) + f" = {_money(e.total)}"


def _ordered(actions: list[Action]) -> list[Action]:
    """Planning first, then logistics, each in the order built (the order they execute in)."""
    return [a for a in actions if a.system == "planning"] + [a for a in actions if a.system != "planning"]
