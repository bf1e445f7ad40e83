"""Built-in architectures by name, and the one place user-supplied options are validated.

Options arrive as JSON (forms, REST, CLI, checkpoint metadata), so every entry point goes through
`parse_options`, which rejects unknown names, unknown options and out-of-range values with a
ValueError whose message says what is allowed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from torch import nn

from app.gan.architectures import (
    DCGANConfig,
    DCGANDiscriminator,
    DCGANGenerator,
    MLPConfig,
    MLPDiscriminator,
    MLPGenerator,
)

C = TypeVar("C", DCGANConfig, MLPConfig)


@dataclass(frozen=True)
class GeneratorSpec:
    """What a caller needs to drive a generator without knowing its architecture."""

    latent_dim: int  # z has shape (B, latent_dim), z ~ N(0, I)
    output_shape: tuple[int, ...]  # one sample: (C, H, W) for images, (data_dim,) for vectors


@dataclass(frozen=True)
class Architecture(Generic[C]):
    """A named family: its options dataclass and how to build each network from it."""

    config_type: type[C]  # dataclass whose fields are the accepted options
    generator: Callable[[C], nn.Module]  # z (B, latent_dim) -> samples (B, *output_shape)
    discriminator: Callable[[C], nn.Module]  # samples -> logits (B,)
    output_shape: Callable[[C], tuple[int, ...]]  # shape of one sample


ARCHITECTURES: dict[str, Architecture[Any]] = {
    "dcgan": Architecture(
        config_type=DCGANConfig,
        generator=DCGANGenerator,
        discriminator=DCGANDiscriminator,
        output_shape=lambda c: (c.channels, c.image_size, c.image_size),
    ),
    "mlp": Architecture(
        config_type=MLPConfig,
        generator=MLPGenerator,
        discriminator=MLPDiscriminator,
        output_shape=lambda c: c.output_shape,
    ),
}


def get_architecture(architecture: str) -> Architecture[Any]:
    """The registered family called `architecture`, or a ValueError listing the known names."""
    try:
        return ARCHITECTURES[architecture]
    except (KeyError, TypeError):
        known = ", ".join(sorted(ARCHITECTURES))
        raise ValueError(f"unknown architecture {architecture!r}; known: {known}") from None


def parse_options(architecture: str, options: Mapping[str, Any] | None) -> Any:
    """Validated config dataclass for `architecture`; missing options take their defaults."""
    arch = get_architecture(architecture)
    options = {} if options is None else options
    if not isinstance(options, Mapping):
        raise ValueError(f"options must be a JSON object, got {type(options).__name__}")
    allowed = [f.name for f in dataclasses.fields(arch.config_type)]
    unknown = sorted(str(k) for k in options if k not in allowed)
    if unknown:
        raise ValueError(
            f"unknown option(s) {', '.join(unknown)} for architecture {architecture!r}; "
            f"allowed: {', '.join(allowed)}"
        )
    return arch.config_type(**options)


def canonical_options(architecture: str, options: Mapping[str, Any] | None) -> dict[str, Any]:
    """All options with defaults filled in, so a saved checkpoint does not depend on defaults."""
    return dataclasses.asdict(parse_options(architecture, options))


def generator_spec(architecture: str, options: Mapping[str, Any] | None) -> GeneratorSpec:
    config = parse_options(architecture, options)
    shape = get_architecture(architecture).output_shape(config)
    return GeneratorSpec(latent_dim=config.latent_dim, output_shape=tuple(shape))


def build_generator(
    architecture: str, options: Mapping[str, Any] | None
) -> tuple[nn.Module, GeneratorSpec]:
    """A freshly initialised generator and its spec."""
    config = parse_options(architecture, options)
    module = get_architecture(architecture).generator(config)
    return module, generator_spec(architecture, options)


def build_discriminator(architecture: str, options: Mapping[str, Any] | None) -> nn.Module:
    """A freshly initialised discriminator returning logits (B,)."""
    config = parse_options(architecture, options)
    return get_architecture(architecture).discriminator(config)
