"""Bring a database to the newest schema with Alembic; the app never calls create_all.

Every process that opens the store (the server, each CLI command, every replica of a deployment)
upgrades it first, so two of them often start at once on a fresh database; without a lock both
would create the tables and one would fail ("table annotators already exists" on SQLite, a
UniqueViolation on pg_type on PostgreSQL). `migration_lock` makes them take turns.
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Connection, create_engine, text

from alembic import command

ALEMBIC_DIR = Path(__file__).resolve().parents[2] / "alembic"

# The key of the PostgreSQL advisory lock held while migrating; advisory locks are per database,
# so this only has to differ from other keys taken on birthday's own database (there are none).
ADVISORY_LOCK_KEY = 0x62697274686461  # "birthda" in ASCII


class UnknownRevision(RuntimeError):
    """The database is at a schema revision this code does not have: a newer birthday upgraded
    it. Running on regardless would mean reading tables this code does not understand."""

    def __init__(self, revision: str, head: str | None) -> None:
        super().__init__(
            f"the database is at revision {revision}, which this birthday (head {head}) does not "
            "know: a newer birthday upgraded it (run that version, or restore a backup taken "
            "before the upgrade)"
        )
        self.revision = revision
        self.head = head


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(ALEMBIC_DIR))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str) -> None:
    """Upgrade the database at `url` to the newest revision, one process at a time.

    Raises UnknownRevision (a RuntimeError with a one-line message) when the database is at a
    revision this code does not know.
    """
    config = alembic_config(url)
    try:
        command.upgrade(config, "head")
    except CommandError:
        # Alembic's own error here is a long traceback ending in "Can't locate revision".
        script = ScriptDirectory.from_config(config)
        unknown = _unknown_revisions(url, script)
        if unknown:
            raise UnknownRevision(unknown[0], script.get_current_head()) from None
        raise


@contextmanager
def migration_lock(connection: Connection) -> Iterator[None]:
    """Hold the lock that lets one process at a time migrate the database of `connection`.

    Enter it inside the migration's transaction (alembic/env.py does): on PostgreSQL it is a
    transaction-level advisory lock, released by the commit or rollback however the migration
    ends. On SQLite it is an flock on `<database file>.migrate.lock`, released when the block
    ends or the process dies; in-memory databases are private to their connection and need none.
    """
    url = connection.engine.url
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK_KEY})
        yield
    elif connection.dialect.name == "sqlite" and url.database not in (None, "", ":memory:"):
        # The file stays: removing it would let a process that opened it before the removal
        # and one that creates it afresh both hold "the" lock.
        with open(f"{url.database}.migrate.lock", "a") as lock_file:
            fcntl.flock(lock_file, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock_file, fcntl.LOCK_UN)
    else:
        yield


def _unknown_revisions(url: str, script: ScriptDirectory) -> list[str]:
    """The revisions the database says it is at that this code's migrations do not include."""
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            heads = MigrationContext.configure(connection).get_current_heads()
    finally:
        engine.dispose()
    known = {revision.revision for revision in script.walk_revisions()}
    return [head for head in heads if head not in known]
