"""An import of labels beside a judgement posted by another process on one PostgreSQL store:
the annotator's own answer stands, alone, and the copies count beside it.

The import runs in another process while a judgement on one of its pairs is posted here and not
yet committed, and that judgement commits only once the import waits on a lock: the moment an
import that read the target's votes before locking its pairs went wrong, as it had read them
without the new vote and then copied one beside it (the annotator's own answer overridden by
the later copy). The interleaving is forced by the lock, not by timing. SQLite has no such
moment: the import runs in one BEGIN IMMEDIATE transaction, and any other writer waits for all
of it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from app.store import audits as audit_store
from app.store.audits import ChunkRows
from app.store.db import Database
from app.store.judgements import post_judgement, standing_votes
from app.store.models import Annotator, CandidatePair, Judgement
from tests.databases import migrated_database
from tests.store_race_worker import import_labels
from tests.test_store_races import _race, _stored_and_consensus


@pytest.fixture
def pg(tmp_path: Path) -> Iterator[Database]:
    """A migrated PostgreSQL store (skipped without a test server)."""
    yield from migrated_database("postgresql", tmp_path)


def _audit_of_the_same_samples(db: Database) -> tuple[int, dict[tuple[int, int], int]]:
    """An audit with pairs (0, 1) and (0, 2): its id, and its pair ids by (i, j)."""
    with db.write() as session:
        audit, _ = audit_store.create_audit(session, synthetic={"support": 10}, n=100, seed=1)
        rows = [(0, 1, 0.1), (0, 2, 0.2)]
        audit_store.record_chunk(session, audit.id, ChunkRows(100, rows, []))
        pairs = session.execute(
            select(CandidatePair.i, CandidatePair.j, CandidatePair.id).where(
                CandidatePair.audit_id == audit.id
            )
        ).all()
        return audit.id, {(int(i), int(j)): int(pid) for i, j, pid in pairs}


def test_a_judgement_posted_during_an_import_is_kept_and_not_copied_over(pg: Database) -> None:
    source_audit, source = _audit_of_the_same_samples(pg)
    target_audit, target = _audit_of_the_same_samples(pg)
    with pg.write() as session:
        post_judgement(session, source[0, 1], "duplicate", "ann-a", None)
        post_judgement(session, source[0, 1], "duplicate", "ann-b", None)
        post_judgement(session, source[0, 2], "duplicate", "ann-a", None)

    # ann-a changes her mind on the new audit while her old labels are being imported into it.
    mine, theirs = _race(
        pg,
        lambda s: post_judgement(s, target[0, 1], "distinct", "ann-a", None),
        import_labels,
        source_audit,
        target_audit,
    )
    assert theirs == ("ok", 2, 1), theirs  # ann-b's (0, 1) and ann-a's (0, 2) copied; hers kept
    with pg.read() as session:
        ann_a = session.scalars(select(Annotator.id).where(Annotator.name == "ann-a")).one()
        hers = session.scalars(
            select(Judgement.id).where(
                Judgement.pair_id == target[0, 1],
                Judgement.annotator_id == ann_a,
                Judgement.deleted_at.is_(None),
            )
        ).all()
        assert hers == [mine[0].id]  # her own vote alone, no copy beside it
        votes = standing_votes(session, target[0, 1])
    assert sorted(votes.values()) == ["distinct", "duplicate"]
    # ann-a's distinct against ann-b's copied duplicate: a tie, the pair left unlabelled.
    assert _stored_and_consensus(pg, target[0, 1]) == (None, None)
    assert _stored_and_consensus(pg, target[0, 2]) == ("duplicate", "duplicate")
