"""Migrations: processes that start at once on a fresh store take turns instead of both creating
the tables, and a store a newer birthday upgraded is refused in one line, not a traceback."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, text

from app.store.migrate import UnknownRevision, alembic_config, upgrade
from tests.databases import fresh_database

ROOT = Path(__file__).resolve().parents[1]
BIRTHDAY = str(Path(sys.executable).parent / "birthday")
HEAD = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()

# Each racer imports what the upgrade needs first (alembic/env.py imports the models), says so,
# and upgrades when told to, so that all of them reach Alembic within a few milliseconds.
RACER = """
import sys
import app.store.models
from app.store.migrate import upgrade
print("ready", flush=True)
sys.stdin.readline()
upgrade(sys.argv[1])
"""


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database of each kind (PostgreSQL skipped without a test server)."""
    yield from fresh_database(request.param, tmp_path)


def revision_of(url: str) -> list[str]:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return list(
                connection.execute(text("SELECT version_num FROM alembic_version")).scalars()
            )
    finally:
        engine.dispose()


def test_processes_upgrading_a_fresh_store_at_once_all_succeed(fresh_url: str) -> None:
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", RACER, fresh_url],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    try:
        for racer in racers:
            assert racer.stdout is not None and racer.stdout.readline() == "ready\n"
        for racer in racers:
            assert racer.stdin is not None
            racer.stdin.write("go\n")
            racer.stdin.flush()
        outcomes = [(racer.wait(timeout=120), racer.communicate()[1]) for racer in racers]
    finally:
        for racer in racers:
            racer.kill()
    # Each failure by its exception's line ("...OperationalError: table annotators already exists").
    failures = [
        next((line for line in reversed(stderr.splitlines()) if "Error" in line), stderr)
        for code, stderr in outcomes
        if code != 0
    ]
    assert not failures, failures
    assert revision_of(fresh_url) == [HEAD]


def test_a_store_from_a_newer_birthday_is_refused_in_one_line(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    url = f"sqlite:///{data_dir / 'birthday.sqlite3'}"
    upgrade(url)
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    engine.dispose()
    expected = (
        f"the database is at revision 9999, which this birthday (head {HEAD}) does not know: "
        "a newer birthday upgraded it"
    )

    with pytest.raises(UnknownRevision, match=re.escape(expected)):
        upgrade(url)

    env = {"PATH": "/usr/bin:/bin", "BIRTHDAY_MODELS_DIR": str(tmp_path / "models")}
    for command in (["estimate", "1"], ["serve"]):  # a CLI command, and the server's start
        result = subprocess.run(
            [BIRTHDAY, *command, "--data-dir", str(data_dir)],
            capture_output=True,
            text=True,
            timeout=300,
            env=env,
        )
        assert result.returncode == 2, result.stderr
        assert result.stderr.startswith(f"error: {expected}"), result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert revision_of(url) == ["9999"]  # refused, never touched
