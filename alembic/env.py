"""Alembic environment: URL from the config (set by app.store.migrate) or from BIRTHDAY_* settings."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from app.settings import Settings
from app.store.migrate import migration_lock
from app.store.models import Base

config = context.config
target_metadata = Base.metadata


def database_url() -> str:
    url = config.get_main_option("sqlalchemy.url")
    return url or Settings().resolved_database_url()


def run_migrations_offline() -> None:
    context.configure(url=database_url(), target_metadata=target_metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = create_engine(database_url())
    try:
        with engine.connect() as connection:
            context.configure(
                connection=connection, target_metadata=target_metadata, render_as_batch=True
            )
            # The lock comes before Alembic reads the current revision, so a process that waited
            # finds the schema its rival built and has nothing left to do.
            with context.begin_transaction(), migration_lock(connection):
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
