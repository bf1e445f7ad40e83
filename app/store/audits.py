"""Audits, their job chunks and their stored samples."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.store.errors import NotFound
from app.store.models import Audit, CandidatePair, Job, Sample, utcnow
from app.store.pairs import CANDIDATE, RANDOM
from app.store.upsert import insert_ignoring_conflicts


@dataclass(frozen=True)
class ChunkRows:
    """What one audit job step adds, written in one transaction with the progress it implies."""

    samples_done: int
    pairs: Sequence[tuple[int, int, float]]
    samples: Sequence[tuple[int, bytes | None, int | None]]  # PNG None: regenerated
    # The run's last step: random non-candidate pairs for the pool of `pool_size` samples.
    random_pairs: Sequence[tuple[int, int, float]] = ()
    pool_size: int | None = None


def get_audit(session: Session, audit_id: int) -> Audit:
    audit = session.get(Audit, audit_id)
    if audit is None:
        raise NotFound("audit", audit_id)
    return audit


def list_audits(session: Session) -> list[Audit]:
    return list(session.scalars(select(Audit).order_by(Audit.id.desc())))


def create_audit(session: Session, **fields: Any) -> tuple[Audit, Job]:
    """A queued audit and its job, both started by `fields["created_by"]` (None: the local
    user)."""
    audit = Audit(status="queued", samples_done=0, candidate_pairs=0, **fields)
    session.add(audit)
    session.flush()
    job = Job(
        kind="audit", status="queued", audit_id=audit.id, progress={}, created_by=audit.created_by
    )
    session.add(job)
    session.flush()
    return audit, job


def record_chunk(session: Session, audit_id: int, chunk: ChunkRows) -> Audit:
    """Store a step's samples and pairs and move progress, atomically: a crash between steps loses
    the step whole, and its replay inserts nothing twice (unique keys, conflicts ignored)."""
    audit = get_audit(session, audit_id)
    insert_ignoring_conflicts(
        session,
        Sample,
        [
            {"audit_id": audit_id, "idx": i, "png": png, "identity": ident}
            for i, png, ident in chunk.samples
        ],
    )
    inserted = insert_ignoring_conflicts(
        session,
        CandidatePair,
        [
            {"audit_id": audit_id, "i": i, "j": j, "distance": d, "origin": CANDIDATE}
            for i, j, d in chunk.pairs
        ],
    )
    audit.samples_done = max(audit.samples_done, chunk.samples_done)
    audit.candidate_pairs = (
        count_pairs(session, audit_id) if inserted < 0 else (audit.candidate_pairs + inserted)
    )
    if chunk.pool_size is not None:
        _record_random_pairs(session, audit, chunk.pool_size, chunk.random_pairs)
    return audit


def _record_random_pairs(
    session: Session, audit: Audit, pool_size: int, pairs: Sequence[tuple[int, int, float]]
) -> None:
    """Close a generation: its pool size and its random pairs. A drawn pair that is also a
    candidate is dropped by the unique key, so the rest are a uniform sample of the
    non-candidates; a replayed step finds its generation already closed and adds nothing."""
    sizes = list(audit.pool_sizes or [])
    if sizes and sizes[-1] >= pool_size:
        return
    sizes.append(pool_size)
    audit.pool_sizes = sizes
    generation = len(sizes) - 1
    insert_ignoring_conflicts(
        session,
        CandidatePair,
        [
            {
                "audit_id": audit.id,
                "i": i,
                "j": j,
                "distance": d,
                "origin": RANDOM,
                "generation": generation,
            }
            for i, j, d in pairs
        ],
    )


def count_pairs(session: Session, audit_id: int) -> int:
    """The audit's candidate pairs (random pairs are not the miner's)."""
    stmt = (
        select(func.count())
        .select_from(CandidatePair)
        .where(CandidatePair.audit_id == audit_id, CandidatePair.origin == CANDIDATE)
    )
    return int(session.scalar(stmt) or 0)


def set_audit_status(
    session: Session, audit_id: int, status: str, error: str | None = None
) -> None:
    audit = get_audit(session, audit_id)
    audit.status = status
    audit.error = error
    if status in ("done", "failed", "cancelled"):
        audit.finished_at = utcnow()


def get_sample(session: Session, audit_id: int, idx: int) -> Sample | None:
    return session.get(Sample, (audit_id, idx))


def stored_sample_indices(session: Session, audit_id: int) -> set[int]:
    return set(session.scalars(select(Sample.idx).where(Sample.audit_id == audit_id)))


def delete_audit_rows(session: Session, audit_id: int) -> None:
    """Remove an audit and everything that hangs off it, children first (foreign keys)."""
    from sqlalchemy import delete

    from app.store.models import IdempotencyKey, Judgement, ReviewLease

    pair_ids = select(CandidatePair.id).where(CandidatePair.audit_id == audit_id)
    judgement_ids = select(Judgement.id).where(Judgement.pair_id.in_(pair_ids))
    session.execute(delete(IdempotencyKey).where(IdempotencyKey.judgement_id.in_(judgement_ids)))
    session.execute(delete(Judgement).where(Judgement.pair_id.in_(pair_ids)))
    session.execute(delete(ReviewLease).where(ReviewLease.audit_id == audit_id))
    session.execute(delete(CandidatePair).where(CandidatePair.audit_id == audit_id))
    session.execute(delete(Sample).where(Sample.audit_id == audit_id))
    session.execute(delete(Job).where(Job.audit_id == audit_id))
    session.execute(delete(Audit).where(Audit.id == audit_id))


def anchor_sample(session: Session, audit_id: int, idx: int) -> tuple[int, bytes] | None:
    """The stored PNG at or nearest below idx, with its index: its job step's first sample, the
    one a redrawn sample (or a pool growing from idx) is checked against."""
    row = session.execute(
        select(Sample.idx, Sample.png)
        .where(Sample.audit_id == audit_id, Sample.idx <= idx, Sample.png.is_not(None))
        .order_by(Sample.idx.desc())
        .limit(1)
    ).first()
    if row is None or row[1] is None:
        return None
    return int(row[0]), bytes(row[1])
