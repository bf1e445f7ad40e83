"""Candidate pairs: listing by distance with cursors, the review queue, and what the estimate reads."""

from __future__ import annotations

import base64
import binascii
import struct
from dataclasses import dataclass

from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.orm import Session

from app.store.errors import NotFound
from app.store.models import CandidatePair, Judgement

LABELS = ("duplicate", "distinct", "unsure")
FILTERS = ("unlabelled", *LABELS)


@dataclass(frozen=True)
class RankedPair:
    pair: CandidatePair
    rank: int  # 1 = the closest candidate pair of the audit


def encode_cursor(distance: float, pair_id: int) -> str:
    return base64.urlsafe_b64encode(struct.pack(">dq", distance, pair_id)).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[float, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        distance, pair_id = struct.unpack(">dq", raw)
    except (binascii.Error, struct.error, ValueError) as exc:
        raise ValueError("invalid cursor") from exc
    return float(distance), int(pair_id)


def _after(distance: float, pair_id: int) -> ColumnElement[bool]:
    return or_(
        CandidatePair.distance > distance,
        and_(CandidatePair.distance == distance, CandidatePair.id > pair_id),
    )


def _before(distance: float, pair_id: int) -> ColumnElement[bool]:
    return or_(
        CandidatePair.distance < distance,
        and_(CandidatePair.distance == distance, CandidatePair.id < pair_id),
    )


def _label_filter(label: str | None) -> ColumnElement[bool] | None:
    if label is None:
        return None
    if label == "unlabelled":
        return CandidatePair.label.is_(None)
    if label in LABELS:
        return CandidatePair.label == label
    raise ValueError(f"label filter must be one of {', '.join(FILTERS)}")


def rank_of(session: Session, pair: CandidatePair) -> int:
    stmt = (
        select(func.count())
        .select_from(CandidatePair)
        .where(CandidatePair.audit_id == pair.audit_id, _before(pair.distance, pair.id))
    )
    return int(session.scalar(stmt) or 0) + 1


def _count_between(session: Session, audit_id: int, low: CandidatePair, high: CandidatePair) -> int:
    stmt = (
        select(func.count())
        .select_from(CandidatePair)
        .where(
            CandidatePair.audit_id == audit_id,
            _after(low.distance, low.id),
            _before(high.distance, high.id),
        )
    )
    return int(session.scalar(stmt) or 0)


def list_pairs(
    session: Session, audit_id: int, label: str | None, limit: int, cursor: str | None
) -> tuple[list[RankedPair], str | None]:
    """One page ordered by (distance, id); ranks count every candidate of the audit, whatever the filter."""
    conditions: list[ColumnElement[bool]] = [CandidatePair.audit_id == audit_id]
    label_condition = _label_filter(label)
    if label_condition is not None:
        conditions.append(label_condition)
    if cursor:
        conditions.append(_after(*decode_cursor(cursor)))
    stmt = (
        select(CandidatePair)
        .where(*conditions)
        .order_by(CandidatePair.distance, CandidatePair.id)
        .limit(limit + 1)
    )
    rows = list(session.scalars(stmt))
    page, more = rows[:limit], len(rows) > limit
    ranked: list[RankedPair] = []
    for index, pair in enumerate(page):
        if index == 0:
            rank = rank_of(session, pair)
        else:
            previous = ranked[-1]
            rank = previous.rank + 1 + _count_between(session, audit_id, previous.pair, pair)
        ranked.append(RankedPair(pair, rank))
    next_cursor = encode_cursor(page[-1].distance, page[-1].id) if more and page else None
    return ranked, next_cursor


def get_pair(session: Session, pair_id: int) -> CandidatePair:
    pair = session.get(CandidatePair, pair_id)
    if pair is None:
        raise NotFound("pair", pair_id)
    return pair


def next_unlabelled(
    session: Session, audit_id: int, annotator_id: int | None, skip: set[int]
) -> CandidatePair | None:
    """The closest pair nobody has labelled and this annotator has not judged, leased ones skipped."""
    stmt = (
        select(CandidatePair)
        .where(CandidatePair.audit_id == audit_id, CandidatePair.label.is_(None))
        .order_by(CandidatePair.distance, CandidatePair.id)
    )
    if skip:
        stmt = stmt.where(CandidatePair.id.not_in(skip))
    if annotator_id is not None:
        judged = select(Judgement.pair_id).where(
            Judgement.annotator_id == annotator_id, Judgement.deleted_at.is_(None)
        )
        stmt = stmt.where(CandidatePair.id.not_in(judged))
    return session.scalars(stmt.limit(1)).first()


def labelled_pairs(session: Session, audit_id: int) -> list[tuple[int, int, float, str]]:
    stmt = select(
        CandidatePair.i, CandidatePair.j, CandidatePair.distance, CandidatePair.label
    ).where(CandidatePair.audit_id == audit_id, CandidatePair.label.is_not(None))
    return [(int(i), int(j), float(d), str(lab)) for i, j, d, lab in session.execute(stmt)]


def count_by_label(session: Session, audit_id: int) -> dict[str | None, int]:
    stmt = (
        select(CandidatePair.label, func.count())
        .where(CandidatePair.audit_id == audit_id)
        .group_by(CandidatePair.label)
    )
    return {label: int(count) for label, count in session.execute(stmt)}


def pair_distances(session: Session, audit_id: int) -> list[float]:
    stmt = select(CandidatePair.distance).where(CandidatePair.audit_id == audit_id)
    return [float(d) for d in session.scalars(stmt)]
