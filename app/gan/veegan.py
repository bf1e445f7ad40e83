"""VEEGAN (Srivastava et al. 2017, "VEEGAN: Reducing Mode Collapse in GANs using Implicit
Variational Learning"): a reconstructor F: x -> z trained to autoencode the *noise*, and a
discriminator on (z, x) pairs whose logit estimates log q(x|z) p0(z) / (p(z|x) p(x)).

Algorithm 1, with z ~ N(0, I), x_g = G(z), x ~ data and z_g = F(x):
    D (omega) minimises  -E[log sigma(D(z, x_g))] - E[log(1 - sigma(D(z_g, x)))]   (O_LR)
    F (theta) minimises  E[d(z, F(x_g))]                                          (O_entropy)
    G (gamma) minimises  E[D(z, x_g)] + E[d(z, F(x_g))]                           (O_entropy)
with d the squared l2 distance; all three gradients are taken at the same parameters and then
applied together. Note the labels: the *generator's* joint is D's positive class.
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


def veegan_d(d_generated: Tensor, d_data: Tensor) -> Tensor:
    """O_LR: -E[log sigma(D(z, G(z)))] - E[log(1 - sigma(D(F(x), x)))] (Algorithm 1, line 7)."""
    return F.softplus(-d_generated).mean() + F.softplus(d_data).mean()


def veegan_reconstruction(z: Tensor, z_reconstructed: Tensor) -> Tensor:
    """E[d(z, F(G(z)))] with d the squared l2 distance: F's loss (Algorithm 1, line 8)."""
    return ((z - z_reconstructed) ** 2).sum(dim=1).mean()


def veegan_g(d_generated: Tensor, z: Tensor, z_reconstructed: Tensor) -> Tensor:
    """O_entropy estimate: E[D(z, G(z))] + E[d(z, F(G(z)))] (Algorithm 1, line 9)."""
    return d_generated.mean() + veegan_reconstruction(z, z_reconstructed)


@dataclass
class VEEGAN:
    """The three networks of VEEGAN: MLPs over vectors, or DCGAN-style over square images."""

    generator: nn.Module  # G_gamma: z (B, latent_dim) -> x (B, data_dim) or (B, C, S, S)
    reconstructor: nn.Module  # F_theta: x -> z (B, latent_dim)
    discriminator: nn.Module  # D_omega(x, z) -> logits (B,)
    latent_dim: int  # size of z

    @classmethod
    def mlp(cls, config: MLPConfig) -> VEEGAN:
        """MLPs as in the paper's 2D experiments; widths from `config.g_width`/`d_width`."""
        return cls(
            MLPGenerator(config),
            MLPEncoder(config),
            JointMLPDiscriminator(config),
            config.latent_dim,
        )

    @classmethod
    def dcgan(cls, config: DCGANConfig) -> VEEGAN:
        """DCGAN's generator, an image encoder and ALI's joint discriminator (joint.py), for
        square images; widths from `config.g_width`/`d_width`."""
        return cls(
            DCGANGenerator(config),
            DCGANEncoder(config),
            JointDCGANDiscriminator(config),
            config.latent_dim,
        )

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        return {
            "generator": list(self.generator.parameters()),
            "reconstructor": list(self.reconstructor.parameters()),
            "discriminator": list(self.discriminator.parameters()),
        }


def veegan_step(
    model: VEEGAN,
    optimizers: Mapping[str, torch.optim.Optimizer],
    real: Tensor,
    generator: torch.Generator | None = None,
) -> dict[str, float]:
    """One iteration of Algorithm 1 on the batch `real`; returns the three losses.

    `optimizers` has the keys of `VEEGAN.param_groups()`; each network's gradient comes only from
    its own objective, all taken before any update.
    """
    z = torch.randn(real.shape[0], model.latent_dim, generator=generator, device=real.device)
    x_g = model.generator(z)  # x_g ~ q_gamma(x | z)
    z_g = model.reconstructor(real)  # z_g ~ p_theta(z | x)
    d_generated = model.discriminator(x_g, z)
    d_data = model.discriminator(real, z_g)
    z_reconstructed = model.reconstructor(x_g)

    # one graph, three objectives; set_grads routes each only to its own network
    loss_d = veegan_d(d_generated, d_data)
    loss_f = veegan_reconstruction(z, z_reconstructed)
    loss_g = veegan_g(d_generated, z, z_reconstructed)

    params = model.param_groups()
    set_grads(params["discriminator"], loss_d)
    set_grads(params["reconstructor"], loss_f)
    set_grads(params["generator"], loss_g)
    for name in params:
        optimizers[name].step()
    return {
        "discriminator": loss_d.item(),
        "reconstructor": loss_f.item(),
        "generator": loss_g.item(),
    }
