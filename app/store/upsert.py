"""INSERT ... ON CONFLICT DO NOTHING on SQLite and PostgreSQL, so replayed job chunks add nothing twice."""

from __future__ import annotations

from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session


def insert_ignoring_conflicts(
    session: Session, model: type[Any], rows: list[dict[str, Any]]
) -> int:
    """Insert rows, skipping those that collide with a unique key; returns the number inserted."""
    if not rows:
        return 0
    dialect = session.get_bind().dialect.name
    if dialect == "sqlite":
        stmt: Any = sqlite.insert(model).on_conflict_do_nothing()
    elif dialect == "postgresql":
        stmt = postgresql.insert(model).on_conflict_do_nothing()
    else:
        raise RuntimeError(f"unsupported database dialect {dialect!r}")
    result = session.connection().execute(stmt, rows)
    return int(result.rowcount)
