"""Raw pixels as the embedding: what the paper's own near-duplicate search used.

Cropping to the face/object and shrinking before flattening keeps 10^6 rows affordable (64x64x3
float32 pixels are 49 GB per 10^6) and makes the distance less sensitive to background noise.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from numpy.typing import NDArray

from app.embed.base import (
    check_fixed_shape,
    check_image_shape,
    embed_in_batches,
    l2_normalize,
    resolve_device,
)
from app.embed.transforms import center_crop, resize_pixels

PixelNormalize = Literal["none", "l2"]


class PixelEmbedder:
    """Center-crop, resize, flatten (C, H, W order), optionally scale rows to unit length."""

    def __init__(
        self,
        image_shape: tuple[int, int, int],
        crop: int | None = None,
        resize: int | None = None,
        normalize: PixelNormalize = "none",
        device: str | torch.device | None = None,
        batch_size: int = 1024,
    ) -> None:
        channels, height, width = check_image_shape(image_shape)
        if crop is not None and not 0 < crop <= min(height, width):
            raise ValueError(
                f"crop must be between 1 and the image's shorter side {min(height, width)}, "
                f"got {crop}"
            )
        side = crop if crop is not None else min(height, width)
        if resize is not None and not 1 <= resize <= side:
            # Upscaling adds no information to a distance, only rows: resize 6,000 of 8x8
            # images made 6.7 GB of a pool of 4 that the memory check counted at 0.5 GB.
            raise ValueError(
                f"resize shrinks: it must be between 1 and the (cropped) image side {side}, "
                f"got {resize}"
            )
        if normalize not in ("none", "l2"):
            raise ValueError(f"normalize must be 'none' or 'l2', got {normalize!r}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.image_shape = (channels, height, width)
        self.crop = crop
        self.resize = resize
        self.normalize: PixelNormalize = normalize
        self.device = resolve_device(device)
        self.batch_size = batch_size
        out_h, out_w = (crop, crop) if crop is not None else (height, width)
        if resize is not None:
            out_h = out_w = resize
        self.dim = channels * out_h * out_w
        self.name = f"pixels(crop={crop}, resize={resize}, normalize={normalize})"

    def embed(self, images: torch.Tensor) -> NDArray[np.float32]:
        """Rows (B, dim) for images (B, C, H, W) of exactly the shape given at construction."""
        check_fixed_shape(images, self.image_shape)
        return embed_in_batches(images, self.dim, self.batch_size, self.device, self._rows)

    def _rows(self, batch: torch.Tensor) -> torch.Tensor:
        if self.crop is not None:
            batch = center_crop(batch, self.crop)
        if self.resize is not None:
            batch = resize_pixels(batch, self.resize)
        rows = batch.reshape(batch.shape[0], -1)
        return l2_normalize(rows) if self.normalize == "l2" else rows
