"""Alembic environment for the Slack inbox's own SQLite file (``alignbot.inbox.db``).

The file holds one table, so it has a migration history of its own; on PostgreSQL the inbox is
a table of the bot's database and follows ``store/migrations`` instead.
"""

from alembic import context
from sqlalchemy import MetaData

from store.db import make_engine
from store.tables import SlackInboxRow

config = context.config
target_metadata = MetaData()
SlackInboxRow.__table__.to_metadata(target_metadata)


def run_migrations_online() -> None:
    engine = make_engine(config.get_main_option("sqlalchemy.url"), synced_commits=True)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata,
                          render_as_batch=True, compare_type=True)  # SQLite alters by copy
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


run_migrations_online()
