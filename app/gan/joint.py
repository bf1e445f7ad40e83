"""Networks over (x, z) pairs, shared by VEEGAN and BiGAN/ALI.

Both models add a map x -> z (VEEGAN's reconstructor F, BiGAN's encoder E) and a discriminator
that sees a sample together with its code, so it can tell the generator's joint p(z) G(x|z) from
the data's joint p(x) E(z|x). Only MLPs are provided; image tensors are flattened.
"""

from __future__ import annotations

import torch
from torch import nn

from app.gan.architectures import MLPConfig, leaky_relu, mlp


class MLPEncoder(nn.Module):
    """x (B, data_dim) -> z (B, latent_dim); deterministic, as VEEGAN's Algorithm 1 allows."""

    def __init__(self, config: MLPConfig) -> None:
        super().__init__()
        self.config = config
        sizes = [config.data_dim, *[config.g_hidden] * config.depth, config.latent_dim]
        self.main = mlp(sizes, nn.ReLU)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x.flatten(1))


class JointMLPDiscriminator(nn.Module):
    """(x (B, data_dim), z (B, latent_dim)) -> logits (B,) on the concatenated pair."""

    def __init__(self, config: MLPConfig) -> None:
        super().__init__()
        self.config = config
        sizes = [config.data_dim + config.latent_dim, *[config.d_hidden] * config.depth, 1]
        self.main = mlp(sizes, leaky_relu)

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return self.main(torch.cat([x.flatten(1), z], dim=1)).reshape(-1)
