"""PNG encoding of samples: what the store keeps for samples that appear in candidate pairs."""

from __future__ import annotations

import io

import numpy as np
import torch
from PIL import Image


def to_uint8(image: torch.Tensor) -> np.ndarray:
    """(C, H, W) in [-1, 1] -> (H, W) or (H, W, 3) uint8."""
    array = ((image.detach().cpu().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    hwc = array.permute(1, 2, 0).numpy()
    return hwc[:, :, 0] if hwc.shape[2] == 1 else hwc


def encode_png(image: torch.Tensor) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(to_uint8(image)).save(buffer, format="PNG", optimize=False)
    return buffer.getvalue()
