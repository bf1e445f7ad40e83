"""A trained GAN discriminator's last hidden layer as the embedding.

The discriminator was trained to tell this data from generated samples, so its features weigh
what differs between images of this domain and ignore much of what pixels count (a shift of the
background, a stroke's width). DESIGN.md lists it as the optional third embedder; for a generator
trained here it needs no weights from outside. Training runs save their discriminator as
`trained/run_<id>.discriminator.safetensors` under the models directory.

Only DCGAN discriminators embed images: the MLP family works on vectors, which no audit samples.
BatchNorm runs in eval mode (its running statistics), so a sample's row does not depend on the
other samples in its batch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

from app.embed.base import (
    check_fixed_shape,
    check_image_shape,
    embed_in_batches,
    l2_normalize,
    resolve_device,
)
from app.gan.architectures import DCGANDiscriminator
from app.gan.checkpoint import load_discriminator_safetensors

FeatureNormalize = Literal["none", "l2"]


class DiscriminatorEmbedder:
    """Rows = the flattened activations feeding a DCGAN discriminator's final logit."""

    def __init__(
        self,
        weights: Path,
        image_shape: tuple[int, int, int],
        device: str | torch.device | None = None,
        normalize: FeatureNormalize = "l2",
        batch_size: int = 256,
    ) -> None:
        check_image_shape(image_shape)
        if normalize not in ("none", "l2"):
            raise ValueError(f"normalize must be 'none' or 'l2', got {normalize!r}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        module, architecture, options = load_discriminator_safetensors(weights)
        if not isinstance(module, DCGANDiscriminator):
            raise ValueError(
                f"a {architecture!r} discriminator cannot embed images; only DCGAN ones can"
            )
        expected = (options["channels"], options["image_size"], options["image_size"])
        if tuple(image_shape) != expected:
            raise ValueError(
                f"this discriminator was trained on images of shape {expected}, "
                f"but the generator's samples have shape {tuple(image_shape)}"
            )
        self.image_shape = expected
        self.device = resolve_device(device)
        self.normalize: FeatureNormalize = normalize
        self.batch_size = batch_size
        self._features: nn.Module = module.main[:-1].to(self.device).eval()
        with torch.inference_mode():
            probe = torch.zeros((1, *expected), device=self.device)
            self.dim = int(self._features(probe).reshape(1, -1).shape[1])
        self.name = f"discriminator({Path(weights).name}, normalize={normalize})"

    def embed(self, images: torch.Tensor) -> NDArray[np.float32]:
        """Rows (B, dim) for images (B, C, H, W) of the discriminator's training shape."""
        check_fixed_shape(images, self.image_shape)
        return embed_in_batches(images, self.dim, self.batch_size, self.device, self._rows)

    def _rows(self, batch: torch.Tensor) -> torch.Tensor:
        rows = self._features(batch).reshape(batch.shape[0], -1)
        return l2_normalize(rows) if self.normalize == "l2" else rows
