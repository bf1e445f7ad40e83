"""The estimate history: N_eff after the first k standing judgements, replayed in the order they
came with the store's consensus rule, so the last point is the current estimate.

Each point is a full estimate over every candidate pair (~0.5 s at 10^6 samples), and the audit
page asks for the history whenever the estimate moves. So the checkpoints stay put as labels
come (multiples of a power of two, and the last judgement), and a point once computed is kept
while the judgements before it stand and the pool's pairs do not change: a new label costs the
new last point (which the review's own estimate call has usually computed already) and, now and
then, one new checkpoint. An undo recomputes the points after it; an extended pool, all of them.
A kept point was computed with the review design of its time (the design only moves its
sampling thresholds as pairs are handed out); the last point always uses today's.
"""

from __future__ import annotations

import threading
from collections import Counter, OrderedDict
from dataclasses import dataclass, field

from pydantic import BaseModel, Field

from app.services.estimates import assess, estimate_public, pairs_digest
from app.services.review_state import load_review
from app.store.db import Database
from app.store.judgements import standing_judgements

MAX_HISTORY_POINTS = 50
# Each history point is a full estimate over the candidate pairs (~0.25 s at 5 * 10^6 of them,
# 10^6 samples): on large audits the replay takes fewer points, about this many pair-visits in all.
HISTORY_PAIR_BUDGET = 5 * 10**7
MIN_HISTORY_POINTS = 8
CACHED_HISTORIES = 8

Row = tuple[int, int, str, bool]  # pair id, annotator id, label, adjudicated


class HistoryPoint(BaseModel):
    judgements: int = Field(description="Standing judgements counted, in the order they came.")
    labelled_pairs: int = Field(description="Pairs with a consensus label at that point.")
    duplicate_pairs: int
    n_eff: float | None
    n_eff_low: float
    n_eff_high: float | None


class EstimateHistoryPublic(BaseModel):
    """N_eff recomputed after the first k judgements, for up to 50 values of k."""

    n: int
    level: float
    judgements: int
    points: list[HistoryPoint]


def history_points(max_points: int, candidate_pairs: int) -> int:
    """How many points the replay takes: max_points, fewer (down to MIN_HISTORY_POINTS) where
    the audit's candidate pairs would make max_points full estimates slow (15 s at 10^6
    samples for 50 points)."""
    affordable = HISTORY_PAIR_BUDGET // max(candidate_pairs, 1)
    return min(max_points, max(MIN_HISTORY_POINTS, affordable))


def checkpoints(total: int, limit: int) -> list[int]:
    """k = 1..total when it fits, else the multiples of the smallest power of two that leaves
    fewer than `limit` of them, and total. As total grows, every checkpoint but the last stays
    one (until the step doubles and every other one goes), so kept points keep serving."""
    if total <= limit:
        return list(range(1, total + 1))
    step = 1
    while total // step > limit - 1:
        step *= 2
    return sorted({*range(step, total + 1, step), total})


@dataclass
class _Votes:
    """One pair's standing judgements, weighed as the store weighs them
    (`app.store.judgements.consensus`): an admin's latest ruling, else the majority of each
    annotator's latest label, and a tie leaves the pair unlabelled."""

    votes: dict[int, str] = field(default_factory=dict)  # annotator id -> latest label
    ruling: str | None = None

    def add(self, annotator_id: int, label: str, adjudicated: bool) -> None:
        if adjudicated:
            self.ruling = label
        else:
            self.votes[annotator_id] = label

    def consensus(self) -> str | None:
        if self.ruling is not None:
            return self.ruling
        counts = Counter(self.votes.values()).most_common()
        if not counts or (len(counts) > 1 and counts[0][1] == counts[1][1]):
            return None
        return counts[0][0]

    @property
    def split(self) -> bool:
        """Votes stand, but they tie."""
        return bool(self.votes) and self.consensus() is None


@dataclass
class _Kept:
    pool: tuple[object, ...]  # what the points were computed over: pairs, level
    rows: list[Row]  # the judgements they replayed
    points: dict[int, HistoryPoint]  # by k


class _HistoryCache:
    """The points of the last few audits' histories, per database."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: OrderedDict[tuple[str, int], _Kept] = OrderedDict()

    def reusable(
        self, key: tuple[str, int], pool: tuple[object, ...], rows: list[Row]
    ) -> dict[int, HistoryPoint]:
        """Kept points whose judgements all still stand, in the same order, over the same pool."""
        with self._lock:
            kept = self._items.get(key)
            if kept is None or kept.pool != pool:
                return {}
            self._items.move_to_end(key)
            same = 0
            for old, new in zip(kept.rows, rows, strict=False):
                if old != new:
                    break
                same += 1
            return {k: p for k, p in kept.points.items() if k <= same}

    def keep(self, key: tuple[str, int], kept: _Kept) -> None:
        with self._lock:
            self._items[key] = kept
            self._items.move_to_end(key)
            while len(self._items) > CACHED_HISTORIES:
                self._items.popitem(last=False)


_kept = _HistoryCache()


def audit_estimate_history(
    db: Database, audit_id: int, level: float = 0.95, max_points: int = MAX_HISTORY_POINTS
) -> EstimateHistoryPublic:
    """Replay the standing (not undone) judgements in the order they came, with the store's
    consensus rule and the audit's review design, so the last point is the current estimate.
    At most max_points points (fewer on very large audits: history_points)."""
    state = load_review(db, audit_id)
    with db.read() as session:
        rows = standing_judgements(session, audit_id)
    key = (db.url, audit_id)
    pool = (pairs_digest(state), state.n, len(state.random), state.random_drawn, level)
    reuse = _kept.reusable(key, pool, rows)
    marks = checkpoints(len(rows), history_points(max_points, len(state.candidates)))
    wanted = set(marks)
    votes: dict[int, _Votes] = {}
    points: dict[int, HistoryPoint] = {}
    for k, (pair_id, annotator_id, label, adjudicated) in enumerate(rows, 1):
        votes.setdefault(pair_id, _Votes()).add(annotator_id, label, adjudicated)
        if k not in wanted:
            continue
        if k in reuse and k < len(rows):
            points[k] = reuse[k]
            continue
        labelled = {
            pid: consensus
            for pid, vote in votes.items()
            if (consensus := vote.consensus()) is not None
        }
        split = [pid for pid, vote in votes.items() if vote.split]
        estimate = estimate_public(assess(state.relabelled(labelled, split), level))
        points[k] = HistoryPoint(
            judgements=k,
            labelled_pairs=len(labelled),
            duplicate_pairs=estimate.duplicate_pairs,
            n_eff=estimate.n_eff,
            n_eff_low=1.0 if estimate.n_eff_low is None else estimate.n_eff_low,
            n_eff_high=estimate.n_eff_high,
        )
    # Points kept for other limits (a thinner request) stay kept too.
    _kept.keep(key, _Kept(pool, rows, {**reuse, **points}))
    return EstimateHistoryPublic(
        n=state.n, level=level, judgements=len(rows), points=[points[k] for k in marks]
    )
