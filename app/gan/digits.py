"""scikit-learn's handwritten digits (1,797 images of 8x8, bundled with the library, so offline)
and stacked digits, the CPU-scale stand-in for stacked MNIST.

Stacked MNIST (Metz et al. 2017, "Unrolled GANs"; VEEGAN; PacGAN) puts three independently drawn
digits in the three colour channels, so the data has 10^3 = 1,000 modes, the triples of classes,
each with probability ~1/1,000. `StackedDigits` does the same with the sklearn digits; mode
`100 a + 10 b + c` is the triple (a, b, c) of the red, green and blue digits.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch
from numpy.typing import NDArray

from app.gan.image_data import ImageArrayDataset, resize_images

DIGIT_CLASSES = 10
DIGIT_SIZE = 8  # side of a sklearn digit
DIGIT_IMAGE_SIZES = (8, 16, 32, 64)  # sides a digit can be upsampled to (the DCGAN sizes)
STACKED_CHANNELS = 3


@functools.lru_cache(maxsize=1)
def _load_digits() -> tuple[NDArray[np.float32], NDArray[np.int64]]:
    from sklearn.datasets import load_digits  # imported here: sklearn takes ~1 s to import

    bunch = load_digits()
    return bunch.images.astype(np.float32), bunch.target.astype(np.int64)


def digit_arrays(image_size: int = DIGIT_SIZE) -> tuple[torch.Tensor, torch.Tensor]:
    """All 1,797 digits as (N, 1, S, S) float32 in [-1, 1] and their classes (N,) int64.

    sklearn's pixel values are counts 0..16, mapped linearly so 0 is -1 (background) and 16 is 1;
    a larger `image_size` upsamples bilinearly. Fresh tensors on every call.
    """
    check_digit_size(image_size)
    pixels, classes = _load_digits()
    images = torch.from_numpy(pixels.copy()).unsqueeze(1) / 8 - 1
    return resize_images(images, image_size), torch.from_numpy(classes.copy())


def check_digit_size(image_size: object) -> None:
    if not isinstance(image_size, int) or image_size not in DIGIT_IMAGE_SIZES:
        raise ValueError(
            f"image_size must be one of {', '.join(map(str, DIGIT_IMAGE_SIZES))}, "
            f"got {image_size!r}"
        )


def digits_dataset(image_size: int = DIGIT_SIZE) -> ImageArrayDataset:
    """The sklearn digits, one channel; its 10 known modes are the classes."""
    images, classes = digit_arrays(image_size)
    return ImageArrayDataset("digits", images, classes, DIGIT_CLASSES)


@dataclass(frozen=True)
class StackedDigits:
    """Three independently drawn digits as the three channels: 1,000 equally likely modes."""

    digits: torch.Tensor  # (N, 1, S, S) float32 in [-1, 1], the pool each channel draws from
    classes: torch.Tensor  # (N,) int64 class of each digit
    name: str = "stacked_digits"

    @property
    def n_modes(self) -> int:
        return DIGIT_CLASSES**STACKED_CHANNELS

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return (STACKED_CHANNELS, *(int(s) for s in self.digits.shape[2:]))

    def sample(
        self, n: int, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """n images (n, 3, S, S) and their modes (n,): 100 * red + 10 * green + blue class."""
        if n < 0:
            raise ValueError(f"n must be non-negative, got {n}")
        index = torch.randint(self.digits.shape[0], (n, STACKED_CHANNELS), generator=generator)
        images = self.digits[index].flatten(1, 2)  # (n, 3, 1, S, S) -> (n, 3, S, S)
        return images, triple_to_mode(self.classes[index])


def stacked_digits_dataset(image_size: int = DIGIT_SIZE) -> StackedDigits:
    images, classes = digit_arrays(image_size)
    return StackedDigits(images, classes)


def triple_to_mode(classes: torch.Tensor) -> torch.Tensor:
    """(n, k) digit classes -> (n,) mode index, the digits read as a base-10 number."""
    weights = DIGIT_CLASSES ** torch.arange(classes.shape[1] - 1, -1, -1, device=classes.device)
    return (classes * weights).sum(dim=1)
