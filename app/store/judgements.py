"""Judgements: idempotent posting and undo, keeping each pair's consensus label current.

Idempotency follows Stripe and the IETF draft: the key is stored with the judgement in one transaction;
a replay returns the first response; the same key with a different body is refused (422).

Several processes may write one PostgreSQL store (two servers, a CLI run beside a server), where
the in-process write lock of app/store/db.py serialises nothing and READ COMMITTED lets two
transactions read a pair's votes before either writes: every change to a pair's votes first locks
the pair's row (`lock_pair`), so the consensus is always computed over every vote committed.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass

from sqlalchemy import ColumnElement, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from app.store.annotators import ensure_annotator
from app.store.errors import Conflict, Forbidden, NotFound
from app.store.models import Annotator, CandidatePair, IdempotencyKey, Judgement, utcnow
from app.store.pairs import LABELS, get_pair


@dataclass(frozen=True)
class JudgementView:
    id: int
    pair_id: int
    label: str
    annotator: str
    adjudicated: bool
    audit_id: int  # the pair's audit, for live updates


def of_audit(audit_id: int) -> ColumnElement[bool]:
    """The judgement is on a pair of this audit: a test per judgement by the pair's primary key.

    A join filtered on the pair's audit walks every pair of the audit instead (SQLite plans it
    from the (audit, ...) index): ~0.1 s at 10^5 samples, ~1 s at 10^6, for a few hundred
    judgements.
    """
    pair = aliased(CandidatePair)  # its own name: a query that joins pairs too must not correlate
    return select(pair.id).where(pair.id == Judgement.pair_id, pair.audit_id == audit_id).exists()


def standing_judgements(session: Session, audit_id: int) -> list[tuple[int, int, str, bool]]:
    """(pair id, annotator id, label, adjudicated) of the audit's standing judgements, in the
    order they came."""
    rows = session.execute(
        select(Judgement.pair_id, Judgement.annotator_id, Judgement.label, Judgement.adjudicated)
        .where(Judgement.deleted_at.is_(None), of_audit(audit_id))
        .order_by(Judgement.id)
    )
    return [(int(p), int(a), str(label), bool(adj)) for p, a, label, adj in rows]


def annotator_by_name(session: Session, name: str, create: bool) -> Annotator | None:
    """The annotator of that name; with `create`, one made on first use (safe against another
    process making the same one at the same moment)."""
    if create:
        return ensure_annotator(session, name)
    return session.scalars(select(Annotator).where(Annotator.name == name)).first()


def lock_pair(session: Session, pair_id: int) -> CandidatePair:
    """The pair, its row locked until the transaction ends (SELECT ... FOR UPDATE).

    Take it before reading the votes of a pair whose label the transaction then writes. On
    SQLite it is a plain read: BEGIN IMMEDIATE already makes every writer wait its turn.
    """
    pair = session.get(CandidatePair, pair_id, with_for_update=True, populate_existing=True)
    if pair is None:
        raise NotFound("pair", pair_id)
    return pair


def _request_hash(pair_id: int, label: str, annotator: str, adjudicated: bool) -> str:
    body = json.dumps(
        {"pair_id": pair_id, "label": label, "annotator": annotator, "adjudicated": adjudicated},
        sort_keys=True,
    )
    return hashlib.sha256(body.encode()).hexdigest()


def _view(session: Session, judgement: Judgement) -> JudgementView:
    annotator = session.get(Annotator, judgement.annotator_id)
    name = annotator.name if annotator else "?"
    return JudgementView(
        judgement.id,
        judgement.pair_id,
        judgement.label,
        name,
        bool(judgement.adjudicated),
        get_pair(session, judgement.pair_id).audit_id,
    )


def standing_votes(session: Session, pair_id: int) -> dict[int, str]:
    """Each annotator's latest standing (not undone, not adjudication) label on the pair."""
    rows = session.scalars(
        select(Judgement)
        .where(
            Judgement.pair_id == pair_id,
            Judgement.deleted_at.is_(None),
            Judgement.adjudicated.is_(False),
        )
        .order_by(Judgement.id)
    )
    return {row.annotator_id: row.label for row in rows}


