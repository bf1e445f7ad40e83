"""Mode-coverage metrics for data with known modes, as in VEEGAN's experiments (Srivastava et
al. 2017).

A sample is *high quality* if it lies within `threshold` standard deviations of the nearest mode
centre; a mode is *captured* if it is the nearest centre of at least one high-quality sample. The
KL of the mode histogram to uniform is VEEGAN's stacked-MNIST figure; here it is computed over the
high-quality samples' nearest modes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class ModeCoverage:
    """How a sample set spreads over known modes."""

    n_modes: int  # number of mixture components
    modes_captured: int  # components that are the nearest centre of >= 1 high-quality sample
    high_quality_fraction: float  # share of samples within threshold * std of their nearest centre
    counts: tuple[int, ...]  # high-quality samples per mode
    kl_to_uniform: float  # KL(histogram of counts || uniform over modes); inf when counts are all 0


def mode_coverage(
    samples: torch.Tensor, means: torch.Tensor, std: float, threshold: float = 3.0
) -> ModeCoverage:
    """VEEGAN's 2D metrics for `samples` (n, d) against mode centres `means` (K, d).

    Distances are Euclidean, compared with `threshold * std` as in VEEGAN's tables (3 sigma).
    """
    if samples.dim() != 2 or means.dim() != 2 or samples.shape[1] != means.shape[1]:
        raise ValueError(
            f"samples (n, d) and means (K, d) must share d; got {tuple(samples.shape)} "
            f"and {tuple(means.shape)}"
        )
    if means.shape[0] == 0 or std <= 0 or threshold <= 0:
        raise ValueError("need at least one mode, std > 0 and threshold > 0")
    n_modes = int(means.shape[0])
    if samples.shape[0] == 0:
        return ModeCoverage(n_modes, 0, 0.0, (0,) * n_modes, math.inf)
    distances = torch.cdist(samples.to(torch.float64), means.to(torch.float64))
    nearest_distance, nearest = distances.min(dim=1)
    high_quality = nearest_distance <= threshold * std
    counts = torch.bincount(nearest[high_quality], minlength=n_modes)
    return ModeCoverage(
        n_modes=n_modes,
        modes_captured=int((counts > 0).sum()),
        high_quality_fraction=float(high_quality.double().mean()),
        counts=tuple(int(c) for c in counts),
        kl_to_uniform=kl_to_uniform(counts.tolist()),
    )


def kl_to_uniform(counts: Sequence[int]) -> float:
    """KL(p || uniform) = sum_k p_k log(K p_k) with p = counts / sum, in nats; 0 log 0 = 0.

    0 for a perfectly even histogram, log K when everything sits in one mode, inf for no counts.
    """
    if not counts or any(c < 0 for c in counts):
        raise ValueError("counts must be a non-empty sequence of non-negative integers")
    total = sum(counts)
    if total == 0:
        return math.inf
    k = len(counts)
    return sum((c / total) * math.log(k * c / total) for c in counts if c > 0)
