"""The support-size estimate of an audit, from the judgements in the store.

First version of the statistics: the pooled Simpson estimator over the closure of confirmed pairs. It is
final once every candidate pair is labelled; until then it counts only what humans confirmed (a lower
bound on D, so an upper-biased N_eff), which the `complete` flag and `parts.unreviewed` make explicit.
"""

from __future__ import annotations

import math

from app.estimate import cluster_judgements, estimate_support, paper_support, s50
from app.schemas import EstimateParts, EstimatePublic, StopRule
from app.store import audits as audit_store
from app.store import pairs as pair_store
from app.store.db import Database

DEFAULT_TARGET = 0.2  # relative half-width of the N_eff interval the stopping rule aims for
Z95 = 1.959963984540054


def samples_for_target(n_eff: float, target: float, level_z: float = Z95) -> int:
    """Pool size whose expected duplicate count gives the target relative half-width.

    Near uniformity the relative se of D is ~1/sqrt(E[D]), and E[D] = C(n,2)/N_eff, so
    k = (z / target)^2 pairs need n ~ sqrt(2 k N_eff) samples (DESIGN.md "How many samples").
    """
    k = (level_z / target) ** 2
    return math.ceil(0.5 + math.sqrt(0.25 + 2 * k * n_eff))


def audit_estimate(
    db: Database, audit_id: int, level: float = 0.95, target: float = DEFAULT_TARGET
) -> EstimatePublic:
    with db.read() as session:
        audit = audit_store.get_audit(session, audit_id)
        n = audit.samples_done
        labelled = pair_store.labelled_pairs(session, audit_id)
        counts = pair_store.count_by_label(session, audit_id)
        finished = audit.status == "done"
    candidates = sum(counts.values())
    unlabelled = counts.get(None, 0)
    duplicates = [(i, j, d) for i, j, d, label in labelled if label == "duplicate"]
    distinct = [(i, j) for i, j, _, label in labelled if label == "distinct"]
    if n < 2:
        raise ValueError(f"audit {audit_id} has {n} samples so far; an estimate needs at least 2")
    clustering = cluster_judgements(n, duplicates, distinct)
    result = estimate_support(n, clustering.sizes, level=level)
    s = s50(result.q_hat) if result.q_hat > 0 else None
    complete = finished and unlabelled == 0
    samples_to_go: int | None = None
    if result.n_eff is not None:
        samples_to_go = max(0, samples_for_target(result.n_eff, target) - n)
    width_ok = (
        result.n_eff is not None
        and result.n_eff_high is not None
        and (result.n_eff_high - result.n_eff_low) / 2 <= target * result.n_eff
    )
    return EstimatePublic(
        n=n,
        candidate_pairs=candidates,
        labelled_pairs=candidates - unlabelled,
        duplicate_pairs=clustering.d,
        q=result.q_hat,
        n_eff=result.n_eff,
        n_eff_low=result.n_eff_low,
        n_eff_high=result.n_eff_high,
        level=level,
        parts=EstimateParts(
            confirmed=clustering.d,
            direct=clustering.direct_pairs,
            implied=clustering.implied_pairs,
            unreviewed=0.0 if complete else None,
            missed=None,
        ),
        s50=s,
        paper_support=paper_support(s) if s is not None else None,
        stop=StopRule(
            reached=complete and width_ok,
            labels_to_go=unlabelled,
            samples_to_go=samples_to_go,
            target_relative_half_width=target,
        ),
        complete=complete,
    )
