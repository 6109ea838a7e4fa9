"""The Bolt app: buttons, modals, /drift and App Home.

Every request reaches it from the inbox, after the ingress has stored it and Slack has its ack
(``bot.ingress``), so ``ack()`` here answers nobody and listeners run to the end in the worker's
thread. Middleware finds the user's teams and turns away a decision click from outside the
recommendation's teams; handlers record the decision in one short transaction; Slack edits and
execution happen later, in the sync and executor jobs that ``on_change`` wakes.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from slack_bolt import Ack, App, BoltContext, BoltResponse, Respond
from slack_bolt.logger.messages import warning_client_prioritized_and_token_skipped
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from sqlalchemy.engine import Engine
from sqlmodel import select

from bot.blocks import APPROVE, DETAILS, MODIFY, REJECT, SNOOZE, render_details
from bot.config import AlignbotConfig
from bot.decisions import DecisionError, DecisionResult, decide
from bot.drift_query import Usage, drift_response, parse_drift_args, recommendation_id
from bot.home import render_home
from bot.logs import bolt_log_context_middleware
from bot.membership import TeamDirectory
from bot.modal_input import modify_values, reject_reason
from bot.modals import modify_modal, reject_modal
from store.db import read_scope, session_scope
from store.tables import ActionRow, DecisionRow, DriftRow, RecommendationRow
from store.types import utcnow

log = logging.getLogger(__name__)

SNOOZE_CHOICES = {"1h": timedelta(hours=1), "4h": timedelta(hours=4), "1d": timedelta(days=1),
                  "1w": timedelta(weeks=1)}


@dataclass
class SlackDeps:
    config: AlignbotConfig
    engine: Engine
    directory: TeamDirectory
    on_change: Callable[[], None]  # wake the Slack sync and the executor


def build_slack_app(deps: SlackDeps, *, client: WebClient) -> App:
    """The Bolt app; ``client`` carries the bot token (and our timeouts and retry handlers).

    The ingress verified every request's signature before storing it (Socket Mode needs none),
    so Bolt's own check is off.
    """
    bolt_log = logging.getLogger("slack_bolt.App")
    same_token = _SameTokenFromEnvironment(client.token)
    bolt_log.addFilter(same_token)
    try:
        app = App(client=client, request_verification_enabled=False,
                  process_before_response=True, token_verification_enabled=False,
                  ignoring_self_events_enabled=True)
    finally:
        bolt_log.removeFilter(same_token)
    app.use(bolt_log_context_middleware)
    register_handlers(app, deps)
    return app


class _SameTokenFromEnvironment(logging.Filter):
    """Bolt reads ``SLACK_BOT_TOKEN`` itself and warns that the client passed wins over it; when
    that variable holds the client's own token there is nothing to warn about."""

    def __init__(self, token: str | None):
        super().__init__()
        self.token = token

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.getMessage() == warning_client_prioritized_and_token_skipped()
                    and os.environ.get("SLACK_BOT_TOKEN") == self.token)


