"""Review leases: which annotator a pair was handed to, and until when.

They live in the store, not in a process's memory, so that two servers (or a server and the CLI)
on one database never hand one pair to two annotators within the lease: a process can only take
a lease with one atomic INSERT ... ON CONFLICT DO UPDATE that succeeds where the pair is free,
its lease expired, or it is already this annotator's.

Times are the store's clock, read once per handout by `store_now` and used for every comparison
and expiry of that handout: PostgreSQL's own clock (the servers sharing one database may run on
hosts whose clocks differ; the database is the one clock they all see), and on SQLite the host's
UTC clock (a SQLite file is only shared by processes on its own host, so that is its clock too).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import DateTime, delete, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from app.store.errors import NotFound
from app.store.models import Audit, ReviewLease, utcnow


def store_now(session: Session) -> datetime:
    """Now, by the store's clock (UTC-aware)."""
    if session.get_bind().dialect.name == "postgresql":
        # clock_timestamp(), not now(): now() is when the transaction began, which may be long
        # before it got the audit's lock, and a lease taken then would end that much early.
        now: datetime = session.execute(
            select(func.clock_timestamp(type_=DateTime(timezone=True)))
        ).scalar_one()
        return now
    return utcnow()


def lock_queue(session: Session, audit_id: int) -> Audit:
    """The audit, its row locked until the transaction ends, so that the handouts of one audit
    take turns across processes: each reads the stored review design and the leases, and writes
    both. On SQLite a plain read: the write transaction's BEGIN IMMEDIATE already makes every
    other writer wait."""
    audit = session.get(Audit, audit_id, with_for_update=True, populate_existing=True)
    if audit is None:
        raise NotFound("audit", audit_id)
    return audit


def drop_expired(session: Session, audit_id: int, now: datetime) -> int:
    """Delete the audit's expired leases (cheap: one indexed range); returns how many."""
    result = session.execute(
        delete(ReviewLease).where(ReviewLease.audit_id == audit_id, ReviewLease.expires_at <= now)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def leased_to_others(session: Session, audit_id: int, annotator: str, now: datetime) -> set[int]:
    """Ids of the audit's pairs leased to anyone but `annotator`, the leases still running."""
    stmt = select(ReviewLease.pair_id).where(
        ReviewLease.audit_id == audit_id,
        ReviewLease.annotator != annotator,
        ReviewLease.expires_at > now,
    )
    return {int(pid) for pid in session.scalars(stmt)}


def held_by(session: Session, audit_id: int, annotator: str, now: datetime) -> set[int]:
    """Ids of the audit's pairs leased to `annotator`, the leases still running."""
    stmt = select(ReviewLease.pair_id).where(
        ReviewLease.audit_id == audit_id,
        ReviewLease.annotator == annotator,
        ReviewLease.expires_at > now,
    )
    return {int(pid) for pid in session.scalars(stmt)}


def take(
    session: Session,
    audit_id: int,
    pair_id: int,
    annotator: str,
    now: datetime,
    seconds: float,
    steal: bool = False,
) -> bool:
    """Lease the pair to `annotator` until `now + seconds`, if it is free, its lease expired or
    already theirs (then renewed); False, and nothing written, while another annotator holds it.
    `steal` moves another annotator's running lease too (the queue's last resort)."""
    insert = _insert(session).values(
        pair_id=pair_id,
        audit_id=audit_id,
        annotator=annotator,
        expires_at=now + timedelta(seconds=seconds),
    )
    stmt = insert.on_conflict_do_update(
        index_elements=[ReviewLease.pair_id],
        set_={
            "audit_id": insert.excluded.audit_id,
            "annotator": insert.excluded.annotator,
            "expires_at": insert.excluded.expires_at,
        },
        where=None
        if steal
        else (ReviewLease.expires_at <= now) | (ReviewLease.annotator == annotator),
    ).returning(ReviewLease.pair_id)
    # The row comes back where it was inserted or updated; none where the WHERE kept another
    # annotator's lease (RETURNING: SQLAlchemy reports this statement's row count as -1 on
    # PostgreSQL).
    return session.connection().execute(stmt).first() is not None


def release(session: Session, audit_id: int, pair_ids: set[int], annotator: str) -> None:
    """Give back the annotator's leases of these pairs (another annotator's stay)."""
    if not pair_ids:
        return
    session.execute(
        delete(ReviewLease).where(
            ReviewLease.audit_id == audit_id,
            ReviewLease.pair_id.in_(sorted(pair_ids)),
            ReviewLease.annotator == annotator,
        )
    )


def _insert(session: Session) -> Any:
    dialect = session.get_bind().dialect.name
    if dialect == "sqlite":
        return sqlite.insert(ReviewLease)
    if dialect == "postgresql":
        return postgresql.insert(ReviewLease)
    raise RuntimeError(f"unsupported database dialect {dialect!r}")
