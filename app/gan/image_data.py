"""Finite image datasets held in memory: arrays of images sampled with replacement.

Training draws batches as i.i.d. picks from the array (not epochs), so a batch is a pure function
of the seed and the step. Images from files on local disk come from a `.npz` archive (uint8 NHWC
or float NCHW in [-1, 1], the sample-archive convention of DESIGN.md) or a folder of image files;
both are loaded once, checked, and kept as uint8 when they arrive as uint8 (a quarter of float's
memory), converted to [-1, 1] float per batch.
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import NDArray
from PIL import Image, UnidentifiedImageError

MAX_IMAGES = 200_000  # images loaded into memory by default; a caller can raise it
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")

StrPath = str | os.PathLike[str]


@dataclass(frozen=True)
class ImageArrayDataset:
    """N images (N, C, H, W): uint8 in [0, 255] or float32 in [-1, 1], with optional labels."""

    name: str  # what make_dataset was called with, for messages
    images: torch.Tensor  # (N, C, H, W), uint8 or float32
    labels: torch.Tensor | None  # (N,) int64 class of each image, or None when unknown
    n_modes: int  # number of classes when labels are known, else 0

    def __post_init__(self) -> None:
        if self.images.dim() != 4 or self.images.shape[0] == 0:
            raise ValueError(f"{self.name}: need a non-empty (N, C, H, W) image tensor")
        if self.images.dtype not in (torch.uint8, torch.float32):
            raise ValueError(f"{self.name}: images must be uint8 or float32")
        if self.labels is not None and self.labels.shape != (self.images.shape[0],):
            raise ValueError(f"{self.name}: need one label per image")

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return tuple(int(s) for s in self.images.shape[1:])

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def sample(
        self, n: int, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """n images (n, C, H, W) float32 in [-1, 1], drawn with replacement, and their labels
        (-1 where unknown)."""
        if n < 0:
            raise ValueError(f"n must be non-negative, got {n}")
        index = torch.randint(len(self), (n,), generator=generator)
        labels = (
            torch.full((n,), -1, dtype=torch.int64) if self.labels is None else self.labels[index]
        )
        return to_unit_range(self.images[index]), labels


def to_unit_range(images: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float32 [-1, 1]; float images pass through as float32."""
    if images.dtype == torch.uint8:
        return images.to(torch.float32) / 127.5 - 1
    return images.to(torch.float32)


def resize_images(images: torch.Tensor, size: int) -> torch.Tensor:
    """Float (N, C, H, W) -> (N, C, size, size), bilinear with antialiasing when shrinking.

    Bilinear weights are convex, so values in [-1, 1] stay in [-1, 1].
    """
    if images.shape[-2:] == (size, size):
        return images
    shrinking = size < max(images.shape[-2:])
    return F.interpolate(
        images, size=(size, size), mode="bilinear", align_corners=False, antialias=shrinking
    ).clamp(-1, 1)


def npz_dataset(
    path: StrPath,
    key: str | None = None,
    labels_key: str | None = None,
    image_size: int | None = None,
    max_images: int = MAX_IMAGES,
) -> ImageArrayDataset:
    """Images from a `.npz` file: uint8 NHWC in [0, 255] or float NCHW in [-1, 1].

    `key` names the image array (default: the file's only array, or its only array besides
    `labels_key`); `labels_key` an optional (N,) integer array of classes, which become the known
    modes; `image_size` resizes to a square side. Loaded with allow_pickle=False.
    """
    path = Path(path)
    arrays = _read_npz(path)
    image_key = _pick_key(list(arrays), key, labels_key, path)
    array = _images_array(arrays[image_key], max_images, path)
    labels = None if labels_key is None else _labels_array(arrays[labels_key], labels_key, path)
    if labels is not None and labels.shape[0] != array.shape[0]:
        raise ValueError(
            f"{path}: {labels.shape[0]} labels for {array.shape[0]} images in {image_key!r}"
        )
    if array.dtype == np.uint8:
        images = torch.from_numpy(np.ascontiguousarray(array.transpose(0, 3, 1, 2)))
    else:
        images = torch.from_numpy(array.astype(np.float32))
        if not torch.isfinite(images).all() or images.abs().max() > 1:
            raise ValueError(f"{path}: float images must be finite and within [-1, 1]")
    if image_size is not None:
        images = _resized(images, image_size)
    return _labelled(f"npz:{path.name}", images, labels)


