"""Pictures of a generator's progress as uint8 arrays, for the job layer to encode and show.

Images are tiled like torchvision's `make_grid` (as pytorch/examples DCGAN saves its fixed-noise
grid); 2D samples are drawn as a scatter over the real data, which is how the toy mode-collapse
papers show a generator hopping between modes.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from numpy.typing import NDArray


def image_grid(
    images: torch.Tensor, nrow: int | None = None, padding: int = 2
) -> NDArray[np.uint8]:
    """Images (n, C, H, W) in [-1, 1] -> one uint8 picture (rows, cols, C), `nrow` per row.

    `nrow` defaults to ceil(sqrt(n)); tiles are separated by `padding` black pixels.
    """
    if images.dim() != 4 or images.shape[0] == 0:
        raise ValueError(f"need images (n, C, H, W) with n >= 1, got {tuple(images.shape)}")
    n, c, h, w = images.shape
    per_row = nrow or math.ceil(math.sqrt(n))
    rows = math.ceil(n / per_row)
    grid = np.zeros(
        (rows * (h + padding) + padding, per_row * (w + padding) + padding, c), dtype=np.uint8
    )
    tiles = to_uint8(images).transpose(0, 2, 3, 1)  # (n, H, W, C)
    for i, tile in enumerate(tiles):
        top = padding + (i // per_row) * (h + padding)
        left = padding + (i % per_row) * (w + padding)
        grid[top : top + h, left : left + w] = tile
    return grid


def to_uint8(images: torch.Tensor) -> NDArray[np.uint8]:
    """[-1, 1] floats -> [0, 255] uint8, same layout."""
    scaled = ((images.detach().float().cpu() + 1) * 127.5).round().clamp(0, 255)
    return scaled.to(torch.uint8).numpy()


def scatter_image(
    points: torch.Tensor, reference: torch.Tensor, extent: float, size: int = 256
) -> NDArray[np.uint8]:
    """2D `points` (dark blue) over `reference` points (light grey), as an RGB picture
    (size, size, 3) of the square [-extent, extent]^2 with y pointing up; points outside are
    left out."""
    if points.dim() != 2 or points.shape[1] != 2 or reference.dim() != 2:
        raise ValueError("points and reference must be (n, 2)")
    picture = np.full((size, size, 3), 255, dtype=np.uint8)
    for xy, colour in ((reference, (200, 200, 200)), (points, (20, 40, 160))):
        scaled = ((xy.detach().double().cpu() + extent) / (2 * extent) * (size - 1)).round()
        pixels = scaled.long().numpy()
        inside = ((pixels >= 0) & (pixels < size - 1)).all(axis=1)
        x, y = pixels[inside, 0], size - 2 - pixels[inside, 1]
        for dx in (0, 1):  # 2x2 dots, visible at a glance
            for dy in (0, 1):
                picture[y + dy, x + dx] = colour
    return picture
