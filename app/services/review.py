"""The review queue: which pairs an annotator should see next, in the order the design wants.

The review design (app.estimate.design, .queue) decides: pairs it reached but nobody settled
first, random non-candidate pairs at their share, then the stratum where one more label cuts the
estimate's variance most. Beside it, a share of the labels checks pairs only the closure calls
duplicates (DESIGN: "send implied pairs to review"). Handing pairs out reaches them, so the design is stored after every
handout. Pairs handed to someone else in the last minute (leases) and pairs this annotator
already judged are skipped, so annotators working at once do not judge the same pair twice.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from app.estimate import (
    DUPLICATE,
    UNKNOWN,
    Handout,
    ReviewDesign,
    duplicates_stop,
    next_pairs,
    queue_priorities,
    update_design,
)
from app.services.estimates import Assessment, assess
from app.services.review_state import ReviewState, load_review, store_design
from app.store import pairs as pair_store
from app.store.db import Database
from app.store.judgements import annotator_by_name
from app.store.pairs import RankedPair

LEASE_SECONDS = 60.0
MAX_HANDOUT = 50
IMPLIED_EVERY = 10  # one label in this many checks a pair only the closure calls a duplicate


class Leases:
    """Pairs of one database handed out recently: pair id -> (annotator, expiry)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._leases: dict[int, tuple[str, float]] = {}

    def taken_by_others(self, annotator: str) -> set[int]:
        now = time.monotonic()
        with self._lock:
            expired = [pid for pid, (_, until) in self._leases.items() if until < now]
            for pid in expired:
                del self._leases[pid]
            return {pid for pid, (who, _) in self._leases.items() if who != annotator}

    def held_by(self, annotator: str) -> set[int]:
        now = time.monotonic()
        with self._lock:
            return {
                pid
                for pid, (who, until) in self._leases.items()
                if who == annotator and until >= now
            }

    def take(self, pair_id: int, annotator: str) -> None:
        with self._lock:
            self._leases[pair_id] = (annotator, time.monotonic() + LEASE_SECONDS)


_lease_books: defaultdict[str, Leases] = defaultdict(Leases)
_books_guard = threading.Lock()


def _leases_of(db: Database) -> Leases:
    """The leases of one database (pair ids are only unique within one)."""
    with _books_guard:
        return _lease_books[db.url]


# One queue computation per audit at a time: each reads the design and stores the next one.
_audit_locks: defaultdict[tuple[str, int], threading.Lock] = defaultdict(threading.Lock)
_locks_guard = threading.Lock()


def _audit_lock(db: Database, audit_id: int) -> threading.Lock:
    with _locks_guard:
        return _audit_locks[(db.url, audit_id)]


@dataclass(frozen=True)
class Handed:
    pairs: list[RankedPair]
    stop: bool  # the stopping rule says no more labels are needed
    design_changed: bool = False  # a new review design was stored: the estimate moves with it


def _ranks(state: ReviewState) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """Candidates sorted by (distance, id), as the pair listing ranks them (cached: two
    gathers over every pair per handed-out pair add up at 10^6 samples)."""
    c = state.candidates
    order = c.cached(("rank-order",), lambda: np.lexsort((state.candidate_ids, c.distance)))
    return (
        c.cached(("rank-distance",), lambda: c.distance[order]),
        c.cached(("rank-id",), lambda: state.candidate_ids[order]),
    )


def _rank(state: ReviewState, index: int) -> int:
    d_sorted, id_sorted = _ranks(state)
    d, pid = state.candidates.distance[index], state.candidate_ids[index]
    lo = int(np.searchsorted(d_sorted, d, side="left"))
    hi = int(np.searchsorted(d_sorted, d, side="right"))
    return lo + int(np.searchsorted(id_sorted[lo:hi], pid, side="left")) + 1


