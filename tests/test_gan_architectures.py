"""Shapes, init and option validation of the built-in architectures, plus a one-step smoke train."""

from __future__ import annotations

from typing import TypeVar

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from app.gan.architectures import DCGANConfig, DCGANGenerator
from app.gan.registry import (
    ARCHITECTURES,
    GeneratorSpec,
    build_discriminator,
    build_generator,
    canonical_options,
)

M = TypeVar("M", bound=nn.Module)


def layers(module: nn.Module, kind: type[M]) -> list[M]:
    return [m for m in module.modules() if isinstance(m, kind)]


@pytest.mark.parametrize(
    ("image_size", "channels", "latent_dim", "g_width", "d_width"),
    [
        (8, 1, 1, 0.25, 0.5),
        (16, 3, 7, 0.125, 0.25),
        (32, 1, 100, 0.25, 2.0),
        (64, 3, 16, 0.125, 0.125),
    ],
)
def test_dcgan_shapes(
    image_size: int, channels: int, latent_dim: int, g_width: float, d_width: float
) -> None:
    options = dict(
        image_size=image_size,
        channels=channels,
        latent_dim=latent_dim,
        g_width=g_width,
        d_width=d_width,
    )
    generator, spec = build_generator("dcgan", options)
    discriminator = build_discriminator("dcgan", options)
    assert spec == GeneratorSpec(latent_dim, (channels, image_size, image_size))
    with torch.no_grad():
        images = generator(torch.randn(3, latent_dim))
        logits = discriminator(images)
    assert images.shape == (3, channels, image_size, image_size)
    assert images.abs().max() <= 1.0
    assert logits.shape == (3,)


def test_width_multipliers_scale_channels() -> None:
    g1, _ = build_generator("dcgan", {"image_size": 16, "g_width": 1.0})
    g2, _ = build_generator("dcgan", {"image_size": 16, "g_width": 2.0})
    d1 = build_discriminator("dcgan", {"image_size": 16, "d_width": 0.5})
    # 16x16: two stages, first layer has base*2 channels at width 1
    assert layers(g1, nn.ConvTranspose2d)[0].out_channels == 128
    assert layers(g2, nn.ConvTranspose2d)[0].out_channels == 256
    assert layers(d1, nn.Conv2d)[0].out_channels == 32
    # ConvT(100, 2w) + BN(2w) + ConvT(2w, w) + BN(w) + ConvT(w, 3), kernels 4x4, no biases
    for module, w in ((g1, 64), (g2, 128)):
        expected = 100 * 2 * w * 16 + 2 * 2 * w + 2 * w * w * 16 + 2 * w + w * 3 * 16
        assert sum(p.numel() for p in module.parameters()) == expected


def test_dcgan_64_matches_pytorch_examples_layout() -> None:
    """Same Sequential indices as pytorch/examples dcgan, so its state_dicts load."""
    generator = DCGANGenerator(DCGANConfig(latent_dim=100, image_size=64, channels=3))
    keys = [k for k in generator.state_dict() if k.endswith("weight")]
    assert keys == [f"main.{i}.weight" for i in (0, 1, 3, 4, 6, 7, 9, 10, 12)]
    assert layers(generator, nn.ConvTranspose2d)[0].weight.shape == (100, 512, 4, 4)


def test_dcgan_init_is_normal_002() -> None:
    generator, _ = build_generator("dcgan", {"image_size": 32, "g_width": 1.0})
    conv = torch.cat([m.weight.flatten() for m in layers(generator, nn.ConvTranspose2d)])
    bn = torch.cat([m.weight.flatten() for m in layers(generator, nn.BatchNorm2d)])
    assert conv.mean().item() == pytest.approx(0.0, abs=1e-3)
    assert conv.std().item() == pytest.approx(0.02, rel=0.05)
    assert bn.mean().item() == pytest.approx(1.0, abs=5e-3)
    assert bn.std().item() == pytest.approx(0.02, rel=0.2)


def test_mlp_shapes_and_widths() -> None:
    options = {"data_dim": 5, "latent_dim": 3, "hidden": 8, "depth": 3, "d_width": 2}
    generator, spec = build_generator("mlp", options)
    discriminator = build_discriminator("mlp", options)
    assert spec == GeneratorSpec(3, (5,))
    x = generator(torch.randn(4, 3))
    assert x.shape == (4, 5)
    assert discriminator(x).shape == (4,)
    assert len(layers(generator, nn.Linear)) == 4
    assert layers(discriminator, nn.Linear)[0].out_features == 16


def test_an_mlp_draws_images_in_range_and_judges_them_flat() -> None:
    options = {"data_dim": 3 * 8 * 8, "channels": 3, "image_size": 8, "latent_dim": 4, "hidden": 16}
    generator, spec = build_generator("mlp", options)
    discriminator = build_discriminator("mlp", options)
    assert spec == GeneratorSpec(4, (3, 8, 8))
    with torch.no_grad():
        images = generator(10 * torch.randn(6, 4))  # large z: the output still saturates in range
        assert images.shape == (6, 3, 8, 8)
        assert float(images.min()) >= -1 and float(images.max()) <= 1
        assert torch.equal(discriminator(images), discriminator(images.flatten(1)))
    assert canonical_options("mlp", {})["image_size"] == 0  # vector data by default


