"""Toy 2D data with known modes, the testbed of Unrolled GAN and VEEGAN's mode-collapse tables.

Each dataset says where its modes are, so `app.gan.metrics.mode_coverage` can count how many a
generator captured. Sampling takes an explicit `torch.Generator` so every draw is reproducible.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class ToyDataset:
    """A 2D distribution; a mixture of isotropic Gaussians unless `means` is None."""

    name: str  # key in TOY_DATASETS
    means: torch.Tensor | None  # (K, 2) mode centres; None for a continuous shape (spiral)
    std: float  # per-coordinate standard deviation around each mode (or the curve)

    @property
    def n_modes(self) -> int:
        return 0 if self.means is None else int(self.means.shape[0])

    def sample(
        self, n: int, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """n points (n, 2) float32 and the index of the mode each came from (-1 on a spiral)."""
        if n < 0:
            raise ValueError(f"n must be non-negative, got {n}")
        noise = torch.randn(n, 2, generator=generator, dtype=torch.float64) * self.std
        if self.means is None:
            centres = _spiral(torch.rand(n, generator=generator, dtype=torch.float64))
            labels = torch.full((n,), -1, dtype=torch.int64)
        else:
            # equal weights, as in the papers
            labels = torch.randint(self.n_modes, (n,), generator=generator)
            centres = self.means.to(torch.float64)[labels]
        return (centres + noise).to(torch.float32), labels


def _spiral(u: torch.Tensor) -> torch.Tensor:
    """Points on 1.5 turns of an Archimedean spiral, r = theta / pi, uniform in arc angle."""
    theta = u * 3 * math.pi
    r = theta / math.pi
    return torch.stack([r * torch.cos(theta), r * torch.sin(theta)], dim=1)


def ring_means(k: int = 8, radius: float = 2.0) -> torch.Tensor:
    """k equally spaced points on a circle (Metz et al. 2017's ring: k=8, radius 2)."""
    angles = torch.arange(k, dtype=torch.float64) * (2 * math.pi / k)
    return torch.stack([radius * torch.cos(angles), radius * torch.sin(angles)], dim=1)


def grid_means(side: int = 5, spacing: float = 2.0) -> torch.Tensor:
    """side x side points centred on 0: the 5 x 5 grid at (-4 + 2i, -4 + 2j) of PacGAN's table."""
    ticks = (torch.arange(side, dtype=torch.float64) - (side - 1) / 2) * spacing
    xs, ys = torch.meshgrid(ticks, ticks, indexing="ij")
    return torch.stack([xs.flatten(), ys.flatten()], dim=1)


TOY_DATASETS: dict[str, ToyDataset] = {
    "ring8": ToyDataset("ring8", ring_means(), std=0.02),  # Metz et al. 2017 (Unrolled GAN)
    "grid25": ToyDataset("grid25", grid_means(), std=0.05),  # variance 0.0025 (PacGAN)
    "spiral": ToyDataset("spiral", None, std=0.05),
    "normal": ToyDataset("normal", torch.zeros(1, 2, dtype=torch.float64), std=1.0),
}


def get_toy_dataset(name: str) -> ToyDataset:
    """The toy dataset called `name`, or a ValueError listing the known names."""
    try:
        return TOY_DATASETS[name]
    except KeyError:
        known = ", ".join(TOY_DATASETS)
        raise ValueError(f"unknown toy dataset {name!r}; known: {known}") from None
