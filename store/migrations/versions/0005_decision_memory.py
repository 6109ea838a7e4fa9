"""decision memory: business idempotency keys, held recommendations, writes by execution

- actions.idempotency_key is no longer unique: the key is derived from the business change
  (system, operation, target, from -> to), so two recommendations that carry the same change
  share it, and the receiving system applies it once.
- recommendations.held_at: when detection last held a decided recommendation's drift back
  (decision memory); null when it is not being held.
- connector_health.written_at: when an approved action last changed this connector's system;
  detection re-reads the system before it trusts its picture again.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07 10:00:00
"""
from alembic import op
import sqlalchemy as sa
import store.types

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

# 0001 left the constraint unnamed: PostgreSQL called it this, SQLite reflects it unnamed and
# batch mode names it by this convention.
_NAMING = {"uq": "uq_%(table_name)s_%(column_0_name)s"}


def _unique_name() -> str:
    if op.get_bind().dialect.name == "postgresql":
        return "actions_idempotency_key_key"
    return "uq_actions_idempotency_key"


def upgrade() -> None:
    with op.batch_alter_table('actions', schema=None, naming_convention=_NAMING) as batch_op:
        batch_op.drop_constraint(_unique_name(), type_='unique')
        batch_op.create_index('ix_actions_idempotency_key', ['idempotency_key'], unique=False)
    with op.batch_alter_table('recommendations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('held_at', store.types.UTCDateTime(timezone=True), nullable=True))
    with op.batch_alter_table('connector_health', schema=None) as batch_op:
        batch_op.add_column(sa.Column('written_at', store.types.UTCDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('connector_health', schema=None) as batch_op:
        batch_op.drop_column('written_at')
    with op.batch_alter_table('recommendations', schema=None) as batch_op:
        batch_op.drop_column('held_at')
    with op.batch_alter_table('actions', schema=None, naming_convention=_NAMING) as batch_op:
        batch_op.drop_index('ix_actions_idempotency_key')
        batch_op.create_unique_constraint(_unique_name(), ['idempotency_key'])