def test_canonical_options_fill_defaults() -> None:
    options = canonical_options("dcgan", {"image_size": 32})
    assert options == {
        "latent_dim": 100,
        "image_size": 32,
        "channels": 3,
        "base_width": 64,
        "g_width": 1.0,
        "d_width": 1.0,
        "d_norm": "batch",
    }
    assert set(ARCHITECTURES) == {"dcgan", "mlp"}


@pytest.mark.parametrize(("d_norm", "kind"), [("batch", nn.BatchNorm2d), ("layer", nn.GroupNorm)])
def test_the_discriminators_normalisation_is_an_option(d_norm: str, kind: type[nn.Module]) -> None:
    """A layer-norm critic judges each sample on its own (what a per-sample gradient penalty
    needs); BatchNorm in training mode makes a sample's logit depend on the rest of its batch."""
    torch.manual_seed(0)
    options = {"image_size": 16, "channels": 1, "base_width": 8, "d_norm": d_norm}
    discriminator = build_discriminator("dcgan", options).train()
    assert layers(discriminator, kind)
    assert not layers(discriminator, nn.BatchNorm2d if kind is nn.GroupNorm else nn.GroupNorm)
    batch = torch.randn(6, 1, 16, 16)
    with torch.no_grad():
        together = discriminator(batch)[:3]
        alone = discriminator(batch[:3])
    assert torch.allclose(together, alone, atol=1e-6) == (d_norm == "layer")
    plain = build_discriminator("dcgan", options | {"d_norm": "none"})
    assert not layers(plain, nn.BatchNorm2d) and not layers(plain, nn.GroupNorm)


@pytest.mark.parametrize(
    ("architecture", "options", "message"),
    [
        ("stylegan", {}, "unknown architecture 'stylegan'; known: dcgan, mlp"),
        ("dcgan", {"image_size": 48}, "image_size must be one of 8, 16, 32, 64"),
        ("dcgan", {"channels": 2}, "channels must be 1 or 3"),
        ("dcgan", {"latent_dim": 0}, "latent_dim must be an integer from 1 to 512"),
        ("dcgan", {"latent_dim": 513}, "latent_dim must be an integer from 1 to 512"),
        ("dcgan", {"latent_dim": 64.0}, "latent_dim must be an integer"),
        ("dcgan", {"latent_dim": True}, "latent_dim must be an integer"),
        ("dcgan", {"g_width": 0}, "g_width must be a number in (0, 16]"),
        ("dcgan", {"d_width": "2"}, "d_width must be a number"),
        ("dcgan", {"g_width": 0.001}, "fewer than 1 unit"),
        ("dcgan", {"ngf": 64}, "unknown option(s) ngf for architecture 'dcgan'; allowed:"),
        ("dcgan", {"d_norm": "spectral"}, "d_norm must be one of batch, layer, none"),
        ("mlp", {"depth": 0}, "depth must be an integer from 1 to 16"),
        ("mlp", {"image_size": 64}, "channels and image_size go together"),
        ("mlp", {"channels": 1}, "channels and image_size go together"),
        ("mlp", {"channels": 2, "image_size": 4, "data_dim": 32}, "channels must be 1 or 3"),
        ("mlp", {"channels": 1, "image_size": 8, "data_dim": 63}, "data_dim must be channels x"),
        ("mlp", {"channels": 3, "image_size": 129, "data_dim": 49923}, "image_size must be an"),
        ("mlp", [1, 2], "options must be a JSON object"),
    ],
)
def test_bad_options_raise_actionable_errors(
    architecture: str, options: object, message: str
) -> None:
    with pytest.raises(ValueError) as info:
        build_generator(architecture, options)  # type: ignore[arg-type]
    assert message in str(info.value)
    with pytest.raises(ValueError):
        build_discriminator(architecture, options)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("architecture", "options"),
    [
        (
            "dcgan",
            {"image_size": 16, "channels": 1, "latent_dim": 8, "g_width": 0.25, "d_width": 0.25},
        ),
        ("mlp", {"latent_dim": 2, "hidden": 16}),
    ],
)
def test_one_training_step_moves_both_networks(
    architecture: str, options: dict[str, object]
) -> None:
    """DCGAN's --dry-run: one D step and one G step on tiny synthetic data, on CPU."""
    torch.manual_seed(0)
    generator, spec = build_generator(architecture, options)
    discriminator = build_discriminator(architecture, options)
    opt_g = torch.optim.Adam(generator.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=2e-4, betas=(0.5, 0.999))
    real = torch.rand(8, *spec.output_shape) * 2 - 1
    g_before = [p.detach().clone() for p in generator.parameters()]
    d_before = [p.detach().clone() for p in discriminator.parameters()]

    # D step: maximize log D(x) + log(1 - D(G(z)))
    fake = generator(torch.randn(8, spec.latent_dim))
    d_real, d_fake = discriminator(real), discriminator(fake.detach())
    loss_d = F.binary_cross_entropy_with_logits(
        d_real, torch.ones_like(d_real)
    ) + F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake))
    opt_d.zero_grad()
    loss_d.backward()
    opt_d.step()
    # G step: maximize log D(G(z))
    d_fake = discriminator(fake)
    loss_g = F.binary_cross_entropy_with_logits(d_fake, torch.ones_like(d_fake))
    opt_g.zero_grad()
    loss_g.backward()
    opt_g.step()

    assert torch.isfinite(loss_d) and torch.isfinite(loss_g)
    assert all(not torch.equal(a, b) for a, b in zip(g_before, generator.parameters(), strict=True))
    assert all(
        not torch.equal(a, b) for a, b in zip(d_before, discriminator.parameters(), strict=True)
    )
