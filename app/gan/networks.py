"""A run's networks, freshly initialised from its seed: the ones it trains, the meta-device copy
its size is counted on, and the untrained baseline a trained generator is compared with."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from app.gan.architectures import DCGANConfig, MLPConfig
from app.gan.bigan import BiGAN
from app.gan.registry import build_discriminator, build_generator
from app.gan.veegan import VEEGAN

if TYPE_CHECKING:
    from app.gan.training import TrainConfig

RunNetworks = VEEGAN | BiGAN | tuple[nn.Module, nn.Module]


def init_networks(config: TrainConfig, options: dict[str, Any]) -> RunNetworks:
    """Freshly initialised networks, seeded by config.seed without touching the caller's RNG;
    on the meta device inside `with torch.device("meta")`."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        if config.loss == "veegan":
            if config.architecture == "dcgan":
                return VEEGAN.dcgan(DCGANConfig(**options))
            return VEEGAN.mlp(MLPConfig(**options))
        if config.loss in ("bigan", "ali"):
            stochastic = config.loss == "ali"
            if config.architecture == "dcgan":
                return BiGAN.dcgan(DCGANConfig(**options), stochastic)
            return BiGAN.mlp(MLPConfig(**options), stochastic)
        net_g, _ = build_generator(config.architecture, options)
        return net_g, build_discriminator(config.architecture, options)


def named_networks(model: RunNetworks) -> dict[str, nn.Module]:
    """Each network by the name its optimiser and checkpoint entries carry."""
    if isinstance(model, VEEGAN | BiGAN):
        return {name: getattr(model, name) for name in model.param_groups()}
    return {"generator": model[0], "discriminator": model[1]}


def generator_of(model: RunNetworks) -> nn.Module:
    return model.generator if isinstance(model, VEEGAN | BiGAN) else model[0]
