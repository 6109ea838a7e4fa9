"""The recommendation message: what drifted, what it costs, what to do, and who decides.

One function renders the whole message from the store rows, so the integrator can post or
edit it after any state change and the message always shows the current state (buttons only
while a decision is still possible). Blocks are built with slack_sdk's models, which validate
them, and every text that grows with the data is clipped to Slack's limits.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime, tzinfo
from typing import Any

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ContextBlock,
    DividerBlock,
    HeaderBlock,
    MarkdownTextObject,
    Option,
    PlainTextObject,
    SectionBlock,
    StaticSelectElement,
)

from bot._format import (
    MAX_CONTEXT_TEXT,
    MAX_FIELD_TEXT,
    MAX_HEADER_TEXT,
    MAX_MESSAGE_BLOCKS,
    MAX_SECTION_TEXT,
    clip,
    clip_lines,
    days,
    key_text,
    kind_label,
    local_time,
    num,
    ordered_items,
    rec_zone,
    severity_emoji,
    state_label,
    team_mentions,
)
from bot.config import AlignbotConfig
from store.tables import ActionRow, DecisionRow, DriftRow, RecommendationRow

APPROVE, REJECT, MODIFY, SNOOZE = "rec_approve", "rec_reject", "rec_modify", "rec_snooze"
ACTIONS_BLOCK_PREFIX = "rec_actions:"
SNOOZE_CHOICES = {"1h": "1 h", "4h": "4 h", "1d": "1 day", "1w": "1 week"}

DECIDABLE_STATES = ("open",)
ACTION_STATUS_EMOJI = {
    "pending": ":hourglass_flowing_sand:",
    "done": ":white_check_mark:",
    "failed": ":x:",
    "skipped": ":fast_forward:",
}
SYSTEM_LABEL = {"planning": "Planning", "logistics": "Logistics"}
_APPROVING = ("approve", "modify")
_EXECUTION_STATES = ("approved", "executing", "executed", "failed", "partially_executed")

# Keys that name the thing an evidence line is about, in the order a reader wants them.
_IDENTITY_KEYS = ("shipment_id", "sku", "location", "resource_type", "resource_id", "destination",
                  "period", "kind")
# (plan key, actual key, how to say it) pairs found in affected items and drift evidence.
_PAIRS = (
    ("planned_qty", "latest_qty", "plan {a} → latest {b}"),
    ("planned_load", "available_capacity", "planned load {a} vs capacity {b}"),
    ("planned_capacity", "available_capacity", "capacity planned {a} → now {b}"),
    ("planned_arrival", "eta", "planned arrival {a} → ETA {b}"),
    ("min_projected", "safety_stock", "projected low {a} vs safety stock {b}"),
)


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

    ``drifts`` (optional) adds each drift's plan-vs-actual evidence; ``now`` lets times of
    today be shown as just the clock.
    """
    body = rec.body or {}
    zone = rec_zone(config, rec.teams)
    actions = sorted(actions, key=lambda a: a.position)
    decided = rec.state not in DECIDABLE_STATES

    blocks: list[Block] = [
        HeaderBlock(text=PlainTextObject(text=clip(_headline(rec), MAX_HEADER_TEXT), emoji=True)),
        SectionBlock(text=MarkdownTextObject(text=clip(f"*{rec.summary}*", MAX_SECTION_TEXT))),
    ]
    status = _status_line(rec, decisions, zone, now)
    if status:
        blocks.append(ContextBlock(elements=[_md(clip(status, MAX_CONTEXT_TEXT))]))
    owners = " · ".join(f"{m} ({team})" for m, team in
                        zip(team_mentions(config, rec.teams), rec.teams))
    blocks.append(ContextBlock(elements=[_md(clip(
        f"For {owners} · {_approvals_needed(rec)}", MAX_CONTEXT_TEXT))]))

    evidence = _evidence_text(body, drifts, zone)
    if evidence:
        blocks.append(SectionBlock(text=MarkdownTextObject(text=evidence)))
    blocks.append(_impact_block(body))
    blocks.append(DividerBlock())
    # statuses only once something can have run; a rejected proposal's actions never "pend"
    show_status = rec.state in _EXECUTION_STATES or any(a.status != "pending" for a in actions)
    blocks.extend(_action_blocks(actions, zone, show_status=show_status))
    why = _why_text(body)
    if why:
        blocks.append(SectionBlock(text=MarkdownTextObject(text=why)))

    footer = [f"#{rec.id}", kind_label(rec.kind)]
    if rec.deadline_at and not decided:
        footer.append(f"decide by {local_time(rec.deadline_at, zone, now)}")
    if rec.rule:
        footer.append(f"routed by rule “{rec.rule}”")
    blocks.append(ContextBlock(elements=[_md(clip(" · ".join(footer), MAX_CONTEXT_TEXT))]))
    if not decided:
        blocks.append(_decision_controls(rec))

    blocks = _fit(blocks)
    return _fallback(rec, owners if not decided else ""), [b.to_dict() for b in blocks]


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
        chunks = chunks[: MAX_MESSAGE_BLOCKS - 1] + [f"_+{dropped} more part(s) not shown_"]
    return [SectionBlock(text=MarkdownTextObject(text=c or " ")).to_dict() for c in chunks]


