"""Mode-coverage metrics on hand-made sample sets with known answers, and on real data."""

from __future__ import annotations

import math

import pytest
import torch

from app.gan.datasets import (
    TOY_DATASETS,
    ToyDataset,
    get_toy_dataset,
    make_dataset,
    ring_means,
    spiral_curve,
)
from app.gan.evaluation import generated_modes, mode_samples
from app.gan.metrics import (
    ModeCoverage,
    curve_coverage,
    digit_mode_coverage,
    kl_to_uniform,
    mode_coverage,
)

MEANS = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 10.0]])
STD = 1.0


def test_hand_made_samples() -> None:
    samples = torch.tensor(
        [
            [0.0, 0.0],  # mode 0, exact
            [2.9, 0.0],  # mode 0, 2.9 sigma: high quality
            [10.0, 3.1],  # mode 1, 3.1 sigma: low quality
            [0.0, 12.0],  # mode 2, 2 sigma
            [5.0, 5.0],  # between all modes: low quality
            [0.0, 0.5],  # mode 0
        ]
    )
    result = mode_coverage(samples, MEANS, STD)
    assert result.n_modes == 4
    assert result.counts == (3, 0, 1, 0)
    assert result.modes_captured == 2
    assert result.high_quality_fraction == pytest.approx(4 / 6)
    # p = (3/4, 0, 1/4, 0): 3/4 log(4 * 3/4) + 1/4 log(4 * 1/4)
    assert result.kl_to_uniform == pytest.approx(0.75 * math.log(3.0))


def test_threshold_is_in_units_of_std() -> None:
    samples = torch.tensor([[2.9, 0.0]])
    assert mode_coverage(samples, MEANS, STD).modes_captured == 1
    assert mode_coverage(samples, MEANS, STD, threshold=2.0).modes_captured == 0
    assert mode_coverage(samples, MEANS, std=0.5).modes_captured == 0


def test_even_and_collapsed_histograms() -> None:
    even = MEANS.repeat(5, 1)
    result = mode_coverage(even, MEANS, STD)
    assert result.modes_captured == 4
    assert result.high_quality_fraction == 1.0
    assert result.kl_to_uniform == pytest.approx(0.0, abs=1e-12)
    collapsed = mode_coverage(MEANS[:1].repeat(7, 1), MEANS, STD)
    assert collapsed.modes_captured == 1
    assert collapsed.kl_to_uniform == pytest.approx(math.log(4))


def test_no_high_quality_samples() -> None:
    result = mode_coverage(torch.tensor([[5.0, 5.0]]), MEANS, STD)
    assert result.modes_captured == 0
    assert result.high_quality_fraction == 0.0
    assert result.kl_to_uniform == math.inf
    assert kl_to_uniform([0, 0]) == math.inf


def test_bad_inputs() -> None:
    with pytest.raises(ValueError, match="must share d"):
        mode_coverage(torch.zeros(3, 3), MEANS, STD)
    with pytest.raises(ValueError, match="std > 0"):
        mode_coverage(torch.zeros(3, 2), MEANS, 0.0)
    with pytest.raises(ValueError, match="non-negative"):
        kl_to_uniform([1, -1])


def one_hot_probabilities(classes: list[list[int]], confidence: float) -> torch.Tensor:
    """(n, k, 10) with `confidence` on each given class and the rest spread evenly."""
    rest = (1 - confidence) / 9
    p = torch.full((len(classes), len(classes[0]), 10), rest)
    for i, row in enumerate(classes):
        for c, cls in enumerate(row):
            p[i, c, cls] = confidence
    return p


def test_digit_modes_by_hand() -> None:
    p = torch.cat(
        [
            one_hot_probabilities([[1, 2, 3], [1, 2, 3], [0, 0, 7]], 0.95),
            one_hot_probabilities([[9, 9, 9]], 0.5),  # a guess, not confident
        ]
    )
    result = digit_mode_coverage(p, min_confidence=0.9)
    assert result.n_modes == 1000 and result.n_samples == 4
    assert result.modes_captured == 3
    assert result.confident_modes_captured == 2
    assert result.confident_fraction == pytest.approx(0.75)
    assert result.counts[123] == 2 and result.counts[7] == 1 and result.counts[999] == 1
    # p = (1/2, 1/4, 1/4) over three of 1000 modes: sum p log(1000 p)
    expected = 0.5 * math.log(500) + 2 * 0.25 * math.log(250)
    assert result.kl_to_uniform == pytest.approx(expected)
    # one confident channel is not enough: all channels must pass the cut
    mixed = one_hot_probabilities([[4, 4]], 0.95)
    mixed[0, 1] = 0.1
    assert digit_mode_coverage(mixed).confident_fraction == 0.0
    assert digit_mode_coverage(mixed).n_modes == 100


