"""Mode-coverage metrics for data with known modes, as in VEEGAN's experiments (Srivastava et
al. 2017).

A sample is *high quality* if it lies within `threshold` standard deviations of the nearest mode
centre; a mode is *captured* if it is the nearest centre of at least one high-quality sample. The
KL of the mode histogram to uniform is VEEGAN's stacked-MNIST figure; here it is computed over the
high-quality samples' nearest modes. The spiral's modes are equally likely segments of its curve
(`curve_coverage`); digits' modes are the classes a classifier reads in each channel
(`digit_mode_coverage`, 1,000 class triples for stacked digits).
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


@dataclass(frozen=True)
class DigitModeCoverage:
    """How generated digit images spread over the digit-class modes, by a classifier's labels.

    For stacked digits (three channels) the modes are the 1,000 class triples, as in the
    stacked-MNIST tables of Unrolled GAN, VEEGAN and PacGAN (those use 25,600-26,000 samples).
    Even a perfectly uniform generator has a KL above 0 at finite n, about (K - 1) / (2 n).
    """

    n_modes: int  # 10 ** channels: 10 for digits, 1,000 for stacked digits
    n_samples: int  # images classified
    modes_captured: int  # modes that are the predicted label of >= 1 sample (the papers' figure)
    kl_to_uniform: float  # KL(histogram of predicted modes || uniform), in nats
    confident_fraction: float  # share of samples whose every channel's top class has p >= cut
    confident_modes_captured: int  # modes captured counting confident samples only
    counts: tuple[int, ...]  # samples predicted in each mode


def digit_mode_coverage(
    probabilities: torch.Tensor, min_confidence: float = 0.9
) -> DigitModeCoverage:
    """Mode metrics from per-channel class probabilities (n, k, 10) of n images with k channels.

    A sample's mode is its channels' argmax classes read as a base-10 number. Noise images also
    get a label, so `modes_captured` alone flatters a generator of garbage; the confident
    fraction (every channel's top probability >= `min_confidence`) says how digit-like they are.
    """
    if probabilities.dim() != 3 or probabilities.shape[2] != 10 or probabilities.shape[0] == 0:
        raise ValueError(
            f"need probabilities (n, channels, 10) with n >= 1, got {tuple(probabilities.shape)}"
        )
    if not 0 < min_confidence <= 1:
        raise ValueError(f"min_confidence must be in (0, 1], got {min_confidence!r}")
    n, k = probabilities.shape[:2]
    n_modes = 10**k
    top, classes = probabilities.max(dim=2)
    weights = 10 ** torch.arange(k - 1, -1, -1)
    modes = (classes * weights).sum(dim=1)
    confident = (top >= min_confidence).all(dim=1)
    counts = torch.bincount(modes, minlength=n_modes)
    confident_counts = torch.bincount(modes[confident], minlength=n_modes)
    return DigitModeCoverage(
        n_modes=n_modes,
        n_samples=n,
        modes_captured=int((counts > 0).sum()),
        kl_to_uniform=kl_to_uniform(counts.tolist()),
        confident_fraction=float(confident.double().mean()),
        confident_modes_captured=int((confident_counts > 0).sum()),
        counts=tuple(int(c) for c in counts),
    )


@dataclass(frozen=True)
class CurveCoverage:
    """How samples spread along a 1-D curve (the spiral), cut into equally likely segments."""

    n_segments: int  # pieces the curve is cut into, each as likely as the others under the data
    segments_captured: int  # segments nearest to >= 1 high-quality sample
    high_quality_fraction: float  # share of samples within threshold * std of the curve
    counts: tuple[int, ...]  # high-quality samples per segment
    kl_to_uniform: float  # KL(segment histogram || uniform), nats; inf when no sample is near


def curve_coverage(
    samples: torch.Tensor,
    curve: torch.Tensor,
    std: float,
    n_segments: int = 20,
    threshold: float = 3.0,
) -> CurveCoverage:
    """VEEGAN's 2D metrics along a curve: `curve` (m, d) are points in order along it, spaced so
    that each carries equal data mass and far closer than `std`; point i belongs to segment
    i * n_segments // m. The distance to the nearest point stands in for the distance to the curve.
    """
    m = int(curve.shape[0]) if curve.dim() == 2 else 0
    if not 1 <= n_segments <= m:
        raise ValueError(f"need 1 <= n_segments <= number of curve points, got {n_segments}, {m}")
    per_point = mode_coverage(samples, curve, std, threshold)
    segment = torch.arange(m) * n_segments // m
    counts = torch.zeros(n_segments, dtype=torch.int64).index_add_(
        0, segment, torch.tensor(per_point.counts, dtype=torch.int64)
    )
    return CurveCoverage(
        n_segments=n_segments,
        segments_captured=int((counts > 0).sum()),
        high_quality_fraction=per_point.high_quality_fraction,
        counts=tuple(int(c) for c in counts),
        kl_to_uniform=kl_to_uniform(counts.tolist()),
    )
