"""GAN objectives as small pure functions of discriminator logits, each named after its paper.

Conventions: `d_real = D(x)` and `d_fake = D(G(z))` are logits of shape (B,) (C(x) in the
relativistic paper), sigma is the logistic sigmoid, every function returns a scalar to *minimise*,
and E is the batch mean. Generator losses take `d_real` too, because the relativistic ones need it;
`LossPair.g_uses_real` tells a training loop when `d_real` must carry gradients through D in the
G step. The relativistic formulas follow Jolicoeur-Martineau (2018), "The relativistic
discriminator: a key element missing from standard GAN" (arXiv:1807.00734), and her reference code
(AlexiaJM/RelativisticGAN, code/GAN_losses_iter.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# -log sigma(x) = softplus(-x) and -log(1 - sigma(x)) = softplus(x), stable for any logit.


def sgan_d(d_real: Tensor, d_fake: Tensor) -> Tensor:
    """-E[log sigma(d_real)] - E[log(1 - sigma(d_fake))] (Goodfellow et al. 2014, eq. 1)."""
    return F.softplus(-d_real).mean() + F.softplus(d_fake).mean()


def sgan_g_saturating(d_real: Tensor, d_fake: Tensor) -> Tensor:
    """E[log(1 - sigma(d_fake))], the minimax generator loss (Goodfellow et al. 2014, eq. 1).

    Its gradient vanishes when D confidently rejects fakes, hence "saturating".
    """
    del d_real  # not relativistic
    return -F.softplus(d_fake).mean()


def sgan_g_nonsaturating(d_real: Tensor, d_fake: Tensor) -> Tensor:
    """-E[log sigma(d_fake)], the "-log D trick" (Goodfellow et al. 2014, sec. 3)."""
    del d_real  # not relativistic
    return F.softplus(-d_fake).mean()


def lsgan_d(d_real: Tensor, d_fake: Tensor) -> Tensor:
    """1/2 E[(d_real - 1)^2] + 1/2 E[d_fake^2] (Mao et al. 2017, 0-1 coding a=0, b=c=1)."""
    return 0.5 * ((d_real - 1) ** 2).mean() + 0.5 * (d_fake**2).mean()


def lsgan_g(d_real: Tensor, d_fake: Tensor) -> Tensor:
    """1/2 E[(d_fake - 1)^2] (Mao et al. 2017, c=1)."""
    del d_real  # not relativistic
    return 0.5 * ((d_fake - 1) ** 2).mean()


def wgan_d(d_real: Tensor, d_fake: Tensor) -> Tensor:
    """E[d_fake] - E[d_real], the critic loss (Arjovsky et al. 2017; add `gradient_penalty`)."""
    return d_fake.mean() - d_real.mean()


def wgan_g(d_real: Tensor, d_fake: Tensor) -> Tensor:
    """-E[d_fake] (Arjovsky et al. 2017, Algorithm 1)."""
    del d_real  # not relativistic
    return -d_fake.mean()


def gradient_penalty(
    critic: nn.Module | Callable[[Tensor], Tensor],
    real: Tensor,
    fake: Tensor,
    generator: torch.Generator | None = None,
) -> Tensor:
    """E[(||grad C(x_hat)||_2 - 1)^2], x_hat = e x + (1 - e) x_fake, e ~ U[0, 1] per sample.

    WGAN-GP (Gulrajani et al. 2017, Algorithm 1) without the weight lambda (10 in the paper).
    Differentiable in the critic's parameters; pass `fake.detach()` in the D step.
    """
    shape = (real.shape[0],) + (1,) * (real.dim() - 1)
    e = torch.rand(shape, generator=generator, device=real.device, dtype=real.dtype)
    x_hat = (e * real + (1 - e) * fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True)
    return ((grad.flatten(1).norm(2, dim=1) - 1) ** 2).mean()


def hinge_d(d_real: Tensor, d_fake: Tensor) -> Tensor:
    """E[max(0, 1 - d_real)] + E[max(0, 1 + d_fake)] (Lim & Ye 2017; Miyato et al. 2018)."""
    return F.relu(1 - d_real).mean() + F.relu(1 + d_fake).mean()


def hinge_g(d_real: Tensor, d_fake: Tensor) -> Tensor:
    """-E[d_fake] (Lim & Ye 2017; Miyato et al. 2018)."""
    del d_real  # not relativistic
    return -d_fake.mean()


def rsgan_d(d_real: Tensor, d_fake: Tensor) -> Tensor:
    """-E[log sigma(d_real - d_fake)], real and fake paired (Jolicoeur-Martineau 2018)."""
    return F.softplus(-(d_real - d_fake)).mean()


def rsgan_g(d_real: Tensor, d_fake: Tensor) -> Tensor:
    """-E[log sigma(d_fake - d_real)] (Jolicoeur-Martineau 2018)."""
    return F.softplus(-(d_fake - d_real)).mean()


def rasgan_d(d_real: Tensor, d_fake: Tensor) -> Tensor:
    """Relativistic average SGAN, D (Jolicoeur-Martineau 2018, halved as in her code).

    (-E[log sigma(d_real - E d_fake)] - E[log(1 - sigma(d_fake - E d_real))]) / 2.
    """
    real_rel, fake_rel = d_real - d_fake.mean(), d_fake - d_real.mean()
    return (F.softplus(-real_rel).mean() + F.softplus(fake_rel).mean()) / 2


def rasgan_g(d_real: Tensor, d_fake: Tensor) -> Tensor:
    """Relativistic average SGAN, G: the D loss with real and fake swapped.

    (-E[log sigma(d_fake - E d_real)] - E[log(1 - sigma(d_real - E d_fake))]) / 2.
    """
    real_rel, fake_rel = d_real - d_fake.mean(), d_fake - d_real.mean()
    return (F.softplus(real_rel).mean() + F.softplus(-fake_rel).mean()) / 2


def ralsgan_d(d_real: Tensor, d_fake: Tensor) -> Tensor:
    """Relativistic average LSGAN, D (Jolicoeur-Martineau 2018, halved as in her code).

    (E[(d_real - E d_fake - 1)^2] + E[(d_fake - E d_real + 1)^2]) / 2.
    """
    real_rel, fake_rel = d_real - d_fake.mean(), d_fake - d_real.mean()
    return (((real_rel - 1) ** 2).mean() + ((fake_rel + 1) ** 2).mean()) / 2


def ralsgan_g(d_real: Tensor, d_fake: Tensor) -> Tensor:
    """Relativistic average LSGAN, G: the D loss with real and fake swapped.

    (E[(d_fake - E d_real - 1)^2] + E[(d_real - E d_fake + 1)^2]) / 2.
    """
    real_rel, fake_rel = d_real - d_fake.mean(), d_fake - d_real.mean()
    return (((real_rel + 1) ** 2).mean() + ((fake_rel - 1) ** 2).mean()) / 2


def rahingegan_d(d_real: Tensor, d_fake: Tensor) -> Tensor:
    """Relativistic average HingeGAN, D (Jolicoeur-Martineau 2018, halved as in her code).

    (E[max(0, 1 - (d_real - E d_fake))] + E[max(0, 1 + (d_fake - E d_real))]) / 2.
    """
    real_rel, fake_rel = d_real - d_fake.mean(), d_fake - d_real.mean()
    return (F.relu(1 - real_rel).mean() + F.relu(1 + fake_rel).mean()) / 2


def rahingegan_g(d_real: Tensor, d_fake: Tensor) -> Tensor:
    """Relativistic average HingeGAN, G: the D loss with real and fake swapped.

    (E[max(0, 1 - (d_fake - E d_real))] + E[max(0, 1 + (d_real - E d_fake))]) / 2.
    """
    real_rel, fake_rel = d_real - d_fake.mean(), d_fake - d_real.mean()
    return (F.relu(1 + real_rel).mean() + F.relu(1 - fake_rel).mean()) / 2


LossFn = Callable[[Tensor, Tensor], Tensor]


@dataclass(frozen=True)
class LossPair:
    """A discriminator loss and the generator loss it is trained against."""

    d: LossFn  # (d_real, d_fake) -> scalar minimised by D
    g: LossFn  # (d_real, d_fake) -> scalar minimised by G
    g_uses_real: bool = False  # relativistic: G's loss needs D(x) computed with the current D
    gradient_penalty_weight: float = 0.0  # lambda of WGAN-GP's penalty added to D's loss


LOSSES: dict[str, LossPair] = {
    "sgan_saturating": LossPair(sgan_d, sgan_g_saturating),
    "sgan_nonsaturating": LossPair(sgan_d, sgan_g_nonsaturating),
    "lsgan": LossPair(lsgan_d, lsgan_g),
    "wgan_gp": LossPair(wgan_d, wgan_g, gradient_penalty_weight=10.0),
    "hinge": LossPair(hinge_d, hinge_g),
    "rsgan": LossPair(rsgan_d, rsgan_g, g_uses_real=True),
    "rasgan": LossPair(rasgan_d, rasgan_g, g_uses_real=True),
    "ralsgan": LossPair(ralsgan_d, ralsgan_g, g_uses_real=True),
    "rahingegan": LossPair(rahingegan_d, rahingegan_g, g_uses_real=True),
    # Jolicoeur-Martineau (2018), Table 1's RSGAN-GP and RaSGAN-GP: WGAN-GP's penalty, lambda 10
    "rsgan_gp": LossPair(rsgan_d, rsgan_g, g_uses_real=True, gradient_penalty_weight=10.0),
    "rasgan_gp": LossPair(rasgan_d, rasgan_g, g_uses_real=True, gradient_penalty_weight=10.0),
}


PENALISED = tuple(name for name, pair in LOSSES.items() if pair.gradient_penalty_weight)


def get_loss(name: str) -> LossPair:
    """The loss pair called `name`, or a ValueError listing the known names."""
    try:
        return LOSSES[name]
    except KeyError:
        raise ValueError(f"unknown loss {name!r}; known: {', '.join(LOSSES)}") from None
