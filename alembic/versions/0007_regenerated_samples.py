"""regenerated samples: a sample's PNG may be absent, drawn again from (source, seed, i) when shown

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06 20:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('samples', schema=None) as batch_op:
        batch_op.alter_column('png', existing_type=sa.LargeBinary(), nullable=True)


def downgrade() -> None:
    # Older code expects every PNG stored: such audits cannot go back; refuse rather than lose them.
    bind = op.get_bind()
    missing = bind.execute(sa.text('SELECT COUNT(*) FROM samples WHERE png IS NULL')).scalar()
    if missing:
        raise RuntimeError(
            f'{missing} samples have no stored PNG (regenerated on demand); '
            'delete their audits before downgrading'
        )
    with op.batch_alter_table('samples', schema=None) as batch_op:
        batch_op.alter_column('png', existing_type=sa.LargeBinary(), nullable=False)