def register_handlers(app: App, deps: SlackDeps) -> None:
    def record(rec_id: int, user: str, teams: set[str], verdict: str, **kw) -> DecisionResult:
        with session_scope(deps.engine) as s:
            result = decide(s, rec_id, user, teams, verdict, now=utcnow(), **kw)
        if result.recorded:
            deps.on_change()
        return result

    def tell(client: WebClient, body: dict, text: str) -> None:
        client.chat_postEphemeral(channel=body["channel"]["id"], user=body["user"]["id"],
                                  text=text)

    def dropped(action: dict, why: str) -> BoltResponse:
        """A click alignbot cannot act on. Its buttons carry what it needs, so such a click was
        not made on a message as alignbot sent it: it is dropped, not left for the inbox to
        retry, as it would fail the same way every time."""
        log.warning("dropped a click on %s: %s", action.get("action_id"), why)
        return BoltResponse(status=200)

    def deciders_only(body: dict, context: BoltContext, client: WebClient,
                      next: Callable[[], None]) -> BoltResponse | None:
        """Listener middleware: a decision click goes on only from a member of one of the
        recommendation's teams (``context["rec_id"]``, ``context["teams"]``); anyone else is
        told who may decide."""
        action = (body.get("actions") or [{}])[0]
        # a select carries no value: the snooze menu's recommendation ends its block's id
        raw = str(action.get("block_id")).rpartition(":")[2] \
            if action.get("action_id") == SNOOZE else action.get("value")
        rec_id = recommendation_id(raw)
        if rec_id is None:
            return dropped(action, f"{str(raw)[:40]!r} is not a recommendation id")
        teams = deps.directory.teams_of(body["user"]["id"])
        with read_scope(deps.engine) as s:
            rec = s.get(RecommendationRow, rec_id)
        if rec is None or not set(rec.teams) & teams:
            tell(client, body, f"Recommendation #{rec_id} no longer exists." if rec is None
                 else "Only members of " + " or ".join(rec.teams)
                 + " can decide on this recommendation.")
            return BoltResponse(status=200)
        context["rec_id"], context["teams"] = rec_id, teams
        next()
        return None

    def submitted(view: dict, body: dict, client: WebClient, verdict: str,
                  **kw) -> None:
        """Record a modal's decision. The modal closed with the ingress's ack, so whatever
        stops the decision is said to the user directly."""
        user = body["user"]["id"]
        rec_id = recommendation_id(view.get("private_metadata"))
        if rec_id is None:
            log.warning("dropped a %s submission without a recommendation id", verdict)
            return
        try:
            result = record(rec_id, user, deps.directory.teams_of(user), verdict, **kw)
        except DecisionError as exc:
            client.chat_postMessage(channel=user, text=f"Your {verdict} of #{rec_id} was not "
                                                       f"recorded: {exc}")
            return
        if not result.recorded or (verdict == "modify" and result.missing):
            client.chat_postMessage(channel=user, text=result.message)

    @app.action(APPROVE, middleware=[deciders_only])
    def approve(ack: Ack, body: dict, context: BoltContext, client: WebClient) -> None:
        ack()
        result = record(context["rec_id"], body["user"]["id"], context["teams"], "approve")
        if not result.recorded or result.missing:
            tell(client, body, result.message)

    @app.action(SNOOZE, middleware=[deciders_only])
    def snooze(ack: Ack, body: dict, action: dict, context: BoltContext,
               client: WebClient) -> None:
        ack()
        choice = str((action.get("selected_option") or {}).get("value"))
        if choice not in SNOOZE_CHOICES:
            dropped(action, f"{choice[:40]!r} is not a snooze choice")
            return
        result = record(context["rec_id"], body["user"]["id"], context["teams"], "snooze",
                        snooze_for=SNOOZE_CHOICES[choice])
        if not result.recorded:
            tell(client, body, result.message)

    def open_modal(body: dict, context: BoltContext, client: WebClient, build) -> None:  # type: ignore[no-untyped-def]
        rec_id = context["rec_id"]
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

    @app.action(REJECT, middleware=[deciders_only])
    def open_reject(ack: Ack, body: dict, context: BoltContext, client: WebClient) -> None:
        ack()
        open_modal(body, context, client, lambda rec, _actions: reject_modal(rec, deps.config))

    @app.view("reject_modal")
    def submit_reject(ack: Ack, body: dict, view: dict, client: WebClient) -> None:
        ack()
        submitted(view, body, client, "reject", reason=reject_reason(view))

    @app.action(MODIFY, middleware=[deciders_only])
    def open_modify(ack: Ack, body: dict, context: BoltContext, client: WebClient) -> None:
        ack()
        open_modal(body, context, client,
                   lambda rec, actions: modify_modal(rec, actions, deps.config))

    @app.view("modify_modal")
    def submit_modify(ack: Ack, body: dict, view: dict, client: WebClient) -> None:
        ack()
        submitted(view, body, client, "modify", changes=modify_values(view["state"]["values"]))

    @app.action(DETAILS)
    def details(ack: Ack, body: dict, action: dict, client: WebClient, respond: Respond) -> None:
        """What stands behind a recommendation, to whoever asks: anyone who sees the message
        may read it, so there is no team check. The answer is ephemeral (only they see it)."""
        ack()
        rec_id = recommendation_id(action.get("value"))
        if rec_id is None:
            dropped(action, f"{str(action.get('value'))[:40]!r} is not a recommendation id")
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
