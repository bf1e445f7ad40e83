"""The review queue: which pair the design wants labelled next.

Order of business for each handout:

1. pairs already reached but not settled (handed out earlier and not yet judged, judged
   "unsure", or mined after their stratum's threshold passed them), in priority order;
2. a random non-candidate pair whenever they hold less than `random_share` of the labels,
   or fewer than `random_min` of them are judged in some generation (the pairs an extension
   added need their own check; then every fourth label at most);
3. a closure gap (closure_gaps.py): a near-certain duplicate that would merge two clusters,
   largest merge first, one link per pair of clusters per handout; it settles a block of pairs
   the miner never proposed;
4. otherwise one more reach in an allocation stratum: first every stratum up to
   `min_per_stratum` sampled pairs (closest strata first), and on until one of them is a pair
   whose value the other observations leave open wherever pairs are left unsettled (a sample
   of duplicates the closure implies says nothing of the rest); then greedy Neyman
   allocation: the stratum where one more reach cuts the variance N_h^2 s_h^2 / r_h most per
   label, i.e. N_h^2 s_h^2 / (r_h (r_h + 1)) / c_h, with c_h the share of its unreached pairs
   that still need a label. Reaching a pair whose value the closure implies costs nothing, and the
   loop goes on.

s_h^2 is the stratum's own residual variance (as the estimator computes it) shrunk towards the
isotonic fit pooled over all strata (mean f(1 - f) over its unsettled pairs), with the fit
weighing as much as PRIOR_PAIRS sampled pairs. Allocating on a stratum's own few draws alone
stops sampling where they happened to find no duplicate and goes on where they found one,
which biases the estimate down (tests/test_estimate_incomplete.py measures it); the pooled fit
alone is 0 wherever the isotonic steps are sharp, while the estimator's variance is not, and
the queue would run dry before the stopping rule is met.

Stopping is not decided here (stopping.py); the queue returns nothing only when no stratum
has anything left that a label could improve.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from app.estimate.design import ReviewDesign, queue_order, queue_priorities, reach
from app.estimate.incomplete import (
    ResidualFrame,
    random_deficits,
    residual_frame,
    residual_variance,
)
from app.estimate.pairs import UNKNOWN, Candidates, Evidence, RandomPairs, pair_priority

__all__ = ["Handout", "next_pair", "next_pairs"]

MIN_COST = 0.02  # floor on the cost of a reach, so a nearly free stratum is not infinitely good
PRIOR_PAIRS = 10.0  # weight, in sampled pairs, of the pooled fit in a stratum's s^2


@dataclass(frozen=True)
class Handout:
    """A pair to show: an index into the candidates or into the random pairs."""

    kind: Literal["candidate", "random"]
    index: int


class _Strata:
    """Per allocation stratum: sizes, samples, unreached pairs in priority order, cost, s^2.

    Each stratum's queue is its block of queue_order, read from the front; reached pairs are
    skipped as they come (filtering all candidates up front costs more than a whole handout
    at 10^6 samples).
    """

    def __init__(self, design: ReviewDesign, frame: ResidualFrame, candidates: Candidates) -> None:
        k = design.strata
        sums = frame.pieces
        self.size = frame.per_stratum(sums.size, k)
        self.sampled = frame.per_stratum(sums.sampled, k)
        # Sampled pairs whose value the others leave open (exploration needs one, see choose).
        self.opened = frame.open_sampled(k)
        left = self.size - frame.per_stratum(sums.reached, k)
        need = frame.per_stratum(sums.unreached_unknown, k)
        self.cost = np.maximum(need / np.maximum(left, 1), MIN_COST)
        self.unknown_unreached = need.copy()
        model = frame.per_stratum(sums.unreached_spread, k) / np.maximum(left, 1)
        self.s2 = model.copy()
        sample_stratum = frame.stratum[frame.sample]
        at = np.argsort(sample_stratum, kind="stable")  # positions in the sample, by stratum
        for s, mine in enumerate(
            np.split(at, np.searchsorted(sample_stratum[at], np.arange(1, k)))
        ):
            if mine.size:
                own = residual_variance(
                    frame.sample_residual[mine],
                    frame.value[frame.sample[mine]],
                    frame.sample_settled[mine],
                )
                self.s2[s] = (mine.size * own + PRIOR_PAIRS * model[s]) / (mine.size + PRIOR_PAIRS)
        self.left_count = np.rint(left).astype(np.int64)
        self.order = queue_order(design, candidates)
        self.reached = frame.reached
        bounds = np.concatenate([[0], np.cumsum(np.rint(self.size).astype(np.int64))])
        self.end = bounds[1:]
        # A stratum's pairs with priority up to its lowest piece threshold are all reached.
        lowest = np.full(k, np.inf)
        np.minimum.at(lowest, frame.piece_stratum, np.asarray(design.thresholds))
        u = queue_priorities(design, candidates)
        self.pos = np.array(
            [
                lo + int(np.searchsorted(u[lo:hi], lowest[s], side="right"))
                for s, (lo, hi) in enumerate(
                    zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True)
                )
            ],
            dtype=np.int64,
        )

    def left(self, s: int) -> bool:
        return bool(self.left_count[s] > 0)

    def choose(self, min_per_stratum: int) -> int | None:
        open_ = [s for s in range(self.size.size) if self.left(s)]
        for s in open_:  # exploration, closest first
            if self.sampled[s] < min(min_per_stratum, self.size[s]):
                return s
            if self.opened[s] == 0 and self.unknown_unreached[s] > 0:
                return s  # a sample the closure settles whole: reach until a pair needs a label
        best, score = None, 0.0
        for s in open_:
            r = self.sampled[s]
            gain = self.size[s] ** 2 * self.s2[s] / (r * (r + 1)) / self.cost[s]
            if gain > score:
                best, score = s, gain
        return best

    def take(self, s: int) -> int:
        """The stratum's next unreached pair in priority order (left(s) must hold)."""
        width = 64
        while True:
            start = int(self.pos[s])
            if start >= self.end[s]:
                raise RuntimeError(f"stratum {s} has no unreached pair left to take")
            block = self.order[start : min(start + width, int(self.end[s]))]
            open_ = np.flatnonzero(~self.reached[block])
            if open_.size:
                break
            self.pos[s] = start + block.size
            width = min(2 * width, 1 << 16)
        self.pos[s] = start + int(open_[0]) + 1
        self.left_count[s] -= 1
        self.sampled[s] += 1  # counted as sampled once judged; plan as if it were
        return int(block[open_[0]])


