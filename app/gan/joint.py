"""Networks over (x, z) pairs, shared by VEEGAN and BiGAN/ALI.

Both models add a map x -> z (VEEGAN's reconstructor F, BiGAN's encoder E) and a discriminator
that sees a sample together with its code, so it can tell the generator's joint p(z) G(x|z) from
the data's joint p(x) E(z|x). MLPs take vectors (images flattened); the DCGAN pair takes square
images the way ALI's networks do (Dumoulin et al. 2017, appendix A): the encoder is DCGAN's
discriminator trunk ending in z, and the discriminator joins a convolutional D(x), a D(z) and a
joint D(x, z) on their concatenated features. The encoders are deterministic, as BiGAN's and
VEEGAN's Algorithm 1 allow, or ALI's: a Gaussian whose mean and log-sigma the encoder predicts,
sampled by reparameterisation (Dumoulin et al. 2017, sec. 2.2).
"""

from __future__ import annotations

import torch
from torch import nn

from app.gan.architectures import DCGANConfig, MLPConfig, dcgan_down, dcgan_init_, leaky_relu, mlp


class MLPEncoder(nn.Module):
    """x (B, data_dim) -> (B, outputs): z itself (outputs = latent_dim, deterministic, as
    VEEGAN's Algorithm 1 and BiGAN have it), or ALI's Gaussian's mean and log-sigma (2 x)."""

    def __init__(self, config: MLPConfig, outputs: int | None = None) -> None:
        super().__init__()
        self.config = config
        sizes = [config.data_dim, *[config.g_hidden] * config.depth, outputs or config.latent_dim]
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


class DCGANEncoder(nn.Module):
    """Images (B, C, S, S) -> (B, outputs): DCGAN's discriminator trunk at the generator's
    width (the encoder learns with G), its last 4x4 convolution giving z (outputs =
    latent_dim) or ALI's Gaussian's mean and log-sigma (2 x latent_dim)."""

    def __init__(self, config: DCGANConfig, outputs: int | None = None) -> None:
        super().__init__()
        self.config = config
        layers, channels = dcgan_down(config, config.g_channels)
        # (B, ngf*mult, 4, 4) -> (B, outputs, 1, 1), linear: z is unbounded
        layers.append(nn.Conv2d(channels, outputs or config.latent_dim, 4, 1, 0))
        self.main = nn.Sequential(*layers)
        dcgan_init_(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x).flatten(1)


class JointDCGANDiscriminator(nn.Module):
    """(images (B, C, S, S), z (B, latent_dim)) -> logits (B,): ALI's three parts, D(x) a DCGAN
    trunk and a 4x4 convolution to F features, D(z) two layers to F, D(x, z) two layers on the
    2F concatenated, with F the trunk's last channel count; widths follow d_width."""

    def __init__(self, config: DCGANConfig) -> None:
        super().__init__()
        self.config = config
        layers, features = dcgan_down(config, config.d_channels, config.d_norm)
        layers += [nn.Conv2d(features, features, 4, 1, 0), nn.LeakyReLU(0.2, inplace=True)]
        self.x_part = nn.Sequential(*layers, nn.Flatten())
        self.z_part = mlp([config.latent_dim, features, features], leaky_relu)
        self.z_activation = leaky_relu()
        self.joint = mlp([2 * features, 2 * features, 1], leaky_relu)
        dcgan_init_(self)

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        joined = torch.cat([self.x_part(x), self.z_activation(self.z_part(z))], dim=1)
        return self.joint(joined).reshape(-1)
