"""Mode-coverage metrics on hand-made sample sets with known answers."""

from __future__ import annotations

import math

import pytest
import torch

from app.gan.metrics import kl_to_uniform, mode_coverage

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