def next_pairs_for(
    db: Database,
    audit_id: int,
    annotator: str | None,
    limit: int = 1,
    target: float | None = None,
) -> Handed:
    """Up to `limit` pairs for this annotator, leased to them for a minute.

    A caller who names no annotator only looks: nobody unnamed can judge a pair, so leasing
    one to them would only keep it from the annotators who can for a minute."""
    who = annotator or ""
    limit = max(1, min(limit, MAX_HANDOUT))
    with _audit_lock(db, audit_id):
        try:
            state = load_review(db, audit_id)
        except ValueError:  # fewer than two samples yet: nothing to review
            return Handed([], stop=False)
        assessment = assess(state, target=target)
        if assessment.stop_labelling:
            return Handed([], stop=True)
        with db.read() as session:
            person = annotator_by_name(session, who, create=False) if who else None
            judged = pair_store.judged_by(session, audit_id, person.id) if person else set()
        leases = _leases_of(db)
        others = leases.taken_by_others(who)
        handouts, design = _plan(state, assessment, limit, judged | others)
        if not handouts and others:
            # Everyone else's leased pairs are all that is left: hand one out rather than stall.
            handouts, design = _plan(state, assessment, limit, judged)
        design_changed = design != state.design or not state.design_stored
        if design_changed:
            store_design(db, audit_id, design)
        check = _implied_check(state, assessment, leases.held_by(who), judged | others)
        if check is not None:
            handouts = [check, *handouts][:limit]
        ids = [_pair_id(state, h) for h in handouts]
        with db.read() as session:
            rows = pair_store.pairs_by_id(session, ids)
            for row in rows.values():
                session.expunge(row)
        out = []
        for h, pid in zip(handouts, ids, strict=True):
            if annotator:
                leases.take(pid, annotator)
            rank = _rank(state, h.index) if h.kind == "candidate" else None
            out.append(RankedPair(rows[pid], rank))
        return Handed(out, stop=False, design_changed=design_changed)


def prepare_queue(state: ReviewState, assessment: Assessment) -> None:
    """Build what the first handout of this state computes (the queue order and priorities,
    the ranks), without handing anything out or storing the design: the start-up warm-up's
    share."""
    if not assessment.stop_labelling:
        queue_priorities(_planning_design(state, assessment), state.candidates)
    _ranks(state)


def _planning_design(state: ReviewState, assessment: Assessment) -> ReviewDesign:
    """The design the next handout plans with: the strata re-derived when the candidates grew,
    or around where duplicates stop once every stratum is explored."""
    explored = assessment.estimate.unexplored_strata == 0
    centre = duplicates_stop(assessment.frame.fit) if explored else None
    return update_design(state.design, state.candidates, centre)


def _plan(
    state: ReviewState, assessment: Assessment, limit: int, skip_ids: set[int]
) -> tuple[list[Handout], ReviewDesign]:
    """The design's next pairs, skipping the given store ids."""
    design = _planning_design(state, assessment)
    # Strata changed: the queue recomputes its frame.
    frame_arg = assessment.frame if design is state.design else None
    return next_pairs(
        state.candidates,
        design,
        assessment.evidence,
        state.random,
        count=limit,
        exclude_candidates=state.candidate_index(skip_ids),
        exclude_random=state.random_index(skip_ids),
        frame=frame_arg,
    )


def _implied_check(
    state: ReviewState, assessment: Assessment, held_ids: set[int], skip_ids: set[int]
) -> Handout | None:
    """A candidate pair only the closure calls a duplicate, to be judged directly: one at every
    IMPLIED_EVERY-th label (and the one this annotator holds until they judge it).

    One false "duplicate" between clusters of a and b samples adds a*b pairs to D; a "distinct"
    on an implied pair is a cannot-link that splits the merge it came from. These labels do not
    enter the design's sample (the pairs are settled already); they guard the closure.
    """
    evidence = assessment.evidence
    implied = (evidence.candidate_value == DUPLICATE) & (evidence.candidate_label == UNKNOWN)
    if not implied.any():
        return None
    held = state.candidate_index(held_ids)
    mine = [k for k in held if implied[k]]
    if mine:
        return Handout("candidate", min(mine))
    if (evidence.labelled + 1) % IMPLIED_EVERY:
        return None
    skip = state.candidate_index(skip_ids)
    open_ = [int(k) for k in np.flatnonzero(implied) if int(k) not in skip]
    if not open_:
        return None
    u = state.candidates.priorities(state.seed)
    return Handout("candidate", min(open_, key=lambda k: float(u[k])))


def _pair_id(state: ReviewState, handout: Handout) -> int:
    ids = state.candidate_ids if handout.kind == "candidate" else state.random_ids
    return int(ids[handout.index])
