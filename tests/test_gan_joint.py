"""VEEGAN and BiGAN/ALI: losses on fixed values and one step that routes each gradient correctly."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from app.gan.architectures import DCGANConfig, DCGANGenerator, MLPConfig
from app.gan.bigan import BiGAN, bigan_d, bigan_ge, bigan_step
from app.gan.joint import DCGANEncoder, JointDCGANDiscriminator, JointMLPDiscriminator, MLPEncoder
from app.gan.veegan import VEEGAN, veegan_d, veegan_g, veegan_reconstruction, veegan_step

CONFIG = MLPConfig(data_dim=2, latent_dim=3, hidden=8, depth=2)
# 16x16: two stages, so the image networks' BatchNorm is in the step too
IMAGES = DCGANConfig(latent_dim=3, image_size=16, channels=1, base_width=4)
# (networks, a batch of real data) per architecture
KINDS = {
    "mlp": (lambda model: model.mlp(CONFIG), (16, 2)),
    "dcgan": (lambda model: model.dcgan(IMAGES), (16, 1, 16, 16)),
}


def softplus(x: float) -> float:
    return math.log1p(math.exp(x))


def test_joint_networks_shapes() -> None:
    x, z = torch.randn(5, 2), torch.randn(5, 3)
    assert MLPEncoder(CONFIG)(x).shape == (5, 3)
    assert JointMLPDiscriminator(CONFIG)(x, z).shape == (5,)


@pytest.mark.parametrize(("size", "channels"), [(8, 1), (16, 3), (32, 1), (64, 3)])
def test_image_joint_networks_shapes_and_widths(size: int, channels: int) -> None:
    config = DCGANConfig(latent_dim=5, image_size=size, channels=channels, base_width=4)
    x, z = torch.randn(2, channels, size, size), torch.randn(2, 5)
    assert DCGANEncoder(config)(x).shape == (2, 5)
    assert JointDCGANDiscriminator(config)(x, z).shape == (2,)
    assert DCGANGenerator(config)(z).shape == x.shape
    # The discriminator's width follows d_width, the encoder's g_width (it learns with G).
    wide = DCGANConfig(latent_dim=5, image_size=size, channels=channels, base_width=4, d_width=2)
    first = [m for m in JointDCGANDiscriminator(wide).modules() if isinstance(m, nn.Conv2d)][0]
    assert first.out_channels == 8
    first = [m for m in DCGANEncoder(wide).modules() if isinstance(m, nn.Conv2d)][0]
    assert first.out_channels == 4


def test_veegan_losses_by_hand() -> None:
    d_gen, d_data = torch.tensor([0.5, -1.0]), torch.tensor([2.0, 0.0])
    # -log sigma(a) = softplus(-a); -log(1 - sigma(b)) = softplus(b)
    expected_d = (softplus(-0.5) + softplus(1.0)) / 2 + (softplus(2.0) + softplus(0.0)) / 2
    assert veegan_d(d_gen, d_data).item() == pytest.approx(expected_d)

    z = torch.tensor([[1.0, 2.0], [0.0, 0.0]])
    z_rec = torch.tensor([[0.0, 0.0], [0.0, 1.0]])
    # squared distances 1 + 4 = 5 and 1, averaged over the batch
    assert veegan_reconstruction(z, z_rec).item() == pytest.approx(3.0)
    assert veegan_g(d_gen, z, z_rec).item() == pytest.approx(-0.25 + 3.0)


def test_bigan_losses_by_hand() -> None:
    d_enc, d_gen = torch.tensor([3.0]), torch.tensor([-2.0])
    assert bigan_d(d_enc, d_gen).item() == pytest.approx(softplus(-3.0) + softplus(-2.0))
    assert bigan_ge(d_enc, d_gen).item() == pytest.approx(softplus(2.0) + softplus(3.0))


def sgd_step_delta(before: list[torch.Tensor], module: nn.Module) -> list[torch.Tensor]:
    """With SGD at lr=1, before - after is exactly the gradient the step used."""
    return [b - a.detach() for b, a in zip(before, module.parameters(), strict=True)]


def snapshot(module: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def expected_grads(loss: torch.Tensor, module: nn.Module) -> list[torch.Tensor]:
    return list(torch.autograd.grad(loss, list(module.parameters()), retain_graph=True))


def assert_close(a: list[torch.Tensor], b: list[torch.Tensor]) -> None:
    for x, y in zip(a, b, strict=True):
        torch.testing.assert_close(x, y, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("kind", KINDS)
def test_veegan_step_follows_algorithm_1(kind: str) -> None:
    torch.manual_seed(0)
    build, shape = KINDS[kind]
    model = build(VEEGAN)
    real = torch.randn(*shape)

    # Algorithm 1's three gradients, computed directly from the same z
    z = torch.randn(16, 3, generator=torch.Generator().manual_seed(7))
    x_g = model.generator(z)
    d_gen = model.discriminator(x_g, z)
    d_data = model.discriminator(real, model.reconstructor(real))
    z_rec = model.reconstructor(x_g)
    want_d = expected_grads(veegan_d(d_gen, d_data), model.discriminator)
    want_f = expected_grads(veegan_reconstruction(z, z_rec), model.reconstructor)
    want_g = expected_grads(veegan_g(d_gen, z, z_rec), model.generator)

    before = {name: snapshot(getattr(model, name)) for name in model.param_groups()}
    optimizers = {
        name: torch.optim.SGD(params, lr=1.0) for name, params in model.param_groups().items()
    }
    losses = veegan_step(model, optimizers, real, torch.Generator().manual_seed(7))

    assert set(losses) == {"discriminator", "reconstructor", "generator"}
    assert all(math.isfinite(v) for v in losses.values())
    assert_close(sgd_step_delta(before["discriminator"], model.discriminator), want_d)
    assert_close(sgd_step_delta(before["reconstructor"], model.reconstructor), want_f)
    assert_close(sgd_step_delta(before["generator"], model.generator), want_g)


@pytest.mark.parametrize("kind", KINDS)
def test_bigan_step_updates_generator_and_encoder_with_swapped_labels(kind: str) -> None:
    torch.manual_seed(0)
    build, shape = KINDS[kind]
    model = build(BiGAN)
    real = torch.randn(*shape)

    z = torch.randn(16, 3, generator=torch.Generator().manual_seed(3))
    d_enc = model.discriminator(real, model.encoder(real))
    d_gen = model.discriminator(model.generator(z), z)
    want_d = expected_grads(bigan_d(d_enc, d_gen), model.discriminator)
    want_e = expected_grads(bigan_ge(d_enc, d_gen), model.encoder)
    want_g = expected_grads(bigan_ge(d_enc, d_gen), model.generator)

    before = {name: snapshot(getattr(model, name)) for name in model.param_groups()}
    optimizers = {
        name: torch.optim.SGD(params, lr=1.0) for name, params in model.param_groups().items()
    }
    losses = bigan_step(model, optimizers, real, torch.Generator().manual_seed(3))

    assert all(math.isfinite(v) for v in losses.values())
    assert_close(sgd_step_delta(before["discriminator"], model.discriminator), want_d)
    assert_close(sgd_step_delta(before["encoder"], model.encoder), want_e)
    assert_close(sgd_step_delta(before["generator"], model.generator), want_g)


@pytest.mark.parametrize("kind", KINDS)
def test_ali_samples_its_codes_by_reparameterisation(kind: str) -> None:
    """ALI's encoder gives a Gaussian's mean and log-sigma; the step draws z from it after the
    generator's z, from the same generator, and the gradients reach both through the draw."""
    torch.manual_seed(0)
    _build, shape = KINDS[kind]
    if kind == "mlp":
        model = BiGAN.mlp(CONFIG, stochastic=True)
    else:
        model = BiGAN.dcgan(IMAGES, stochastic=True)
    real = torch.randn(*shape)
    assert model.encoder(real).shape == (16, 6)  # mean and log-sigma of a 3-d code

    noise = torch.Generator().manual_seed(3)
    z = torch.randn(16, 3, generator=noise)
    eps = torch.randn(16, 3, generator=noise)
    mu, log_sigma = model.encoder(real).chunk(2, dim=1)
    d_enc = model.discriminator(real, mu + log_sigma.exp() * eps)
    d_gen = model.discriminator(model.generator(z), z)
    want_e = expected_grads(bigan_ge(d_enc, d_gen), model.encoder)
    want_d = expected_grads(bigan_d(d_enc, d_gen), model.discriminator)

    before = {name: snapshot(getattr(model, name)) for name in model.param_groups()}
    optimizers = {
        name: torch.optim.SGD(params, lr=1.0) for name, params in model.param_groups().items()
    }
    bigan_step(model, optimizers, real, torch.Generator().manual_seed(3))
    assert_close(sgd_step_delta(before["encoder"], model.encoder), want_e)
    assert_close(sgd_step_delta(before["discriminator"], model.discriminator), want_d)
    # Two draws differ; the deterministic BiGAN's do not.
    assert not torch.equal(model.encode(real), model.encode(real))
    plain = BiGAN.mlp(CONFIG)
    x = torch.randn(4, 2)
    assert torch.equal(plain.encode(x), plain.encode(x))
