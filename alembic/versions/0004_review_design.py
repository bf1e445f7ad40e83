"""review design: random non-candidate pairs, pool sizes and the stored design

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25 03:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('audits', schema=None) as batch_op:
        batch_op.add_column(sa.Column('random_pairs', sa.Integer(), server_default='50', nullable=False))
        batch_op.add_column(sa.Column('pool_sizes', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('review', sa.JSON(), nullable=True))

    with op.batch_alter_table('pairs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('origin', sa.String(length=10), server_default='candidate', nullable=False))
        batch_op.add_column(sa.Column('generation', sa.Integer(), nullable=True))
        batch_op.drop_index('ix_pairs_audit_distance')
        batch_op.drop_index('ix_pairs_audit_label_distance')
        batch_op.create_index('ix_pairs_audit_origin_distance', ['audit_id', 'origin', 'distance', 'id'], unique=False)
        batch_op.create_index('ix_pairs_audit_origin_label_distance', ['audit_id', 'origin', 'label', 'distance', 'id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('pairs', schema=None) as batch_op:
        batch_op.drop_index('ix_pairs_audit_origin_label_distance')
        batch_op.drop_index('ix_pairs_audit_origin_distance')
        batch_op.create_index('ix_pairs_audit_label_distance', ['audit_id', 'label', 'distance', 'id'], unique=False)
        batch_op.create_index('ix_pairs_audit_distance', ['audit_id', 'distance', 'id'], unique=False)
        batch_op.drop_column('generation')
        batch_op.drop_column('origin')

    with op.batch_alter_table('audits', schema=None) as batch_op:
        batch_op.drop_column('review')
        batch_op.drop_column('pool_sizes')
        batch_op.drop_column('random_pairs')
