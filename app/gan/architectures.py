"""Generator and discriminator networks: DCGAN for small square images, an MLP for vector data
or for images taken as flat vectors (the original GAN's MNIST networks, VEEGAN's and BiGAN's).

The DCGAN layers follow pytorch/examples `dcgan/main.py` (a `main` Sequential with the same layer
order), so a 64x64 state_dict saved by that script loads into `DCGANGenerator` unchanged.
Discriminators return logits of shape (B,); the losses apply the sigmoid where they need it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

DCGAN_IMAGE_SIZES = (8, 16, 32, 64)
MAX_LATENT_DIM = 512
MAX_WIDTH = 16.0
MAX_MLP_IMAGE_SIZE = 128  # 3 x 128^2 = 49,152 inputs, within data_dim's 65,536
# the DCGAN discriminator's normalisation: DCGAN's BatchNorm; "layer" (over C, H, W of each
# sample, a scale and shift per channel) for losses with a gradient penalty, which is taken per
# sample and is no longer the critic's if BatchNorm mixes the batch (Gulrajani et al. 2017, sec. 4)
D_NORMS = ("batch", "layer", "none")


@dataclass(frozen=True)
class DCGANConfig:
    """Options of the DCGAN pair; `g_width`/`d_width` scale `base_width` (the paper's RQ2 knob)."""

    latent_dim: int = 100  # size of z ~ N(0, I); pytorch/examples' nz
    image_size: int = 64  # side of the square output, one of DCGAN_IMAGE_SIZES
    channels: int = 3  # 1 (grey) or 3 (RGB)
    base_width: int = 64  # channels of the highest-resolution hidden layer at width 1 (ngf, ndf)
    g_width: float = 1.0  # generator width multiplier
    d_width: float = 1.0  # discriminator width multiplier
    d_norm: str = "batch"  # one of D_NORMS: the discriminator's normalisation layers

    def __post_init__(self) -> None:
        if self.d_norm not in D_NORMS:
            raise ValueError(f"d_norm must be one of {', '.join(D_NORMS)}, got {self.d_norm!r}")
        _check_int("latent_dim", self.latent_dim, 1, MAX_LATENT_DIM)
        if self.image_size not in DCGAN_IMAGE_SIZES:
            raise ValueError(
                f"image_size must be one of {', '.join(map(str, DCGAN_IMAGE_SIZES))}, "
                f"got {self.image_size!r}"
            )
        if self.channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {self.channels!r}")
        _check_int("base_width", self.base_width, 1, 1024)
        for name in ("g_width", "d_width"):
            _check_width(name, getattr(self, name), self.base_width)

    @property
    def n_stages(self) -> int:
        """Stride-2 stages between 4x4 and the output: 64 -> 4, 32 -> 3, 16 -> 2, 8 -> 1."""
        return self.image_size.bit_length() - 3

    @property
    def g_channels(self) -> int:
        return _scaled(self.base_width, self.g_width)

    @property
    def d_channels(self) -> int:
        return _scaled(self.base_width, self.d_width)


@dataclass(frozen=True)
class MLPConfig:
    """Options of the MLP pair for vector data such as the toy 2D mixtures, or for images."""

    data_dim: int = 2  # length of one sample vector (channels x image_size^2 for images)
    latent_dim: int = 2  # size of z ~ N(0, I)
    hidden: int = 128  # units per hidden layer at width 1
    depth: int = 2  # number of hidden layers in each network
    g_width: float = 1.0  # generator width multiplier
    d_width: float = 1.0  # discriminator width multiplier
    channels: int = 0  # images: 1 or 3; 0 for vector data
    image_size: int = 0  # images: side of the square image; 0 for vector data

    def __post_init__(self) -> None:
        _check_int("data_dim", self.data_dim, 1, 65536)
        _check_int("channels", self.channels, 0, 3)
        _check_int("image_size", self.image_size, 0, MAX_MLP_IMAGE_SIZE)
        if (self.channels == 0) != (self.image_size == 0):
            raise ValueError(
                "channels and image_size go together: both 0 for vector data, both set for images"
            )
        if self.image_size:
            if self.channels not in (1, 3):
                raise ValueError(f"channels must be 1 or 3 for images, got {self.channels}")
            flat = self.channels * self.image_size**2
            if self.data_dim != flat:
                raise ValueError(
                    f"data_dim must be channels x image_size^2 = {flat} for images, "
                    f"got {self.data_dim}"
                )
        _check_int("latent_dim", self.latent_dim, 1, MAX_LATENT_DIM)
        _check_int("hidden", self.hidden, 1, 8192)
        _check_int("depth", self.depth, 1, 16)
        for name in ("g_width", "d_width"):
            _check_width(name, getattr(self, name), self.hidden)

    @property
    def output_shape(self) -> tuple[int, ...]:
        """One sample: (channels, image_size, image_size) for images, (data_dim,) for vectors."""
        if self.image_size:
            return (self.channels, self.image_size, self.image_size)
        return (self.data_dim,)

    @property
    def g_hidden(self) -> int:
        return _scaled(self.hidden, self.g_width)

    @property
    def d_hidden(self) -> int:
        return _scaled(self.hidden, self.d_width)


def _check_int(name: str, value: object, low: int, high: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ValueError(f"{name} must be an integer from {low} to {high}, got {value!r}")


def _check_width(name: str, value: object, base: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= MAX_WIDTH:
        raise ValueError(f"{name} must be a number in (0, {MAX_WIDTH:g}], got {value!r}")
    if _scaled(base, value) < 1:
        raise ValueError(f"{name}={value!r} leaves fewer than 1 unit of the base width {base}")


def _scaled(base: int, width: float) -> int:
    return int(round(base * width))


def dcgan_init_(module: nn.Module) -> None:
    """DCGAN's init (Radford et al. 2016, sec. 4): conv/linear N(0, 0.02), BatchNorm N(1, 0.02)."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d | nn.Linear):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d | nn.BatchNorm1d | nn.GroupNorm):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


class DCGANGenerator(nn.Module):
    """z (B, latent_dim) -> images (B, C, S, S) in [-1, 1]."""

    def __init__(self, config: DCGANConfig) -> None:
        super().__init__()
        self.config = config
        ngf = config.g_channels
        mult = 2 ** (config.n_stages - 1)
        layers: list[nn.Module] = [
            # (B, nz, 1, 1) -> (B, ngf*mult, 4, 4)
            nn.ConvTranspose2d(config.latent_dim, ngf * mult, 4, 1, 0, bias=False),
            nn.BatchNorm2d(ngf * mult),
            nn.ReLU(True),
        ]
        while mult > 1:
            # each stage doubles the side and halves the channels
            layers += [
                nn.ConvTranspose2d(ngf * mult, ngf * mult // 2, 4, 2, 1, bias=False),
                nn.BatchNorm2d(ngf * mult // 2),
                nn.ReLU(True),
            ]
            mult //= 2
        # (B, ngf, S/2, S/2) -> (B, C, S, S)
        layers += [nn.ConvTranspose2d(ngf, config.channels, 4, 2, 1, bias=False), nn.Tanh()]
        self.main = nn.Sequential(*layers)
        dcgan_init_(self)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.main(z.reshape(z.shape[0], self.config.latent_dim, 1, 1))


def _norm(kind: str, channels: int) -> list[nn.Module]:
    if kind == "batch":
        return [nn.BatchNorm2d(channels)]
    if kind == "layer":  # GroupNorm with one group: each sample over (C, H, W)
        return [nn.GroupNorm(1, channels)]
    return []


def dcgan_down(config: DCGANConfig, ndf: int, norm: str = "batch") -> tuple[list[nn.Module], int]:
    """DCGAN's discriminator trunk, (B, C, S, S) -> (B, ndf * 2^(stages - 1), 4, 4): the layers
    and the channels they end with. Encoders over images share it (with BatchNorm)."""
    # (B, C, S, S) -> (B, ndf, S/2, S/2); no BatchNorm on the input layer (DCGAN paper)
    layers: list[nn.Module] = [
        nn.Conv2d(config.channels, ndf, 4, 2, 1, bias=False),
        nn.LeakyReLU(0.2, inplace=True),
    ]
    mult = 1
    for _ in range(config.n_stages - 1):
        layers += [
            nn.Conv2d(ndf * mult, ndf * mult * 2, 4, 2, 1, bias=norm == "none"),
            *_norm(norm, ndf * mult * 2),
            nn.LeakyReLU(0.2, inplace=True),
        ]
        mult *= 2
    return layers, ndf * mult


class DCGANDiscriminator(nn.Module):
    """Images (B, C, S, S) -> logits (B,)."""

    def __init__(self, config: DCGANConfig) -> None:
        super().__init__()
        self.config = config
        layers, channels = dcgan_down(config, config.d_channels, config.d_norm)
        # (B, ndf*mult, 4, 4) -> (B, 1, 1, 1)
        layers.append(nn.Conv2d(channels, 1, 4, 1, 0, bias=False))
        self.main = nn.Sequential(*layers)
        dcgan_init_(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x).reshape(-1)


def leaky_relu() -> nn.Module:
    """LeakyReLU with DCGAN's slope 0.2, used by every discriminator here."""
    return nn.LeakyReLU(0.2)


def mlp(sizes: list[int], activation: Callable[[], nn.Module]) -> nn.Sequential:
    """Linear layers through `sizes` with `activation()` between them (none after the last)."""
    layers: list[nn.Module] = []
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(fan_in, fan_out))
        if i < len(sizes) - 2:
            layers.append(activation())
    return nn.Sequential(*layers)


class MLPGenerator(nn.Module):
    """z (B, latent_dim) -> samples (B, data_dim), linear since toy data is unbounded; or images
    (B, C, S, S) through tanh into [-1, 1], as DCGAN's."""

    def __init__(self, config: MLPConfig) -> None:
        super().__init__()
        self.config = config
        sizes = [config.latent_dim, *[config.g_hidden] * config.depth, config.data_dim]
        self.main = mlp(sizes, nn.ReLU)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.main(z)
        if not self.config.image_size:
            return x
        return torch.tanh(x).reshape(-1, *self.config.output_shape)


class MLPDiscriminator(nn.Module):
    """Samples (B, data_dim), or images (B, C, S, S) taken flat -> logits (B,)."""

    def __init__(self, config: MLPConfig) -> None:
        super().__init__()
        self.config = config
        sizes = [config.data_dim, *[config.d_hidden] * config.depth, 1]
        self.main = mlp(sizes, leaky_relu)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x.flatten(1)).reshape(-1)
