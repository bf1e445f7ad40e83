"""Training data by name: `make_dataset(name, **options)`, and the toy 2D mixtures themselves.

Toy 2D data with known modes is the testbed of Unrolled GAN and VEEGAN's mode-collapse tables;
each toy dataset says where its modes are, so `app.gan.metrics.mode_coverage` can count how many a
generator captured. Image data (sklearn digits, stacked digits, MNIST, stacked MNIST, local `.npz` files
and image folders) lives in `digits.py`, `mnist.py` and `image_data.py`. Every dataset is sampled i.i.d. with an
explicit `torch.Generator`, so every draw is reproducible.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from app.gan.digits import digits_dataset, stacked_digits_dataset
from app.gan.image_data import image_folder_dataset, npz_dataset
from app.gan.mnist import mnist_dataset, stacked_mnist_dataset


class Dataset(Protocol):
    """What training needs from data: a sample shape and i.i.d. labelled draws."""

    @property
    def name(self) -> str: ...

    @property
    def n_modes(self) -> int:
        """Number of known modes (mixture components, classes, class triples); 0 if unknown."""
        ...

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """Shape of one sample: (d,) for vectors, (C, H, W) for images in [-1, 1]."""
        ...

    def sample(
        self, n: int, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """n samples (n, *sample_shape) float32 and the mode of each (n,) int64, -1 if unknown."""
        ...


@dataclass(frozen=True)
class ToyDataset:
    """A 2D distribution; a mixture of isotropic Gaussians unless `means` is None."""

    name: str  # key in TOY_DATASETS
    means: torch.Tensor | None  # (K, 2) mode centres; None for a continuous shape (spiral)
    std: float  # per-coordinate standard deviation around each mode (or the curve)

    @property
    def n_modes(self) -> int:
        return 0 if self.means is None else int(self.means.shape[0])

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return (2,)

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


def spiral_curve(points: int = 1000) -> torch.Tensor:
    """`points` points (points, 2) along the spiral, equally spaced in the sampling parameter, so
    each carries equal data mass (for `app.gan.metrics.curve_coverage`)."""
    return _spiral((torch.arange(points, dtype=torch.float64) + 0.5) / points)


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


def _toy(name: str) -> Callable[[], ToyDataset]:
    def build() -> ToyDataset:
        return TOY_DATASETS[name]

    build.__doc__ = f"The toy dataset {name!r}; takes no options."
    return build


DATASETS: dict[str, Callable[..., Dataset]] = {
    **{name: _toy(name) for name in TOY_DATASETS},
    "digits": digits_dataset,  # options: image_size (8, 16, 32, 64)
    "stacked_digits": stacked_digits_dataset,  # options: image_size (8, 16, 32, 64)
    "mnist": mnist_dataset,  # options: image_size (32, 64), path (a keras-style mnist.npz)
    "stacked_mnist": stacked_mnist_dataset,  # options: image_size (32, 64), path
    "npz": npz_dataset,  # options: path, key, labels_key, image_size, max_images
    "folder": image_folder_dataset,  # options: path, image_size, channels, max_images
}


def make_dataset(name: str, **options: Any) -> Dataset:
    """The dataset called `name` built with `options`; a ValueError names what is allowed."""
    try:
        builder = DATASETS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}") from None
    parameters = inspect.signature(builder).parameters
    unknown = sorted(set(options) - set(parameters))
    if unknown:
        allowed = ", ".join(parameters) or "none"
        raise ValueError(
            f"unknown option(s) {', '.join(unknown)} for dataset {name!r}; allowed: {allowed}"
        )
    missing = [
        p
        for p, spec in parameters.items()
        if spec.default is inspect.Parameter.empty and p not in options
    ]
    if missing:
        raise ValueError(f"dataset {name!r} needs option(s) {', '.join(missing)}")
    return builder(**options)
