"""A digit classifier as the embedding: near means "the same digits", not "the same ink".

On stacked digits the modes are class triples, and two samples of one triple in different
handwriting are far apart in pixels, so a pixel audit cannot rank them first. Here each channel
is classified by one of `app.gan.digit_classifier`'s networks (the ones that count the modes,
trained by the project offline: on the sklearn digits, or on MNIST) and a sample's row is its
per-channel class probabilities side by side: samples read as the same triple get near-identical
rows, and a different class in any channel moves the row by up to sqrt(2).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import NDArray
from torch import nn

from app.embed.base import check_fixed_shape, check_image_shape, embed_in_batches, resolve_device
from app.gan.digit_classifier import (
    digit_set,
    load_digit_classifier,
    load_or_train_digit_classifier,
)
from app.gan.digits import DIGIT_CLASSES, DIGIT_SIZE


class DigitEmbedder:
    """Images (B, C, H, W), C 1 or 3, sides >= 8 -> rows (B, 10 C) of per-channel probabilities.

    Each channel is one digit, brought to the classifier's side the way its datasets are made:
    the sklearn one average-pools to 8x8 (undoing the bilinear upsampling of the larger digit
    datasets), the MNIST one pads 28x28 to 32x32 and resizes other sides. The classifier is
    loaded from `classifier_path` on the first `embed`, and (with `train`) trained and cached
    there (5-15 s on CPU) when absent, so constructing one to check an audit's options costs
    nothing; without `train` the file must hold a cache of the digit set's classifier.
    """

    def __init__(
        self,
        image_shape: tuple[int, int, int],
        classifier_path: Path,
        device: str | torch.device | None = None,
        batch_size: int = 4096,
        digits: str = "sklearn",
        train: bool = True,
    ) -> None:
        channels, height, width = check_image_shape(image_shape)
        if min(height, width) < DIGIT_SIZE:
            raise ValueError(
                f"the digits embedder needs images of at least {DIGIT_SIZE}x{DIGIT_SIZE}, "
                f"got {height}x{width}"
            )
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.digits = digit_set(digits)
        self.image_shape = (channels, height, width)
        self.classifier_path = Path(classifier_path)
        self.train = train
        self.device = resolve_device(device)
        self.batch_size = batch_size
        self.dim = channels * DIGIT_CLASSES
        weights = "" if train else f" {self.classifier_path.name}"
        self.name = f"digits({self.digits.name} classifier{weights}, probabilities per channel)"
        self._model: nn.Module | None = None

    def embed(self, images: torch.Tensor) -> NDArray[np.float32]:
        """Rows (B, 10 C) for images (B, C, H, W) of exactly the shape given at construction."""
        check_fixed_shape(images, self.image_shape)
        return embed_in_batches(images, self.dim, self.batch_size, self.device, self._rows)

    def _classifier(self) -> nn.Module:
        if self._model is None:
            path, digits = self.classifier_path, self.digits.name
            if self.train:
                trained = load_or_train_digit_classifier(path, digits=digits)
            else:
                trained = load_digit_classifier(path, digits)
            self._model = trained.model.to(self.device).eval()
        return self._model

    def _rows(self, batch: torch.Tensor) -> torch.Tensor:
        b, c, h, w = batch.shape
        digits = batch.reshape(b * c, 1, h, w)  # every channel is one digit, read at any (h, w)
        probabilities = F.softmax(self._classifier()(digits), dim=1)  # (B C, 10)
        return probabilities.reshape(b, c * DIGIT_CLASSES)