def describe_action(operation: str, params: dict[str, Any], zone: tzinfo = UTC) -> str:
    """One action in words, e.g. ``Transfer 400 × SKU-10042 DC-ATL → DC-DAL``.

    Timestamps among the params are shown in ``zone`` (the team's); plain dates stay dates.
    """
    p = _localized(params or {}, zone)
    g = p.get

    def extra(*parts: str | None) -> str:
        kept = [x for x in parts if x]
        return (" (" + ", ".join(kept) + ")") if kept else ""

    qty = g("qty", g("quantity", g("units")))
    if operation == "create_transfer":
        return (f"Transfer {num(qty)} × {g('sku', '?')} {g('from', '?')} → {g('to', '?')}"
                + extra(g("carrier") and f"via {g('carrier')}",
                        g("ship_date") and f"ship {g('ship_date')}",
                        g("arrive_by") and f"arrive by {g('arrive_by')}"))
    if operation == "update_forecast":
        where = f"{g('sku', '?')} at {g('location', '?')}" + (
            f" for {g('period')}" if g("period") else "")
        if g("to_qty") is not None:
            start = f"{num(g('from_qty'))} → " if g("from_qty") is not None else ""
            return f"Update forecast of {where}: {start}{num(g('to_qty'))}"
        return f"Update forecast of {where} to {num(qty)}"
    if operation == "reduce_inbound":
        return (f"Cut {num(g('reduce_by', qty))} × {g('sku', '?')} from inbound shipment "
                f"{g('shipment_id', '?')} to {g('destination', '?')}"
                + extra(g("from_qty") is not None and f"was {num(g('from_qty'))}"))
    if operation == "reschedule_receipt":
        lines = g("lines") or []
        return (f"Reschedule receipt of {g('shipment_id', '?')} at {g('location', '?')} "
                f"from {g('from_date') or '?'} to {g('to_date') or g('new_date') or '?'}"
                + extra(lines and f"{len(lines)} line(s), "
                        f"{num(sum(float(x.get('qty', 0)) for x in lines))} units"))
    if operation == "expedite_shipment":
        return (f"Expedite shipment {g('shipment_id', '?')}"
                + (f" with {g('carrier')}" if g("carrier") else "")
                + extra(g("target_arrival") and f"arrive by {g('target_arrival')}",
                        qty is not None and f"{num(qty)} × {g('sku', '?')}"))
    if operation == "request_status":
        return (f"Ask {g('carrier') or 'the carrier'} for the status of shipment "
                f"{g('shipment_id', '?')}")
    if operation == "update_replenishment_plan":
        return (f"Replenish {num(qty)} × {g('sku', '?')} at {g('location', '?')}"
                + (f" by {g('need_by')}" if g("need_by") else ""))
    if operation == "update_capacity_plan":
        return (f"Set planned capacity of {g('resource_type', '')} {g('resource_id', '?')} "
                f"for {g('period', '?')}: {num(g('from_capacity'))} → {num(g('to_capacity'))}")
    if operation == "confirm_capacity":
        return (f"Confirm {num(qty)} spare on {g('resource_type', '')} {g('resource_id', '?')} "
                f"for {g('period', '?')}")
    if operation == "reassign_carrier":
        return (f"Move {num(qty)} from {g('from_carrier') or '?'} to {g('to_carrier', '?')} "
                f"on {g('origin', '?')} → {g('destination', '?')}"
                + (f" for {g('period')}" if g("period") else ""))
    if operation == "rephase_plan":
        target = g("to_period")
        return (f"Rephase {num(qty)} on {g('resource_type', '')} {g('resource_id', '?')} "
                f"from {g('from_period', '?')} to "
                + (target if target else f"a later period — {g('note') or 'none has room'}"))
    shown = ", ".join(f"{k.replace('_', ' ')} {_value(v)}" for k, v in ordered_items(p))
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