def image_folder_dataset(
    path: StrPath, image_size: int = 32, channels: int = 3, max_images: int = MAX_IMAGES
) -> ImageArrayDataset:
    """Every image file directly in the folder `path`, centre-cropped to a square and resized.

    `channels` 1 converts to grey, 3 to RGB. Files are read in sorted order; Pillow's
    decompression-bomb limit stays on.
    """
    folder = Path(path)
    if not folder.is_dir():
        raise ValueError(f"image folder {folder} does not exist or is not a directory")
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels!r}")
    _check_size(image_size)
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ValueError(f"no image files ({', '.join(IMAGE_SUFFIXES)}) in {folder}")
    if len(files) > max_images:
        raise ValueError(
            f"{folder} holds {len(files)} images; at most max_images={max_images} are loaded"
        )
    images = np.empty((len(files), channels, image_size, image_size), dtype=np.uint8)
    for i, file in enumerate(files):
        images[i] = _read_square(file, image_size, "L" if channels == 1 else "RGB")
    return _labelled(f"folder:{folder.name}", torch.from_numpy(images), None)


def _read_square(file: Path, size: int, mode: str) -> NDArray[np.uint8]:
    try:
        with Image.open(file) as opened:
            image = opened.convert(mode)
        side = min(image.size)
        left, top = (image.width - side) // 2, (image.height - side) // 2
        square = image.crop((left, top, left + side, top + side))
        array = np.asarray(square.resize((size, size), Image.Resampling.BILINEAR), dtype=np.uint8)
    except (UnidentifiedImageError, OSError) as exc:
        raise ValueError(f"cannot read image {file}: {exc}") from exc
    return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)


def _pick_key(names: list[str], key: str | None, labels_key: str | None, path: Path) -> str:
    if labels_key is not None and labels_key not in names:
        raise ValueError(f"{path}: no array {labels_key!r}; arrays: {', '.join(names)}")
    if key is not None:
        if key not in names:
            raise ValueError(f"{path}: no array {key!r}; arrays: {', '.join(names)}")
        return key
    candidates = [n for n in names if n != labels_key]
    if len(candidates) != 1:
        raise ValueError(
            f"{path}: holds arrays {', '.join(names) or '(none)'}; name the images with key="
        )
    return candidates[0]


def _images_array(array: NDArray[np.generic], max_images: int, path: Path) -> NDArray[np.generic]:
    if array.ndim != 4:
        raise ValueError(f"{path}: expected a 4-d image array, got shape {array.shape}")
    if array.dtype == np.uint8:
        channels = array.shape[3]  # NHWC
    elif array.dtype in (np.float16, np.float32, np.float64):
        channels = array.shape[1]  # NCHW
    else:
        raise ValueError(f"{path}: expected uint8 NHWC or float NCHW images, got {array.dtype}")
    if channels not in (1, 3):
        raise ValueError(f"{path}: images must have 1 or 3 channels, got shape {array.shape}")
    if not 1 <= array.shape[0] <= max_images:
        raise ValueError(
            f"{path}: holds {array.shape[0]} images; need 1 to max_images={max_images}"
        )
    return array


def _read_npz(path: Path) -> dict[str, NDArray[np.generic]]:
    """Every array in the archive; object arrays are refused (allow_pickle=False)."""
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):  # a bare .npy array
            raise ValueError("a .npy array, not a .npz archive")
        with loaded as archive:
            return {name: archive[name] for name in archive.files}
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        raise ValueError(f"{path}: not a readable .npz archive of plain arrays ({exc})") from exc


def _labels_array(labels: NDArray[np.generic], key: str, path: Path) -> NDArray[np.int64]:
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"{path}: labels {key!r} must be a 1-d integer array")
    return labels.astype(np.int64)


def _labelled(
    name: str, images: torch.Tensor, labels: NDArray[np.int64] | None
) -> ImageArrayDataset:
    """Labels renumbered 0..K-1 in sorted order, so K is the number of known modes."""
    if labels is None:
        return ImageArrayDataset(name, images, None, 0)
    classes, index = np.unique(labels, return_inverse=True)
    return ImageArrayDataset(name, images, torch.from_numpy(index.astype(np.int64)), len(classes))


def _resized(images: torch.Tensor, size: int) -> torch.Tensor:
    _check_size(size)
    resized = resize_images(to_unit_range(images), size)
    if images.dtype == torch.uint8:
        return ((resized + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
    return resized


def _check_size(size: object) -> None:
    if not isinstance(size, int) or isinstance(size, bool) or not 4 <= size <= 1024:
        raise ValueError(f"image_size must be an integer from 4 to 1024, got {size!r}")
