"""The one thing an audit needs from a source: sample i as a pure function of (source, seed, i)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch
from numpy.typing import NDArray

# Pixels a side of the images an uploaded source may give (archives, probed generators): what
# the embedders and the review pages are built for, and a bound on what one sample costs.
MIN_SIDE, MAX_SIDE = 4, 1024


@dataclass(frozen=True)
class SampleChunk:
    images: torch.Tensor  # (B, C, H, W) float32 in [-1, 1]
    identities: NDArray[np.int64] | None  # true identity per sample, where the source knows it


class Source(Protocol):
    image_shape: tuple[int, int, int]
    # Largest pool the source can give (archives); None when unbounded.
    max_samples: int | None

    def generate(self, indices: NDArray[np.int64]) -> SampleChunk:
        """Samples at these pool indices; the same index always gives the same sample."""
        ...


def sample_rng(seed: int, stream: int, index: int) -> np.random.Generator:
    """A generator private to one sample: Philox keyed by (seed, stream, index), so any sample
    can be regenerated alone and chunking never changes a sample."""
    key = ((seed & 0xFFFFFFFF) << 96) | ((stream & 0xFFFFFFFF) << 64) | (index & 0xFFFFFFFFFFFFFFFF)
    return np.random.Generator(np.random.Philox(key=key))


def check_sides(height: int, width: int, what: str) -> None:
    """A ValueError naming `what` when a side is outside MIN_SIDE..MAX_SIDE."""
    if not (MIN_SIDE <= height <= MAX_SIDE and MIN_SIDE <= width <= MAX_SIDE):
        raise ValueError(
            f"{what} must be between {MIN_SIDE} and {MAX_SIDE} pixels a side, got {height}x{width}"
        )


def check_indices(indices: NDArray[np.int64], max_samples: int | None) -> None:
    if indices.size and int(indices.min()) < 0:
        raise ValueError("sample indices must be non-negative")
    if max_samples is not None and indices.size and int(indices.max()) >= max_samples:
        raise ValueError(f"this source has only {max_samples} samples")


def close_source(source: Source) -> None:
    """Let go of what a source holds open (an archive, a generator process), where it holds any."""
    close = getattr(source, "close", None)
    if close is not None:
        close()