# --- the parts ------------------------------------------------------------------------------


def _md(text: str) -> MarkdownTextObject:
    return MarkdownTextObject(text=text)


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
    return f"{here:%a} {here.day} {here:%b} {here:%H:%M %Z}"


def _localized(mapping: dict[str, Any], zone: tzinfo) -> dict[str, Any]:
    return {k: _when(v, zone) for k, v in mapping.items()}


def _value(v: Any) -> str:
    if isinstance(v, bool) or v is None:
        return str(v)
    if isinstance(v, (int, float)):
        return num(v)
    if isinstance(v, list):
        return f"{len(v)} item(s)"
    if isinstance(v, dict):
        return ", ".join(f"{k} {_value(x)}" for k, x in ordered_items(v))
    return str(v)


def _headline(rec: RecommendationRow) -> str:
    return f"{severity_emoji(rec.severity)} {kind_label(rec.kind)} · {str(rec.severity).upper()}"


def _approvals_needed(rec: RecommendationRow) -> str:
    need = _required(rec)
    if not need:
        return "one approval needed"
    parts = [f"{n} from {team}" for team, n in need.items()]
    return "approval needed: " + " and ".join(parts)


def _fallback(rec: RecommendationRow, owners: str) -> str:
    """The notification text; it names the owners while a decision is due, so they are pinged."""
    text = (f"[{str(rec.severity).upper()}] #{rec.id} {kind_label(rec.kind)}: "
            f"{clip(rec.summary, 200)}")
    if rec.state != "open":
        text += f" — {state_label(rec.state)}"
    if owners:
        text += f" · for {owners}"
    return clip(text, 1000)


def _affected_line(item: dict[str, Any], zone: tzinfo) -> str:
    item = _localized(item, zone)
    ident = [str(item[k]) for k in _IDENTITY_KEYS if item.get(k) not in (None, "")]
    if not ident:
        ident = [f"{k} {_value(v)}" for k, v in ordered_items(item)
                 if not isinstance(v, (int, float)) or isinstance(v, bool)][:3]
    facts = _pair_facts(item)
    if "units_short" in item and not facts:
        facts.append(f"{num(item['units_short'])} units short")
    elif "units" in item and not facts:
        facts.append(f"{num(item['units'])} units")
    if item.get("reasons"):
        facts.append("why: " + ", ".join(str(r).replace("_", " ") for r in item["reasons"]))
    if item.get("days_of_cover") is not None:
        facts.append(f"{days(item['days_of_cover'])} of cover")
    return "• " + " · ".join(ident or ["item"]) + (": " + ", ".join(facts) if facts else "")


