"""slack inbox: compress click bodies with lz4 on PostgreSQL

A stored click's body is 5–10 KB of form-encoded JSON, so PostgreSQL compresses it on insert.
With its default (pglz) that cost the server about 10 ms of CPU per fifty-click batch on the
ack path; lz4 costs about half. Servers built without lz4 keep pglz. SQLite: nothing to do.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27 04:00:00
"""
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("""
        DO $$
        BEGIN
            ALTER TABLE slack_inbox ALTER COLUMN body SET COMPRESSION lz4;
        EXCEPTION WHEN feature_not_supported THEN
            RAISE NOTICE 'this server has no lz4; slack_inbox.body keeps pglz';
        END $$;
    """)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("ALTER TABLE slack_inbox ALTER COLUMN body SET COMPRESSION pglz")
