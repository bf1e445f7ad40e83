"""Image geometry on (B, C, H, W) tensors: crops, resizes and channel fixes the embedders share.

Done on tensors (not PIL) so a chunk stays on the embedder's device from sampling to rows.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

Interpolation = Literal["bilinear", "bicubic"]
ResizeMode = Literal["shortest", "squash"]


def center_crop(images: torch.Tensor, size: int) -> torch.Tensor:
    """The central size x size window; an odd margin leaves the extra pixel at the bottom/right."""
    height, width = images.shape[-2:]
    if not 0 < size <= min(height, width):
        raise ValueError(f"crop {size} must be between 1 and the image side {min(height, width)}")
    top = (height - size) // 2
    left = (width - size) // 2
    return images[..., top : top + size, left : left + size]


def resize_pixels(images: torch.Tensor, size: int) -> torch.Tensor:
    """Resize to size x size: area averaging when shrinking, bilinear when growing.

    Area averaging makes an integer-factor shrink the exact mean of each block, so small shifts
    and pixel noise move the rows little.
    """
    height, width = images.shape[-2:]
    if (height, width) == (size, size):
        return images
    if size <= height and size <= width:
        return F.interpolate(images, size=(size, size), mode="area")
    return F.interpolate(
        images, size=(size, size), mode="bilinear", align_corners=False, antialias=True
    )


def to_rgb(images: torch.Tensor) -> torch.Tensor:
    """Repeat a grey channel three times; RGB passes through."""
    if images.shape[1] == 1:
        return images.expand(-1, 3, -1, -1)
    return images


def fit_square(
    images: torch.Tensor, size: int, interpolation: Interpolation, resize_mode: ResizeMode
) -> torch.Tensor:
    """Bring images to a network's size x size input the way open_clip's eval transform does.

    "shortest" scales the short side to `size` and center-crops the long one (torchvision's
    Resize + CenterCrop); "squash" scales both sides to `size`.
    """
    height, width = images.shape[-2:]
    if (height, width) == (size, size):
        return images
    if resize_mode == "squash":
        target = (size, size)
    elif height <= width:
        target = (size, int(size * width / height))
    else:
        target = (int(size * height / width), size)
    resized = F.interpolate(
        images, size=target, mode=interpolation, align_corners=False, antialias=True
    )
    return center_crop(resized, size)


def network_input(
    images: torch.Tensor,
    size: int,
    interpolation: Interpolation,
    resize_mode: ResizeMode,
    mean: tuple[float, float, float],
    std: tuple[float, float, float],
) -> torch.Tensor:
    """Map generator images in [-1, 1] to a pretrained network's normalised RGB input.

    Mirrors torchvision's ToTensor + Normalize on a resized picture: [0, 1] values, clamped after
    resizing as saving to 8-bit would, then (x - mean) / std per channel.
    """
    unit = fit_square(to_rgb((images + 1) / 2), size, interpolation, resize_mode).clamp(0, 1)
    mean_t = torch.tensor(mean, dtype=unit.dtype, device=unit.device).view(1, 3, 1, 1)
    std_t = torch.tensor(std, dtype=unit.dtype, device=unit.device).view(1, 3, 1, 1)
    return (unit - mean_t) / std_t
