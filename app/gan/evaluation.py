"""Measuring a trained generator against the known modes of its training data.

Samples are drawn as an audit would draw them: the generator in eval mode, z ~ N(0, I) from a
seeded generator, so a measurement is reproducible and matches what the birthday test sees.
"""

from __future__ import annotations

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


@torch.no_grad()
def generate(
    generator: nn.Module, latent_dim: int, n: int, seed: int = 0, batch_size: int = 1024
) -> torch.Tensor:
    """n samples (n, *output_shape) on CPU from z ~ N(0, I) seeded by `seed`, in eval mode."""
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    was_training = generator.training
    generator.eval()
    device = next(generator.parameters()).device
    rng = torch.Generator().manual_seed(seed)
    z = torch.randn(n, latent_dim, generator=rng)
    samples = torch.cat(
        [generator(chunk.to(device)).float().cpu() for chunk in z.split(batch_size)]
    )
    generator.train(was_training)
    return samples


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
