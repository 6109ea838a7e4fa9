"""recommendations: detection_digest

A detection pass compared each active recommendation's stored body with the new one, loading
and parsing every body (tens of KB each) inside its write transaction. The digest lets it skip
the unchanged ones. Existing rows get theirs the next time a pass compares them.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27 07:20:00
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('recommendations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('detection_digest', sqlmodel.sql.sqltypes.AutoString(length=64),
                                      nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('recommendations', schema=None) as batch_op:
        batch_op.drop_column('detection_digest')