def _root(planned: dict[int, int], x: int) -> int:
    while planned.get(x, x) != x:
        x = planned[x]
    return x


def _join(
    planned: dict[int, int], candidates: Candidates, cluster: NDArray[np.int64], k: int
) -> bool:
    """Plan candidate k's merge; False when the handout already joins its two clusters."""
    a = _root(planned, int(cluster[candidates.i[k]]))
    b = _root(planned, int(cluster[candidates.j[k]]))
    if a == b:
        return False
    planned[a] = b
    return True


def _next_gap(
    gaps: list[int], candidates: Candidates, evidence: Evidence, planned: dict[int, int]
) -> int | None:
    """The next gap whose two clusters the gaps already handed out do not join: a second
    link between the same clusters would only be implied once the first is judged."""
    while gaps:
        index = gaps.pop()
        if _join(planned, candidates, evidence.clustering.labels, index):
            return index
    return None


class _RandomCheck:
    """The random non-candidate pairs still to hand out, per generation in priority order.

    The estimator counts a prefix of each generation's random order (only a prefix is a simple
    random sample; pairs the closure settles count in it for free), so an open pair before a
    judged one (abandoned by an annotator whose lease ran out, or skipped by one who judged out
    of turn) blocks the check: such holes go out first. Towards the quota count the prefix,
    pairs judged beyond it and pairs leased to others (under way). Then the generation furthest
    behind its quota goes first (an extension's new pairs need their own check), then the one
    with the fewest pairs counted.
    """

    def __init__(
        self,
        design: ReviewDesign,
        rand: RandomPairs,
        evidence: Evidence,
        frame: ResidualFrame,
        skip: set[int],
    ) -> None:
        value = evidence.random_value
        unsure = evidence.random_unsure
        unknown = value == UNKNOWN
        under_way = np.zeros(len(rand), dtype=np.bool_)
        under_way[np.fromiter(skip, dtype=np.int64, count=len(skip))] = True
        under_way &= unknown & ~unsure
        judged = evidence.random_labelled | under_way
        counted = frame.random_sampled | judged
        self.deficit = random_deficits(design, rand, evidence, counted)
        self.got = np.bincount(rand.generation[counted], minlength=self.deficit.size)
        self.progress = int(counted.sum())
        self.quota = self.progress + int(self.deficit.sum())
        order = np.argsort(pair_priority(design.seed, rand.i, rand.j), kind="stable")
        self.open: dict[int, list[int]] = {}
        self.holes: list[int] = []
        for g in np.unique(rand.generation).tolist():
            idx = order[rand.generation[order] == g]
            last = int(np.flatnonzero(judged[idx])[-1]) if judged[idx].any() else -1
            for k, x in enumerate(idx.tolist()):
                if not unknown[x] or under_way[x] or x in skip:
                    continue
                self.open.setdefault(g, []).append(x)
                if k < last and not unsure[x]:
                    self.holes.append(x)

    def take(self, *, short_only: bool) -> int | None:
        """The next random pair to hand out: a hole if any; else, with short_only, only from a
        generation whose check is not done."""
        if self.holes:
            pick = self.holes.pop(0)
            g = next(h for h, pairs in self.open.items() if pick in pairs)
            self.open[g].remove(pick)
        else:
            ready = [g for g, pairs in self.open.items() if pairs]
            if short_only:
                ready = [g for g in ready if self.deficit[g] > 0]
            if not ready:
                return None
            g = max(ready, key=lambda h: (self.deficit[h], -self.got[h], -h))
            pick = self.open[g].pop(0)
        self.deficit[g] = max(self.deficit[g] - 1, 0)
        self.got[g] += 1
        self.progress += 1
        return pick


