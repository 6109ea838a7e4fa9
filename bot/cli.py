"""The `alignbot` command: run the bot, try the demo, migrate, check config, look at drift."""

from __future__ import annotations

from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperCommand, TyperGroup

if TYPE_CHECKING:
    from rich.console import Console
    from sqlalchemy.engine import Engine

# Commands that live beside the code they drive, imported only when run or asked for their own
# help: `alignbot --help` lists them without loading polars, matplotlib or SQLAlchemy.
DEFERRED = {  # name: (module:attribute, one-line help for the command list)
    "inspect": ("connectors.inspection:inspect_command",
                "Show the canonical records alignbot would read from FILE, and what it would quarantine."),
    "detect": ("detectors.cli:detect_command", "Run every detector on a snapshot directory."),
    "connectors": ("connectors.presets:connectors_app", "Connectors: presets for systems you already run."),
}


class _Deferred(TyperCommand):
    """Stands in the command list for a ``DEFERRED`` command until it is invoked."""

    def __init__(self, name: str, target: str, help: str) -> None:
        super().__init__(name, help=help)
        self.target = target

    def make_context(self, info_name: str | None, args: list[str], parent: Any = None, **extra: Any) -> Any:
        module, attribute = self.target.split(":")
        command = getattr(import_module(module), attribute)
        holder = typer.Typer(rich_markup_mode=None)
        if isinstance(command, typer.Typer):
            holder.add_typer(command, name=self.name)
        else:
            holder.command(self.name)(command)  # its own help: the function's docstring
        real = typer.main.get_group(holder).commands[self.name]
        return real.make_context(info_name, args, parent=parent, **extra)


class _Commands(TyperGroup):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        for name, (target, help) in DEFERRED.items():
            self.add_command(_Deferred(name, target, help))


app = typer.Typer(
    cls=_Commands,
    help="alignbot keeps supply-chain planning and logistics execution aligned, from Slack.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,  # plain help: a flag reads `--json`, where rich mode shows `--json <bool>`
)
db_app = typer.Typer(help="Database schema (Alembic migrations).", no_args_is_help=True)
config_app = typer.Typer(help="The alignbot.yml configuration.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(config_app, name="config")


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"alignbot {version('alignbot')}")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    pass


class _Console:
    """A rich Console built on first use, so that `--help` does not import rich."""

    def __init__(self, **options: Any) -> None:
        self._options = options
        self._console: Console | None = None

    def __getattr__(self, name: str) -> Any:
        if self._console is None:
            from rich.console import Console

            self._console = Console(**self._options)
        return getattr(self._console, name)


out = _Console(soft_wrap=True)
err = _Console(stderr=True, soft_wrap=True)  # errors stay one greppable line

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="Path to alignbot.yml (default: $ALIGNBOT_CONFIG or "
                 "./alignbot.yml).", show_default=False),
]
DatabaseOption = Annotated[
    str | None,
    typer.Option("--database-url", help="Overrides $DATABASE_URL.", show_default=False),
]


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print ``error: message`` and return the exit to raise (``raise fail(...)``)."""
    from rich.markup import escape

    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False)
    return typer.Exit(code)


def migrated_engine(url: str) -> Engine:
    """An engine on a database at this code's schema revision, or exit naming the command."""
    from store.db import DatabaseUnavailable, make_engine
    from store.migrate import NotMigratedError, ensure_migrated

    try:
        engine = make_engine(url)
        ensure_migrated(engine)
    except (DatabaseUnavailable, NotMigratedError) as exc:
        raise fail(str(exc)) from None
    return engine


def load_or_exit(config: Path | None, *, database: bool = True):  # type: ignore[no-untyped-def]
    """The checked configuration (its database URL too unless ``database`` is False; no
    secrets), or exit 2 listing every problem by key path."""
    from bot.config_check import load_checked_config

    return load_checked_config(config, slack=False, secrets=False, database=database)


def _db_url(config_path: Path | None, override: str | None) -> str:
    from bot.config import database_url, resolve_path

    if override:
        return override
    path = resolve_path(config_path)
    return database_url(load_or_exit(path) if path.exists() else None)


@config_app.command("check")
def config_check(
    config: ConfigOption = None,
    no_slack: Annotated[bool, typer.Option("--no-slack", help="Do not require Slack secrets.")]
    = False,
) -> None:
    """Check alignbot.yml, the secrets it names and the database URL's form (nothing is
    connected to); exit 2 listing every problem."""
    from bot.config import resolve_path
    from bot.config_check import load_checked_config

    cfg = load_checked_config(config, slack=not no_slack)
    out.print(f"{resolve_path(config)}: ok — {len(cfg.teams)} teams, "
              f"{len(cfg.routing.rules)} routing rules, {len(cfg.connectors)} connectors",
              highlight=False)


