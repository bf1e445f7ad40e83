"""The estimate history's kept points: checkpoints that stay put, a new label costing one new
point, an undo or a grown pool recomputing what it changed, and kept points equal to a replay."""

from __future__ import annotations

import pytest

from app.services import history
from app.store import audits as audit_store
from app.store import judgements as judgement_store
from app.store.audits import ChunkRows
from app.store.db import Database
from tests.review_audits import finished_audit, judge_closest


@pytest.fixture
def computed(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Labelled-pair counts of the points the history computes (not those it keeps)."""
    calls: list[int] = []
    real = history.assess

    def spy(state, level=0.95):  # type: ignore[no-untyped-def]
        calls.append(state.labelled_count)
        return real(state, level)

    monkeypatch.setattr(history, "assess", spy)
    return calls


@pytest.mark.parametrize("limit", [1, 2, 3, 8, 50])
def test_checkpoints_stay_put_as_judgements_come(limit: int) -> None:
    before = history.checkpoints(1, limit)
    for total in range(2, 700):
        marks = history.checkpoints(total, limit)
        assert marks == sorted(set(marks)) and marks[-1] == total and marks[0] >= 1
        assert len(marks) <= limit or (limit == 1 and marks == [total])
        # Only the new last judgement is new: every other point is one computed before.
        assert set(marks) - set(before) == {total}
        before = marks
    assert history.checkpoints(5, 8) == [1, 2, 3, 4, 5]
    assert history.checkpoints(100, 8) == [16, 32, 48, 64, 80, 96, 100]


def _cold(
    db: Database, audit_id: int, monkeypatch: pytest.MonkeyPatch, **kw: int
) -> history.EstimateHistoryPublic:
    """The same history replayed with nothing kept."""
    with monkeypatch.context() as m:
        m.setattr(history, "_kept", history._HistoryCache())
        return history.audit_estimate_history(db, audit_id, **kw)


def test_a_new_label_computes_only_the_new_last_point(
    db: Database, computed: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    audit_id = finished_audit(db)
    for label in ("duplicate", "distinct", "duplicate", "distinct"):
        judge_closest(db, audit_id, label)
    first = history.audit_estimate_history(db, audit_id)
    assert [p.judgements for p in first.points] == [1, 2, 3, 4]
    assert computed == [1, 2, 3, 4]
    judge_closest(db, audit_id, "duplicate")
    second = history.audit_estimate_history(db, audit_id)
    assert computed[4:] == [5]  # points 1-4 kept
    assert second.points[:4] == first.points
    assert second.model_dump() == _cold(db, audit_id, monkeypatch).model_dump()
    # Asked again with nothing new: only the last point is recomputed (today's design).
    computed.clear()
    history.audit_estimate_history(db, audit_id)
    assert computed == [5]


def test_an_undo_recomputes_the_points_after_it(
    db: Database, computed: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    audit_id = finished_audit(db)
    ids = [judge_closest(db, audit_id, label) for label in ("duplicate",) * 3 + ("distinct",) * 2]
    history.audit_estimate_history(db, audit_id)
    computed.clear()
    with db.write() as session:
        judgement_store.delete_judgement(session, ids[2])
    after = history.audit_estimate_history(db, audit_id)
    assert [p.judgements for p in after.points] == [1, 2, 3, 4]
    assert computed == [3, 4]  # the first two stand; the rest moved up one place
    assert after.model_dump() == _cold(db, audit_id, monkeypatch).model_dump()


def test_a_grown_pool_recomputes_every_point(
    db: Database, computed: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    audit_id = finished_audit(db)
    for label in ("duplicate", "distinct", "duplicate"):
        judge_closest(db, audit_id, label)
    before = history.audit_estimate_history(db, audit_id)
    computed.clear()
    with db.write() as session:
        audit_store.record_chunk(session, audit_id, ChunkRows(310, [(300, 305, 0.01)], []))
    grown = history.audit_estimate_history(db, audit_id)
    assert computed == [1, 2, 3]
    assert grown.n == 310 and before.n == 300
    assert grown.model_dump() == _cold(db, audit_id, monkeypatch).model_dump()


def test_a_thinner_request_reuses_the_points_it_shares(
    db: Database, computed: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    audit_id = finished_audit(db)
    for _ in range(9):
        judge_closest(db, audit_id, "distinct")
    history.audit_estimate_history(db, audit_id)
    computed.clear()
    thin = history.audit_estimate_history(db, audit_id, max_points=3)
    assert [p.judgements for p in thin.points] == [4, 8, 9]
    assert computed == [9]
    cold = _cold(db, audit_id, monkeypatch, max_points=3)
    assert thin.model_dump() == cold.model_dump()
