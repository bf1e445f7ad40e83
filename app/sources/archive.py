"""Samples from an uploaded `.npz` archive: sample i is the archive's i-th image.

Loaded with allow_pickle=False (object arrays are refused) and memory-mapped where possible, so a large
archive is never held in memory whole.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import torch
from numpy.typing import NDArray

from app.sources.base import SampleChunk, check_indices

MAX_IMAGES = 10_000_000


def _npz_array(path: Path) -> NDArray[np.generic]:
    try:
        with np.load(path, allow_pickle=False, mmap_mode="r") as archive:
            names = list(archive.files)
            if len(names) != 1:
                raise ValueError(f"the .npz must hold exactly one array, found {len(names)}")
            return np.asarray(archive[names[0]])
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise ValueError(f"not a readable .npz archive: {exc}") from exc


def sample_archive_kind(path: Path) -> str:
    """'npz' or 'zip' (of PNGs): both are zip files, told apart by their members."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = [n for n in archive.namelist() if not n.endswith("/")]
    except (zipfile.BadZipFile, OSError) as exc:
        raise ValueError(f"a sample archive must be a .npz or a .zip of PNGs: {exc}") from exc
    if names and all(n.endswith(".npy") for n in names):
        return "npz"
    return "zip"


def describe_npz(path: Path) -> tuple[int, tuple[int, int, int]]:
    """(image count, (C, H, W)) after checking layout and dtype; raises ValueError on anything else."""
    array = _npz_array(path)
    count, shape = _layout(array)
    return count, shape


def _layout(array: NDArray[np.generic]) -> tuple[int, tuple[int, int, int]]:
    if array.ndim != 4:
        raise ValueError(f"expected a 4-d image array, got shape {array.shape}")
    if array.dtype == np.uint8:
        n, h, w, c = array.shape  # NHWC
    elif array.dtype in (np.float32, np.float64, np.float16):
        n, c, h, w = array.shape  # NCHW in [-1, 1]
    else:
        raise ValueError(f"expected uint8 NHWC or float NCHW images, got dtype {array.dtype}")
    if c not in (1, 3):
        raise ValueError(f"images must have 1 or 3 channels, got {c}")
    if not (1 <= n <= MAX_IMAGES) or not (4 <= h <= 1024 and 4 <= w <= 1024):
        raise ValueError(f"unsupported archive shape {array.shape}")
    return int(n), (int(c), int(h), int(w))


class NpzSource:
    max_samples: int | None

    def __init__(self, path: Path) -> None:
        self._array = _npz_array(path)
        self.max_samples, self.image_shape = _layout(self._array)

    def generate(self, indices: NDArray[np.int64]) -> SampleChunk:
        check_indices(indices, self.max_samples)
        rows = np.asarray(self._array[indices])
        if rows.dtype == np.uint8:
            images = torch.from_numpy(rows.astype(np.float32)).permute(0, 3, 1, 2) / 127.5 - 1
        else:
            images = torch.from_numpy(rows.astype(np.float32)).clamp(-1, 1)
        if not torch.isfinite(images).all():
            raise ValueError("the archive holds NaN or infinite values")
        return SampleChunk(images=images.contiguous(), identities=None)
