"""Finished audits with random candidate pairs, written straight to a store: for tests of the
services over large-ish pools without running audit jobs."""

from __future__ import annotations

import itertools

import numpy as np

from app.store import audits as audit_store
from app.store import judgements as judgement_store
from app.store import pairs as pair_store
from app.store.audits import ChunkRows
from app.store.db import Database
from app.store.models import Audit

_draws = itertools.count()


def finished_audit(db: Database, n: int = 300, pairs: bool = True) -> int:
    """A finished audit with k = 3 candidate pairs per sample and 20 random pairs, each drawn
    afresh: assessments are cached by content, so no two audits of a test run are alike."""
    rng = np.random.default_rng(next(_draws))
    with db.write() as session:
        audit, _ = audit_store.create_audit(session, synthetic={"support": n}, n=n)
        audit_id = audit.id
    rows: list[tuple[int, int, float]] = []
    if pairs:
        for j in range(1, n):
            for i in rng.choice(j, size=min(3, j), replace=False).tolist():
                rows.append((int(i), j, float(rng.gamma(3.0, 0.1))))
    random = [(r, n - 1 - r, 5.0) for r in range(20)]
    with db.write() as session:
        audit_store.record_chunk(
            session, audit_id, ChunkRows(n, rows, [], random_pairs=random, pool_size=n)
        )
        row = session.get(Audit, audit_id)
        assert row is not None
        row.status = "done"
    return audit_id


def judge_closest(db: Database, audit_id: int, label: str, annotator: str = "ada") -> int:
    """Judge the closest unlabelled candidate pair; returns the judgement's id."""
    with db.read() as session:
        pair = pair_store.list_pairs(session, audit_id, "unlabelled", 1, None)[0][0]
    with db.write() as session:
        view, _ = judgement_store.post_judgement(session, pair.pair.id, label, annotator, None)
    return view.id
