"""The embedder interface and the batching every embedder shares."""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Protocol

import numpy as np
import torch
from numpy.typing import NDArray


class Embedder(Protocol):
    """Maps generator samples to rows whose distances the miner ranks.

    `dim` is known right after construction, so the audit job can size its index before the
    first chunk arrives.
    """

    name: str
    dim: int

    def embed(self, images: torch.Tensor) -> NDArray[np.float32]:
        """Embed float images (B, C, H, W) in [-1, 1] into float32 rows (B, dim), without grad."""
        ...


def resolve_device(device: str | torch.device | None) -> torch.device:
    """The device to run on: the one asked for, else cuda when available, else cpu."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def check_images(images: torch.Tensor, channels: Collection[int]) -> None:
    """Refuse input that is not a float (B, C, H, W) batch with an accepted channel count."""
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"images must be a torch.Tensor, got {type(images).__name__}")
    if images.ndim != 4:
        raise ValueError(f"images must have shape (B, C, H, W), got {tuple(images.shape)}")
    if not images.is_floating_point():
        raise ValueError(f"images must be float in [-1, 1], got dtype {images.dtype}")
    if images.shape[1] not in channels:
        raise ValueError(
            f"images must have {' or '.join(map(str, sorted(channels)))} channels, "
            f"got {images.shape[1]}"
        )


def check_fixed_shape(images: torch.Tensor, image_shape: tuple[int, int, int]) -> None:
    """check_images, and refuse any (C, H, W) but the one an embedder was built for."""
    check_images(images, channels=(image_shape[0],))
    if tuple(images.shape[1:]) != image_shape:
        raise ValueError(
            f"images must have shape (B, {', '.join(map(str, image_shape))}), "
            f"got {tuple(images.shape)}"
        )


def embed_in_batches(
    images: torch.Tensor,
    dim: int,
    batch_size: int,
    device: torch.device,
    embed_batch: Callable[[torch.Tensor], torch.Tensor],
) -> NDArray[np.float32]:
    """Run `embed_batch` on slices of `images` moved to `device`, gathering rows on the host.

    Only one batch lives on the device at a time, so a chunk of any length fits in memory there.
    """
    out = np.empty((images.shape[0], dim), dtype=np.float32)
    with torch.inference_mode():
        for start in range(0, images.shape[0], batch_size):
            batch = images[start : start + batch_size].to(device=device, dtype=torch.float32)
            rows = embed_batch(batch)
            out[start : start + batch.shape[0]] = rows.to(torch.float32).cpu().numpy()
    return out


def l2_normalize(rows: torch.Tensor) -> torch.Tensor:
    """Scale rows to unit length; an all-zero row stays zero rather than becoming NaN."""
    norms = torch.linalg.vector_norm(rows, dim=1, keepdim=True)
    return rows / norms.clamp_min(torch.finfo(rows.dtype).tiny)


def check_image_shape(image_shape: tuple[int, int, int]) -> tuple[int, int, int]:
    """Validate a generator's (C, H, W): positive sides, 1 (grey) or 3 (RGB) channels."""
    if len(image_shape) != 3 or any(int(side) < 1 for side in image_shape):
        raise ValueError(f"image_shape must be (C, H, W) with positive sides, got {image_shape}")
    channels, height, width = (int(side) for side in image_shape)
    if channels not in (1, 3):
        raise ValueError(f"images must have 1 or 3 channels, got {channels}")
    return channels, height, width