def _pair_facts(item: dict[str, Any]) -> list[str]:
    facts = []
    used: set[str] = set()
    for a, b, template in _PAIRS:
        if a in item and b in item and b not in used:
            text = template.format(a=_value(item[a]), b=_value(item[b]))
            if isinstance(item[a], (int, float)) and isinstance(item[b], (int, float)) \
                    and a == "planned_qty":
                delta = float(item[b]) - float(item[a])
                text += f" ({'+' if delta >= 0 else '−'}{num(abs(delta))})"
            facts.append(text)
            used.update((a, b))
    return facts


def _evidence_text(body: dict[str, Any], drifts: Sequence[DriftRow], zone: tzinfo) -> str:
    items = [item for item in body.get("affected") or [] if isinstance(item, dict)]
    lines = [_affected_line(item, zone) for item in items]
    shown = {fact for item in items for fact in _pair_facts(_localized(item, zone))}
    for drift in drifts:
        evidence = _localized(drift.evidence or {}, zone)
        facts = _pair_facts(evidence) or [
            f"{k.replace('_', ' ')} {_value(v)}" for k, v in ordered_items(evidence)
            if isinstance(v, (int, float, str)) and not isinstance(v, bool)][:4]
        facts = [f for f in facts if f not in shown]  # the affected lines already say it
        key = key_text(drift.key)
        if facts:
            lines.append(f"• drift {key}: " + ", ".join(facts))
    cause = body.get("cause") or {}
    head = "*Evidence*"
    if cause:
        head += " — cause: " + ", ".join(
            f"{k.replace('_', ' ')} {v}" for k, v in ordered_items(cause) if v not in (None, ""))
    if not lines and not cause:
        return ""
    return clip_lines(lines, MAX_SECTION_TEXT, head=clip(head, 500))


def _impact_text(impact: dict[str, Any]) -> str:
    parts = []
    if impact.get("units_short"):
        parts.append(f"{num(impact['units_short'])} units short")
    if impact.get("units_excess"):
        parts.append(f"{num(impact['units_excess'])} units excess")
    parts.append(f"{num(impact.get('value_at_risk', 0))} value at risk")
    parts.append(f"{days(impact.get('service_days_at_risk', 0))} of service at risk")
    if impact.get("orders_at_risk"):
        parts.append(f"{num(impact['orders_at_risk'])} orders at risk")
    return "\n".join(parts)


def _impact_block(body: dict[str, Any]) -> SectionBlock:
    ignored = body.get("impact_if_ignored") or {}
    approved = body.get("impact_if_approved") or {}
    return SectionBlock(fields=[
        _md(clip("*If ignored*\n" + _impact_text(ignored), MAX_FIELD_TEXT)),
        _md(clip("*If approved*\n" + _impact_text(approved), MAX_FIELD_TEXT)),
    ])


def _action_blocks(actions: Sequence[ActionRow], zone: tzinfo, *,
                   show_status: bool) -> list[Block]:
    """One section per system ("Planning", "Logistics"), actions as numbered lines."""
    by_system: dict[str, list[str]] = {}
    for a in actions:
        line = f"{a.position + 1}. {describe_action(a.operation, a.params, zone)}"
        if show_status:
            line = f"{ACTION_STATUS_EMOJI.get(a.status, '')} {line} — _{a.status}_"
            if a.detail and a.status in ("failed", "skipped"):
                line += f": {clip(a.detail, 200)}"
        by_system.setdefault(a.system, []).append(line)
    if not by_system:
        return [SectionBlock(text=_md("*Actions*\nNo system changes — this one is for your "
                                      "information and decision only."))]
    out: list[Block] = []
    for system in sorted(by_system, key=lambda s: (s not in SYSTEM_LABEL, s)):
        label = SYSTEM_LABEL.get(system, system.capitalize())
        out.append(SectionBlock(text=_md(clip_lines(by_system[system], MAX_SECTION_TEXT,
                                                    head=f"*{label}*"))))
    return out


