"""created_by: who started each audit, training run, sweep and job

On a shared server any annotator could cancel any job, retarget or extend any audit and cancel
any sweep: one annotator could stop a colleague's week-long training run. Now only whoever
started the work (or an admin) may stop or change it, and each annotator's unfinished jobs are
counted against a cap: both need the name of who started it. NULL is the local user (a server
without tokens) and every row made before this revision: only an admin may change those.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 12:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0010'
down_revision: str | None = '0009'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ('audits', 'training_runs', 'sweeps', 'jobs')


def upgrade() -> None:
    # A nullable column is added in place (ALTER TABLE ... ADD COLUMN, SQLite too): every row
    # and id stays, and the tables keep counting their ids up (migration 0008).
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column('created_by', sa.String(length=100), nullable=True))
    # The per-annotator cap counts one annotator's unfinished jobs at each request.
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.create_index('ix_jobs_created_by', ['created_by'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_index('ix_jobs_created_by')
    for table in TABLES:
        # SQLite drops a column by copying the table: the copy must count its ids up too.
        with op.batch_alter_table(
            table, schema=None, table_kwargs={'sqlite_autoincrement': True}
        ) as batch_op:
            batch_op.drop_column('created_by')
