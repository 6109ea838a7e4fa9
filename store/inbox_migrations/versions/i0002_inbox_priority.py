"""slack inbox file: a priority per stored request (modal-opening clicks are handled first)

Revision ID: i0002
Revises: i0001
Create Date: 2026-12-07 08:00:00
"""
from alembic import op
import sqlalchemy as sa

revision = 'i0002'
down_revision = 'i0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('slack_inbox') as batch_op:
        batch_op.add_column(sa.Column('priority', sa.Integer(), nullable=False, server_default='0'))


def downgrade() -> None:
    with op.batch_alter_table('slack_inbox') as batch_op:
        batch_op.drop_column('priority')
