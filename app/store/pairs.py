"""Candidate pairs: listing by distance with cursors, the review queue, and what the estimate reads."""

from __future__ import annotations

import base64
import binascii
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import chain
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.orm import Session

from app.store.errors import NotFound
from app.store.models import Annotator, CandidatePair, Judgement

LABELS = ("duplicate", "distinct", "unsure")
FILTERS = ("unlabelled", *LABELS)
CANDIDATE, RANDOM = "candidate", "random"
ORIGINS = (CANDIDATE, RANDOM)


@dataclass(frozen=True)
class RankedPair:
    pair: CandidatePair
    rank: int | None  # 1 = the closest pair of the audit of its origin


def encode_cursor(distance: float, pair_id: int) -> str:
    return base64.urlsafe_b64encode(struct.pack(">dq", distance, pair_id)).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[float, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        distance, pair_id = struct.unpack(">dq", raw)
    except (binascii.Error, struct.error, ValueError) as exc:
        raise ValueError("invalid cursor") from exc
    return float(distance), int(pair_id)


# (distance, id) after / before a pair. The plain range on distance comes first: with the
# value bound as separate parameters, SQLite cannot see that "distance > ? OR distance = ?"
# is "distance >= ?", and walked the whole (audit, origin, distance) index instead of the
# range (~0.5 s per count at 5 * 10^6 pairs, 20 counts per page).


def _after(distance: float, pair_id: int) -> ColumnElement[bool]:
    return and_(
        CandidatePair.distance >= distance,
        or_(CandidatePair.distance > distance, CandidatePair.id > pair_id),
    )


def _before(distance: float, pair_id: int) -> ColumnElement[bool]:
    return and_(
        CandidatePair.distance <= distance,
        or_(CandidatePair.distance < distance, CandidatePair.id < pair_id),
    )


def _label_filter(label: str | None) -> ColumnElement[bool] | None:
    if label is None:
        return None
    if label == "unlabelled":
        return CandidatePair.label.is_(None)
    if label in LABELS:
        return CandidatePair.label == label
    raise ValueError(f"label filter must be one of {', '.join(FILTERS)}")


def _of(audit_id: int, origin: str) -> ColumnElement[bool]:
    if origin not in ORIGINS:
        raise ValueError(f"origin must be one of {', '.join(ORIGINS)}")
    return and_(CandidatePair.audit_id == audit_id, CandidatePair.origin == origin)


def candidates_after(
    session: Session, audit_id: int, after_id: int, limit: int
) -> list[CandidatePair]:
    """The audit's candidate pairs stored after pair `after_id`, in the order they were stored
    (ids grow with each step the one writer records), at most `limit`."""
    stmt = (
        select(CandidatePair)
        .where(_of(audit_id, CANDIDATE), CandidatePair.id > after_id)
        .order_by(CandidatePair.id)
        .limit(limit)
    )
    return list(session.scalars(stmt))


def last_pair_id(session: Session, audit_id: int) -> int:
    """The id of the audit's newest stored pair, 0 for none."""
    newest = session.scalar(
        select(func.max(CandidatePair.id)).where(CandidatePair.audit_id == audit_id)
    )
    return int(newest or 0)


def rank_of(session: Session, pair: CandidatePair) -> int:
    """1 + the pairs of the same audit and origin closer than this one."""
    stmt = (
        select(func.count())
        .select_from(CandidatePair)
        .where(_of(pair.audit_id, pair.origin), _before(pair.distance, pair.id))
    )
    return int(session.scalar(stmt) or 0) + 1


def _count_between(
    session: Session, audit_id: int, origin: str, low: CandidatePair, high: CandidatePair
) -> int:
    stmt = (
        select(func.count())
        .select_from(CandidatePair)
        .where(
            _of(audit_id, origin),
            _after(low.distance, low.id),
            _before(high.distance, high.id),
        )
    )
    return int(session.scalar(stmt) or 0)


def list_pairs(
    session: Session,
    audit_id: int,
    label: str | None,
    limit: int,
    cursor: str | None,
    origin: str = CANDIDATE,
) -> tuple[list[RankedPair], str | None]:
    """One page ordered by (distance, id); ranks count every pair of the audit and origin,
    whatever the label filter."""
    conditions: list[ColumnElement[bool]] = [_of(audit_id, origin)]
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
            assert previous.rank is not None
            # Unfiltered, the page is consecutive in the order: no pair lies between two rows.
            between = (
                0
                if label_condition is None
                else _count_between(session, audit_id, origin, previous.pair, pair)
            )
            rank = previous.rank + 1 + between
        ranked.append(RankedPair(pair, rank))
    next_cursor = encode_cursor(page[-1].distance, page[-1].id) if more and page else None
    return ranked, next_cursor


def get_pair(session: Session, pair_id: int) -> CandidatePair:
    pair = session.get(CandidatePair, pair_id)
    if pair is None:
        raise NotFound("pair", pair_id)
    return pair


def labelled_pairs(
    session: Session, audit_id: int, origin: str | None = None
) -> list[tuple[int, int, float, str]]:
    """(i, j, distance, label) of every labelled pair; of one origin, or all (for display:
    a duplicate among the random pairs is as real as one among the candidates)."""
    stmt = select(
        CandidatePair.i, CandidatePair.j, CandidatePair.distance, CandidatePair.label
    ).where(
        CandidatePair.audit_id == audit_id,
        # Naming the origins lets the (audit, origin, label) index find the few labelled rows.
        CandidatePair.origin.in_(ORIGINS if origin is None else (origin,)),
        CandidatePair.label.is_not(None),
    )
    return [(int(i), int(j), float(d), str(lab)) for i, j, d, lab in session.execute(stmt)]


def count_by_label(
    session: Session, audit_id: int, origin: str = CANDIDATE
) -> dict[str | None, int]:
    stmt = (
        select(CandidatePair.label, func.count())
        .where(_of(audit_id, origin))
        .group_by(CandidatePair.label)
    )
    return {label: int(count) for label, count in session.execute(stmt)}


@dataclass(frozen=True)
class PairRows:
    """Pairs of one origin as arrays, in id order."""

    ids: NDArray[np.int64]
    i: NDArray[np.int64]
    j: NDArray[np.int64]
    distance: NDArray[np.float64]
    generation: NDArray[np.int64]


ID_WALK_COST = 10  # per row: walking the table in id order, against scanning an index entry
LOOKUP_COST = 30  # per row: fetching a row found through the index


def pair_rows(
    session: Session,
    audit_id: int,
    origin: str,
    after_id: int = 0,
    *,
    held: int = 0,
    expected: int | None = None,
) -> PairRows:
    """Every pair of the audit and origin with id > after_id, as arrays in id order.

    Two plans. The (audit, origin, ...) index scans all the audit's entries of that origin and
    fetches the matching rows from the table (on SQLite ~0.08 us per entry, ~2.3 us per fetched
    row); walking the table in id order from after_id reads every audit's rows after it in
    storage order (~0.75 us per row). Given `held` (rows of the audit and origin the caller
    already has) and `expected` (about how many it is missing), the cheaper one is taken: the
    walk for what a chunk added or for a first read of an audit that holds most of the table,
    the index when other audits wrote much since. `audit_id + 0` keeps the planner (SQLite and
    PostgreSQL) off the audit indexes.
    """
    if origin not in ORIGINS:
        raise ValueError(f"origin must be one of {', '.join(ORIGINS)}")
    t = CandidatePair.__table__
    walk = False
    if expected is not None:
        newest = session.scalar(select(func.max(t.c.id))) or 0
        index_cost = held + expected + LOOKUP_COST * expected
        walk = ID_WALK_COST * (newest - after_id) <= index_cost
    audit = (t.c.audit_id + 0) if walk else t.c.audit_id
    stmt = (
        select(t.c.id, t.c.i, t.c.j, t.c.distance, func.coalesce(t.c.generation, -1))
        .where(audit == audit_id, t.c.origin == origin, t.c.id > after_id)
        .order_by(t.c.id)
    )
    result = session.connection().execute(stmt)
    try:
        # The driver's plain tuples: building SQLAlchemy rows would cost as much as the query.
        rows = result.cursor.fetchall()
    finally:
        result.close()
    # One pass into floats: ids and indices stay exact below 2^53.
    table = np.fromiter(chain.from_iterable(rows), dtype=np.float64, count=5 * len(rows))
    table = table.reshape(len(rows), 5)
    ids, i, j, g = (table[:, c].astype(np.int64) for c in (0, 1, 2, 4))
    return PairRows(ids, i, j, table[:, 3].copy(), g)


def pair_labels(session: Session, audit_id: int) -> list[tuple[int, str]]:
    """(pair id, consensus label) of every labelled pair of the audit, any origin.

    Naming the origins lets the (audit, origin, label) index find the labelled rows: without
    it the query walks every pair of the audit (~0.5 s at 5 * 10^6 pairs, on every request).
    """
    stmt = select(CandidatePair.id, CandidatePair.label).where(
        CandidatePair.audit_id == audit_id,
        CandidatePair.origin.in_(ORIGINS),
        CandidatePair.label.is_not(None),
    )
    return [(int(pid), str(lab)) for pid, lab in session.execute(stmt)]


def tied_pairs(session: Session, audit_id: int) -> set[int]:
    """Pairs of the audit whose standing votes tie (no consensus), any origin.

    Driven from the judgements (a tie needs two annotators), never from the audit's pairs:
    a walk over 5 * 10^6 unlabelled pairs would cost every request half a second.
    """
    voted = (
        select(Judgement.pair_id)
        .where(Judgement.deleted_at.is_(None))
        .group_by(Judgement.pair_id)
        .having(func.count(func.distinct(Judgement.annotator_id)) >= 2)
        .subquery()
    )
    stmt = (
        select(CandidatePair.id)
        .join(voted, voted.c.pair_id == CandidatePair.id)
        .where(CandidatePair.audit_id == audit_id, CandidatePair.label.is_(None))
    )
    return {int(pid) for pid in session.scalars(stmt)}


def judged_by(session: Session, audit_id: int, annotator_id: int) -> set[int]:
    """Ids of the audit's pairs this annotator has a standing judgement on."""
    stmt = (
        select(Judgement.pair_id)
        .join(CandidatePair, CandidatePair.id == Judgement.pair_id)
        .where(
            CandidatePair.audit_id == audit_id,
            Judgement.annotator_id == annotator_id,
            Judgement.deleted_at.is_(None),
        )
    )
    return {int(pid) for pid in session.scalars(stmt)}


def pairs_by_id(session: Session, ids: list[int]) -> dict[int, CandidatePair]:
    if not ids:
        return {}
    stmt = select(CandidatePair).where(CandidatePair.id.in_(ids))
    return {p.id: p for p in session.scalars(stmt)}


EXPORT_BATCH = 20_000


def iter_pair_rows(
    session: Session, audit_id: int, origin: str
) -> Iterator[tuple[int, int, int, float, str | None]]:
    """(rank, i, j, distance, label) of every pair of one origin, closest first, in one query
    read in batches (10^6-sample audits hold millions)."""
    stmt = (
        select(CandidatePair.i, CandidatePair.j, CandidatePair.distance, CandidatePair.label)
        .where(_of(audit_id, origin))
        .order_by(CandidatePair.distance, CandidatePair.id)
        .execution_options(yield_per=EXPORT_BATCH)
    )
    for rank, (i, j, d, label) in enumerate(session.execute(stmt), start=1):
        yield rank, int(i), int(j), float(d), label


def iter_judgement_rows(session: Session, audit_id: int) -> Iterator[tuple[Any, ...]]:
    """Every judgement of the audit's pairs, undone ones included, in the order they came:
    (judgement id, pair id, origin, i, j, distance, annotator, label, adjudicated, created,
    deleted)."""
    stmt = (
        select(
            Judgement.id,
            CandidatePair.id,
            CandidatePair.origin,
            CandidatePair.i,
            CandidatePair.j,
            CandidatePair.distance,
            Annotator.name,
            Judgement.label,
            Judgement.adjudicated,
            Judgement.created_at,
            Judgement.deleted_at,
        )
        .join(CandidatePair, Judgement.pair_id == CandidatePair.id)
        .join(Annotator, Judgement.annotator_id == Annotator.id)
        .where(CandidatePair.audit_id == audit_id)
        .order_by(Judgement.id)
        .execution_options(yield_per=EXPORT_BATCH)
    )
    for row in session.execute(stmt):
        yield tuple(row)


def look_counts(session: Session, pair_ids: list[int]) -> dict[int, int]:
    """pair id -> judgements made on it and not undone (rulings left out), any annotator: how
    many looks it has had, an annotator's relabel included (the consensus counts one vote per
    annotator, their latest)."""
    if not pair_ids:
        return {}
    stmt = (
        select(Judgement.pair_id, func.count())
        .where(
            Judgement.pair_id.in_(pair_ids),
            Judgement.deleted_at.is_(None),
            Judgement.adjudicated.is_(False),
        )
        .group_by(Judgement.pair_id)
    )
    return {int(pid): int(count) for pid, count in session.execute(stmt)}
