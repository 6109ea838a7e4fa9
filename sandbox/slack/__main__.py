"""Run the Slack stand-in on its own: ``python -m sandbox.slack --port 3100 --app-url URL``.

Secrets come from the environment (SLACK_BOT_TOKEN, SLACK_SIGNING_SECRET), never the command line.
"""

from __future__ import annotations

import argparse
import os
import signal
import threading

from sandbox.slack import SlackStandin


def _pairs(values: list[str]) -> list[dict[str, str]]:
    """``C1:planning`` → ``{"id": "C1", "name": "planning"}``."""
    out = []
    for value in values:
        ident, _, name = value.partition(":")
        out.append({"id": ident, "name": name or ident.lower()})
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m sandbox.slack", description=__doc__)
    parser.add_argument("--port", type=int, default=3100)
    parser.add_argument("--app-url",
                        help="the app's request URL, e.g. http://127.0.0.1:3000/slack/events")
    parser.add_argument("--channel", action="append", default=[], help="C1:planning (repeatable)")
    parser.add_argument("--user", action="append", default=[], help="U1:alice (repeatable)")
    args = parser.parse_args(argv)
    token, secret = os.environ.get("SLACK_BOT_TOKEN"), os.environ.get("SLACK_SIGNING_SECRET")
    if not token or not secret:
        parser.error("set SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET in the environment")
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with SlackStandin(token, secret, args.app_url, channels=_pairs(args.channel),
                      users=_pairs(args.user), port=args.port) as slack:
        print(f"Slack stand-in: Web API {slack.api_url}  state {slack.url}/standin/state",
              flush=True)
        stop.wait()


if __name__ == "__main__":
    main()
