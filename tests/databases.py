"""Database URLs for store tests: a fresh SQLite file always, a fresh PostgreSQL database when
BIRTHDAY_TEST_POSTGRES_URL points at a server (scripts/postgres-for-tests.sh starts one)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import MetaData, Table, create_engine, insert, text
from sqlalchemy.engine import make_url

from app.store.db import Database
from app.store.migrate import upgrade

POSTGRES_URL = os.environ.get("BIRTHDAY_TEST_POSTGRES_URL", "")


def insert_row(db: Database, table: str, **values: object) -> int:
    """A row written through the table as the store's revision has it: the models describe the
    newest schema, whose columns an older revision lacks. Returns its id."""
    reflected = Table(table, MetaData(), autoload_with=db.write_engine)
    with db.write() as session:
        key = session.execute(insert(reflected).values(**values)).inserted_primary_key
    assert key is not None
    return int(key[0])


def sqlite_url(directory: Path) -> str:
    return f"sqlite:///{directory / 'store.sqlite3'}"


def _admin(sql: str) -> None:
    engine = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text(sql))
    engine.dispose()


def fresh_database(kind: str, directory: Path) -> Iterator[str]:
    if kind == "sqlite":
        yield sqlite_url(directory)
        return
    if not POSTGRES_URL:
        pytest.skip("no PostgreSQL server (set BIRTHDAY_TEST_POSTGRES_URL)")
    name = f"birthday_test_{uuid.uuid4().hex[:12]}"
    _admin(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def migrated_database(kind: str, directory: Path) -> Iterator[Database]:
    """A fresh database of the kind with every migration applied, disposed of afterwards."""
    for url in fresh_database(kind, directory):
        upgrade(url)
        database = Database(url)
        yield database
        database.dispose()
