"""The review queue: which pairs an annotator should see next, in the order the design wants.

The review design (app.estimate.design, .queue) decides: pairs it reached but nobody settled
first, random non-candidate pairs at their share, then the stratum where one more label cuts the
estimate's variance most. Beside it, a share of the labels checks pairs only the closure calls
duplicates (DESIGN: "send implied pairs to review"). Handing pairs out reaches them, so the
design is stored after every handout. Pairs handed to someone else in the last minute (leases,
kept in the store: app.store.review_leases) and pairs this annotator already judged are skipped,
so annotators working at once, through one server or several on one database, do not judge the
same pair twice. A handout holds the audit's row lock while it reads the design and the leases
and writes both, so handouts of one audit take turns across processes.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sqlalchemy.orm import Session

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
from app.services.review_state import ReviewState, load_review
from app.store import pairs as pair_store
from app.store import review_leases as lease_store
from app.store.db import Database
from app.store.judgements import annotator_by_name
from app.store.pairs import RankedPair

LEASE_SECONDS = 60.0
MAX_HANDOUT = 50
_PLAN_TRIES = 3  # plans per handout when a lease is refused (see _lease)
IMPLIED_EVERY = 10  # one label in this many checks a pair only the closure calls a duplicate


# One queue computation per audit at a time in this process: each reads the design and stores the
# next one. The store's lock on the audit (lease_store.lock_queue) makes processes take turns too;
# this one keeps a process's own requests from reading and assessing the same state twice and
# from queueing on the store's write lock behind each other.
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
    """Up to `limit` pairs for this annotator, leased to them for LEASE_SECONDS in the store:
    no other annotator, through this process or any other on the same database, is handed them
    until the lease runs out; they themselves get them back if they ask again.

    A caller who names no annotator only looks: nobody unnamed can judge a pair, so leasing
    one to them would only keep it from the annotators who can for a minute."""
    who = annotator or ""
    limit = max(1, min(limit, MAX_HANDOUT))
    with _audit_lock(db, audit_id):
        # Read and assess before taking the store's lock: the first read of a large audit takes
        # seconds (10^6 samples), and every writer of the store would wait that long behind it.
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
        with db.write() as session:
            audit = lease_store.lock_queue(session, audit_id)
            if not _design_is(audit.review, state):
                # Another process handed pairs out since: plan from the design it stored, or
                # its handout would be lost when this one stores the next design.
                state = load_review(db, audit_id)
                assessment = assess(state, target=target)
                if assessment.stop_labelling:
                    return Handed([], stop=True)
            now = lease_store.store_now(session)
            lease_store.drop_expired(session, audit_id, now)
            others = lease_store.leased_to_others(session, audit_id, who, now)
            held = lease_store.held_by(session, audit_id, who, now) if who else set()
            handouts, design = _lease(
                session, state, assessment, who, limit, judged | others, held, now
            )
            if not handouts and others:
                # Everything left is leased to someone else (an annotator who walked away holds a
                # page for a minute): hand it out anyway, the lease moving, rather than stall.
                handouts, design = _lease(
                    session, state, assessment, who, limit, judged, held, now, steal=True
                )
            design_changed = design != state.design or not state.design_stored
            if design_changed:
                audit.review = design.to_dict()
            ids = [_pair_id(state, h) for h in handouts]
            rows = pair_store.pairs_by_id(session, ids)
            for row in rows.values():
                session.expunge(row)
        out = [
            RankedPair(rows[pid], _rank(state, h.index) if h.kind == "candidate" else None)
            for h, pid in zip(handouts, ids, strict=True)
        ]
        return Handed(out, stop=False, design_changed=design_changed)


def _lease(
    session: Session,
    state: ReviewState,
    assessment: Assessment,
    annotator: str,
    limit: int,
    skip_ids: set[int],
    held_ids: set[int],
    now: datetime,
    steal: bool = False,
) -> tuple[list[Handout], ReviewDesign]:
    """The pairs to hand out and the design after reaching them, each pair leased to the
    annotator (nothing leased to an unnamed caller, annotator ""). A pair whose lease another
    annotator holds is skipped and the plan made again without it: under the audit's lock the
    leases read are the leases there are, so this guards the rule; it does not steer the queue."""
    taken: set[int] = set()
    refused: set[int] = set()
    for attempt in range(_PLAN_TRIES):
        handouts, design = _plan(state, assessment, limit, skip_ids)
        check = _implied_check(state, assessment, held_ids, skip_ids)
        if check is not None:
            handouts = [check, *handouts][:limit]
        if not annotator:
            return handouts, design
        refused = set()
        for pid in (_pair_id(state, h) for h in handouts):
            if lease_store.take(
                session, state.audit_id, pid, annotator, now, LEASE_SECONDS, steal=steal
            ):
                taken.add(pid)
            else:
                refused.add(pid)
        if not refused or attempt == _PLAN_TRIES - 1:
            break
        skip_ids = skip_ids | refused
    handouts = [h for h in handouts if _pair_id(state, h) not in refused]
    # Pairs an earlier plan leased that the last one does not hand out go back.
    stray = taken - {_pair_id(state, h) for h in handouts} - held_ids
    lease_store.release(session, state.audit_id, stray, annotator)
    return handouts, design


def _design_is(stored: dict[str, Any] | None, state: ReviewState) -> bool:
    """Whether the audit's stored design is the one `state` was read with."""
    if stored is None:
        return not state.design_stored
    return state.design_stored and ReviewDesign.from_dict(stored) == state.design


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
