"""Schema migrations (Alembic): upgrade, and refuse to run on a database that lags behind."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import DBAPIError

from store.db import check_connection, make_engine, normalize_url, unusable

MIGRATIONS = Path(__file__).parent / "migrations"
INBOX_MIGRATIONS = Path(__file__).parent / "inbox_migrations"  # the inbox's own SQLite file


class NotMigratedError(RuntimeError):
    """The database schema is not at the revision this code needs."""


def alembic_config(url: str, scripts: Path = MIGRATIONS) -> Config:
    config = Config()
    config.set_main_option("script_location", str(scripts))
    config.set_main_option("sqlalchemy.url", normalize_url(url).replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Migrate; a database that cannot be reached raises DatabaseUnavailable (one line saying
    why) before any migration runs, so a traceback from here is a migration's own failure."""
    engine = make_engine(url)
    try:
        check_connection(engine)
    finally:
        engine.dispose()
    command.upgrade(alembic_config(url), revision)


def upgrade_inbox_file(url: str) -> None:
    """Bring the Slack inbox's own SQLite file to this code's schema, creating it if missing.

    The bot owns that file, so it is upgraded at start rather than by ``alignbot db upgrade``;
    its pending clicks are kept. A file written by a newer alignbot is refused, not guessed at.
    """
    try:
        command.upgrade(alembic_config(url, INBOX_MIGRATIONS), "head")
    except CommandError as exc:
        raise NotMigratedError(
            f"the Slack inbox file {make_url(url).database} has a schema this alignbot does not "
            f"know ({exc}); it was probably written by a newer version. Run that version, or "
            "move the file aside once it holds no pending clicks.") from None


def head_revision() -> str:
    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def ensure_migrated(engine: Engine) -> None:
    """Raise NotMigratedError naming the command to run when the schema is behind, and
    DatabaseUnavailable (one line, password masked) when the database cannot be read."""
    try:
        current = current_revision(engine)
    except DBAPIError as exc:
        raise unusable(engine.url.render_as_string(hide_password=False), exc) from None
    head = head_revision()
    if current != head:
        where = engine.url.render_as_string(hide_password=True)
        state = "empty (never migrated)" if current is None else f"at revision {current}"
        raise NotMigratedError(
            f"database {where} is {state}; this alignbot needs revision {head}. "
            f"Run `alignbot db upgrade` first."
        )


def engine_for(url: str) -> Engine:
    return make_engine(url)
