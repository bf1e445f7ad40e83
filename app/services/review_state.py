"""An audit's review as the statistics see it: candidate and random pairs as arrays, the labels
as values, and the review design. Shared by the estimate, the review queue and the history.

Pairs never change once stored and only grow (in id order), so their arrays are cached per
audit and extended with the rows added since; labels are read fresh on every call.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime

import numpy as np
from numpy.typing import NDArray
from sqlalchemy.orm import Session

from app.estimate import (
    DISTINCT,
    DUPLICATE,
    UNKNOWN,
    Candidates,
    Evidence,
    RandomPairs,
    ReviewDesign,
    judge_evidence,
    new_design,
)
from app.estimate.stopping import DEFAULT_TARGET
from app.store import audits as audit_store
from app.store import pairs as pair_store
from app.store.db import Database
from app.store.pairs import CANDIDATE, RANDOM, PairRows

LABEL_VALUES = {"duplicate": DUPLICATE, "distinct": DISTINCT, "unsure": UNKNOWN}
CACHED_AUDITS = 8


def _concat(a: PairRows, b: PairRows) -> PairRows:
    if b.ids.size == 0:
        return a
    return PairRows(
        np.concatenate([a.ids, b.ids]),
        np.concatenate([a.i, b.i]),
        np.concatenate([a.j, b.j]),
        np.concatenate([a.distance, b.distance]),
        np.concatenate([a.generation, b.generation]),
    )


def _empty_rows() -> PairRows:
    none = np.empty(0, dtype=np.int64)
    return PairRows(none, none, none, np.empty(0, dtype=np.float64), none)


@dataclass
class _Entry:
    created_at: datetime  # an id reused after a delete is another audit
    stored: tuple[int, int] | None = None  # the audit's pair counters when last read
    candidates: PairRows = field(default_factory=_empty_rows)
    random: PairRows = field(default_factory=_empty_rows)
    built: dict[int, Candidates] = field(default_factory=dict)  # by pool size
    # Held while reading new rows, so callers that find the entry behind at once (the start-up
    # warm-up and the first request, two annotators) wait for one read instead of each making
    # it (~6 s at 10^6 samples).
    loading: threading.Lock = field(default_factory=threading.Lock)


class _PairCache:
    """Pair arrays of the most recently used audits, per database."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: OrderedDict[tuple[str, int], _Entry] = OrderedDict()

    def rows(
        self,
        session: Session,
        db_key: str,
        audit_id: int,
        created_at: datetime,
        stored: tuple[int, int],
        random_expected: int,
    ) -> tuple[PairRows, PairRows, dict[int, Candidates]]:
        """The audit's pairs; `stored` is its (candidate pairs, closed generations) counters,
        `random_expected` about how many random pairs its closed generations hold.

        Pairs are only ever written with those counters, in one transaction (record_chunk), so
        while they stand still there is nothing new to read and no query is made (at 10^6
        samples even one that finds nothing new costs a walk or an index scan).
        """
        key = (db_key, audit_id)
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry.created_at != created_at:
                entry = _Entry(created_at)
                self._entries[key] = entry
            self._entries.move_to_end(key)
            while len(self._entries) > CACHED_AUDITS:
                self._entries.popitem(last=False)
        with entry.loading:
            return self._extend(session, entry, audit_id, stored, random_expected)

    def _extend(
        self,
        session: Session,
        entry: _Entry,
        audit_id: int,
        stored: tuple[int, int],
        random_expected: int,
    ) -> tuple[PairRows, PairRows, dict[int, Candidates]]:
        with self._lock:
            if entry.stored == stored:
                return entry.candidates, entry.random, entry.built
            last_c = int(entry.candidates.ids[-1]) if entry.candidates.ids.size else 0
            last_r = int(entry.random.ids[-1]) if entry.random.ids.size else 0
            held_c, held_r = entry.candidates.ids.size, entry.random.ids.size
        new_c = pair_store.pair_rows(
            session,
            audit_id,
            CANDIDATE,
            last_c,
            held=held_c,
            expected=max(stored[0] - held_c, 0),
        )
        new_r = pair_store.pair_rows(
            session,
            audit_id,
            RANDOM,
            last_r,
            held=held_r,
            expected=max(random_expected - held_r, 0),
        )
        with self._lock:
            # Another thread may have grown the entry meanwhile: keep only newer rows.
            have_c = int(entry.candidates.ids[-1]) if entry.candidates.ids.size else 0
            have_r = int(entry.random.ids[-1]) if entry.random.ids.size else 0
            if new_c.ids.size and new_c.ids[-1] > have_c:
                keep = new_c.ids > have_c
                entry.candidates = _concat(entry.candidates, _take(new_c, keep))
                entry.built.clear()
            if new_r.ids.size and new_r.ids[-1] > have_r:
                entry.random = _concat(entry.random, _take(new_r, new_r.ids > have_r))
            # Read before the pairs: a chunk stored in between shows up as a change next time.
            entry.stored = stored
            return entry.candidates, entry.random, entry.built


def _take(rows: PairRows, keep: NDArray[np.bool_]) -> PairRows:
    return PairRows(
        rows.ids[keep], rows.i[keep], rows.j[keep], rows.distance[keep], rows.generation[keep]
    )


_cache = _PairCache()


