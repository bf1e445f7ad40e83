"""A generator with known support: K prototype images, uniform or Zipf weights, pixel noise.

Every sample carries its true identity, so the whole pipeline (mining, review, estimate) can be checked
against ground truth. An optional continuous part never repeats (each such sample is its own identity).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import NDArray

from app.sources.base import SampleChunk, check_indices, sample_rng

MAX_ZIPF_SUPPORT = 10**7
_PROTOTYPE_STREAM = 1
_SAMPLE_STREAM = 2


@dataclass(frozen=True)
class SyntheticConfig:
    support: int  # K, the number of distinct prototypes
    zipf: float = 0.0  # Zipf exponent of the weights; 0 means uniform
    noise: float = 0.02  # std of the pixel noise added to each sample, in [-1, 1] units
    continuous: float = 0.0  # share of the mass on never-repeating samples
    image_size: int = 16
    channels: int = 1
    detail: int = 8  # prototypes are random detail x detail images, upsampled

    def validate(self) -> None:
        if not 1 <= self.support <= 10**9:
            raise ValueError("support must be between 1 and 10^9")
        if self.zipf < 0:
            raise ValueError("zipf must be >= 0 (0 = uniform)")
        if self.zipf > 0 and self.support > MAX_ZIPF_SUPPORT:
            # Zipf draws go through a CDF table of `support` doubles.
            raise ValueError(f"a Zipf source supports at most {MAX_ZIPF_SUPPORT:,} prototypes")
        if not 0 <= self.noise <= 1:
            raise ValueError("noise must be in [0, 1]")
        if not 0 <= self.continuous < 1:
            raise ValueError("continuous must be in [0, 1)")
        if self.channels not in (1, 3):
            raise ValueError("channels must be 1 or 3")
        if not 4 <= self.image_size <= 128:
            raise ValueError("image_size must be between 4 and 128")
        if not 1 <= self.detail <= self.image_size:
            raise ValueError("detail must be between 1 and image_size")


def prototype_weights(support: int, zipf: float) -> NDArray[np.float64]:
    """p_k proportional to (k+1)^-zipf; the mass of the repeating part, summing to 1."""
    if zipf == 0:
        return np.full(support, 1.0 / support)
    w = np.arange(1, support + 1, dtype=np.float64) ** -zipf
    return w / w.sum()


class SyntheticSource:
    max_samples: int | None = None

    def __init__(self, config: SyntheticConfig, seed: int) -> None:
        config.validate()
        self.config = config
        self.seed = seed
        self.image_shape = (config.channels, config.image_size, config.image_size)
        # Uniform draws need no table, so a uniform support can be huge.
        self._cdf: NDArray[np.float64] | None = None
        if config.zipf > 0:
            self._cdf = np.cumsum(prototype_weights(config.support, config.zipf))
            self._cdf[-1] = 1.0

    def true_simpson(self) -> float:
        """q = sum p_c^2 of the sample distribution (the continuous part adds nothing)."""
        repeat = (1 - self.config.continuous) ** 2
        if self.config.zipf == 0:
            return float(repeat / self.config.support)
        p = prototype_weights(self.config.support, self.config.zipf)
        return float(repeat * np.sum(p * p))

    def _prototype(self, rng: np.random.Generator) -> torch.Tensor:
        c, d, s = self.config.channels, self.config.detail, self.config.image_size
        low = torch.from_numpy(rng.standard_normal((1, c, d, d)).astype(np.float32))
        image = F.interpolate(low, size=(s, s), mode="bilinear", align_corners=False)
        return torch.tanh(image)[0] * 0.9

    def identity(self, index: int) -> tuple[int, np.random.Generator]:
        rng = sample_rng(self.seed, _SAMPLE_STREAM, index)
        if self.config.continuous and rng.random() < self.config.continuous:
            return self.config.support + index, rng
        u = rng.random()
        if self._cdf is None:
            return min(int(u * self.config.support), self.config.support - 1), rng
        return int(np.searchsorted(self._cdf, u, side="right")), rng

    def generate(self, indices: NDArray[np.int64]) -> SampleChunk:
        check_indices(indices, self.max_samples)
        images = torch.empty((len(indices), *self.image_shape), dtype=torch.float32)
        identities = np.empty(len(indices), dtype=np.int64)
        for row, index in enumerate(indices.tolist()):
            identity, rng = self.identity(index)
            if identity >= self.config.support:
                base = self._prototype(
                    rng
                )  # continuous part: a fresh image from the sample's own rng
            else:
                base = self._prototype(sample_rng(self.seed, _PROTOTYPE_STREAM, identity))
            noise = rng.standard_normal(self.image_shape).astype(np.float32) * self.config.noise
            images[row] = (base + torch.from_numpy(noise)).clamp_(-1, 1)
            identities[row] = identity
        return SampleChunk(images=images, identities=identities)
