"""Toy 2D datasets: modes where the papers put them, reproducible draws, and the metrics on them."""

from __future__ import annotations

import math

import pytest
import torch

from app.gan.datasets import TOY_DATASETS, get_toy_dataset, grid_means, ring_means
from app.gan.metrics import mode_coverage


def test_mode_centres() -> None:
    ring = ring_means()
    assert ring.shape == (8, 2)
    assert torch.linalg.norm(ring, dim=1).tolist() == pytest.approx([2.0] * 8)
    assert ring[2].tolist() == pytest.approx([0.0, 2.0], abs=1e-12)
    grid = grid_means()
    assert grid.shape == (25, 2)
    assert sorted(set(grid[:, 0].tolist())) == [-4.0, -2.0, 0.0, 2.0, 4.0]
    assert len({tuple(p) for p in grid.tolist()}) == 25


def test_sampling_is_reproducible_and_labelled() -> None:
    ring = get_toy_dataset("ring8")
    x1, labels1 = ring.sample(500, torch.Generator().manual_seed(3))
    x2, labels2 = ring.sample(500, torch.Generator().manual_seed(3))
    assert x1.dtype == torch.float32 and x1.shape == (500, 2)
    assert torch.equal(x1, x2) and torch.equal(labels1, labels2)
    assert ring.means is not None
    offsets = x1.double() - ring.means[labels1]
    # each coordinate's noise is N(0, std^2); 6 sigma is never reached in 1,000 draws
    assert offsets.abs().max() < 6 * ring.std
    assert offsets.std().item() == pytest.approx(ring.std, rel=0.1)


@pytest.mark.parametrize("name", ["ring8", "grid25"])
def test_true_data_is_fully_covered(name: str) -> None:
    """On the data itself: every mode captured, and 1 - exp(-9/2) of samples within 3 sigma."""
    dataset = TOY_DATASETS[name]
    samples, _ = dataset.sample(5000, torch.Generator().manual_seed(0))
    assert dataset.means is not None
    result = mode_coverage(samples, dataset.means, dataset.std)
    assert result.modes_captured == dataset.n_modes
    # 2D isotropic noise: |offset|^2 / std^2 ~ chi2(2), P(<= 9) = 1 - e^-4.5 = 0.98889;
    # binomial sd at n=5000 is 0.0015, so 4 sd is 0.006
    assert result.high_quality_fraction == pytest.approx(1 - math.exp(-4.5), abs=0.006)
    assert result.kl_to_uniform < 0.02


def test_spiral_and_normal() -> None:
    spiral = get_toy_dataset("spiral")
    x, labels = spiral.sample(200, torch.Generator().manual_seed(1))
    assert spiral.n_modes == 0 and (labels == -1).all()
    # 1.5 turns with r = theta / pi: radius at most 3, plus noise
    assert torch.linalg.norm(x, dim=1).max() < 3.5
    normal = get_toy_dataset("normal")
    z, _ = normal.sample(4000, torch.Generator().manual_seed(2))
    assert z.mean(0).abs().max() < 0.1
    assert z.std(0).tolist() == pytest.approx([1.0, 1.0], abs=0.05)


def test_unknown_dataset() -> None:
    with pytest.raises(ValueError, match="unknown toy dataset 'moons'; known: ring8, grid25"):
        get_toy_dataset("moons")
