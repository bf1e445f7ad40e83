"""Closure gaps: likely duplicates whose judgement merges clusters beyond the miner's pairs."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from app.estimate.closure_gaps import closure_gaps
from app.estimate.pairs import Candidates, judge_evidence


def _star(extra_links: bool = False) -> Candidates:
    """Samples 0-3 chained by close pairs, 4 far from all; (0, 3) proposed only on request."""
    i = [0, 1, 2, 0, 1]
    j = [1, 2, 3, 4, 4]
    d = [0.01, 0.02, 0.03, 0.9, 0.95]
    if extra_links:
        i += [0, 1]
        j += [3, 3]
        d += [0.04, 0.05]
    return Candidates.build(5, np.array(i), np.array(j), np.array(d))


def _labels(c: Candidates, known: dict[tuple[int, int], int]) -> np.ndarray:
    out = np.full(len(c), -1, dtype=np.int8)
    for k, (a, b) in enumerate(zip(c.i.tolist(), c.j.tolist(), strict=True)):
        out[k] = known.get((a, b), -1)
    return out


def _at(prediction: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """The predictions of every candidate as closure_gaps asks for them: at some indices."""
    return lambda index: prediction[index]


def _index(c: Candidates, a: int, b: int) -> int:
    return int(np.flatnonzero((c.i == a) & (c.j == b))[0])


def test_a_likely_duplicate_joining_a_cluster_to_a_sample_it_never_met_is_a_gap() -> None:
    c = _star()
    labels = _labels(c, {(0, 1): 1, (1, 2): 1, (0, 4): 0})
    evidence = judge_evidence(c, labels)
    prediction = np.where(c.distance < 0.5, 1.0, 0.0)
    sampled = labels >= 0
    # Merging {0, 1, 2} with 3 settles (0, 3) and (1, 3), pairs the miner never proposed.
    assert closure_gaps(c, evidence, _at(prediction), sampled).tolist() == [_index(c, 2, 3)]


def test_a_pair_judged_unsure_is_no_gap() -> None:
    # Its reviewer had no answer: waiting for one would hold the stopping rule for good.
    c = _star()
    labels = _labels(c, {(0, 1): 1, (1, 2): 1, (0, 4): 0})
    unsure = np.zeros(len(c), dtype=bool)
    unsure[_index(c, 2, 3)] = True
    evidence = judge_evidence(c, labels, candidate_unsure=unsure)
    prediction = np.where(c.distance < 0.5, 1.0, 0.0)
    assert closure_gaps(c, evidence, _at(prediction), labels >= 0).size == 0


def test_no_gap_where_the_merge_reaches_only_candidate_pairs() -> None:
    c = _star(extra_links=True)  # 3 is a candidate of 0, 1 and 2: the merge adds nothing new
    labels = _labels(c, {(0, 1): 1, (1, 2): 1, (0, 4): 0})
    evidence = judge_evidence(c, labels)
    prediction = np.where(c.distance < 0.5, 1.0, 0.0)
    assert closure_gaps(c, evidence, _at(prediction), labels >= 0).size == 0


def test_no_gap_beyond_the_farthest_sampled_pair() -> None:
    # Early in a review the monotone fit carries its duplicate level out to any distance.
    c = _star()
    labels = _labels(c, {(0, 1): 1, (1, 2): 1})
    evidence = judge_evidence(c, labels)
    prediction = np.ones(len(c))
    assert closure_gaps(c, evidence, _at(prediction), labels >= 0).size == 0


def test_gaps_where_every_sampled_pair_is_a_duplicate() -> None:
    """A pool collapsed onto a few outputs: every candidate is a duplicate, the sample never
    meets a distinct pair, and a mode's fragments {0, 1, 4} and {2, 3} still need the link
    (1, 2), which settles 5 pairs the miner never proposed (it returned none before)."""
    c = _star()
    labels = _labels(c, {(0, 1): 1, (2, 3): 1, (0, 4): 1})
    evidence = judge_evidence(c, labels)
    prediction = np.ones(len(c))
    assert closure_gaps(c, evidence, _at(prediction), labels >= 0).tolist() == [_index(c, 1, 2)]


def test_unlikely_pairs_and_pairs_inside_one_cluster_are_no_gaps() -> None:
    c = _star(extra_links=True)
    labels = _labels(c, {(0, 1): 1, (1, 2): 1, (2, 3): 1, (0, 4): 0})
    evidence = judge_evidence(c, labels)
    prediction = np.where(c.distance < 0.5, 1.0, 0.0)
    # (0, 3) and (1, 3) are implied now; (1, 4) is far.
    assert closure_gaps(c, evidence, _at(prediction), labels >= 0).size == 0
    prediction = np.full(len(c), 0.6)  # likelier a duplicate than not, but not near-certain
    labels = _labels(c, {(0, 1): 1, (1, 2): 1, (0, 4): 0})
    assert closure_gaps(c, judge_evidence(c, labels), _at(prediction), labels >= 0).size == 0


def _collapsed_pool(seed: int) -> tuple[Candidates, np.ndarray]:
    """Three big clusters whose copies each propose one earlier copy (a chain the closure must
    join), plus singletons; every sample also proposes two far, distinct neighbours."""
    rng = np.random.default_rng(seed)
    ids = np.concatenate([np.repeat([0, 1, 2], [40, 25, 15]), np.arange(3, 63)])
    rng.shuffle(ids)
    n = ids.size
    i, j, d = [], [], []
    for t in range(1, n):
        same = np.flatnonzero(ids[:t] == ids[t])
        if same.size:
            i.append(int(same[-1]))
            j.append(t)
            d.append(0.01 + abs(rng.normal(0, 0.03)))
        others = np.flatnonzero(ids[:t] != ids[t])
        for s in rng.choice(others, min(2, others.size), replace=False):
            i.append(int(s))
            j.append(t)
            d.append(0.4 + rng.gamma(3.0, 0.1))
    c = Candidates.build(n, np.array(i), np.array(j), np.array(d))
    return c, ids


def test_the_review_joins_collapsed_clusters_and_hands_out_one_link_per_merge() -> None:
    from app.estimate.design import new_design, reached
    from app.estimate.incomplete import estimate_incomplete, residual_frame
    from app.estimate.queue import next_pairs
    from app.estimate.stopping import stopping_status

    c, ids = _collapsed_pool(3)
    truth = (ids[c.i] == ids[c.j]).astype(np.int8)
    labels = np.full(len(c), -1, dtype=np.int8)
    design = new_design(c, 0, random_share=0.0, random_min=0)
    gaps_seen = 0
    for _ in range(400):
        evidence = judge_evidence(c, labels)
        frame = residual_frame(c, design, evidence)
        if stopping_status(estimate_incomplete(c, design, evidence, frame=frame)).stop:
            break
        gaps = set(closure_gaps(c, evidence, frame.crossfit.predict, frame.sampled).tolist())
        handouts, design = next_pairs(c, design, evidence, count=5, frame=frame)
        assert handouts
        cl = evidence.clustering.labels
        in_sample = reached(design, c)  # the design's pairs, this batch's included
        merges: set[frozenset[int]] = set()
        for h in handouts:
            if h.index not in gaps:
                continue
            merge = frozenset((int(cl[c.i[h.index]]), int(cl[c.j[h.index]])))
            # A pair of the design's sample is due anyway; a link the queue adds for the
            # closure never repeats a merge the batch already holds (it would only be implied).
            assert in_sample[h.index] or merge not in merges
            merges.add(merge)
            gaps_seen += 1
        for h in handouts:
            labels[h.index] = truth[h.index]
    else:
        raise AssertionError("the review did not stop")
    true_d = sum(k * (k - 1) // 2 for k in (40, 25, 15))
    assert gaps_seen > 0
    assert judge_evidence(c, labels).clustering.d == true_d  # every cluster joined whole


def test_a_block_of_singletons_with_unproposed_pairs_is_a_gap() -> None:
    """A mode nobody has judged: samples 0-4, each proposing its two nearest earlier ones, so
    every link lies on a triangle; none judged. A merge of two singletons settles only itself,
    yet the block holds 3 pairs the miner never proposed, so its links are gaps (the judged
    pairs elsewhere anchor the fit out to them)."""
    near = [(0, 1), (0, 2), (1, 2), (1, 3), (2, 3), (2, 4), (3, 4)]
    c = Candidates.build(
        8,
        np.array([a for a, _ in near] + [5, 6]),
        np.array([b for _, b in near] + [6, 7]),
        np.array([0.01 * (k + 1) for k in range(len(near))] + [0.005, 0.5]),
    )
    labels = _labels(c, {(5, 6): 1, (6, 7): 0})
    evidence = judge_evidence(c, labels)
    prediction = np.where(c.distance < 0.1, 1.0, 0.0)
    gaps = closure_gaps(c, evidence, _at(prediction), labels >= 0).tolist()
    assert gaps == [_index(c, a, b) for a, b in near]
    # The same with a cap on distance from the fit: nothing is dropped below it.
    assert closure_gaps(c, evidence, _at(prediction), labels >= 0, within=0.1).tolist() == gaps
    assert closure_gaps(c, evidence, _at(prediction), labels >= 0, within=0.0).size == 0


def test_a_chain_of_singletons_is_no_block() -> None:
    """Samples 0-3 chained by likely pairs: each link is a bridge (near pairs of different
    clusters chain like this), so no link is a gap although (0, 2), (0, 3), (1, 3) were
    never proposed."""
    c = Candidates.build(
        7,
        np.array([0, 1, 2, 4, 5]),
        np.array([1, 2, 3, 5, 6]),
        np.array([0.01, 0.02, 0.03, 0.005, 0.5]),
    )
    labels = _labels(c, {(4, 5): 1, (5, 6): 0})
    prediction = np.where(c.distance < 0.1, 1.0, 0.0)
    assert closure_gaps(c, judge_evidence(c, labels), _at(prediction), labels >= 0).size == 0


def test_no_gap_in_a_run_whose_pairs_the_miner_proposed_or_a_lone_pair() -> None:
    # Singletons {0, 1, 2} with all three pairs proposed, singletons {5, 6} with their one
    # pair; the judged pair (3, 4) lies beyond them, so the fit is trusted out to them.
    c = Candidates.build(
        7,
        np.array([0, 1, 0, 3, 5]),
        np.array([1, 2, 2, 4, 6]),
        np.array([0.01, 0.02, 0.03, 0.05, 0.04]),
    )
    labels = _labels(c, {(3, 4): 1})
    evidence = judge_evidence(c, labels)
    assert closure_gaps(c, evidence, _at(np.ones(len(c))), labels >= 0).size == 0


def test_a_run_of_singletons_beyond_the_search_bound_counts_whole() -> None:
    """72 singletons, each proposing its two previous samples, and a pendant pair hanging off
    the last by a bridge: past BLOCK_SEARCH_MAX samples no bridge search runs (it is Python,
    seconds for a collapsed mode of 10^5 copies), so every link of the run is a gap."""
    from app.estimate.closure_gaps import BLOCK_SEARCH_MAX

    m = 70
    pairs = [(t - 1, t) for t in range(1, m)] + [(t - 2, t) for t in range(2, m)]
    pairs += [(m - 1, m), (m, m + 1)]  # bridges
    assert m + 2 > BLOCK_SEARCH_MAX
    c = Candidates.build(
        m + 4,
        np.array([a for a, _ in pairs] + [m + 2]),
        np.array([b for _, b in pairs] + [m + 3]),
        np.array([0.01] * len(pairs) + [0.5]),
    )
    labels = _labels(c, {(m + 2, m + 3): 1})
    gaps = closure_gaps(c, judge_evidence(c, labels), _at(np.ones(len(c))), labels >= 0)
    assert sorted(gaps.tolist()) == sorted(_index(c, a, b) for a, b in pairs)