def _why_text(body: dict[str, Any]) -> str:
    parts = []
    if body.get("rationale"):
        parts.append("*Why this option*\n" + clip(str(body["rationale"]), 1200))
    alternatives = [f"• {clip(str(a), 300)}" for a in body.get("alternatives") or []]
    if alternatives:
        room = MAX_SECTION_TEXT - sum(len(p) + 1 for p in parts)
        parts.append(clip_lines(alternatives, room, head="*Alternatives considered*"))
    return "\n".join(parts)


def _who(users: Sequence[str]) -> str:
    return ", ".join(f"<@{u}>" for u in users)


def _status_line(rec: RecommendationRow, decisions: Sequence[DecisionRow], zone,
                 now: datetime | None) -> str | None:
    """The line that tells the channel where the decision stands, in the team's time zone."""
    tally, missing = approval_tally(rec, decisions)
    approvers = [(u, team) for team, users in tally.items() for u in users]
    when = local_time(rec.decided_at, zone, now) if rec.decided_at else None
    state = rec.state
    approved_by = ""
    if approvers:
        names = _who([u for u, _ in approvers]) if len(tally) <= 1 else ", ".join(
            f"<@{u}> ({team})" for u, team in approvers)
        approved_by = f"Approved by {names}" + (f" at {when}" if when else "")

    if state == "open":
        snoozes = [d for d in decisions if d.verdict == "snooze"]
        parts = []
        if approvers:
            parts.append(":ballot_box_with_check: Approved by " + ", ".join(
                f"<@{u}> ({team})" for u, team in approvers) + " · still needed: "
                + ", ".join(f"{n} from {t}" for t, n in missing.items()))
        if snoozes:
            parts.append(":alarm_clock: Snooze ended — this needs a decision again.")
        return "\n".join(parts) or None
    if state == "snoozed":
        by = next((d.user_id for d in sorted(decisions, key=lambda d: d.created_at, reverse=True)
                   if d.verdict == "snooze"), None)
        until = local_time(rec.snoozed_until, zone, now) if rec.snoozed_until else "later"
        return (f":zzz: Snoozed{f' by <@{by}>' if by else ''} until {until} — it comes back "
                "for a decision then.")
    if state == "approved":
        return f":white_check_mark: {approved_by or 'Approved'} — queued for execution"
    if state == "executing":
        return f":white_check_mark: {approved_by or 'Approved'} — executing"
    if state == "executed":
        return f":white_check_mark: {approved_by or 'Approved'} · Executed in both systems"
    if state == "failed":
        return f":x: {approved_by or 'Approved'} · Execution failed — nothing was changed"
    if state == "partially_executed":
        return (f":warning: {approved_by or 'Approved'} · Partially executed — finish the "
                "failed steps below by hand")
    if state == "rejected":
        reject = next((d for d in sorted(decisions, key=lambda d: d.created_at)
                       if d.verdict == "reject"), None)
        who = f" by <@{reject.user_id}>" if reject else ""
        at = f" at {when}" if when else ""
        reason = f": {clip(reject.reason, 1500)}" if reject and reject.reason else ""
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
    ])


def _fit(blocks: list[Block]) -> list[Block]:
    """Keep the message under Slack's 50 blocks: drop from the middle, never the controls."""
    if len(blocks) <= MAX_MESSAGE_BLOCKS:
        return blocks
    keep_tail = 2  # footer context and the controls (or the footer and the last section)
    head = blocks[: MAX_MESSAGE_BLOCKS - keep_tail - 1]
    dropped = len(blocks) - len(head) - keep_tail
    note = ContextBlock(elements=[_md(f"_+{dropped} more section(s) not shown_")])
    return head + [note] + blocks[-keep_tail:]
