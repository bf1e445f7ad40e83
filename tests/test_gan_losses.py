"""Each loss on fixed logits against the paper's formula computed by hand with `math`."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from app.gan import losses
from app.gan.losses import LOSSES, get_loss, gradient_penalty

REAL = [1.0, -0.5]
FAKE = [0.2, -1.0]
MEAN_REAL = 0.25  # (1.0 - 0.5) / 2
MEAN_FAKE = -0.4  # (0.2 - 1.0) / 2


def log_sigmoid(x: float) -> float:
    return -math.log1p(math.exp(-x))


def log_one_minus_sigmoid(x: float) -> float:
    return -math.log1p(math.exp(x))


def mean(values: list[float]) -> float:
    return sum(values) / len(values)


def call(fn: losses.LossFn) -> float:
    return fn(
        torch.tensor(REAL, dtype=torch.float64), torch.tensor(FAKE, dtype=torch.float64)
    ).item()


EXPECTED = {
    "sgan_d": -mean([log_sigmoid(r) for r in REAL])
    - mean([log_one_minus_sigmoid(f) for f in FAKE]),
    "sgan_g_saturating": mean([log_one_minus_sigmoid(f) for f in FAKE]),
    "sgan_g_nonsaturating": -mean([log_sigmoid(f) for f in FAKE]),
    "lsgan_d": 0.5 * mean([(r - 1) ** 2 for r in REAL]) + 0.5 * mean([f**2 for f in FAKE]),
    "lsgan_g": 0.5 * mean([(f - 1) ** 2 for f in FAKE]),
    "wgan_d": MEAN_FAKE - MEAN_REAL,
    "wgan_g": -MEAN_FAKE,
    "hinge_d": mean([max(0, 1 - r) for r in REAL]) + mean([max(0, 1 + f) for f in FAKE]),
    "hinge_g": -MEAN_FAKE,
    "rsgan_d": -mean([log_sigmoid(r - f) for r, f in zip(REAL, FAKE, strict=True)]),
    "rsgan_g": -mean([log_sigmoid(f - r) for r, f in zip(REAL, FAKE, strict=True)]),
    "rasgan_d": (
        -mean([log_sigmoid(r - MEAN_FAKE) for r in REAL])
        - mean([log_one_minus_sigmoid(f - MEAN_REAL) for f in FAKE])
    )
    / 2,
    "rasgan_g": (
        -mean([log_sigmoid(f - MEAN_REAL) for f in FAKE])
        - mean([log_one_minus_sigmoid(r - MEAN_FAKE) for r in REAL])
    )
    / 2,
    "ralsgan_d": (
        mean([(r - MEAN_FAKE - 1) ** 2 for r in REAL])
        + mean([(f - MEAN_REAL + 1) ** 2 for f in FAKE])
    )
    / 2,
    "ralsgan_g": (
        mean([(f - MEAN_REAL - 1) ** 2 for f in FAKE])
        + mean([(r - MEAN_FAKE + 1) ** 2 for r in REAL])
    )
    / 2,
    "rahingegan_d": (
        mean([max(0, 1 - (r - MEAN_FAKE)) for r in REAL])
        + mean([max(0, 1 + (f - MEAN_REAL)) for f in FAKE])
    )
    / 2,
    "rahingegan_g": (
        mean([max(0, 1 - (f - MEAN_REAL)) for f in FAKE])
        + mean([max(0, 1 + (r - MEAN_FAKE)) for r in REAL])
    )
    / 2,
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_loss_matches_hand_computed_formula(name: str) -> None:
    assert call(getattr(losses, name)) == pytest.approx(EXPECTED[name], rel=1e-12)


def test_a_few_values_by_hand() -> None:
    """Spot checks in closed form, independent of the helpers above."""
    zero = torch.zeros(3)
    assert losses.sgan_d(zero, zero).item() == pytest.approx(2 * math.log(2))
    assert losses.sgan_g_saturating(zero, zero).item() == pytest.approx(-math.log(2))
    assert losses.sgan_g_nonsaturating(zero, zero).item() == pytest.approx(math.log(2))
    # hinge_d(1, -1) is exactly 0: both margins are met
    assert losses.hinge_d(torch.ones(2), -torch.ones(2)).item() == 0.0
    # RaHinge D: (relu(1 - (1 - (-1))) + relu(1 + (-1 - 1))) / 2 = (0 + 0) / 2
    assert losses.rahingegan_d(torch.ones(2), -torch.ones(2)).item() == 0.0
    # RaLSGAN G with D separating real (1) from fake (-1): ((2 + 1)^2 + (-2 - 1)^2) / 2 = 9
    assert losses.ralsgan_g(torch.ones(2), -torch.ones(2)).item() == pytest.approx(9.0)


def test_saturating_and_nonsaturating_generator_losses_differ_in_gradient() -> None:
    """The minimax loss saturates when D rejects fakes; the -log D trick does not."""
    d_fake = torch.tensor([-8.0], requires_grad=True)
    (g_sat,) = torch.autograd.grad(losses.sgan_g_saturating(torch.zeros(1), d_fake), d_fake)
    (g_non,) = torch.autograd.grad(losses.sgan_g_nonsaturating(torch.zeros(1), d_fake), d_fake)
    assert g_sat.item() == pytest.approx(-torch.sigmoid(torch.tensor(-8.0)).item())
    assert g_non.item() == pytest.approx(-(1 - torch.sigmoid(torch.tensor(-8.0))).item())
    assert abs(g_non.item()) > 1000 * abs(g_sat.item())


def test_gradient_penalty_of_linear_critic() -> None:
    """C(x) = w.x has gradient w everywhere: penalty (|w| - 1)^2, d/dw = 2(|w| - 1) w/|w|."""
    critic = nn.Linear(3, 1, bias=False)
    with torch.no_grad():
        critic.weight.copy_(torch.tensor([[2.0, 0.0, 0.0]]))
    real, fake = torch.randn(4, 3), torch.randn(4, 3)
    penalty = gradient_penalty(lambda x: critic(x).squeeze(1), real, fake)
    assert penalty.item() == pytest.approx(1.0)
    penalty.backward()
    assert critic.weight.grad is not None
    assert critic.weight.grad.flatten().tolist() == pytest.approx([2.0, 0.0, 0.0])


def test_gradient_penalty_on_images_norms_each_sample() -> None:
    """C(x) = sum(x^2)/2 has gradient x; with real == fake, x_hat is the sample itself."""
    images = torch.zeros(2, 1, 2, 2)
    images[0, 0, 0, 0] = 3.0  # |x| = 3 -> (3 - 1)^2 = 4
    images[1] = 0.5  # |x| = sqrt(4 * 0.25) = 1 -> 0
    penalty = gradient_penalty(lambda x: 0.5 * (x**2).flatten(1).sum(1), images, images)
    assert penalty.item() == pytest.approx(2.0)


def test_registry_pairs_and_unknown_name() -> None:
    assert LOSSES["sgan_saturating"].g is losses.sgan_g_saturating
    assert LOSSES["sgan_nonsaturating"].g is losses.sgan_g_nonsaturating
    penalised = {name: p.gradient_penalty_weight for name, p in LOSSES.items()}
    assert {name: w for name, w in penalised.items() if w} == {
        "wgan_gp": 10.0,
        "rsgan_gp": 10.0,
        "rasgan_gp": 10.0,
    }
    relativistic = {name for name, pair in LOSSES.items() if pair.g_uses_real}
    assert relativistic == {"rsgan", "rasgan", "ralsgan", "rahingegan", "rsgan_gp", "rasgan_gp"}
    # The penalised relativistic pairs are the paper's losses with the penalty added.
    for name in ("rsgan", "rasgan"):
        assert (LOSSES[f"{name}_gp"].d, LOSSES[f"{name}_gp"].g) == (LOSSES[name].d, LOSSES[name].g)
    with pytest.raises(ValueError, match="unknown loss 'gan'; known: sgan_saturating"):
        get_loss("gan")
