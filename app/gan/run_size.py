"""How much memory a training run, or an uploaded generator, would take, worked out before
anything is allocated.

A request is checked in the API process: widths of 16 at a base width of 1,024 would ask for
10^10 parameters, and a batch of 8,192 64x64 images through DCGANs of width 4 for ~100 GiB of
activations. Counting on the meta device costs nothing, so such a run is refused at once. An
upload names its architecture and options too (form or file metadata): a 144-byte safetensors
header can ask for a 673 GiB generator, so its network is counted the same way before it is built.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from app.gan.bigan import BiGAN
from app.gan.networks import init_networks, named_networks
from app.gan.veegan import VEEGAN

if TYPE_CHECKING:
    from app.gan.training import TrainConfig

# Every network of a run together: 0.8 GB of float32 weights, ~3.2 GB with their gradients and
# Adam's moments. A DCGAN pair at 64x64 and d_width 4 has ~50M, ALI's at that width ~130M.
MAX_PARAMETERS = 200_000_000
# What one training step keeps for its backward pass: every layer's output for the batch (real
# and generated), in float32; their gradients double it. With the weights' budget that stays
# under ~12 GB.
MAX_ACTIVATION_BYTES = 4 * 2**30


@dataclass(frozen=True)
class RunSize:
    """What a run's networks would take: parameters, and float32 bytes of every layer's output in
    one step's forward passes (G on a batch of z, D on the generated and the real batch, the
    encoder on the real one)."""

    parameters: int
    activation_bytes: int


def run_size(
    config: TrainConfig, options: dict[str, Any], sample_shape: tuple[int, ...]
) -> RunSize:
    """The run's size from one build on the meta device and one sample's layer outputs."""
    per_sample = [0]

    def count(_module: nn.Module, _inputs: object, output: object) -> None:
        if isinstance(output, Tensor):
            per_sample[0] += output.numel()

    with torch.device("meta"):
        model = init_networks(config, options)
        modules = list(named_networks(model).values())
        handles = [
            m.register_forward_hook(count)
            for network in modules
            for m in network.modules()
            if not list(m.children())
        ]
        z = torch.zeros(1, int(options["latent_dim"]))
        x = torch.zeros(1, *sample_shape)
        if isinstance(model, VEEGAN | BiGAN):
            encoder = model.reconstructor if isinstance(model, VEEGAN) else model.encoder
            model.discriminator(model.generator(z), z)
            model.discriminator(x, encoder(x)[:, : z.shape[1]])  # ALI's: (mean, log-sigma)
        else:
            model[1](model[0](z))
            model[1](x)
        for handle in handles:
            handle.remove()
    parameters = sum(p.numel() for network in modules for p in network.parameters())
    return RunSize(parameters, 4 * per_sample[0] * config.batch_size)


def check_size(size: RunSize) -> None:
    """A ValueError saying what to lower when the run is over either budget."""
    if size.parameters > MAX_PARAMETERS:
        raise ValueError(
            f"these networks would have {size.parameters:,} parameters, more than the "
            f"{MAX_PARAMETERS:,} a run may have: lower the base width (base_width, hidden), "
            "g_width or d_width"
        )
    if size.activation_bytes > MAX_ACTIVATION_BYTES:
        raise ValueError(
            f"a training step would hold {size.activation_bytes / 2**30:,.1f} GiB of activations, "
            f"more than the {MAX_ACTIVATION_BYTES / 2**30:g} GiB a run may: lower batch_size, "
            "the widths or the image size"
        )


@dataclass(frozen=True)
class NetworkSize:
    """One network as a checkpoint holds it."""

    parameters: int
    state_bytes: int  # bytes of its state_dict (weights and buffers), as a file stores them


def meta_network(build: Callable[[], nn.Module]) -> nn.Module:
    """The network `build` makes, on the meta device: shapes and dtypes, no memory, whatever the
    options ask for."""
    with torch.device("meta"):
        return build()


def network_size(module: nn.Module) -> NetworkSize:
    """What `module` (a meta_network, or any other) holds."""
    return NetworkSize(
        parameters=sum(p.numel() for p in module.parameters()),
        state_bytes=sum(t.numel() * t.element_size() for t in module.state_dict().values()),
    )


def check_network_size(size: NetworkSize) -> None:
    """A ValueError when one network alone is over the parameters a whole run may have."""
    if size.parameters > MAX_PARAMETERS:
        raise ValueError(
            f"these options make a network of {size.parameters:,} parameters, more than the "
            f"{MAX_PARAMETERS:,} this server loads: check the architecture's options "
            "(base_width, hidden, g_width, depth)"
        )
