"""review leases in the store: which annotator a pair was handed to, and until when

The review queue kept its leases (pair -> annotator, expiry) in each process's memory, so two
servers, or a server and the CLI, on one PostgreSQL database each handed the same pair to a
different annotator within the minute: the pair was labelled twice. A lease is now a row, taken
with one INSERT ... ON CONFLICT DO UPDATE that succeeds only where the pair is free, expired or
already the same annotator's. Leases go with their pair or audit (ON DELETE CASCADE).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0009'
down_revision: str | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'review_leases',
        sa.Column('pair_id', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('audit_id', sa.Integer(), nullable=False),
        sa.Column('annotator', sa.String(length=100), nullable=False),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['audit_id'], ['audits.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['pair_id'], ['pairs.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('pair_id'),
    )
    op.create_index(
        'ix_review_leases_audit_expires', 'review_leases', ['audit_id', 'expires_at'], unique=False
    )


def downgrade() -> None:
    op.drop_index('ix_review_leases_audit_expires', table_name='review_leases')
    op.drop_table('review_leases')
