"""The judgements worth a second look: the few whose slip would move N_eff most
(app.estimate.leverage), with their pairs from the store."""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

from app.estimate.leverage import Flip, Labels, judgement_flips
from app.services.estimates import Assessment, assess, assessment_key
from app.services.review_state import load_review
from app.store import pairs as pair_store
from app.store.db import Database
from app.store.models import CandidatePair


@dataclass(frozen=True)
class SecondLook:
    pair: CandidatePair
    rank: int | None  # None for a random pair
    flip: Flip
    looks: int  # judgements on the pair, not undone, any annotator (a relabel counts)


_lock = threading.Lock()
# Each list costs up to 3 * limit whole estimates (seconds at 10^6 samples): keep the last few,
# keyed on what the estimate depends on, so a page reload or a second client costs nothing.
_flips: OrderedDict[tuple[object, ...], list[Flip]] = OrderedDict()
CACHED = 8


def _cached_flips(a: Assessment, key: tuple[object, ...], limit: int) -> list[Flip]:
    with _lock:
        found = _flips.get(key)
        if found is not None:
            _flips.move_to_end(key)
            return found
    state = a.state
    labels = Labels(
        state.candidate_labels, state.random_labels, state.candidate_unsure, state.random_unsure
    )
    flips = judgement_flips(
        state.candidates,
        state.design,
        state.random,
        labels,
        a.estimate,
        a.frame,
        a.evidence,
        limit=limit,
    )
    with _lock:
        _flips[key] = flips
        while len(_flips) > CACHED:
            _flips.popitem(last=False)
    return flips


def second_looks(
    db: Database, audit_id: int, limit: int = 10, level: float = 0.95
) -> tuple[Assessment, list[SecondLook]]:
    """The estimate as it stands and up to `limit` judgements whose slip would cost it most."""
    state = load_review(db, audit_id)
    a = assess(state, level)
    if a.estimate.labelled_pairs == 0:
        return a, []
    # The stopping target plays no part in the flips.
    flips = _cached_flips(a, (*assessment_key(state, level, 0.0), limit), limit)
    ids = [
        int(state.candidate_ids[f.index] if f.origin == "candidate" else state.random_ids[f.index])
        for f in flips
    ]
    with db.read() as session:
        pairs = pair_store.pairs_by_id(session, ids)
        looks = pair_store.look_counts(session, ids)
        return a, [
            SecondLook(
                pairs[pid],
                pair_store.rank_of(session, pairs[pid]) if f.origin == "candidate" else None,
                f,
                looks.get(pid, 0),
            )
            for pid, f in zip(ids, flips, strict=True)
        ]
