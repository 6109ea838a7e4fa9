"""The recommendation message: the decision a planner takes in ten seconds, and its details.

A message in the channel is the decision, not the analysis: what to do and by when, what it
avoids and costs, the actions per system in the order they run, where the decision stands and
the buttons. Everything behind it (the evidence, the options weighed with their figures and
why they lost, the reasoning, the routing) is one click away under *Details*, shown to whoever
asks; a long message would be folded behind "Show more" and read by nobody.

One function renders the whole message from the store rows, so the Slack sync can post or edit
it after any state change and it always shows the current state (decision buttons only while a
decision is still possible). Bodies stored by older versions may lack any of the detectors'
newer keys; each part is then left out, never shown as ``?`` or ``None``. Blocks are built with
slack_sdk's models, which validate them, and every text that grows with the data is clipped.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ContextBlock,
    HeaderBlock,
    MarkdownTextObject,
    Option,
    PlainTextObject,
    SectionBlock,
    StaticSelectElement,
)

from bot._format import (
    MAX_HEADER_TEXT,
    MAX_MESSAGE_BLOCKS,
    MAX_SECTION_TEXT,
    aware,
    clip,
    clip_lines,
    kind_label,
    local_time,
    money,
    num,
    number,
    ordered_items,
    plural,
    rec_zone,
    severity_emoji,
    severity_word,
    span,
    state_label,
    team_mentions,
    units,
    zone_abbreviation,
)
from bot.config import AlignbotConfig
from bot.modal_input import MODIFY, REJECT
from store.tables import ActionRow, DecisionRow, DriftRow, RecommendationRow

APPROVE, SNOOZE = "rec_approve", "rec_snooze"
DETAILS = "rec_details"
ACTIONS_BLOCK_PREFIX = "rec_actions:"
STATE_BLOCK_PREFIX = "rec_state:"
SNOOZE_CHOICES = {"1h": "1 h", "4h": "4 h", "1d": "1 day", "1w": "1 week"}

# What a planner takes in at a glance: the collapsed message stays this small.
MAX_COLLAPSED_BLOCKS = 12
MAX_COLLAPSED_SECTION = 600

DECIDABLE_STATES = ("open",)
_WAITING_STATES = ("open", "snoozed")  # a decision is still to come
ACTION_STATUS_EMOJI = {
    "pending": ":hourglass_flowing_sand:",
    "done": ":white_check_mark:",
    "failed": ":x:",
    "skipped": ":fast_forward:",
}
SYSTEM_LABEL = {"planning": "Planning", "logistics": "Logistics"}
_SYSTEM_RANK = {"planning": 0, "logistics": 1}  # the order actions execute in
_APPROVING = ("approve", "modify")
_EXECUTION_STATES = ("approved", "executing", "executed", "failed", "partially_executed")
_NOTHING = "Do nothing"  # the option detectors.options.nothing() names
_REASONS = {"eta_slipped": "ETA slipped", "exception": "carrier exception",
            "stopped_reporting": "stopped reporting"}
# Where the detectors' rationale turns from the projection to its cost sentence, which is
# said again here from the options' figures, in the configured currency.
_COST_SENTENCE = re.compile(r"\. (?:Doing nothing costs less \(|[^.]* is the cheapest way: )")


# --- public ---------------------------------------------------------------------------------


def render_recommendation(
    rec: RecommendationRow,
    actions: list[ActionRow],
    decisions: list[DecisionRow],
    config: AlignbotConfig,
    *,
    drifts: Sequence[DriftRow] = (),
    now: datetime | None = None,
) -> tuple[str, list[dict]]:
    """(fallback text, blocks) for the recommendation's message in its owning team's channel.

    ``drifts`` is accepted for the details' sake (the collapsed message does not show
    evidence); ``now`` lets times of today be shown as just the clock.
    """
    body = _body(rec)
    zone = rec_zone(config, rec.teams)
    decided = rec.state not in DECIDABLE_STATES
    decision = decision_line(rec, config, now=now)

    blocks: list[Block] = [
        HeaderBlock(text=PlainTextObject(text=clip(_headline(rec), MAX_HEADER_TEXT), emoji=True)),
        _section(_decision_text(rec, decision, decisions)),
    ]
    if fields := _fields(rec, body, config, zone, now):
        blocks.append(SectionBlock(fields=[_md(f) for f in fields]))
    show_status = rec.state in _EXECUTION_STATES or any(a.status != "pending" for a in actions)
    blocks += [_section(text) for text, _ in _system_sections(actions, zone,
                                                              show_status=show_status)]
    state = clip(_status_line(rec, actions, decisions, config, zone, now),
                 MAX_COLLAPSED_SECTION)
    if decided:  # the decision buttons are gone; what stood behind the decision is not
        blocks.append(SectionBlock(block_id=f"{STATE_BLOCK_PREFIX}{rec.id}", text=_md(state),
                                   accessory=_details_button(rec)))
    else:
        blocks.append(ContextBlock(elements=[_md(state)]))
        blocks.append(_decision_controls(rec))
    blocks = _fit(blocks, MAX_COLLAPSED_BLOCKS)
    owners = " · ".join(f"{m} ({team})" for m, team in
                        zip(team_mentions(config, rec.teams), rec.teams))
    return _fallback(rec, decision, owners if not decided else ""), [b.to_dict() for b in blocks]


def render_details(
    rec: RecommendationRow,
    actions: list[ActionRow],
    decisions: list[DecisionRow],
    config: AlignbotConfig,
    *,
    drifts: Sequence[DriftRow] = (),
    now: datetime | None = None,
) -> tuple[str, list[dict]]:
    """(text, blocks) of the ephemeral answer to *Details*: the evidence, the options weighed
    with their own figures and why they lost, the reasoning, the full actions and the routing."""
    body = _body(rec)
    zone = rec_zone(config, rec.teams)
    currency = config.currency
    decision = decision_line(rec, config, now=now)
    blocks: list[Block] = [_section(
        f"*Details of #{rec.id} · {kind_label(rec.kind)}*\n*{clip(decision, 1500)}*", MAX_SECTION_TEXT)]
    happened = _what_happened(rec, body)
    if happened:
        blocks.append(_section(f"*What happened*\n{happened}", MAX_SECTION_TEXT))
    evidence = _evidence_text(body, drifts, zone)
    if evidence:
        blocks.append(_section(evidence, MAX_SECTION_TEXT))
    blocks += [_section(text, MAX_SECTION_TEXT) for text in _options_texts(body, currency)]
    why = _why_text(body, currency)
    if why:
        blocks.append(_section(why, MAX_SECTION_TEXT))
    sections = _system_sections(actions, zone, show_status=rec.state in _EXECUTION_STATES,
                                limit=MAX_SECTION_TEXT, more="_+{n} more_")
    if not all(complete for _, complete in _system_sections(actions, zone, show_status=False)):
        blocks += [_section(text, MAX_SECTION_TEXT) for text, _ in sections]
    blocks.append(ContextBlock(elements=[_md(clip(_routing_text(rec, config, zone, now),
                                                  MAX_SECTION_TEXT))]))
    blocks = _fit(blocks, MAX_MESSAGE_BLOCKS)
    return clip(f"Details of #{rec.id}: {decision}", 1000), [b.to_dict() for b in blocks]


def decision_line(rec: RecommendationRow, config: AlignbotConfig, *,
                  now: datetime | None = None) -> str:
    """The decision in one line with its money, e.g. ``Transfer 220 units of A to DC-A from
    DC-C by Fri 4 Dec 10:00 CST — avoids $5,500 at risk, costs $220``."""
    body = _body(rec)
    zone = rec_zone(config, rec.teams)
    chosen = _chosen(body)
    what = _sentence(_prose(chosen.get("summary")) or _prose(rec.summary)
                     or _prose(body.get("summary")) or f"{kind_label(rec.kind)} to decide")
    what = clip(what, 350)
    if rec.state in _WAITING_STATES:
        act_by, urgent = _act_by(rec, body)
        if urgent:
            what = "Act now: " + what[:1].lower() + what[1:]
        elif act_by is not None:
            what += f" by {local_time(act_by, zone, now)}"
    money_said = _money_parts(body, config.currency)
    return what + (" — " + ", ".join(money_said) if money_said else "")


def render_note(text: str) -> list[dict]:
    """Section blocks for a thread note, split on line breaks so each stays under 3000 chars."""
    chunks: list[str] = []
    current = ""
    for line in (text or " ").splitlines() or [" "]:
        while len(line) > MAX_SECTION_TEXT:  # one enormous line: hard-split it
            if current:
                chunks.append(current)
                current = ""
            chunks.append(line[:MAX_SECTION_TEXT])
            line = line[MAX_SECTION_TEXT:]
        candidate = f"{current}\n{line}" if current else line
        if len(candidate) > MAX_SECTION_TEXT:
            chunks.append(current)
            current = line
        else:
            current = candidate
    if current or not chunks:
        chunks.append(current or " ")
    if len(chunks) > MAX_MESSAGE_BLOCKS:
        dropped = len(chunks) - MAX_MESSAGE_BLOCKS + 1
        chunks = chunks[: MAX_MESSAGE_BLOCKS - 1] + [
            f"_+{plural(dropped, 'more part', 'more parts')} not shown_"]
    return [SectionBlock(text=MarkdownTextObject(text=c or " ")).to_dict() for c in chunks]


def numbered(actions: Sequence[ActionRow]) -> list[tuple[int, ActionRow]]:
    """Actions as the message numbers them: planning first, then logistics, each in order."""
    ordered = sorted(actions, key=lambda a: (_SYSTEM_RANK.get(a.system, len(_SYSTEM_RANK)),
                                             str(a.system), a.position))
    return [(i + 1, a) for i, a in enumerate(ordered)]


def describe_action(operation: str, params: dict[str, Any], zone: tzinfo = UTC) -> str:
    """One action in words, e.g. ``Transfer 400 units of SKU-1 from DC-ATL to DC-DAL``.

    Timestamps among the params are shown in ``zone`` (the team's); plain dates stay dates.
    A parameter that is missing is left out of the sentence.
    """
    p = _localized(params or {}, zone)

    def text(key: str) -> str:
        value = p.get(key)
        if value is None or isinstance(value, (dict, list)) or (
                isinstance(value, float) and number(value) is None):
            return ""
        return str(value).strip()

    def qty(*keys: str) -> float | None:
        return next((x for k in keys if (x := number(p.get(k))) is not None), None)

    def joined(*parts: str) -> str:
        return " ".join(x for x in parts if x)

    def extra(*parts: str | None) -> str:
        kept = [x for x in parts if x]
        return (" (" + ", ".join(kept) + ")") if kept else ""

    def on(word: str, value: str) -> str:
        return f"{word} {value}" if value else ""

    amount = qty("qty", "quantity", "units")
    sku = text("sku")
    of_sku = joined(units(amount) if amount is not None else "",
                    ("of " if amount is not None else "") + sku if sku else "")
    resource = joined(text("resource_type"), text("resource_id"))
    if operation == "create_transfer":
        return joined("Transfer", of_sku or "stock", on("from", text("from")), on("to", text("to"))) \
            + extra(on("via", text("carrier")), on("ship", text("ship_date")),
                    on("arrive by", text("arrive_by")))
    if operation == "update_forecast":
        where = joined(text("sku") or "the forecast item", on("at", text("location")),
                       on("for", text("period")))
        to = qty("to_qty", "qty", "quantity")
        start = qty("from_qty")
        if to is None:
            return f"Update forecast of {where}"
        return f"Update forecast of {where}: " + (f"{num(start)} → " if start is not None else "") \
            + num(to)
    if operation == "reduce_inbound":
        cut = qty("reduce_by", "qty")
        was = qty("from_qty")
        return joined("Cut", joined(units(cut) if cut is not None else "",
                                    ("of " if cut is not None and sku else "") + sku) or "units",
                      "from inbound shipment" if text("shipment_id") else "from inbound",
                      text("shipment_id"), on("to", text("destination"))) \
            + extra(on("of", num(was)) if was is not None else "")
    if operation == "reschedule_receipt":
        lines = [x for x in _listed(p.get("lines")) if isinstance(x, dict)]
        total = sum(number(x.get("qty")) or 0.0 for x in lines)
        return joined("Reschedule receipt" + (" of" if text("shipment_id") else ""),
                      text("shipment_id"), on("at", text("location")),
                      on("from", text("from_date")),
                      on("to", text("to_date") or text("new_date"))) \
            + extra(lines and plural(len(lines), "line"), units(total) if total else "")
    if operation == "expedite_shipment":
        return joined("Expedite shipment" if text("shipment_id") else "Expedite the shipment",
                      text("shipment_id"), on("with", text("carrier"))) \
            + extra(on("arrive by", text("target_arrival")), of_sku)
    if operation == "request_status":
        return joined(f"Ask {text('carrier') or 'the carrier'} for the status of shipment",
                      text("shipment_id") or "")
    if operation == "update_replenishment_plan":
        return joined("Replenish", of_sku or "stock", on("at", text("location")),
                      on("by", text("need_by")))
    if operation == "update_capacity_plan":
        before, after = qty("from_capacity"), qty("to_capacity")
        change = ": " + joined(f"{num(before)} →" if before is not None else "",
                               num(after)) if after is not None else ""
        return joined("Set planned capacity of", resource or "the resource",
                      on("for", text("period"))) + change
    if operation == "confirm_capacity":
        return joined("Confirm", (f"{num(amount)} spare" if amount is not None else "the spare"),
                      on("on", resource or "the resource"), on("for", text("period")))
    if operation == "reassign_carrier":
        lane = " → ".join(x for x in (text("origin"), text("destination")) if x)
        shipments = [str(x) for x in _listed(p.get("shipments")) if x not in (None, "")]
        listed = ", ".join(shipments[:3]) + (f" and {len(shipments) - 3} more"
                                            if len(shipments) > 3 else "")
        return joined("Move", units(amount) if amount is not None else "load",
                      on("from", text("from_carrier")), on("to", text("to_carrier")),
                      on("on", lane), on("for", text("period"))) \
            + extra(listed and plural(len(shipments), "shipment") + ": " + listed)
    if operation == "rephase_plan":
        target = text("to_period")
        return joined("Rephase", units(amount) if amount is not None else "load",
                      on("on", resource), on("from", text("from_period")),
                      on("to", target) if target else
                      "to a later period — " + (text("note") or "none has room"))
    shown = ", ".join(f"{k.replace('_', ' ')} {_value(v)}" for k, v in ordered_items(p)
                      if _value(v))
    return operation.replace("_", " ").capitalize() + (f": {shown}" if shown else "")


def approval_tally(rec: RecommendationRow, decisions: Sequence[DecisionRow]
                   ) -> tuple[dict[str, list[str]], dict[str, int]]:
    """(team → approvers so far, team → approvals still needed), from the decision rows."""
    required = _required(rec)
    tally: dict[str, list[str]] = {team: [] for team in required}
    for d in sorted(decisions, key=lambda d: d.created_at):
        if d.verdict in _APPROVING and d.team in tally and d.user_id not in tally[d.team]:
            tally[d.team].append(d.user_id)
    missing = {team: need - len(tally[team]) for team, need in required.items()
               if need > len(tally[team])}
    return tally, missing


def _required(rec: RecommendationRow) -> dict[str, int]:
    """Approvals needed per team, in the order of the owning teams (JSONB drops key order)."""
    need = rec.approvals_required or {}
    order = {team: i for i, team in enumerate(rec.teams or [])}
    return {team: need[team] for team in sorted(need, key=lambda t: (order.get(t, len(order)), t))}


# --- reading the body ---------------------------------------------------------------------------


def _listed(value: Any) -> list:
    return value if isinstance(value, list) else []


def _body(rec: RecommendationRow) -> dict[str, Any]:
    return rec.body if isinstance(rec.body, dict) else {}


def _impact(body: dict[str, Any], key: str) -> dict[str, float]:
    """An impact's figures that are numbers (an older body may hold fewer, or none)."""
    raw = body.get(key)
    if not isinstance(raw, dict):
        return {}
    return {k: x for k, v in raw.items() if (x := number(v)) is not None}


def _options(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [o for o in _listed(body.get("options")) if isinstance(o, dict)]


def _chosen(body: dict[str, Any]) -> dict[str, Any]:
    """The recommended option, or an empty dict for a body from before options."""
    return next((o for o in _options(body) if o.get("recommended")), {})


def _idle(body: dict[str, Any]) -> dict[str, Any]:
    return next((o for o in _options(body) if o.get("name") == _NOTHING), {})


def _act_by(rec: RecommendationRow, body: dict[str, Any]) -> tuple[datetime | None, bool]:
    """(when the actions must be decided to do all they say, whether that is at once).

    Nothing at risk either way, no hurry: a deadline then only says when the plan is stale.
    """
    raw = body.get("decide_by")
    try:
        when = aware(datetime.fromisoformat(raw)) if isinstance(raw, str) and raw else None
    except ValueError:
        return None, False
    ignored = _impact(body, "impact_if_ignored")
    if when is None or not any(ignored.get(k, 0.0) >= 0.005 for k in
                               ("value_at_risk", "units_short", "units_excess")):
        return None, False
    return when, bool(rec.created_at) and when <= aware(rec.created_at) + timedelta(minutes=1)


def _prose(value: Any) -> str:
    """Text from the body with its spacing tidied; empty when missing or not text (nan, None)."""
    return " ".join(value.split()) if isinstance(value, str) else ""


def _sentence(text: str) -> str:
    text = _prose(text)
    return text[:1].upper() + text[1:]


def _what_happened(rec: RecommendationRow, body: dict[str, Any]) -> str:
    """The summary without the decision the detectors appended to it (``what: decision``)."""
    summary = _prose(rec.summary) or _prose(body.get("summary"))
    tail = _prose(_chosen(body).get("summary"))
    if not tail:
        return ""  # an older body: its summary is the decision line already
    if summary.endswith(": " + tail):
        return _sentence(summary[: -len(tail) - 2])
    return "" if summary == tail else _sentence(summary)


def _money_parts(body: dict[str, Any], currency: str) -> list[str]:
    ignored, approved = _impact(body, "impact_if_ignored"), _impact(body, "impact_if_approved")
    at_risk, left = ignored.get("value_at_risk"), approved.get("value_at_risk")
    parts = []
    if at_risk is not None and left is not None and at_risk - left >= 0.005:
        parts.append(f"avoids {money(at_risk - left, currency)} at risk")
    elif left is not None and left >= 0.005:
        parts.append(f"{money(left, currency)} stays at risk")
    cost = number(body.get("cost"))
    if cost is not None:
        parts.append(f"costs {money(cost, currency)}" if cost >= 0.005 else "costs nothing")
    return parts


# --- the collapsed message ---------------------------------------------------------------------


def _md(text: str) -> MarkdownTextObject:
    return MarkdownTextObject(text=text or " ")


def _section(text: str, limit: int = MAX_COLLAPSED_SECTION) -> SectionBlock:
    return SectionBlock(text=_md(clip(text, limit)))


def _headline(rec: RecommendationRow) -> str:
    return (f"{severity_emoji(rec.severity)} {severity_word(rec.severity)} · "
            f"{kind_label(rec.kind)} · #{rec.id}")


def _decision_text(rec: RecommendationRow, decision: str,
                   decisions: Sequence[DecisionRow]) -> str:
    text = f"*{clip(decision, 400)}*"
    happened = _what_happened(rec, _body(rec))
    if happened:
        text += "\n" + clip(happened, 150)
    changed = [d.user_id for d in decisions if d.verdict == "modify" and d.changes]
    if changed:
        text += f"\n_Changed on approval by {_who(dict.fromkeys(changed))}: the actions below " \
                "are what runs._"
    return text


def _impact_lines(impact: dict[str, float], kind: str, currency: str) -> list[str]:
    def some(key: str) -> float:
        x = impact.get(key, 0.0)
        return x if x >= 0.005 else 0.0

    def some_units(key: str) -> float:  # to a tenth: a planner needs 329.6, not 329.64
        x = impact.get(key, 0.0)
        return round(x, 1) if x >= 0.05 else 0.0

    lines = []
    if short := some_units("units_short"):
        below = some("service_days_at_risk")
        lines.append(f"{units(short)} below safety stock" + (f" for {span(below)}" if below else ""))
    if unserved := some_units("units_unserved"):
        out = some("days_out_of_stock")
        lines.append(f"{units(unserved)} unserved" + (f", out of stock {span(out)}" if out else ""))
    if excess := some_units("units_excess"):
        lines.append(f"{units(excess)} of capacity unused" if kind == "capacity_shift"
                     else f"{units(excess)} of excess stock")
    if orders := some("orders_at_risk"):
        lines.append(f"{plural(orders, 'order')} at risk")
    if value := some("value_at_risk"):
        lines.append(f"{money(value, currency)} at risk")
    return lines or ["Nothing at risk"]


def _fields(rec: RecommendationRow, body: dict[str, Any], config: AlignbotConfig, zone: tzinfo,
            now: datetime | None) -> list[str]:
    """At most four short fields: If ignored, If approved, Cost, Decide by."""
    currency = config.currency
    fields = []
    for key, title in (("impact_if_ignored", "If ignored"), ("impact_if_approved", "If approved")):
        if isinstance(body.get(key), dict):
            fields.append(f"*{title}*\n" + "\n".join(_impact_lines(_impact(body, key), rec.kind,
                                                                   currency)))
    cost = number(body.get("cost"))
    if cost is not None:
        text = f"*Cost*\n{money(cost, currency)}" if cost >= 0.005 else "*Cost*\nNothing"
        idle, chosen = _idle(body), _chosen(body)
        idle_total, chosen_total = number(idle.get("total_cost")), number(chosen.get("total_cost"))
        if idle_total is not None and chosen_total is not None \
                and idle_total < chosen_total - 0.005:
            text += (f"\n_Doing nothing costs less in all: {money(idle_total, currency)} against "
                     f"{money(chosen_total, currency)}_")
        fields.append(text)
    if rec.state in _WAITING_STATES:
        when = _decide_by_text(rec, body, zone, now)
        if when:
            fields.append(f"*Decide by*\n{when}")
    return [clip(f, 200) for f in fields[:4]]


def _decide_by_text(rec: RecommendationRow, body: dict[str, Any], zone: tzinfo,
                    now: datetime | None) -> str:
    """The earlier of when the actions stop doing all they say and when the decision expires."""
    act_by, urgent = _act_by(rec, body)
    expires = aware(rec.deadline_at) if rec.deadline_at else None
    if urgent:
        return "Now" + (f"\n_expires {local_time(expires, zone, now)}_" if expires else "")
    times = [t for t in (act_by, expires) if t is not None]
    if not times:
        return ""
    first = min(times)
    late = now is not None and aware(now) > first
    return local_time(first, zone, now) + (" _(passed)_" if late else "")


def _system_sections(actions: Sequence[ActionRow], zone: tzinfo, *, show_status: bool,
                     limit: int = MAX_COLLAPSED_SECTION,
                     more: str = "_+{n} more in Details_") -> list[tuple[str, bool]]:
    """(text, shows every action) per system, planning first; numbers follow the order shown."""
    by_system: dict[str, list[str]] = {}
    for n, a in numbered(actions):
        line = f"{n}. {describe_action(a.operation, a.params, zone)}"
        if show_status:
            line = f"{ACTION_STATUS_EMOJI.get(a.status, '')} {line} — _{state_label(a.status)}_"
            if a.detail and a.status in ("failed", "skipped"):
                line += f": {clip(a.detail, 150)}"
        by_system.setdefault(a.system, []).append(line)
    if not by_system:
        return [("*Actions*\nNo system changes — this one is for your information and "
                 "decision only.", True)]
    out = []
    for system, lines in by_system.items():
        text = clip_lines(lines, limit, head=f"*{system_label(system)}*", more=more)
        out.append((text, text.count("\n") == len(lines)))
    return out


def system_label(system: str) -> str:
    return SYSTEM_LABEL.get(system, str(system).replace("_", " ").capitalize())


def _who(users: Sequence[str]) -> str:
    return ", ".join(f"<@{u}>" for u in users)


def _mentions(config: AlignbotConfig, teams: Sequence[str]) -> dict[str, str]:
    return dict(zip(teams, team_mentions(config, teams)))


def _execution_text(actions: Sequence[ActionRow]) -> str:
    """Per system, what became of its actions: ``Planning done, Logistics failed``."""
    per: dict[str, list[str]] = {}
    for _, a in numbered(actions):
        per.setdefault(a.system, []).append(a.status)
    parts = []
    for system, statuses in per.items():
        done, failed = statuses.count("done"), statuses.count("failed")
        label = system_label(system)
        if done == len(statuses):
            parts.append(f"{label} done")
        elif failed:
            parts.append(f"{label} failed" + (f" ({failed} of {len(statuses)})"
                                              if failed < len(statuses) else ""))
        elif "skipped" in statuses:
            parts.append(f"{label} skipped")
        else:
            parts.append(f"{label} " + (f"{done} of {len(statuses)} done" if done else "pending"))
    return ", ".join(parts)


def _status_line(rec: RecommendationRow, actions: Sequence[ActionRow],
                 decisions: Sequence[DecisionRow], config: AlignbotConfig, zone: tzinfo,
                 now: datetime | None) -> str:
    """Where the decision stands, in the team's time zone: who approved for which team, who is
    still needed (until they are not), and what each system did once it ran."""
    tally, missing = approval_tally(rec, decisions)
    mentions = _mentions(config, list(rec.teams or []) + [t for t in missing
                                                          if t not in (rec.teams or [])])
    approvers = [(u, team) for team, users in tally.items() for u in users]
    when = local_time(rec.decided_at, zone, now) if rec.decided_at else None
    approved_by = ""
    if approvers:
        names = _who([u for u, _ in approvers]) if len(tally) <= 1 else ", ".join(
            f"<@{u}> ({team})" for u, team in approvers)
        approved_by = f"Approved by {names}" + (f" at {when}" if when else "")
    state = rec.state

    if state == "open":
        needed = " and ".join(f"{n} from {team} ({mentions.get(team, team)})"
                              for team, n in missing.items())
        lines = []
        if approvers:
            first = min((d.created_at for d in decisions if d.verdict in _APPROVING),
                        default=None)
            at = f" at {local_time(first, zone, now)}" if first and len(approvers) == 1 else ""
            lines.append(":ballot_box_with_check: Approved by " + ", ".join(
                f"<@{u}> ({team})" for u, team in approvers) + at
                + (f" · still needed: {needed}" if needed else ""))
        elif needed:
            lines.append(f":hourglass_flowing_sand: approval needed: {needed}")
        else:
            owners = ", ".join(f"{mentions.get(t, t)} ({t})" for t in rec.teams or [])
            lines.append(":hourglass_flowing_sand: one approval needed"
                         + (f" from {owners}" if owners else ""))
        if any(d.verdict == "snooze" for d in decisions):
            lines.append(":alarm_clock: Snooze ended — this needs a decision again.")
        return "\n".join(lines)
    if state == "snoozed":
        by = next((d.user_id for d in sorted(decisions, key=lambda d: d.created_at, reverse=True)
                   if d.verdict == "snooze"), None)
        until = local_time(rec.snoozed_until, zone, now) if rec.snoozed_until else "later"
        return (f":zzz: Snoozed{f' by <@{by}>' if by else ''} until {until} — it comes back "
                "for a decision then.")
    approved = approved_by or "Approved"
    if state == "approved":
        return f":white_check_mark: {approved} — queued for execution"
    if state == "executing":
        return f":white_check_mark: {approved} — executing: {_execution_text(actions)}"
    if state == "executed":
        where = " and ".join(dict.fromkeys(system_label(a.system) for _, a in numbered(actions)))
        return f":white_check_mark: {approved} · Executed in {where or 'the systems'}"
    if state == "failed":
        return (f":x: {approved} · Execution failed — nothing was changed"
                + (f" ({_execution_text(actions)})" if actions else ""))
    if state == "partially_executed":
        return (f":warning: {approved} · Partially executed: {_execution_text(actions)} — "
                "finish the failed steps by hand")
    if state == "rejected":
        reject = next((d for d in sorted(decisions, key=lambda d: d.created_at)
                       if d.verdict == "reject"), None)
        who = f" by <@{reject.user_id}>" if reject else ""
        at = f" at {when}" if when else ""
        reason = f": {clip(reject.reason, 300)}" if reject and reject.reason else ""
        return f":x: Rejected{who}{at}{reason}"
    if state == "expired":
        at = f" at {when}" if when else ""
        return (f":hourglass: Expired without a decision{at} — escalated. "
                "Nothing was changed in either system.")
    if state == "superseded":
        if rec.superseded_by:
            return f":arrows_counterclockwise: Superseded by #{rec.superseded_by} — decide there."
        return (":arrows_counterclockwise: Superseded — the situation changed; "
                "nothing was executed.")
    if state == "resolved":
        at = f" at {when}" if when else ""
        return f":white_check_mark: Resolved on its own{at} — plan and execution agree again."
    return f"State: {state_label(state)}"


def _details_button(rec: RecommendationRow) -> ButtonElement:
    return ButtonElement(text=PlainTextObject(text="Details", emoji=True), action_id=DETAILS,
                         value=str(rec.id))


def _decision_controls(rec: RecommendationRow) -> ActionsBlock:
    value = f"{rec.id}"
    return ActionsBlock(block_id=f"{ACTIONS_BLOCK_PREFIX}{rec.id}", elements=[
        ButtonElement(text=PlainTextObject(text="Approve", emoji=True), action_id=APPROVE,
                      value=value, style="primary"),
        ButtonElement(text=PlainTextObject(text="Reject", emoji=True), action_id=REJECT,
                      value=value, style="danger"),
        ButtonElement(text=PlainTextObject(text="Modify", emoji=True), action_id=MODIFY,
                      value=value),
        StaticSelectElement(
            action_id=SNOOZE, placeholder=PlainTextObject(text="Snooze", emoji=True),
            options=[Option(text=PlainTextObject(text=label), value=key)
                     for key, label in SNOOZE_CHOICES.items()]),
        _details_button(rec),
    ])


def _fallback(rec: RecommendationRow, decision: str, owners: str) -> str:
    """The notification text: the decision line, and the owners while a decision is due (so
    they are pinged)."""
    text = f"{severity_word(rec.severity)} · {kind_label(rec.kind)} #{rec.id}: {decision}"
    if rec.state != "open":
        text += f" — {state_label(rec.state)}"
    if owners:
        text += f" · for {owners}"
    return clip(text, 1000)


def _fit(blocks: list[Block], most: int) -> list[Block]:
    """Keep to ``most`` blocks: drop from the middle, never the state line and the controls."""
    if len(blocks) <= most:
        return blocks
    keep_tail = 2
    head = blocks[: most - keep_tail - 1]
    dropped = len(blocks) - len(head) - keep_tail
    note = ContextBlock(elements=[_md(f"_+{plural(dropped, 'more section')} not shown_")])
    return head + [note] + blocks[-keep_tail:]


# --- the details ---------------------------------------------------------------------------------


_TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")


def _when(value: Any, zone: tzinfo) -> Any:
    """An ISO timestamp string as ``Thu 19 Nov 09:00 CST`` in ``zone``; anything else as is."""
    if not isinstance(value, str) or not _TIMESTAMP.match(value):
        return value
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return value
    here = (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(zone)
    return f"{here:%a} {here.day} {here:%b} {here:%H:%M} {zone_abbreviation(here)}"


def _localized(mapping: dict[str, Any], zone: tzinfo) -> dict[str, Any]:
    return {k: _when(v, zone) for k, v in mapping.items()}


def _value(v: Any) -> str:
    """A parameter or evidence value in words; empty for a missing one."""
    if v is None or v == "" or v == [] or v == {}:
        return ""
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, (int, float)):
        return num(v) if number(v) is not None else ""
    if isinstance(v, list):
        return plural(len(v), "item")
    if isinstance(v, dict):
        return ", ".join(f"{k} {_value(x)}" for k, x in ordered_items(v) if _value(x))
    return str(v)


def _identity(item: dict[str, Any]) -> tuple:
    if item.get("shipment_id"):
        return ("shipment", item["shipment_id"])
    if item.get("resource_id"):
        return ("resource", item.get("resource_type"), item["resource_id"], item.get("period"))
    if item.get("sku") and item.get("location"):
        return ("position", item["sku"], item["location"], item.get("period"))
    return ()


def _evidence_line(item: dict[str, Any], zone: tzinfo) -> str:
    """One affected item (or drift) in a planner's words, by what it is about."""
    item = {k: v for k, v in _localized(item, zone).items() if _value(v)}
    g = item.get

    def n(key: str) -> float | None:
        return number(g(key))

    facts: list[str] = []
    if g("shipment_id"):
        who = " ".join(x for x in (str(g("shipment_id")),
                                   f"{g('origin')} → {g('destination')}" if g("origin") and
                                   g("destination") else
                                   (f"to {g('destination')}" if g("destination") else ""),
                                   f"with {g('carrier')}" if g("carrier") else "") if x)
        lines = [x for x in _listed(g("lines")) if isinstance(x, dict)]
        carried = n("units") if n("units") is not None else (
            sum(number(x.get("qty")) or 0.0 for x in lines) if lines else None)
        if carried:
            facts.append(units(carried))
        if g("planned_arrival") and g("eta"):
            late = n("slip_hours")
            facts.append(f"planned arrival {g('planned_arrival')} → ETA {g('eta')}"
                         + (f" ({plural(round(late), 'hour')} late)" if late and late >= 0.5
                            else ""))
        elif g("eta"):
            facts.append(f"ETA {g('eta')}")
        reasons = [_REASONS.get(r, r.replace("_", " ")) for r in _listed(g("reasons"))
                   if isinstance(r, str) and r]
        if reasons:
            facts.append("why: " + ", ".join(reasons))
        if g("exception_code"):
            facts.append(f"exception code {g('exception_code')}")
        if n("silent_hours"):
            facts.append(f"no news for {plural(round(n('silent_hours') or 0), 'hour')}")
    elif g("resource_id"):
        who = " ".join(x for x in (str(g("resource_type") or "").capitalize(),
                                   str(g("resource_id")),
                                   f"for {g('period')}" if g("period") else "") if x)
        load, cap = n("planned_load"), n("available_capacity")
        if load is not None and cap is not None:
            planned = n("planned_capacity")
            facts.append(f"planned load {num(load)} on capacity {num(cap)}"
                         + (f" (planned {num(planned)})" if planned is not None
                            and abs(planned - cap) >= 0.005 else ""))
            if load - cap >= 0.005:
                facts.append(f"{num(load - cap)} over")
            elif cap - load >= 0.005:
                facts.append(f"{num(cap - load)} spare")
    else:
        who = " ".join(x for x in (str(g("sku") or ""), f"at {g('location')}" if g("location")
                                   else "", f"for {g('period')}" if g("period") else "") if x)
        plan, latest = n("planned_qty"), n("latest_qty")
        if plan is not None and latest is not None:
            delta = latest - plan
            facts.append(f"plan {num(plan)} → latest {num(latest)} "
                         f"({'+' if delta >= 0 else '−'}{num(abs(delta))})")
        if n("on_hand") is not None:
            facts.append(f"{num(n('on_hand'))} on hand")
        if n("daily_demand") is not None:
            facts.append(f"{units(n('daily_demand'))} a day")
        low, safety = n("min_projected"), n("safety_stock")
        if low is not None and safety is not None:
            facts.append(f"projected low {num(low)} against safety stock {num(safety)}")
        short = n("units_short")
        if short is not None and short >= 0.005 and low is not None:
            starts, lasts = n("below_safety_in_days"), n("days_below_safety")
            facts.append(f"{units(short)} below it"
                         + (f" in {span(starts)}" if starts and starts >= 0.005 else
                            " now" if starts is not None else "")
                         + (f" for {span(lasts)}" if lasts and lasts >= 0.005 else ""))
        elif short is not None and low is not None:
            facts.append("stays above safety stock")
        elif short is not None and short >= 0.005:
            facts.append(f"{units(short)} short")
    if not who:
        who = " · ".join(str(v) for k, v in ordered_items(item)
                         if isinstance(v, str))[:200] or "item"
    if not facts:  # a shape not known here: its numbers, as they are
        facts = [f"{k.replace('_', ' ')} {_value(v)}" for k, v in ordered_items(item)
                 if isinstance(v, (int, float)) and not isinstance(v, bool)][:4]
    return "• " + who + (": " + ", ".join(facts) if facts else "")


def _evidence_text(body: dict[str, Any], drifts: Sequence[DriftRow], zone: tzinfo) -> str:
    """The affected items, each with its drift's own evidence (plan vs actual), and the drifts
    no item names."""
    items = [dict(x) for x in _listed(body.get("affected")) if isinstance(x, dict)]
    by_id = {_identity(x): x for x in items if _identity(x)}
    extra = []
    for drift in drifts:
        seen = {**(drift.evidence or {}), **(drift.key or {})}
        mine = by_id.get(_identity(seen))
        if mine is not None:
            for k, v in seen.items():
                mine.setdefault(k, v)
        elif _identity(seen):
            extra.append(seen)
    lines = [_evidence_line(x, zone) for x in items + extra]
    raw = body.get("cause")
    cause = {k: v for k, v in ordered_items(raw if isinstance(raw, dict) else {})
             if k != "direction" and _value(v)}
    if not lines and not cause:
        return ""
    head = "*Evidence*" + (" — cause: " + ", ".join(f"{k.replace('_', ' ')} {_value(v)}"
                                                  for k, v in cause.items()) if cause else "")
    return clip_lines(lines, MAX_SECTION_TEXT, head=clip(head, 500))


def _options_texts(body: dict[str, Any], currency: str) -> list[str]:
    """Each option weighed, the recommended one first: its figures, and why the others lost."""
    options = _options(body)
    if not options:
        older = [f"• {clip(_prose(a), 300)}" for a in _listed(body.get("alternatives")) if _prose(a)]
        return [clip_lines(older, MAX_SECTION_TEXT, head="*Alternatives considered*")] \
            if older else []
    chosen = _chosen(body) or options[0]
    out = []
    for i, o in enumerate(options[:8]):
        title = f"*{i + 1}. {_prose(o.get('name')) or 'Option'}*" + (
            " — recommended" if o is chosen else "")
        lines = [title]
        if _prose(o.get("summary")):
            lines.append(clip(_sentence(o["summary"]), 600))
        figures = _option_figures(o, currency)
        if figures:
            lines.append(figures)
        if o is not chosen:
            lines.append("_Why not:_ " + _why_not(o, chosen, currency))
        out.append("\n".join(lines))
    return out


def _option_figures(o: dict[str, Any], currency: str) -> str:
    total = number(o.get("total_cost"))
    parts = []
    if total is not None:
        costs = [f"{money(number(o.get('action_cost')) or 0, currency)} actions",
                 f"{money(number(o.get('shortage_cost')) or 0, currency)} shortage penalty"]
        if number(o.get("holding_cost")):
            costs.append(f"{money(number(o.get('holding_cost')), currency)} holding excess stock")
        parts.append(f"{money(total, currency)} in all ({' + '.join(costs)})")
    impact = _impact(o, "impact")
    if impact or isinstance(o.get("impact"), dict):
        left = _impact_lines(impact, "", currency)
        parts.append("leaves nothing at risk" if left == ["Nothing at risk"]
                     else "leaves " + ", ".join(left))
    return " · ".join(parts)


def _why_not(o: dict[str, Any], chosen: dict[str, Any], currency: str) -> str:
    """Why an option lost, from its figures against the recommended one's."""
    mine, best = _impact(o, "impact"), _impact(chosen, "impact")
    total, won = number(o.get("total_cost")), number(chosen.get("total_cost"))
    if total is None or won is None:
        return _prose(o.get("why_not")) or "it did better on none of the figures"
    reasons = []
    if total - won >= 0.005:
        reasons.append(f"{money(total - won, currency)} more in all")
    elif won - total >= 0.005:
        reasons.append(f"{money(won - total, currency)} less in all")
    for key, what in (("units_short", "below safety stock"), ("units_excess", "of excess stock")):
        if mine.get(key, 0.0) > best.get(key, 0.0) + 0.5:
            against = units(best[key]) if best.get(key, 0.0) >= 0.005 else "none"
            reasons.append(f"leaves {units(mine[key])} {what} against {against}")
    cost, cost_won = number(o.get("action_cost")) or 0.0, number(chosen.get("action_cost")) or 0.0
    if cost > cost_won + 0.005:
        reasons.append(f"its actions cost {money(cost, currency)} against "
                       f"{money(cost_won, currency)}")
    if o.get("name") == _NOTHING:
        reasons.append("it changes nothing in either system")
    return "; ".join(reasons) or "the same outcome, and not the first choice"


def _why_text(body: dict[str, Any], currency: str) -> str:
    rationale = _prose(body.get("rationale"))
    chosen, idle = _chosen(body), _idle(body)
    cut = _COST_SENTENCE.search(rationale)
    if cut and number(chosen.get("total_cost")) is not None:
        rationale = rationale[: cut.start() + 1]
        total, idle_total = number(chosen["total_cost"]), number(idle.get("total_cost"))
        name = _prose(chosen.get("name")) or "The recommended option"
        if idle_total is not None and idle_total < total - 0.005:
            rationale += (f" Doing nothing costs less in all ({money(idle_total, currency)} "
                          f"against {money(total, currency)} for {name.lower()}): approve only "
                          "if the service is worth more than the figures say.")
        else:
            parts = [f"{money(number(chosen.get('action_cost')) or 0, currency)} in actions",
                     f"{money(number(chosen.get('shortage_cost')) or 0, currency)} shortage "
                     "penalty"]
            if number(chosen.get("holding_cost")):
                parts.append(f"{money(number(chosen['holding_cost']), currency)} holding "
                             "excess stock")
            rationale += (f" {name} is the cheapest way that acts: {' + '.join(parts)} = "
                          f"{money(total, currency)}"
                          + (f", against {money(idle_total, currency)} doing nothing."
                             if idle_total is not None else "."))
    return "*Why this option*\n" + clip(rationale, 2500) if rationale else ""


def _routing_text(rec: RecommendationRow, config: AlignbotConfig, zone: tzinfo,
                  now: datetime | None) -> str:
    teams = ", ".join(rec.teams or []) or "nobody"
    how = f"by rule “{rec.rule}”" if rec.rule else "by default (no routing rule matched)"
    need = _required(rec)
    approvals = " and ".join(f"{plural(n, 'approval') if i == 0 else n} from {t}"
                             for i, (t, n) in enumerate(need.items())) or "one approval"
    parts = [f"Routed to {teams} {how}", f"needs {approvals}"]
    if rec.deadline_at and rec.state in _WAITING_STATES:
        parts.append(f"expires {local_time(rec.deadline_at, zone, now)}")
    sample = aware(now) if now is not None else datetime.now(UTC)
    parts.append(f"times in {zone_abbreviation(sample.astimezone(zone))} ({zone})")
    return " · ".join(parts)