@db_app.command("upgrade")
def db_upgrade(config: ConfigOption = None, database_url_: DatabaseOption = None) -> None:
    """Migrate the database to the schema this version needs (safe to run repeatedly)."""
    from store.db import DatabaseUnavailable
    from store.migrate import head_revision, upgrade

    url = _db_url(config, database_url_)
    try:
        upgrade(url)
    except DatabaseUnavailable as exc:
        raise fail(str(exc)) from None
    out.print(f"database at revision {head_revision()}")


@app.command("drift")
def drift(
    config: ConfigOption = None,
    database_url_: DatabaseOption = None,
    limit: Annotated[int, typer.Option(help="Rows to show.")] = 50,
) -> None:
    """Show the open drift, worst first, as a table."""
    from rich.table import Table

    from bot.queries import open_drift_overview

    engine = migrated_engine(_db_url(config, database_url_))
    rows = open_drift_overview(engine, limit=limit)
    if not rows:
        out.print("No open drift. Plan and execution agree.")
        return
    table = Table(title=f"Open drift ({len(rows)} shown)")
    for column in ("kind", "severity", "key", "value at risk", "recommendation", "state", "since"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(row.kind, row.severity, row.key, f"{row.value_at_risk:,.0f}",
                      row.recommendation, row.state, row.since)
    out.print(table)


def _serving_config(config: Path | None):  # type: ignore[no-untyped-def]
    """The configuration of a serving process, checked (secrets, database) before it starts,
    and its logging set up."""
    import os

    from bot.config import database_url
    from bot.config_check import load_checked_config
    from bot.logs import configure_logging, configured_secrets

    cfg = load_checked_config(config)
    migrated_engine(database_url(cfg)).dispose()
    configure_logging(level=os.environ.get("ALIGNBOT_LOG_LEVEL", "INFO"),
                      json=os.environ.get("ALIGNBOT_LOG_FORMAT", "json") != "text",
                      secrets=configured_secrets(cfg, os.environ),
                      # every job run and every /healthz schema check would be a line otherwise
                      levels={"apscheduler.executors": "WARNING",
                              "alembic.runtime.migration": "WARNING",
                              "httpx": "WARNING"})  # a line per connector request otherwise
    return cfg


HostOption = Annotated[str, typer.Option(help="Interface for the HTTP server.")]


@app.command("run")
def run(
    config: ConfigOption = None,
    host: HostOption = "0.0.0.0",
    port: Annotated[int, typer.Option(help="Port of the ingress (/slack/events); the worker "
                                           "(/hooks, /healthz, /metrics) listens on the next.")]
    = 3000,
) -> None:
    """Run the bot: the ingress and the worker as two processes, restarted if they exit."""
    from bot.config import resolve_path
    from bot.supervisor import Child, alignbot_command, supervise

    _serving_config(config)
    where = ["--config", str(resolve_path(config).resolve()), "--host", host]
    code = supervise([
        Child("ingress", alignbot_command("ingress", *where, "--port", str(port))),
        Child("worker", alignbot_command("worker", *where, "--port", str(port + 1)), nice=10),
    ])
    raise typer.Exit(code)


@app.command("ingress")
def ingress(
    config: ConfigOption = None,
    host: HostOption = "0.0.0.0",
    port: Annotated[int, typer.Option(help="Port for /slack/events and /healthz.")] = 3000,
) -> None:
    """Take Slack's requests: verify, store in the inbox, ack (Socket Mode with
    SLACK_APP_TOKEN). Run as many as you like behind a load balancer."""
    from bot.ingress import serve_ingress
    from store.db import DatabaseUnavailable
    from store.migrate import NotMigratedError

    cfg = _serving_config(config)
    try:
        serve_ingress(cfg, host=host, port=port)
    except (NotMigratedError, DatabaseUnavailable) as exc:
        raise fail(str(exc)) from None


@app.command("worker")
def worker(
    config: ConfigOption = None,
    host: HostOption = "0.0.0.0",
    port: Annotated[int, typer.Option(help="Port for /hooks, /healthz and /metrics.")] = 3001,
) -> None:
    """Do the work: handle what the ingress stored, poll, detect, execute, update Slack.
    Several may run on PostgreSQL; one leads the polls."""
    from bot.runtime import StartupError, serve_worker
    from store.db import DatabaseUnavailable

    cfg = _serving_config(config)
    try:
        serve_worker(cfg, host=host, port=port)
    except (StartupError, DatabaseUnavailable) as exc:
        raise fail(str(exc)) from None


@app.command("demo")
def demo(
    fast: Annotated[bool, typer.Option("--fast", help="Compress the scenario clock (tests).")]
    = False,
    port: Annotated[int, typer.Option(help="Port of the demo UI.")] = 8600,
    open_for: Annotated[float | None, typer.Option(
        "--for", help="Stop after this many seconds (default: until Ctrl-C).")] = None,
    socket_mode: Annotated[bool, typer.Option(
        "--socket-mode", help="Connect the bot to the stand-in over Socket Mode instead of "
                              "HTTP, as with SLACK_APP_TOKEN.")] = False,
    keep: Annotated[Path | None, typer.Option(
        "--keep", metavar="DIR", help="Keep the demo's database in DIR (with an alignbot.yml "
        "naming it) for `alignbot drift` and `alignbot digest` afterwards.",
        show_default=False)] = None,
) -> None:
    """The whole loop on this machine: sandbox systems, a local Slack stand-in and the bot."""
    from importlib.util import find_spec

    if socket_mode and not (find_spec("wsproto") or find_spec("websockets")):
        raise fail("--socket-mode needs a WebSocket library for the Slack stand-in: "
                   "pip install 'alignbot[demo]'")
    from bot.demo import run_demo

    if keep is not None and (keep / "alignbot.db").exists():
        # A new demo starts a new story in an empty Slack: the old messages it would edit
        # are not there.
        raise fail(f"{keep / 'alignbot.db'} holds an earlier demo's history; give --keep a "
                   "new folder (or delete that one)")

    run_demo(fast=fast, ui_port=port, duration=open_for, socket_mode=socket_mode, keep=keep)


@app.command("digest")
def digest(
    team: Annotated[str, typer.Option("--team", "-t", help="Team name from alignbot.yml.")],
    dry_run: Annotated[bool, typer.Option(
        "--dry-run/--queue", help="Print only (default), or also queue the digest message for "
                                  "the team channel.")] = True,
    config: ConfigOption = None,
    database_url_: DatabaseOption = None,
    chart: Annotated[Path | None, typer.Option(
        "--out", help="Where to write the chart PNG (default: a file in the temp directory).",
        show_default=False)] = None,
) -> None:
    """Build a team's weekly digest (--dry-run prints it) and write its chart."""
    import tempfile
    from datetime import datetime, timedelta

    from rich.table import Column, Table

    from bot._format import duration, key_text, kind_label, money
    from bot.config import database_url
    from bot.digest import build_digest
    from bot.notes import add_note
    from store.db import session_scope

    cfg = load_or_exit(config, database=database_url_ is None)
    if team not in {t.name for t in cfg.teams}:
        raise fail(f"no team {team!r}; teams in the configuration: "
                   + ", ".join(t.name for t in cfg.teams), code=2)
    engine = migrated_engine(database_url_ or database_url(cfg))
    now = datetime.now().astimezone()
    day = now.astimezone(cfg.team(team).zone).date()
    with session_scope(engine) as session:
        week = build_digest(session, team, cfg, now)
        queued = not dry_run and add_note(session, None, f"digest:{team}:{day.isoformat()}",
                                          week.text, channel=week.channel, in_thread=False,
                                          blocks=week.blocks)
    path = chart or Path(tempfile.gettempdir()) / f"alignbot-digest-{team}-{day:%Y-%m-%d}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(week.chart_png)

    out.print(week.text, markup=False, highlight=False)
    table = Table("measure", Column("value", justify="right"), title=f"Digest stats — {team}")
    s = week.stats
    median = s["median_time_to_decision_s"]
    for label, value in (
        ("drifts detected", s["drifts_detected"]), ("drifts closed", s["drifts_closed"]),
        ("approved", s["approved"]), ("rejected", s["rejected"]), ("expired", s["expired"]),
        ("executed", s["executed"]), ("partially executed", s["partially_executed"]),
        ("median time to decision",
         duration(timedelta(seconds=median)) if median is not None else "—"),
        ("value protected", money(s["value_protected"], cfg.currency)),
    ):
        table.add_row(label, str(value))
    out.print(table)
    for item in s["top_open"]:
        ref = f" (#{item['recommendation_id']})" if item["recommendation_id"] else ""
        out.print(f"  open: {money(item['value_at_risk'], cfg.currency)} at risk — "
                  f"{kind_label(item['kind'])} {key_text(item['key'])}{ref}",
                  markup=False, highlight=False)
    out.print(f"chart written to {path}", markup=False, highlight=False)
    if not dry_run:
        out.print(f"queued for {week.channel}" if queued
                  else f"already queued today for {week.channel}; not queued again",
                  markup=False, highlight=False)
