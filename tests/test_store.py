"""The store on SQLite and PostgreSQL: migrations, pragmas, atomic job chunks, idempotent judgements."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import inspect, text

from app.store import audits as audit_store
from app.store import judgements as judgement_store
from app.store import pairs as pair_store
from app.store.audits import ChunkRows
from app.store.db import Database
from app.store.errors import Conflict, NotFound
from app.store.migrate import upgrade
from app.store.models import utcnow
from tests.databases import insert_row

TABLES = {
    "generators",
    "audits",
    "samples",
    "pairs",
    "judgements",
    "annotators",
    "jobs",
    "idempotency_keys",
    "review_leases",
}


def _audit(db: Database) -> int:
    with db.write() as session:
        audit, _ = audit_store.create_audit(session, synthetic={"support": 10}, n=100)
        return audit.id


def test_migration_creates_every_table(db: Database) -> None:
    names = set(inspect(db.read_engine).get_table_names())
    assert names >= TABLES
    assert "alembic_version" in names


def test_models_match_the_migrations(db: Database) -> None:
    """What Alembic builds is what the models declare (a model change needs a migration)."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from app.store.models import Base

    with db.write_engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert diff == []


def test_random_pairs_close_a_generation_once(db: Database) -> None:
    audit_id = _audit(db)
    chunk = audit_store.ChunkRows(
        samples_done=100,
        pairs=[(0, 1, 0.1), (2, 3, 0.2)],
        samples=[],
        random_pairs=[(0, 1, 0.1), (5, 90, 3.0), (7, 60, 2.5)],  # (0, 1) is a candidate
        pool_size=100,
    )
    for _ in range(2):  # a replayed last step adds nothing
        with db.write() as session:
            audit = audit_store.record_chunk(session, audit_id, chunk)
            assert audit.pool_sizes == [100] and audit.candidate_pairs == 2
    with db.read() as session:
        random = pair_store.pair_rows(session, audit_id, pair_store.RANDOM)
        candidates = pair_store.pair_rows(session, audit_id, pair_store.CANDIDATE)
    assert sorted(zip(random.i.tolist(), random.j.tolist(), strict=True)) == [(5, 90), (7, 60)]
    assert random.generation.tolist() == [0, 0] and candidates.ids.size == 2


def test_sqlite_runs_in_wal_mode_with_busy_timeout(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'x.sqlite3'}"
    upgrade(url)
    database = Database(url, busy_timeout_ms=1234)
    with database.read() as session:
        assert session.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert session.execute(text("PRAGMA busy_timeout")).scalar() == 1234
        assert session.execute(text("PRAGMA foreign_keys")).scalar() == 1
    database.dispose()


def test_replayed_chunk_adds_nothing_twice(db: Database) -> None:
    audit_id = _audit(db)
    chunk = ChunkRows(
        samples_done=50,
        pairs=[(0, 1, 0.5), (2, 7, 0.25), (3, 4, 1.0)],
        samples=[(i, b"png", None) for i in (0, 1, 2, 3, 4, 7)],
    )
    with db.write() as session:
        audit_store.record_chunk(session, audit_id, chunk)
    with db.write() as session:  # the same step again, as after a crash before the next one
        audit = audit_store.record_chunk(session, audit_id, chunk)
        assert audit.candidate_pairs == 3
        assert audit.samples_done == 50
    with db.read() as session:
        assert audit_store.count_pairs(session, audit_id) == 3
        assert audit_store.stored_sample_indices(session, audit_id) == {0, 1, 2, 3, 4, 7}
        ranked, cursor = pair_store.list_pairs(session, audit_id, None, 10, None)
    assert [(r.pair.i, r.pair.j, r.rank) for r in ranked] == [(2, 7, 1), (0, 1, 2), (3, 4, 3)]
    assert cursor is None


def test_failed_write_rolls_back_whole_chunk(db: Database) -> None:
    audit_id = _audit(db)
    with pytest.raises(RuntimeError), db.write() as session:
        audit_store.record_chunk(session, audit_id, ChunkRows(10, [(0, 1, 0.1)], []))
        raise RuntimeError("worker died mid-step")
    with db.read() as session:
        assert audit_store.count_pairs(session, audit_id) == 0
        assert audit_store.get_audit(session, audit_id).samples_done == 0


def test_cursor_pagination_walks_every_pair_once_with_ties(db: Database) -> None:
    audit_id = _audit(db)
    pairs = [(i, i + 1 + k, float(i % 3)) for i in range(30) for k in range(2)]
    with db.write() as session:
        audit_store.record_chunk(session, audit_id, ChunkRows(100, pairs, []))
    seen: list[tuple[int, int]] = []
    ranks: list[int] = []
    cursor = None
    with db.read() as session:
        while True:
            page, cursor = pair_store.list_pairs(session, audit_id, None, 7, cursor)
            seen.extend((r.pair.i, r.pair.j) for r in page)
            ranks.extend(r.rank for r in page)
            if cursor is None:
                break
    assert sorted(seen) == sorted((i, j) for i, j, _ in pairs)
    assert len(set(seen)) == len(pairs)
    assert ranks == list(range(1, len(pairs) + 1))


