"""Whether a source still draws what an audit drew: sample i is a pure function of (source, seed,
i), so a stored sample drawn again must come out the same. A generator file replaced under the
same path would otherwise show reviewers, or add to the pool, images of another generator."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from app.sources.base import Source
from app.sources.thumbnails import to_uint8

# Mean absolute difference, in grey levels, a redrawn sample may show: rounding between devices
# moves a few pixels by one level (mean << 0.1); another generator moves most pixels by many.
ANCHOR_TOLERANCE = 0.5


def redraw_difference(source: Source, idx: int, png: bytes) -> float:
    """Mean absolute difference in grey levels between sample idx drawn again and its stored
    PNG (inf if their shapes differ); the source's own errors pass through."""
    drawn = to_uint8(source.generate(np.array([idx], dtype=np.int64)).images[0])
    stored = np.asarray(Image.open(io.BytesIO(png)), dtype=np.float64)
    if stored.shape != drawn.shape:
        return float("inf")
    return float(np.abs(stored - drawn.astype(np.float64)).mean())


def not_the_audited_source(idx: int, difference: float) -> str:
    return (
        f"its generator's file is not the one audited (stored sample {idx} differs from a fresh "
        f"draw by {difference:.3g} grey levels on average)"
    )
