"""Measuring a trained generator against the known modes of its training data.

Samples are drawn as an audit would draw them: the generator in eval mode, z ~ N(0, I) from a
seeded generator, so a measurement is reproducible and matches what the birthday test sees.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import nn

from app.gan.datasets import Dataset, ToyDataset, spiral_curve
from app.gan.digit_classifier import DATASET_DIGITS, digit_probabilities
from app.gan.metrics import (
    CurveCoverage,
    DigitModeCoverage,
    ModeCoverage,
    curve_coverage,
    digit_mode_coverage,
    mode_coverage,
)

ModeReport = ModeCoverage | CurveCoverage | DigitModeCoverage


# Samples that count a run's modes, from the data's own number of known modes: VEEGAN's 2,500
# on the 2-D mixtures (8 and 25 modes), also for the 10-mode digit sets and the spiral (no modes
# of its own: the metric cuts it into 20 segments), and PacGAN's 26 per mode on the 1,000 class
# triples of stacked digits (26,000; the papers use 25,600-26,000), since at 2,500 even a
# perfectly even generator shows ~918 of 1,000 modes (each unseen with probability e^-2.5); at
# 26 per mode one is unseen with probability e^-26.
MODE_SAMPLES = 2_500  # the least
SAMPLES_PER_MODE = 26


def mode_samples(n_modes: int) -> int:
    """How many samples the mode metrics of data with `n_modes` known modes are counted from
    (a dataset's `n_modes`): 26 per mode, at least 2,500."""
    if isinstance(n_modes, bool) or not isinstance(n_modes, int) or n_modes < 0:
        raise ValueError(f"n_modes must be a non-negative integer, got {n_modes!r}")
    return max(MODE_SAMPLES, SAMPLES_PER_MODE * n_modes)


def _chunks(
    generator: nn.Module, latent_dim: int, n: int, seed: int, batch_size: int
) -> Iterator[torch.Tensor]:
    """The samples of `generate`, a batch at a time (the noise drawn at once, so any batch size
    gives the same samples)."""
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    was_training = generator.training
    generator.eval()
    device = next(generator.parameters()).device
    rng = torch.Generator().manual_seed(seed)
    z = torch.randn(n, latent_dim, generator=rng)
    try:
        for chunk in z.split(batch_size):
            yield generator(chunk.to(device)).float().cpu()
    finally:
        generator.train(was_training)


@torch.no_grad()
def generate(
    generator: nn.Module, latent_dim: int, n: int, seed: int = 0, batch_size: int = 1024
) -> torch.Tensor:
    """n samples (n, *output_shape) on CPU from z ~ N(0, I) seeded by `seed`, in eval mode."""
    return torch.cat(list(_chunks(generator, latent_dim, n, seed, batch_size)))


@torch.no_grad()
def generated_modes(
    dataset: Dataset,
    generator: nn.Module,
    latent_dim: int,
    seed: int,
    classifier: nn.Module | None = None,
    n: int | None = None,
    batch_size: int = 1024,
) -> ModeReport:
    """`measure_modes` of n samples of `generator` (by default `mode_samples` of the dataset's
    known modes), drawn as `generate` draws them. Images are classified a batch at a time: 26,000 stacked-MNIST
    samples at 64x64 are 1.3 GB as one tensor, their class probabilities 3 MB."""
    if not isinstance(dataset, ToyDataset) and dataset.name not in DATASET_DIGITS:
        raise ValueError(f"dataset {dataset.name!r} has no known modes to measure")
    n = mode_samples(dataset.n_modes) if n is None else n
    if dataset.name in DATASET_DIGITS and classifier is not None:
        probabilities = torch.cat(
            [
                digit_probabilities(classifier, chunk)
                for chunk in _chunks(generator, latent_dim, n, seed, batch_size)
            ]
        )
        return digit_mode_coverage(probabilities)
    return measure_modes(dataset, generate(generator, latent_dim, n, seed, batch_size), classifier)


def measure_modes(
    dataset: Dataset, samples: torch.Tensor, classifier: nn.Module | None = None
) -> ModeReport:
    """The mode metric that fits `dataset`: VEEGAN's for the 2D mixtures, coverage of 20 equally
    likely segments for the spiral, the classifier's mode histogram for the digit datasets (then
    `classifier` is required: `load_or_train_digit_classifier(path, digits=DATASET_DIGITS[name])`)."""
    if isinstance(dataset, ToyDataset):
        if dataset.means is None:
            return curve_coverage(samples, spiral_curve(), dataset.std)
        return mode_coverage(samples, dataset.means, dataset.std)
    if dataset.name in DATASET_DIGITS:
        if classifier is None:
            raise ValueError(f"counting the modes of {dataset.name!r} needs a digit classifier")
        return digit_mode_coverage(digit_probabilities(classifier, samples))
    raise ValueError(f"dataset {dataset.name!r} has no known modes to measure")