def next_pairs(
    candidates: Candidates,
    design: ReviewDesign,
    evidence: Evidence,
    random_pairs: RandomPairs | None = None,
    *,
    count: int = 1,
    exclude_candidates: Collection[int] = (),
    exclude_random: Collection[int] = (),
    frame: ResidualFrame | None = None,
) -> tuple[list[Handout], ReviewDesign]:
    """Up to `count` pairs to hand out, and the design after reaching them (store it).

    Exclude pairs leased to other annotators and pairs this annotator already judged (e.g.
    "unsure"). Fewer than `count` (possibly none) when nothing left would improve the estimate.
    `frame`, if given, is residual_frame of the same arguments (shared with the estimate).
    """
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    rand = random_pairs if random_pairs is not None else RandomPairs.empty(candidates.n)
    if frame is None:
        frame = residual_frame(candidates, design, evidence, rand)
    u = candidates.priorities(design.seed)
    out: list[Handout] = []
    skip_c = set(int(x) for x in exclude_candidates)
    skip_r = set(int(x) for x in exclude_random)

    pending = np.flatnonzero(frame.reached & (frame.value == UNKNOWN))
    for index in pending[np.argsort(u[pending], kind="stable")].tolist():
        if len(out) == count:
            return out, design
        if index not in skip_c:
            out.append(Handout("candidate", index))

    labels = evidence.labelled + len(out)
    check = _RandomCheck(design, rand, evidence, frame, skip_r)

    handed = {h.index for h in out}
    gaps = [int(x) for x in frame.gaps if x not in skip_c and x not in handed]
    gaps.reverse()  # popped from the end: largest merge first
    planned: dict[int, int] = {}  # clusters this handout already merges (union-find)
    for h in out:  # pending pairs may be links too
        _join(planned, candidates, evidence.clustering.labels, h.index)
    strata = _Strata(design, frame, candidates)
    while len(out) < count:
        due = max(math.floor(design.random_share * labels), min(check.quota, labels // 3))
        if check.progress < due and (pick := check.take(short_only=False)) is not None:
            out.append(Handout("random", pick))
            labels += 1
            continue
        gap = _next_gap(gaps, candidates, evidence, planned)
        if gap is not None:
            out.append(Handout("candidate", gap))
            labels += 1
            continue
        s = strata.choose(design.min_per_stratum)
        if s is None:
            pick = check.take(short_only=True)  # finish the miner check
            if pick is not None:
                out.append(Handout("random", pick))
                labels += 1
                continue
            break
        index = strata.take(s)
        design = reach(design, s, float(u[index]))
        if frame.value[index] == UNKNOWN:
            out.append(Handout("candidate", index))
            strata.opened[s] += 1  # its value is open until judged: plan as if it stayed so
            strata.unknown_unreached[s] -= 1
            labels += 1
    return out, design


def next_pair(
    candidates: Candidates,
    design: ReviewDesign,
    evidence: Evidence,
    random_pairs: RandomPairs | None = None,
    *,
    exclude_candidates: Collection[int] = (),
    exclude_random: Collection[int] = (),
    frame: ResidualFrame | None = None,
) -> tuple[Handout | None, ReviewDesign]:
    """The next pair to show, or None when no label would improve the estimate."""
    out, design = next_pairs(
        candidates,
        design,
        evidence,
        random_pairs,
        exclude_candidates=exclude_candidates,
        exclude_random=exclude_random,
        frame=frame,
    )
    return (out[0] if out else None), design
