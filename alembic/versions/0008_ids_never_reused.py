"""ids are never reused: the SQLite tables count their ids up with AUTOINCREMENT

Without it SQLite hands the id of the newest row, once deleted, to the next one: delete the
newest audit and the next audit, its pairs, judgements and job take the old ids, so a review page
still open on the deleted audit judged the new audit's pairs, and the worker took the new job
for the deleted one's cancelled job. PostgreSQL's sequences never reuse an id: nothing to do.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07 03:00:00
"""

from collections.abc import Sequence

from alembic import op


revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = (
    'generators',
    'audits',
    'pairs',
    'annotators',
    'judgements',
    'jobs',
    'sweeps',
    'training_runs',
)


def _rebuild(autoincrement: bool) -> None:
    if op.get_bind().dialect.name != 'sqlite':
        return
    for table in TABLES:
        # The copy keeps every id; SQLite's counter starts after the largest.
        with op.batch_alter_table(
            table, recreate='always', table_kwargs={'sqlite_autoincrement': autoincrement}
        ):
            pass


def upgrade() -> None:
    _rebuild(True)


def downgrade() -> None:
    _rebuild(False)
