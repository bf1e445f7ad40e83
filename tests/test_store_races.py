"""Two processes writing one PostgreSQL store at once: consensus labels, new annotators and
idempotency keys come out as if the writes had taken turns.

Each test opens a write transaction here, starts another process doing a conflicting write, and
commits only once that process waits on a lock (or has finished): the interleaving that broke
the store when nothing but the in-process write lock kept writers apart. SQLite needs no such
test: BEGIN IMMEDIATE makes the other process wait before it reads anything.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from app.store import audits as audit_store
from app.store.audits import ChunkRows
from app.store.db import Database
from app.store.judgements import consensus, post_judgement
from app.store.models import Annotator, CandidatePair, Judgement
from tests.conftest import wait_for
from tests.databases import migrated_database
from tests.store_race_worker import judge, undo

Outcome = tuple[Any, ...]  # ("ok", judgement id, created) or ("error", exception name, message)


@pytest.fixture
def pg(tmp_path: Path) -> Iterator[Database]:
    """A migrated PostgreSQL store (skipped without a test server)."""
    yield from migrated_database("postgresql", tmp_path)


def _pairs(db: Database, count: int) -> list[int]:
    with db.write() as session:
        audit, _ = audit_store.create_audit(session, synthetic={"support": 10}, n=100)
        rows = [(0, j, 0.1 * j) for j in range(1, count + 1)]
        audit_store.record_chunk(session, audit.id, ChunkRows(100, rows, []))
        ids = session.scalars(
            select(CandidatePair.id).where(CandidatePair.audit_id == audit.id)
        ).all()
    return sorted(ids)


# -- the race ---------------------------------------------------------------------------------
def _lock_waiters(db: Database) -> int:
    with db.read_engine.connect() as connection:
        return int(
            connection.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
            ).scalar_one()
        )


def _race(
    db: Database, mine: Callable[[Session], Any], theirs: Callable[..., None], *args: Any
) -> tuple[Any, Outcome]:
    """`mine` in a transaction here; `theirs(url, *args, results)` in another process started
    while it is open; commit once the other process waits on a lock or is done."""
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    with db.write() as session:
        here = mine(session)
        session.flush()
        process = context.Process(target=theirs, args=(db.url, *args, results))
        process.start()
        wait_for(
            lambda: process.exitcode is not None or _lock_waiters(db) > 0,
            timeout=120,
            what="the other process to wait on a lock or finish",
        )
    outcome: Outcome = results.get(timeout=120)
    process.join(60)
    assert process.exitcode == 0
    return here, outcome


def _stored_and_consensus(db: Database, pair_id: int) -> tuple[str | None, str | None]:
    with db.read() as session:
        stored = session.get(CandidatePair, pair_id)
        assert stored is not None
        return stored.label, consensus(session, pair_id)


# -- the tests --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("ruling", "expected"),
    [(False, None), (True, "distinct")],
    ids=["a-tie", "an-admins-ruling"],
)
def test_two_processes_judging_one_pair_leave_its_consensus(
    pg: Database, ruling: bool, expected: str | None
) -> None:
    """One annotator says duplicate while another process says distinct (or an admin rules
    distinct): the stored label counts both, where each used to see only its own vote."""
    (pair,) = _pairs(pg, 1)
    label = "distinct" if ruling else "duplicate"
    _, theirs = _race(
        pg,
        lambda s: post_judgement(s, pair, label, "admin" if ruling else "ann-a", None, ruling),
        judge,
        pair,
        "duplicate" if ruling else "distinct",
        "ann-b",
        None,
    )
    assert theirs[0] == "ok", theirs
    assert _stored_and_consensus(pg, pair) == (expected, expected)


def test_an_undo_beside_a_new_judgement_leaves_the_consensus(pg: Database) -> None:
    """Undoing a's duplicate while c's duplicate arrives elsewhere leaves b's distinct against
    c's duplicate: a tie, whatever the undo saw before c's vote was committed."""
    (pair,) = _pairs(pg, 1)
    with pg.write() as session:
        a, _ = post_judgement(session, pair, "duplicate", "ann-a", None)
        post_judgement(session, pair, "distinct", "ann-b", None)
    _, theirs = _race(pg, lambda s: post_judgement(s, pair, "duplicate", "ann-c", None), undo, a.id)
    assert theirs[0] == "ok", theirs
    assert _stored_and_consensus(pg, pair) == (None, None)


def test_a_new_annotators_first_judgements_from_two_processes_both_count(pg: Database) -> None:
    """Both processes make the annotator on first use: one row, no unique violation."""
    first, second = _pairs(pg, 2)
    mine, theirs = _race(
        pg,
        lambda s: post_judgement(s, first, "duplicate", "newcomer", None),
        judge,
        second,
        "duplicate",
        "newcomer",
        None,
    )
    assert theirs[0] == "ok", theirs
    with pg.read() as session:
        (annotator,) = session.scalars(select(Annotator).where(Annotator.name == "newcomer"))
        by = session.scalars(
            select(Judgement.annotator_id).where(Judgement.id.in_([mine[0].id, theirs[1]]))
        )
        assert by.all() == [annotator.id, annotator.id]


def test_one_idempotency_key_from_two_processes_is_a_replay(pg: Database) -> None:
    """The second request with the key gets the first one's judgement back, not an error."""
    (pair,) = _pairs(pg, 1)
    with pg.write() as session:
        session.add(Annotator(name="same", role="annotator"))  # known already
    mine, theirs = _race(
        pg,
        lambda s: post_judgement(s, pair, "duplicate", "same", "key-1"),
        judge,
        pair,
        "duplicate",
        "same",
        "key-1",
    )
    assert theirs == ("ok", mine[0].id, False)
    with pg.read() as session:
        count = session.scalar(select(func.count()).where(Judgement.pair_id == pair))
    assert count == 1


def test_one_idempotency_key_with_another_body_from_another_process_is_refused(
    pg: Database,
) -> None:
    """The same key for another pair, sent at once: refused as a reused key (422), and the
    other process's judgement is not kept."""
    first, second = _pairs(pg, 2)
    with pg.write() as session:
        session.add(Annotator(name="same", role="annotator"))  # known already
    _, theirs = _race(
        pg,
        lambda s: post_judgement(s, first, "duplicate", "same", "key-2"),
        judge,
        second,
        "duplicate",
        "same",
        "key-2",
    )
    assert theirs[:2] == ("error", "Conflict"), theirs
    assert _stored_and_consensus(pg, second) == (None, None)
