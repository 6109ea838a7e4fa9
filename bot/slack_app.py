"""The Bolt app: buttons, modals, /drift and App Home.

Over HTTP, clicks and commands reach these handlers after Slack has its ack (the door in
``bot/slack_inbox.py`` stores clicks first); modal submissions and events come straight from the
request. Handlers authorize, record the decision in one short transaction and ack; Slack edits
and execution happen later, in the sync and executor jobs that ``on_change`` wakes.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from slack_bolt import Ack, App, BoltContext, Respond
from slack_bolt.request.internals import parse_body
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from sqlalchemy.engine import Engine
from sqlmodel import select

from bot.blocks import DETAILS, MODIFY, REJECT, render_details
from bot.config import AlignbotConfig
from bot.decisions import DecisionError, DecisionResult, decide
from bot.drift_query import Usage, drift_response, parse_drift_args, recommendation_id
from bot.home import render_home
from bot.logs import ContextThreadPoolExecutor, bolt_log_context_middleware
from bot.membership import TeamDirectory
from bot.modals import modify_modal, modify_values, reject_modal
from store.db import read_scope, session_scope
from store.tables import ActionRow, DecisionRow, DriftRow, RecommendationRow
from store.types import utcnow

log = logging.getLogger(__name__)

SNOOZE_CHOICES = {"1h": timedelta(hours=1), "4h": timedelta(hours=4), "1d": timedelta(days=1),
                  "1w": timedelta(weeks=1)}


def opens_modal(body: str, content_type: str) -> bool:
    """Whether a click opens a modal (Reject, Modify). Slack's trigger for the modal expires
    3 s after the click, so the inbox handles such clicks before the others waiting."""
    payload = parse_body(body, content_type)
    return any(isinstance(a, dict) and a.get("action_id") in (REJECT, MODIFY)
               for a in payload.get("actions") or [])


@dataclass
class SlackDeps:
    config: AlignbotConfig
    engine: Engine
    directory: TeamDirectory
    on_change: Callable[[], None]  # wake the Slack sync and the executor


def build_slack_app(deps: SlackDeps, *, signing_secret: str, client: WebClient,
                    already_acked: bool = False) -> App:
    """The Bolt app; ``client`` carries the bot token (and our timeouts and retry handlers).

    ``already_acked``: for requests the HTTP door has answered already (stored clicks, slash
    commands). Listeners then run to the end in the caller's thread: there is no ack to hurry,
    and Bolt would otherwise hand each one to another thread and poll for its ack.
    """
    # The HTTP door (bot/slack_door.py) verifies every request's signature before Bolt sees it —
    # clicks are stored and acked before Bolt runs, possibly after a restart — and Socket Mode
    # needs none, so Bolt's own check is off.
    app = App(signing_secret=signing_secret, client=client, request_verification_enabled=False,
              process_before_response=already_acked, token_verification_enabled=False,
              ignoring_self_events_enabled=True,
              listener_executor=ContextThreadPoolExecutor(max_workers=10))
    app.use(bolt_log_context_middleware)
    register_handlers(app, deps)
    return app


def register_handlers(app: App, deps: SlackDeps) -> None:
    def record(rec_id: int, user: str, verdict: str, **kw) -> DecisionResult:
        teams = deps.directory.teams_of(user)
        with session_scope(deps.engine) as s:
            result = decide(s, rec_id, user, teams, verdict, now=utcnow(), **kw)
        if result.recorded:
            deps.on_change()
        return result

    def tell(client: WebClient, body: dict, text: str) -> None:
        client.chat_postEphemeral(channel=body["channel"]["id"], user=body["user"]["id"],
                                  text=text)

    def may_decide(rec_id: int, user: str) -> tuple[bool, str]:
        with read_scope(deps.engine) as s:
            rec = s.get(RecommendationRow, rec_id)
        if rec is None:
            return False, f"Recommendation #{rec_id} no longer exists."
        if not set(rec.teams) & deps.directory.teams_of(user):
            return False, ("Only members of " + " or ".join(rec.teams)
                           + " can decide on this recommendation.")
        return True, ""

    def dropped(action: dict, why: str) -> None:
        """A click alignbot cannot act on. Its buttons carry what it needs, so such a click was
        not made on a message as alignbot sent it: it is acked and dropped, not left for the
        inbox to retry, as it would fail the same way every time."""
        log.warning("dropped a click on %s: %s", action.get("action_id"), why)

    def clicked_id(action: dict, raw: object) -> int | None:
        """The recommendation a click is about, or None (dropped) when ``raw`` names none."""
        rec_id = recommendation_id(raw)
        if rec_id is None:
            dropped(action, f"{str(raw)[:40]!r} is not a recommendation id")
        return rec_id

    # Decisions are recorded before the ack: over Socket Mode the ack is Slack's 200 and Slack
    # never resends an acked envelope, so a crash after an early ack would lose the click.

    @app.action("rec_approve")
    def approve(ack: Ack, body: dict, action: dict, client: WebClient) -> None:
        rec_id = clicked_id(action, action.get("value"))
        if rec_id is None:
            ack()
            return
        result = record(rec_id, body["user"]["id"], "approve")
        ack()
        if not result.recorded or result.missing:
            tell(client, body, result.message)

    @app.action("rec_snooze")
    def snooze(ack: Ack, body: dict, action: dict, client: WebClient) -> None:
        # a select carries no value: the id ends its block's id
        rec_id = clicked_id(action, str(action.get("block_id")).rpartition(":")[2])
        choice = str((action.get("selected_option") or {}).get("value"))
        if rec_id is None:
            ack()
            return
        if choice not in SNOOZE_CHOICES:
            dropped(action, f"{choice[:40]!r} is not a snooze choice")
            ack()
            return
        result = record(rec_id, body["user"]["id"], "snooze", snooze_for=SNOOZE_CHOICES[choice])
        ack()
        if not result.recorded:
            tell(client, body, result.message)

    def open_modal(body: dict, action: dict, client: WebClient, build) -> None:  # type: ignore[no-untyped-def]
        """Open a decision modal, but only for someone who may decide (checked before Slack)."""
        rec_id, user = clicked_id(action, action.get("value")), body["user"]["id"]
        if rec_id is None:
            return
        allowed, why = may_decide(rec_id, user)
        if not allowed:
            tell(client, body, why)
            return
        with read_scope(deps.engine) as s:
            rec = s.get(RecommendationRow, rec_id)
            actions = list(s.exec(select(ActionRow).where(ActionRow.recommendation_id == rec_id)
                                  .order_by(ActionRow.position)))
        try:
            client.views_open(trigger_id=body["trigger_id"], view=build(rec, actions))
        except SlackApiError as exc:
            if exc.response.get("error") != "expired_trigger_id":
                raise
            # Slack allows 3 s from the click; no retry can use this trigger again.
            tell(client, body, "Slack closed the window for opening this form before alignbot "
                               "could (it was busy). Nothing was recorded: click the button again.")

    @app.action(REJECT)
    def open_reject(ack: Ack, body: dict, action: dict, client: WebClient) -> None:
        ack()
        open_modal(body, action, client, lambda rec, _actions: reject_modal(rec, deps.config))

    @app.view("reject_modal")
    def submit_reject(ack: Ack, body: dict, view: dict, client: WebClient) -> None:
        reason = view["state"]["values"]["reason"]["reason_input"].get("value") or ""
        if not reason.strip():
            ack(response_action="errors", errors={"reason": "Say why, so the team learns."})
            return
        try:
            result = record(int(view["private_metadata"]), body["user"]["id"], "reject",
                            reason=reason)
        except DecisionError as exc:
            ack(response_action="errors", errors={"reason": str(exc)})
            return
        ack()
        if not result.recorded:
            client.chat_postMessage(channel=body["user"]["id"], text=result.message)

    @app.action(MODIFY)
    def open_modify(ack: Ack, body: dict, action: dict, client: WebClient) -> None:
        ack()
        open_modal(body, action, client,
                   lambda rec, actions: modify_modal(rec, actions, deps.config))

    @app.view("modify_modal")
    def submit_modify(ack: Ack, body: dict, view: dict, client: WebClient) -> None:
        changes = modify_values(view["state"]["values"])
        try:
            result = record(int(view["private_metadata"]), body["user"]["id"], "modify",
                            changes=changes)
        except DecisionError as exc:
            field = next((k for k in changes if k.split(".")[-1] in str(exc)), None)
            ack(response_action="errors", errors={field or next(iter(changes), "x"): str(exc)})
            return
        ack()
        if not result.recorded or result.missing:
            client.chat_postMessage(channel=body["user"]["id"], text=result.message)

    @app.action(DETAILS)
    def details(ack: Ack, body: dict, action: dict, client: WebClient, respond: Respond) -> None:
        """What stands behind a recommendation, to whoever asks: anyone who sees the message
        may read it, so there is no team check. The answer is ephemeral (only they see it)."""
        ack()
        rec_id = clicked_id(action, action.get("value"))
        if rec_id is None:
            return
        with read_scope(deps.engine) as s:
            rec = s.get(RecommendationRow, rec_id)
            if rec is None:
                text, blocks = f"Recommendation #{rec_id} no longer exists.", None
            else:
                actions = s.exec(select(ActionRow).where(ActionRow.recommendation_id == rec_id)
                                 .order_by(ActionRow.position)).all()
                decisions = s.exec(select(DecisionRow).where(
                    DecisionRow.recommendation_id == rec_id).order_by(DecisionRow.id)).all()
                fps = (rec.body or {}).get("drift_fingerprints")
                fps = [str(fp) for fp in fps[:20]] if isinstance(fps, list) else []
                drifts = s.exec(select(DriftRow).where(DriftRow.fingerprint.in_(fps))).all() \
                    if fps else []
                text, blocks = render_details(rec, list(actions), list(decisions), deps.config,
                                              drifts=list(drifts), now=utcnow())
        channel = (body.get("channel") or {}).get("id")
        if channel:
            try:
                client.chat_postEphemeral(channel=channel, user=body["user"]["id"], text=text,
                                          blocks=blocks)
                return
            except SlackApiError as exc:
                # Only a channel the bot cannot post in is worth going round; anything else
                # fails the click, which the inbox retries.
                if exc.response.get("error") not in ("channel_not_found", "not_in_channel",
                                                     "user_not_in_channel", "is_archived"):
                    raise
                log.warning("details of #%s: chat.postEphemeral refused (%s); answering "
                            "through the click's response_url", rec_id, exc.response.get("error"))
        respond(response_type="ephemeral", replace_original=False, text=text, blocks=blocks)

    @app.command("/drift")
    def drift_command(ack: Ack, command: dict, respond: Respond) -> None:
        ack()
        query = parse_drift_args(command.get("text", ""))
        if isinstance(query, Usage):
            respond(response_type="ephemeral", text=query.text, blocks=query.blocks())
            return
        teams = deps.directory.teams_of(command["user_id"])
        with read_scope(deps.engine) as s:
            blocks = drift_response(s, query, teams, deps.config, page=0, now=utcnow())
        respond(response_type="ephemeral", text="Open drift", blocks=blocks)

    @app.action("drift_page")
    def drift_page(ack: Ack, body: dict, action: dict, respond: Respond) -> None:
        ack()
        state = json.loads(action["value"])
        query = parse_drift_args(state.get("q", ""))
        if isinstance(query, Usage):
            respond(response_type="ephemeral", replace_original=True, text=query.text,
                    blocks=query.blocks())
            return
        teams = deps.directory.teams_of(body["user"]["id"])
        with read_scope(deps.engine) as s:
            blocks = drift_response(s, query, teams, deps.config, page=int(state.get("page", 0)),
                                    now=utcnow())
        respond(response_type="ephemeral", replace_original=True, text="Open drift",
                blocks=blocks)

    @app.event("app_home_opened")
    def home(event: dict, client: WebClient, context: BoltContext) -> None:
        if event.get("tab", "home") != "home":
            return
        user = event["user"]
        teams = deps.directory.teams_of(user)
        with read_scope(deps.engine) as s:
            view = render_home(s, user, teams, deps.config, utcnow())
        client.views_publish(user_id=user, view=view)
