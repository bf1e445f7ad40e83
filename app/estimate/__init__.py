"""Statistics of the birthday test: clusters of judgements, N_eff = 1/q with intervals, and
the paper's batch view. Pure functions over counts; no I/O."""

from app.estimate.batch import (
    batch_collision,
    batch_curve,
    batch_curve_empirical,
    paper_support,
    s50,
    uniform_batch_collision,
)
from app.estimate.clusters import Clustering, cluster_judgements
from app.estimate.simpson import (
    JackknifeCheck,
    SupportEstimate,
    collision_variance,
    d_interval,
    estimate_support,
    jackknife_var_q,
    n_eff_bounds,
    zero_collision_bound,
)

__all__ = [
    "Clustering",
    "JackknifeCheck",
    "SupportEstimate",
    "batch_collision",
    "batch_curve",
    "batch_curve_empirical",
    "cluster_judgements",
    "collision_variance",
    "d_interval",
    "estimate_support",
    "jackknife_var_q",
    "n_eff_bounds",
    "paper_support",
    "s50",
    "uniform_batch_collision",
    "zero_collision_bound",
]