def test_digit_modes_bad_inputs() -> None:
    with pytest.raises(ValueError, match=r"need probabilities \(n, channels, 10\)"):
        digit_mode_coverage(torch.zeros(3, 9))
    with pytest.raises(ValueError, match="min_confidence"):
        digit_mode_coverage(one_hot_probabilities([[1]], 1.0), min_confidence=0.0)


def test_curve_coverage_on_the_spiral_itself() -> None:
    spiral = get_toy_dataset("spiral")
    samples, _ = spiral.sample(4000, torch.Generator().manual_seed(0))
    result = curve_coverage(samples, spiral_curve(), spiral.std)
    assert result.n_segments == 20 and result.segments_captured == 20
    # the curve is at least as close as each sample's own centre, so >= 1 - e^-4.5 = 0.989
    assert result.high_quality_fraction >= 0.985
    # equally likely segments: 200 per segment, KL near its finite-sample value 19 / 8000
    assert result.kl_to_uniform < 0.02


def test_curve_coverage_of_a_collapsed_generator() -> None:
    curve = spiral_curve(100)
    # everything at one curve point, plus one sample far away
    samples = torch.cat([curve[10:11].float().repeat(50, 1), torch.tensor([[10.0, 10.0]])])
    result = curve_coverage(samples, curve, std=0.05, n_segments=10)
    assert result.segments_captured == 1
    assert result.counts[1] == 50  # point 10 of 100 is in segment 10 * 10 // 100 = 1
    assert result.high_quality_fraction == pytest.approx(50 / 51)
    assert result.kl_to_uniform == pytest.approx(math.log(10))
    with pytest.raises(ValueError, match="n_segments"):
        curve_coverage(samples, curve, std=0.05, n_segments=101)


def test_mode_samples_follow_the_known_mode_count() -> None:
    """The papers' counts for the data they used, from each dataset's own number of modes:
    VEEGAN's 2,500 on the 2-D mixtures (and the digit sets), PacGAN's 26,000 for stacked
    digits' 1,000 modes; data with more modes gets 26 a mode, without a list of names."""
    for toy in TOY_DATASETS.values():  # ring8, grid25, spiral (0 modes), normal (1)
        assert mode_samples(toy.n_modes) == 2_500
    assert mode_samples(make_dataset("digits").n_modes) == 2_500
    assert mode_samples(make_dataset("stacked_digits").n_modes) == 26_000
    assert mode_samples(96) == 2_500 and mode_samples(100) == 2_600
    assert mode_samples(10_000) == 260_000
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match="n_modes"):
            mode_samples(bad)  # type: ignore[arg-type]


class _OntoTheModes(torch.nn.Module):
    """A perfect "generator" for a mixture: z picks one of the mode centres, each about equally
    often (the first coordinate's normal CDF, binned)."""

    def __init__(self, means: torch.Tensor) -> None:
        super().__init__()
        self.means = torch.nn.Parameter(means.float(), requires_grad=False)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        u = 0.5 * (1 + torch.erf(z[:, 0] / 2**0.5))
        return self.means[(u * len(self.means)).long().clamp_(0, len(self.means) - 1)]


def test_a_new_dataset_with_many_modes_is_counted_from_enough_samples() -> None:
    """A mixture of 200 modes that no list names: a run's mode metrics draw 26 samples a mode
    (5,200, not the 2,500 of data with few modes), and an even generator shows every mode."""
    means = ring_means(200, radius=20.0)  # neighbours 0.63 apart, far beyond 3 std
    dataset = ToyDataset("ring200", means, std=0.01)
    report = generated_modes(dataset, _OntoTheModes(means), latent_dim=2, seed=0)
    assert isinstance(report, ModeCoverage)
    assert sum(report.counts) == 5_200 and report.high_quality_fraction == 1.0
    assert report.modes_captured == 200
