"""BiGAN / ALI (Donahue et al. 2017, "Adversarial Feature Learning"; Dumoulin et al. 2017,
"Adversarially Learned Inference"): an encoder E: x -> z and a discriminator on (x, z) pairs.
BiGAN's encoder is deterministic; ALI's is a Gaussian, z = mu(x) + sigma(x) * eps, sampled by
reparameterisation so that gradients reach mu and sigma (`BiGAN(..., stochastic=True)`).

    min_{G,E} max_D  E_x[log sigma(D(x, E(x)))] + E_z[log(1 - sigma(D(G(z), z)))]

D takes the encoder's joint as its positive class. G and E are trained with the labels swapped
(the non-saturating form both papers use in practice), and their gradients are taken at the same
parameters as D's before any update, as in ALI's Algorithm 1.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from app.gan.architectures import DCGANConfig, DCGANGenerator, MLPConfig, MLPGenerator
from app.gan.gradients import set_grads
from app.gan.joint import DCGANEncoder, JointDCGANDiscriminator, JointMLPDiscriminator, MLPEncoder


def bigan_d(d_encoder: Tensor, d_generator: Tensor) -> Tensor:
    """-E[log sigma(D(x, E(x)))] - E[log(1 - sigma(D(G(z), z)))]."""
    return F.softplus(-d_encoder).mean() + F.softplus(d_generator).mean()


def bigan_ge(d_encoder: Tensor, d_generator: Tensor) -> Tensor:
    """-E[log sigma(D(G(z), z))] - E[log(1 - sigma(D(x, E(x))))]: D's loss with labels swapped."""
    return F.softplus(-d_generator).mean() + F.softplus(d_encoder).mean()


@dataclass
class BiGAN:
    """The three networks of BiGAN/ALI: MLPs over vectors, or DCGAN-style over square images."""

    generator: nn.Module  # G: z (B, latent_dim) -> x (B, data_dim) or (B, C, S, S)
    encoder: nn.Module  # E: x -> z (B, latent_dim)
    discriminator: nn.Module  # D(x, z) -> logits (B,)
    latent_dim: int  # size of z
    stochastic: bool = False  # ALI: the encoder gives a Gaussian's mean and log-sigma

    @classmethod
    def mlp(cls, config: MLPConfig, stochastic: bool = False) -> BiGAN:
        """MLPs for the toy 2D experiments; widths from `config.g_width`/`d_width`."""
        outputs = config.latent_dim * (2 if stochastic else 1)
        return cls(
            MLPGenerator(config),
            MLPEncoder(config, outputs),
            JointMLPDiscriminator(config),
            config.latent_dim,
            stochastic,
        )

    @classmethod
    def dcgan(cls, config: DCGANConfig, stochastic: bool = False) -> BiGAN:
        """DCGAN's generator, an image encoder and ALI's joint discriminator (joint.py), for
        square images; widths from `config.g_width`/`d_width`."""
        outputs = config.latent_dim * (2 if stochastic else 1)
        return cls(
            DCGANGenerator(config),
            DCGANEncoder(config, outputs),
            JointDCGANDiscriminator(config),
            config.latent_dim,
            stochastic,
        )

    def encode(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """E(x): the encoder's output, or for ALI a draw mu + sigma * eps from its Gaussian."""
        out = self.encoder(x)
        if not self.stochastic:
            return out
        mu, log_sigma = out.chunk(2, dim=1)
        eps = torch.randn(mu.shape, generator=generator, device=mu.device)
        return mu + log_sigma.exp() * eps

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        return {
            "generator": list(self.generator.parameters()),
            "encoder": list(self.encoder.parameters()),
            "discriminator": list(self.discriminator.parameters()),
        }


def bigan_step(
    model: BiGAN,
    optimizers: Mapping[str, torch.optim.Optimizer],
    real: Tensor,
    generator: torch.Generator | None = None,
) -> dict[str, float]:
    """One simultaneous update of D, G and E on the batch `real`; returns the two losses.

    `optimizers` has the keys of `BiGAN.param_groups()`.
    """
    z = torch.randn(real.shape[0], model.latent_dim, generator=generator, device=real.device)
    x_g = model.generator(z)
    z_e = model.encode(real, generator)
    d_encoder = model.discriminator(real, z_e)
    d_generator = model.discriminator(x_g, z)

    # D maximises log D(x, E(x)) + log(1 - D(G(z), z)); G and E play it with labels swapped.
    # One graph, two objectives: set_grads routes each only to its own networks.
    loss_d = bigan_d(d_encoder, d_generator)
    loss_ge = bigan_ge(d_encoder, d_generator)

    params = model.param_groups()
    set_grads(params["discriminator"], loss_d)
    set_grads(params["generator"] + params["encoder"], loss_ge)
    for name in params:
        optimizers[name].step()
    return {"discriminator": loss_d.item(), "generator_encoder": loss_ge.item()}