def test_judgement_idempotency_and_undo(db: Database) -> None:
    audit_id = _audit(db)
    with db.write() as session:
        audit_store.record_chunk(session, audit_id, ChunkRows(10, [(0, 1, 0.1)], []))
    with db.read() as session:
        pair_id = pair_store.list_pairs(session, audit_id, None, 1, None)[0][0].pair.id
    with db.write() as session:
        first, created = judgement_store.post_judgement(session, pair_id, "duplicate", "ann", "k1")
    assert created
    with db.write() as session:
        replay, created = judgement_store.post_judgement(session, pair_id, "duplicate", "ann", "k1")
    assert not created and replay == first
    with pytest.raises(Conflict) as conflict, db.write() as session:
        judgement_store.post_judgement(session, pair_id, "distinct", "ann", "k1")
    assert conflict.value.status == 422
    with db.write() as session:
        second, _ = judgement_store.post_judgement(session, pair_id, "distinct", "bob", None)
    with db.read() as session:  # one vote each way: no consensus until a third opinion
        assert pair_store.get_pair(session, pair_id).label is None
    with db.write() as session:
        judgement_store.delete_judgement(session, second.id)
    with db.read() as session:
        assert pair_store.get_pair(session, pair_id).label == "duplicate"
    with db.write() as session:
        judgement_store.delete_judgement(session, first.id)
    with db.read() as session:
        assert pair_store.get_pair(session, pair_id).label is None
    with pytest.raises(NotFound), db.write() as session:
        judgement_store.delete_judgement(session, first.id)


def test_migrations_downgrade_and_upgrade_again(db: Database) -> None:
    from alembic import command
    from app.store.migrate import alembic_config

    config = alembic_config(db.url)
    command.downgrade(config, "base")
    assert "audits" not in set(inspect(db.write_engine).get_table_names())
    command.upgrade(config, "head")
    assert set(inspect(db.write_engine).get_table_names()) >= TABLES


def test_statistics_are_refreshed_on_postgresql_only(db: Database) -> None:
    """After an audit streams its pairs in, PostgreSQL's planner must know they are there
    (else it sorts every unlabelled pair for one page); SQLite is left without statistics."""
    audit_id = _audit(db)
    chunk = audit_store.ChunkRows(
        samples_done=100,
        pairs=[(i, j, 0.01 * (i + j)) for i in range(40) for j in range(i + 1, 41)],
        samples=[],
        random_pairs=[],
        pool_size=None,
    )
    with db.write() as session:
        audit_store.record_chunk(session, audit_id, chunk)
    db.refresh_statistics()
    with db.read() as session:
        if db.is_sqlite:
            tables = set(inspect(db.read_engine).get_table_names())
            assert "sqlite_stat1" not in tables
        else:
            tuples = session.execute(
                text("SELECT reltuples FROM pg_class WHERE relname = 'pairs'")
            ).scalar_one()
            assert tuples == 820  # C(41, 2) pairs, counted by ANALYZE (-1 before it)


def _pairs_of(db: Database, audit_id: int) -> set[int]:
    chunk = ChunkRows(samples_done=5, pairs=[(0, 1, 0.5), (2, 3, 0.25)], samples=[])
    with db.write() as session:
        audit_store.record_chunk(session, audit_id, chunk)
    with db.read() as session:
        ranked, _ = pair_store.list_pairs(session, audit_id, None, 10, None)
    return {r.pair.id for r in ranked}


def _job_ids(db: Database) -> set[int]:
    with db.read() as session:
        return set(session.scalars(text("SELECT id FROM jobs")).all())


def test_ids_of_deleted_rows_are_never_handed_out_again(db: Database) -> None:
    """Delete the newest audit: the next audit, its job and its pairs get new ids (a review page
    still open on the deleted audit must not judge the new one's pairs, nor the worker take the
    new job for the deleted one's cancelled job)."""
    first, second = _audit(db), _audit(db)
    old_pairs, old_jobs = _pairs_of(db, second), _job_ids(db)
    with db.write() as session:
        audit_store.delete_audit_rows(session, second)
    third = _audit(db)
    assert third > second > first
    new_pairs, new_jobs = _pairs_of(db, third), _job_ids(db) - old_jobs
    assert min(new_pairs) > max(old_pairs)
    assert new_jobs and min(new_jobs) > max(old_jobs)


def _old_audit(db: Database) -> int:
    """An audit with its queued job, as `_audit` makes it, at an older revision."""
    audit_id = insert_row(
        db,
        "audits",
        synthetic={"support": 10},
        n=100,
        seed=0,
        embedder="pixels",
        embedder_options={},
        miner="auto",
        neighbours=5,
        chunk_size=1000,
        status="queued",
        samples_done=0,
        candidate_pairs=0,
        created_at=utcnow(),
    )
    insert_row(
        db,
        "jobs",
        kind="audit",
        status="queued",
        audit_id=audit_id,
        progress={},
        cancel_requested=False,
        attempts=0,
        created_at=utcnow(),
    )
    return audit_id


def test_the_migration_keeps_every_row_and_counts_on_from_the_largest_id(tmp_path: Path) -> None:
    from alembic import command
    from app.store.migrate import alembic_config

    url = f"sqlite:///{tmp_path / 'old.sqlite3'}"
    command.upgrade(alembic_config(url), "0007")
    db = Database(url)
    ids = [_old_audit(db) for _ in range(3)]
    pairs = {
        insert_row(db, "pairs", audit_id=ids[-1], i=i, j=j, distance=d, origin="candidate")
        for i, j, d in [(0, 1, 0.5), (2, 3, 0.25)]
    }
    command.upgrade(alembic_config(url), "head")
    with db.read() as session:
        assert sorted(a.id for a in audit_store.list_audits(session)) == ids
    assert _pairs_of(db, ids[-1]) == pairs  # the same rows, not copies with new ids
    with db.write() as session:
        audit_store.delete_audit_rows(session, ids[-1])
    assert _audit(db) == ids[-1] + 1