@dataclass(frozen=True)
class ReviewState:
    """Everything the estimator and the queue need about one audit, at one moment."""

    audit_id: int
    n: int  # samples so far
    status: str
    seed: int
    candidates: Candidates
    candidate_ids: NDArray[np.int64]  # store id of candidate k
    random: RandomPairs
    random_ids: NDArray[np.int64]
    random_drawn: bool  # the audit has closed at least one generation of random pairs
    candidate_labels: NDArray[np.int8]  # consensus: 1 duplicate, 0 distinct, -1 none/unsure
    random_labels: NDArray[np.int8]
    random_unsure: NDArray[np.bool_]  # random pairs judged "unsure", or split by a tie
    candidate_unsure: NDArray[np.bool_]  # the same for candidate pairs
    design: ReviewDesign
    design_stored: bool  # False: a fresh design nobody has reached anything with yet
    labelled_count: int  # pairs with a consensus label, "unsure" included
    target: float = DEFAULT_TARGET  # the audit's own stopping target (relative half-width)

    @property
    def finished(self) -> bool:
        return self.status == "done"

    def evidence(self) -> Evidence:
        return judge_evidence(
            self.candidates,
            self.candidate_labels,
            self.random,
            self.random_labels,
            self.random_unsure,
            self.candidate_unsure,
        )

    def relabelled(self, labelled: dict[int, str], split: Iterable[int] = ()) -> ReviewState:
        """The same pairs and design with other consensus labels (pair id -> label); `split`:
        pairs with votes but no consensus."""
        values = {pid: LABEL_VALUES[label] for pid, label in labelled.items()}
        passed = {**{pid: "unsure" for pid in split}, **labelled}
        return replace(
            self,
            candidate_labels=_labels(self.candidate_ids, values),
            random_labels=_labels(self.random_ids, values),
            random_unsure=_unsure(self.random_ids, passed),
            candidate_unsure=_unsure(self.candidate_ids, passed),
            labelled_count=len(labelled),
        )

    def candidate_index(self, pair_ids: set[int]) -> set[int]:
        """Candidate indices of the given store ids (others ignored)."""
        return _indices(self.candidate_ids, pair_ids)

    def random_index(self, pair_ids: set[int]) -> set[int]:
        return _indices(self.random_ids, pair_ids)


def _indices(ids: NDArray[np.int64], wanted: set[int]) -> set[int]:
    if not wanted or ids.size == 0:
        return set()
    probe = np.fromiter(wanted, dtype=np.int64)
    pos = np.minimum(np.searchsorted(ids, probe), ids.size - 1)
    return {int(p) for p in pos[ids[pos] == probe]}


def _labels(ids: NDArray[np.int64], labelled: dict[int, int]) -> NDArray[np.int8]:
    out = np.full(ids.size, UNKNOWN, dtype=np.int8)
    if labelled and ids.size:
        keys = np.fromiter(labelled.keys(), dtype=np.int64)
        values = np.fromiter(labelled.values(), dtype=np.int8)
        pos = np.minimum(np.searchsorted(ids, keys), ids.size - 1)
        hit = ids[pos] == keys
        out[pos[hit]] = values[hit]
    return out


def _unsure(ids: NDArray[np.int64], labelled: dict[int, str]) -> NDArray[np.bool_]:
    flags = {pid: 1 for pid, label in labelled.items() if label == "unsure"}
    return np.asarray(_labels(ids, flags) == 1, dtype=np.bool_)


def load_review(db: Database, audit_id: int) -> ReviewState:
    """The audit's review state; ValueError while the pool has fewer than 2 samples."""
    with db.read() as session:
        audit = audit_store.get_audit(session, audit_id)
        n, status, seed, target = audit.samples_done, audit.status, audit.seed, audit.target
        stored = dict(audit.review) if audit.review else None
        pool_sizes = [int(x) for x in (audit.pool_sizes or []) if int(x) <= n]
        generations = len(audit.pool_sizes or [])
        counters = (audit.candidate_pairs, generations)
        cand_rows, rand_rows, built = _cache.rows(
            session, db.url, audit_id, audit.created_at, counters, audit.random_pairs * generations
        )
        resolved = dict(pair_store.pair_labels(session, audit_id))
        labelled = {pid: LABEL_VALUES[label] for pid, label in resolved.items()}
        # A tie is no answer either: the design passes over it as over "unsure" (until an
        # adjudication or another vote settles it), instead of waiting for good.
        passed = {pid: "unsure" for pid in pair_store.tied_pairs(session, audit_id)}
    if n < 2:
        raise ValueError(f"audit {audit_id} has {n} samples so far; an estimate needs at least 2")
    # Rows stored after the samples_done read (a job step in between) wait for the next call.
    keep = cand_rows.j < n
    candidates = built.get(n)
    if candidates is None or len(candidates) != int(keep.sum()):
        candidates = Candidates.build(
            n, cand_rows.i[keep], cand_rows.j[keep], cand_rows.distance[keep]
        )
        built.clear()
        built[n] = candidates
    candidate_ids = cand_rows.ids[keep]
    in_gen = (rand_rows.generation >= 0) & (rand_rows.generation < len(pool_sizes))
    random = RandomPairs.build(
        n,
        rand_rows.i[in_gen],
        rand_rows.j[in_gen],
        rand_rows.distance[in_gen],
        rand_rows.generation[in_gen],
        pool_sizes or (n,),
    )
    design = ReviewDesign.from_dict(stored) if stored else new_design(candidates, seed)
    return ReviewState(
        audit_id=audit_id,
        n=n,
        status=status,
        seed=seed,
        candidates=candidates,
        candidate_ids=candidate_ids,
        random=random,
        random_ids=rand_rows.ids[in_gen],
        random_drawn=bool(pool_sizes),
        candidate_labels=_labels(candidate_ids, labelled),
        random_labels=_labels(rand_rows.ids[in_gen], labelled),
        random_unsure=_unsure(rand_rows.ids[in_gen], {**resolved, **passed}),
        candidate_unsure=_unsure(candidate_ids, {**resolved, **passed}),
        design=design,
        design_stored=stored is not None,
        labelled_count=len(labelled),
        target=target,
    )