def consensus(session: Session, pair_id: int) -> str | None:
    """An admin's standing ruling if any; else the majority of annotators' latest labels.

    A tie leaves the pair unlabelled, so the review queue asks someone else: a split pair must
    not count as a duplicate (or not) on one person's word.
    """
    ruling = session.scalars(
        select(Judgement)
        .where(
            Judgement.pair_id == pair_id,
            Judgement.deleted_at.is_(None),
            Judgement.adjudicated.is_(True),
        )
        .order_by(Judgement.id.desc())
        .limit(1)
    ).first()
    if ruling is not None:
        return ruling.label
    counts = Counter(standing_votes(session, pair_id).values()).most_common()
    if not counts or (len(counts) > 1 and counts[0][1] == counts[1][1]):
        return None
    return counts[0][0]


def refresh_pair_label(session: Session, pair_id: int) -> None:
    """Store the pair's consensus; the pair is locked before its votes are read (a no-op when
    the transaction holds the lock already)."""
    pair = lock_pair(session, pair_id)
    pair.label = consensus(session, pair_id)


def _replay(session: Session, key: str, request_hash: str) -> JudgementView | None:
    """The first response for a stored key, None if the key is new; 422 for another body."""
    stored = session.get(IdempotencyKey, key)
    if stored is None:
        return None
    if stored.request_hash != request_hash:
        raise Conflict("this Idempotency-Key was used with a different request", 422)
    original = session.get(Judgement, stored.judgement_id)
    if original is None:
        raise NotFound("judgement", stored.judgement_id)
    return _view(session, original)


def post_judgement(
    session: Session,
    pair_id: int,
    label: str,
    annotator: str,
    key: str | None,
    adjudicated: bool = False,
) -> tuple[JudgementView, bool]:
    """Returns (judgement, created); created is False for a replay of an idempotency key."""
    if label not in LABELS:
        raise ValueError(f"label must be one of {', '.join(LABELS)}")
    request_hash = _request_hash(pair_id, label, annotator, adjudicated)
    if key is not None and (replay := _replay(session, key, request_hash)) is not None:
        return replay, False
    pair = lock_pair(session, pair_id)
    who = ensure_annotator(session, annotator)
    judgement = Judgement(
        pair_id=pair.id, annotator_id=who.id, label=label, adjudicated=adjudicated
    )
    if key is None:
        session.add(judgement)
        session.flush()
    else:
        # Another process may store the same key between our look and our insert (PostgreSQL;
        # SQLite's writers take turns): its insert wins, and this request is its replay.
        try:
            with session.begin_nested():
                session.add(judgement)
                session.flush()
                session.add(
                    IdempotencyKey(key=key, request_hash=request_hash, judgement_id=judgement.id)
                )
                session.flush()
        except IntegrityError:
            replay = _replay(session, key, request_hash)
            if replay is None:
                raise
            return replay, False
    refresh_pair_label(session, pair.id)
    return _view(session, judgement), True


def delete_judgement(
    session: Session, judgement_id: int, only_by: str | None = None
) -> JudgementView:
    """Undo a judgement; `only_by` restricts it to that annotator's own judgements."""
    judgement = session.get(Judgement, judgement_id)
    if judgement is None:
        raise NotFound("judgement", judgement_id)
    # Lock the pair, then read the judgement again: an undo of it committed meanwhile shows.
    lock_pair(session, judgement.pair_id)
    session.refresh(judgement)
    if judgement.deleted_at is not None:
        raise NotFound("judgement", judgement_id, f"judgement {judgement_id} was undone already")
    if only_by is not None and _view(session, judgement).annotator != only_by:
        raise Forbidden("you can only undo your own judgements")
    judgement.deleted_at = utcnow()
    session.flush()
    refresh_pair_label(session, judgement.pair_id)
    return _view(session, judgement)
