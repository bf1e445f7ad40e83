"""The review state's pair cache: new chunks show up, and an unchanged audit costs no pair scan.

The "rows after the last id" queries walk every pair of the audit (no index orders an audit's
pairs by id), so at 10^6 samples skipping them while nothing was written is what keeps a
label's round trip short (bench/review_latency.py).
"""

from __future__ import annotations

import pytest

from app.services import review_state
from app.store import audits as audit_store
from app.store import judgements as judgement_store
from app.store import pairs as pair_store
from app.store.audits import ChunkRows
from app.store.db import Database


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    real = pair_store.pair_rows

    def spy(session, audit_id, origin, after_id=0, **plan):  # type: ignore[no-untyped-def]
        calls.append(origin)
        return real(session, audit_id, origin, after_id, **plan)

    monkeypatch.setattr(pair_store, "pair_rows", spy)
    return calls


def _audit(db: Database) -> int:
    with db.write() as session:
        audit, _ = audit_store.create_audit(session, synthetic={"support": 10}, n=40)
        return audit.id


def test_unchanged_audit_reads_no_pairs_and_new_chunks_are_seen(
    db: Database, counted: list[str]
) -> None:
    audit_id = _audit(db)
    with db.write() as session:
        audit_store.record_chunk(session, audit_id, ChunkRows(20, [(0, 1, 0.1), (2, 3, 0.2)], []))
    first = review_state.load_review(db, audit_id)
    assert len(first.candidates) == 2 and len(counted) == 2
    # Labels change between requests, pairs do not: no pair query, the label still shows.
    with db.write() as session:
        judgement_store.post_judgement(session, int(first.candidate_ids[0]), "duplicate", "a", None)
    again = review_state.load_review(db, audit_id)
    assert len(counted) == 2
    assert again.candidate_labels.tolist() == [1, -1]
    # A chunk with candidates, then the random pairs closing the pool: each is read.
    with db.write() as session:
        audit_store.record_chunk(session, audit_id, ChunkRows(40, [(20, 30, 0.05)], []))
    grown = review_state.load_review(db, audit_id)
    assert len(counted) == 4
    assert sorted(grown.candidates.distance.tolist()) == [0.05, 0.1, 0.2]
    with db.write() as session:
        audit_store.record_chunk(
            session,
            audit_id,
            ChunkRows(40, [], [], random_pairs=[(5, 39, 0.9), (6, 38, 0.8)], pool_size=40),
        )
    closed = review_state.load_review(db, audit_id)
    assert len(counted) == 6
    assert len(closed.random) == 2 and closed.random_drawn
    review_state.load_review(db, audit_id)
    assert len(counted) == 6


def test_replayed_chunk_changes_nothing(db: Database, counted: list[str]) -> None:
    audit_id = _audit(db)
    chunk = ChunkRows(20, [(0, 1, 0.1)], [])
    with db.write() as session:
        audit_store.record_chunk(session, audit_id, chunk)
    before = review_state.load_review(db, audit_id)
    with db.write() as session:
        audit_store.record_chunk(session, audit_id, chunk)  # a resumed job replays its step
    after = review_state.load_review(db, audit_id)
    assert len(counted) == 2
    assert after.candidate_ids.tolist() == before.candidate_ids.tolist()


def test_both_read_plans_return_the_same_rows(db: Database) -> None:
    # Two audits writing in turns: the id walk must skip the other audit's rows.
    first, second = _audit(db), _audit(db)
    for step in range(3):
        for audit_id in (first, second):
            pairs = [(step, 10 + step + k, 0.1 * k + audit_id) for k in range(4)]
            with db.write() as session:
                audit_store.record_chunk(session, audit_id, ChunkRows(20 + step, pairs, []))
    with db.write() as session:
        audit_store.record_chunk(
            session, first, ChunkRows(23, [], [], random_pairs=[(1, 22, 0.9)], pool_size=23)
        )
    with db.read() as session:
        everything = pair_store.pair_rows(session, first, pair_store.CANDIDATE)
        middle = int(everything.ids[5])
        for origin in pair_store.ORIGINS:
            for after in (0, middle):
                by_index = pair_store.pair_rows(session, first, origin, after)
                walked = pair_store.pair_rows(session, first, origin, after, expected=10**6)
                for a, b in zip(by_index.__dict__.values(), walked.__dict__.values(), strict=True):
                    assert a.tolist() == b.tolist()
        random = pair_store.pair_rows(session, first, pair_store.RANDOM, expected=1)
    assert everything.ids.size == 12 and (everything.distance < 2).all()  # audit 1's own
    assert random.generation.tolist() == [0] and everything.generation.tolist() == [-1] * 12
