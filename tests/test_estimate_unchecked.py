"""What the estimate claims before the miner's misses are checked: while the pool mines (no
random pairs yet) and in an audit that draws none (random_pairs 0)."""

from __future__ import annotations

from app.services import review_state
from app.services.estimates import assess, estimate_public
from app.store import audits as audit_store
from app.store import judgements as judgement_store
from app.store.audits import ChunkRows
from app.store.db import Database


def _audit(db: Database) -> int:
    with db.write() as session:
        audit, _ = audit_store.create_audit(session, synthetic={"support": 10}, n=40)
        return audit.id


def test_a_mining_pool_claims_no_bound_over_its_candidates_alone(db: Database) -> None:
    audit_id = _audit(db)
    with db.write() as session:
        audit_store.record_chunk(session, audit_id, ChunkRows(20, [(0, 1, 0.1), (2, 3, 0.2)], []))
    estimate = estimate_public(assess(review_state.load_review(db, audit_id)))
    # 190 pairs, 2 proposed: every other pair may be a duplicate the miner missed, and nothing
    # has checked them yet; a bound over the candidates alone would read 190 / 2 = 95.
    assert estimate.n == 20 and estimate.candidate_pairs == 2
    assert estimate.n_eff is None and estimate.n_eff_low == 1.0


def test_an_audit_without_random_pairs_says_its_misses_are_unbounded(db: Database) -> None:
    audit_id = _audit(db)
    pairs = [(0, 1, 0.1), (2, 3, 0.2), (4, 5, 0.3)]
    with db.write() as session:
        audit_store.record_chunk(session, audit_id, ChunkRows(40, pairs, []))
        audit_store.record_chunk(session, audit_id, ChunkRows(40, [], [], [], pool_size=40))
    state = review_state.load_review(db, audit_id)
    with db.write() as session:
        for pair_id, label in zip(
            state.candidate_ids.tolist(), ["duplicate", "distinct", "distinct"], strict=True
        ):
            judgement_store.post_judgement(session, int(pair_id), label, "ada", None)
    estimate = estimate_public(assess(review_state.load_review(db, audit_id)))
    assert estimate.random_pairs == 0 and estimate.duplicate_pairs == 1
    unbounded = [w for w in estimate.warnings if "No random pair was drawn" in w]
    assert len(unbounded) == 1 and f"among {780 - 3:,} pairs" in unbounded[0]


def test_an_audit_with_random_pairs_gets_no_such_warning(db: Database) -> None:
    audit_id = _audit(db)
    with db.write() as session:
        audit_store.record_chunk(session, audit_id, ChunkRows(40, [(0, 1, 0.1)], []))
        audit_store.record_chunk(
            session, audit_id, ChunkRows(40, [], [], [(5, 39, 0.9)], pool_size=40)
        )
    state = review_state.load_review(db, audit_id)
    with db.write() as session:
        judgement_store.post_judgement(session, int(state.candidate_ids[0]), "duplicate", "a", None)
    estimate = estimate_public(assess(review_state.load_review(db, audit_id)))
    assert not [w for w in estimate.warnings if "No random pair was drawn" in w]
