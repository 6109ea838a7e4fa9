"""slack inbox (its own SQLite file)

Revision ID: i0001
Revises:
Create Date: 2026-11-27 07:00:00

Files made before the inbox had migrations (``create_all``) already hold this table, with this
shape: they are adopted as they are.
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel
import store.types


revision = 'i0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    if sa.inspect(op.get_bind()).has_table('slack_inbox'):
        return
    op.create_table('slack_inbox',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('delivery_key', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('content_type', sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
    sa.Column('body', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('state', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('claim_until', store.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('error', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('received_at', store.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('done_at', store.types.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('delivery_key')
    )
    with op.batch_alter_table('slack_inbox', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_slack_inbox_state'), ['state'], unique=False)


def downgrade() -> None:
    op.drop_table('slack_inbox')
