"""Training a built-in GAN: one loop for every adversarial loss, plus VEEGAN and BiGAN/ALI.

`train(config)` validates everything and builds the data and networks when it is called, then
returns an iterator whose loop reads like pytorch/examples `dcgan/main.py`: a D step on real data
and `fake.detach()`, a G step through the updated D, a grid from fixed noise now and then. It
yields events instead of printing, so the job layer (which owns storage, cancellation and
resumption) stays outside it: stopping the iteration stops training.

Every random draw comes from generators seeded by `config.seed` (network init, batches, noise,
the WGAN-GP interpolation), so on CPU two runs with one config give identical events and weights.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor, nn

from app.gan.architectures import DCGAN_IMAGE_SIZES, MLPConfig
from app.gan.bigan import BiGAN, bigan_step
from app.gan.datasets import Dataset, make_dataset
from app.gan.losses import LOSSES, LossPair, gradient_penalty
from app.gan.registry import (
    ARCHITECTURES,
    build_discriminator,
    build_generator,
    canonical_options,
    parse_options,
)
from app.gan.sample_grids import image_grid, scatter_image
from app.gan.veegan import VEEGAN, veegan_step

JOINT_MODELS = ("veegan", "bigan")  # models with an encoder and a joint discriminator
TRAIN_LOSSES = (*LOSSES, *JOINT_MODELS)
# architecture options a TrainConfig sets itself, from its own fields or from the data
_DERIVED_OPTIONS = ("latent_dim", "g_width", "d_width", "data_dim", "image_size", "channels")
MAX_STEPS = 10_000_000
MAX_BATCH_SIZE = 65_536
MAX_GRID_SIZE = 1024
SCATTER_POINTS = 1024  # fixed-noise points drawn in a 2D progress picture


@dataclass(frozen=True)
class TrainConfig:
    """One training run; every field is plain data, so a config crosses process boundaries."""

    dataset: str = "ring8"  # a name `make_dataset` knows: ring8, grid25, spiral, digits, ...
    dataset_options: Mapping[str, Any] = field(default_factory=dict)  # e.g. {"image_size": 16}
    loss: str = "sgan_nonsaturating"  # a key of losses.LOSSES, or "veegan" or "bigan"
    architecture: str = "mlp"  # "mlp" for vector data, "dcgan" for square images
    latent_dim: int | None = None  # size of z ~ N(0, I); None: the architecture's default
    d_width: float = 1.0  # discriminator width multiplier (the paper's RQ2 knob)
    g_width: float = 1.0  # generator width multiplier
    # more architecture options: hidden and depth (mlp), base_width (dcgan)
    architecture_options: Mapping[str, Any] = field(default_factory=dict)
    steps: int = 2000  # generator updates
    d_steps: int = 1  # discriminator updates per generator update (WGAN-GP's paper uses 5)
    batch_size: int = 64  # samples per batch, real and fake alike
    lr: float = 2e-4  # Adam learning rate of every network (DCGAN's)
    betas: tuple[float, float] = (0.5, 0.999)  # Adam betas (DCGAN's; WGAN-GP's paper: (0, 0.9))
    seed: int = 0  # seeds init, batches and noise
    device: str = "cpu"  # torch device to train on, e.g. "cuda" or "cuda:1"
    log_every: int = 50  # steps between TrainProgress events
    sample_every: int = 500  # steps between TrainSamples events; 0: only at the end
    grid_size: int = 64  # fixed-noise images in each grid

    def __post_init__(self) -> None:
        self._check_choices()
        self._check_numbers()
        # width, latent and architecture options, checked on a stand-in for the data's shape
        parse_options(self.architecture, self._options(_STAND_IN_SHAPE[self.architecture]))

    def _check_choices(self) -> None:
        if self.loss not in TRAIN_LOSSES:
            raise ValueError(f"unknown loss {self.loss!r}; known: {', '.join(TRAIN_LOSSES)}")
        if self.architecture not in ARCHITECTURES:
            known = ", ".join(sorted(ARCHITECTURES))
            raise ValueError(f"unknown architecture {self.architecture!r}; known: {known}")
        if self.loss in JOINT_MODELS and self.architecture != "mlp":
            raise ValueError(
                f"loss {self.loss!r} has MLP networks only; use architecture='mlp' with vector "
                "data (ring8, grid25, spiral, normal)"
            )
        if not isinstance(self.dataset, str):
            raise ValueError(f"dataset must be a name, got {self.dataset!r}")
        for name in ("dataset_options", "architecture_options"):
            if not isinstance(getattr(self, name), Mapping):
                raise ValueError(f"{name} must be a JSON object")
        derived = sorted(set(self.architecture_options) & set(_DERIVED_OPTIONS))
        if derived:
            raise ValueError(
                f"architecture_options may not set {', '.join(derived)}: latent_dim, g_width and "
                "d_width are fields of the config, and the data fixes the sample shape"
            )
        try:
            torch.device(self.device)
        except (RuntimeError, TypeError):
            raise ValueError(
                f"device must name a torch device such as 'cpu' or 'cuda', got {self.device!r}"
            ) from None

    def _check_numbers(self) -> None:
        _check_int("steps", self.steps, 1, MAX_STEPS)
        _check_int("d_steps", self.d_steps, 1, 100)
        if self.loss in JOINT_MODELS and self.d_steps != 1:
            raise ValueError(f"{self.loss} updates all its networks together; d_steps must be 1")
        _check_int("batch_size", self.batch_size, 1, MAX_BATCH_SIZE)
        if isinstance(self.lr, bool) or not isinstance(self.lr, int | float):
            raise ValueError(f"lr must be a number, got {self.lr!r}")
        if not (math.isfinite(self.lr) and 0 < self.lr <= 1):
            raise ValueError(f"lr must be in (0, 1], got {self.lr!r}; DCGAN uses 2e-4")
        if not (
            isinstance(self.betas, tuple)
            and len(self.betas) == 2
            and all(
                isinstance(b, int | float) and not isinstance(b, bool) and 0 <= b < 1
                for b in self.betas
            )
        ):
            raise ValueError(f"betas must be two numbers in [0, 1), got {self.betas!r}")
        _check_int("seed", self.seed, 0, 2**63 - 1)
        _check_int("log_every", self.log_every, 1, MAX_STEPS)
        _check_int("sample_every", self.sample_every, 0, MAX_STEPS)
        _check_int("grid_size", self.grid_size, 1, MAX_GRID_SIZE)

    def _options(self, sample_shape: tuple[int, ...]) -> dict[str, Any]:
        """Options of the architecture for data of `sample_shape` (unchecked)."""
        options: dict[str, Any] = dict(self.architecture_options)
        options.update(g_width=self.g_width, d_width=self.d_width)
        if self.latent_dim is not None:
            options["latent_dim"] = self.latent_dim
        if self.architecture == "mlp":
            options["data_dim"] = sample_shape[0]
        else:
            options.update(channels=sample_shape[0], image_size=sample_shape[-1])
        return options

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values; `TrainConfig.from_dict` reads them back."""
        data = dataclasses.asdict(self)
        data.update(
            dataset_options=dict(self.dataset_options),
            architecture_options=dict(self.architecture_options),
            betas=list(self.betas),
        )
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainConfig:
        """A config from JSON-like data (betas as a list); unknown keys are a ValueError."""
        allowed = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(str(k) for k in data if k not in allowed)
        if unknown:
            raise ValueError(
                f"unknown training option(s) {', '.join(unknown)}; allowed: {', '.join(allowed)}"
            )
        values = dict(data)
        if isinstance(values.get("betas"), list):
            values["betas"] = tuple(values["betas"])
        return cls(**values)


_STAND_IN_SHAPE = {"mlp": (2,), "dcgan": (3, 8, 8)}


def _check_int(name: str, value: object, low: int, high: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ValueError(f"{name} must be an integer from {low} to {high}, got {value!r}")


@dataclass(frozen=True)
class TrainProgress:
    """Losses averaged over the steps since the previous TrainProgress."""

    step: int  # generator updates done
    steps: int  # generator updates planned
    losses: dict[str, float]  # e.g. discriminator, generator, d_real / d_fake (mean logits)


@dataclass(frozen=True)
class TrainSamples:
    """The generator (in eval mode, as it will be audited) on the run's fixed noise."""

    step: int
    samples: NDArray[np.float32]  # (n, *sample_shape): grid_size images or 1,024 vectors
    image: NDArray[np.uint8] | None  # (H, W, C) grid of images, or a 2D scatter; None otherwise


@dataclass(frozen=True)
class TrainFinished:
    """The trained generator and what `checkpoint.save_generator` needs to save it."""

    step: int
    generator: nn.Module  # in eval mode, on config.device
    architecture: str  # registry name
    options: dict[str, Any]  # canonical options of the architecture
    losses: dict[str, float]  # the last TrainProgress's losses


TrainEvent = TrainProgress | TrainSamples | TrainFinished


class TrainingDiverged(RuntimeError):
    """A loss became NaN or infinite."""


def train(config: TrainConfig) -> Iterator[TrainEvent]:
    """Check the config against the data and device, build everything, and return the loop.

    Bad data, options or devices raise ValueError here, before any event. The loop yields a
    TrainProgress every `log_every` steps, a TrainSamples every `sample_every` steps and at the
    end, then one TrainFinished; it raises TrainingDiverged if a loss stops being finite.
    """
    device = _device(config.device)
    dataset = make_dataset(config.dataset, **config.dataset_options)
    options = canonical_options(config.architecture, _checked_options(config, dataset))
    run = _Run(config, dataset, options, device)
    networks = _init_networks(config, options)
    if isinstance(networks, VEEGAN):
        return _veegan_loop(run, networks)
    if isinstance(networks, BiGAN):
        return _bigan_loop(run, networks)
    net_g, net_d = networks
    return _adversarial_loop(run, net_g.to(device), net_d.to(device), LOSSES[config.loss])


def initial_generator(config: TrainConfig) -> nn.Module:
    """The generator `train(config)` starts from (same seed, same init), on CPU: the baseline a
    trained generator is compared with."""
    dataset = make_dataset(config.dataset, **config.dataset_options)
    options = canonical_options(config.architecture, _checked_options(config, dataset))
    networks = _init_networks(config, options)
    return networks.generator if isinstance(networks, VEEGAN | BiGAN) else networks[0]


def _init_networks(
    config: TrainConfig, options: dict[str, Any]
) -> VEEGAN | BiGAN | tuple[nn.Module, nn.Module]:
    """Freshly initialised networks, seeded by config.seed without touching the caller's RNG."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        if config.loss == "veegan":
            return VEEGAN.mlp(MLPConfig(**options))
        if config.loss == "bigan":
            return BiGAN.mlp(MLPConfig(**options))
        net_g, _ = build_generator(config.architecture, options)
        return net_g, build_discriminator(config.architecture, options)


def _device(name: str) -> torch.device:
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available here; use 'cpu'")
    return device


def _checked_options(config: TrainConfig, dataset: Dataset) -> dict[str, Any]:
    shape = dataset.sample_shape
    if config.architecture == "mlp" and len(shape) != 1:
        raise ValueError(
            f"architecture 'mlp' takes vector data, but dataset {config.dataset!r} has samples "
            f"of shape {shape}; use architecture='dcgan'"
        )
    if config.architecture == "dcgan":
        if len(shape) != 3 or shape[1] != shape[2] or shape[1] not in DCGAN_IMAGE_SIZES:
            sizes = ", ".join(map(str, DCGAN_IMAGE_SIZES))
            raise ValueError(
                f"architecture 'dcgan' takes square images of side {sizes}, but dataset "
                f"{config.dataset!r} has samples of shape {shape}; pass dataset_options "
                "image_size= or use architecture='mlp' for vector data"
            )
        if shape[0] not in (1, 3):
            raise ValueError(f"architecture 'dcgan' takes 1 or 3 channels, got shape {shape}")
    return config._options(shape)


def _encoder(model: VEEGAN | BiGAN) -> nn.Module:
    return model.reconstructor if isinstance(model, VEEGAN) else model.encoder


class _Run:
    """What both loops share: seeded batches and noise, fixed noise, and the events."""

    def __init__(
        self, config: TrainConfig, dataset: Dataset, options: dict[str, Any], device: torch.device
    ) -> None:
        self.config = config
        self.dataset = dataset
        self.options = options
        self.device = device
        self.latent_dim = int(options["latent_dim"])
        # batches drawn on CPU, noise on the device: each stream seeded apart from the init's
        self.data_rng = torch.Generator().manual_seed(config.seed + 1)
        self.noise_rng = torch.Generator(device=device).manual_seed(config.seed + 2)
        fixed_rng = torch.Generator().manual_seed(config.seed + 3)
        self.vector_data = len(dataset.sample_shape) == 1
        n_fixed = SCATTER_POINTS if self.vector_data else config.grid_size
        self.fixed_noise = torch.randn(n_fixed, self.latent_dim, generator=fixed_rng).to(device)
        if self.vector_data and dataset.sample_shape == (2,):
            self.reference, _ = dataset.sample(SCATTER_POINTS, fixed_rng)
            self.extent = 1.2 * float(self.reference.abs().max())
        self._sums: dict[str, Tensor] = {}
        self._count = 0
        self.last_losses: dict[str, float] = {}

    def real_batch(self) -> Tensor:
        real, _ = self.dataset.sample(self.config.batch_size, self.data_rng)
        return real.to(self.device)

    def noise(self) -> Tensor:
        return torch.randn(
            self.config.batch_size, self.latent_dim, generator=self.noise_rng, device=self.device
        )

    def record(self, losses: Mapping[str, Tensor | float]) -> None:
        for name, value in losses.items():
            value = torch.as_tensor(value).detach().to(torch.float64)
            self._sums[name] = self._sums[name] + value if name in self._sums else value
        self._count += 1

    def events(self, step: int, generator: nn.Module) -> Iterator[TrainEvent]:
        """The events due after `step`, and the final ones after the last step."""
        last = step == self.config.steps
        if step % self.config.log_every == 0 or last:
            yield self._progress(step)
        every = self.config.sample_every
        if last or (every and step % every == 0):
            yield self._samples(step, generator)
        if last:
            yield TrainFinished(
                step, generator.eval(), self.config.architecture, self.options, self.last_losses
            )

    def _progress(self, step: int) -> TrainProgress:
        losses = {name: float(total) / self._count for name, total in self._sums.items()}
        bad = sorted(name for name, value in losses.items() if not math.isfinite(value))
        if bad:
            raise TrainingDiverged(
                f"{', '.join(bad)} not finite by step {step}; try a lower lr or another loss"
            )
        self._sums, self._count = {}, 0
        self.last_losses = losses
        return TrainProgress(step, self.config.steps, losses)

    @torch.no_grad()
    def _samples(self, step: int, generator: nn.Module) -> TrainSamples:
        # eval mode: BatchNorm's running statistics, which is what a saved generator will use
        was_training = generator.training
        generator.eval()
        fake = generator(self.fixed_noise).float().cpu()
        generator.train(was_training)
        image: NDArray[np.uint8] | None = None
        if fake.dim() == 4:
            image = image_grid(fake[: self.config.grid_size].clamp(-1, 1))
        elif fake.shape[1] == 2:
            image = scatter_image(fake, self.reference, self.extent)
        return TrainSamples(step, fake.numpy(), image)


def _adversarial_loop(
    run: _Run, net_g: nn.Module, net_d: nn.Module, loss: LossPair
) -> Iterator[TrainEvent]:
    config = run.config
    opt_d = torch.optim.Adam(net_d.parameters(), lr=config.lr, betas=config.betas)
    opt_g = torch.optim.Adam(net_g.parameters(), lr=config.lr, betas=config.betas)
    net_g.train()
    net_d.train()
    for step in range(1, config.steps + 1):
        ############################
        # (1) Update D: minimise loss.d(D(x), D(G(z))) [+ lambda * gradient penalty]
        ###########################
        for _ in range(config.d_steps):
            real = run.real_batch()
            fake = net_g(run.noise())
            d_real = net_d(real)
            d_fake = net_d(fake.detach())
            loss_d = loss.d(d_real, d_fake)
            penalty = torch.zeros((), device=run.device)
            if loss.gradient_penalty_weight:
                penalty = gradient_penalty(net_d, real, fake.detach(), run.noise_rng)
                loss_d = loss_d + loss.gradient_penalty_weight * penalty
            opt_d.zero_grad()
            loss_d.backward()
            opt_d.step()

        ############################
        # (2) Update G: minimise loss.g(D(x), D(G(z))) through the D just updated
        ###########################
        d_fake_g = net_d(fake)
        # relativistic losses compare with D(x) under the current D; the others ignore it
        d_real_g = net_d(real) if loss.g_uses_real else d_real.detach()
        loss_g = loss.g(d_real_g, d_fake_g)
        opt_g.zero_grad()
        loss_g.backward()
        opt_g.step()

        losses = {
            "discriminator": loss_d,
            "generator": loss_g,
            "d_real": d_real.mean(),  # mean logits, DCGAN's D(x) and D(G(z))
            "d_fake": d_fake.mean(),
        }
        if loss.gradient_penalty_weight:
            losses["gradient_penalty"] = penalty
        run.record(losses)
        yield from run.events(step, net_g)


def _veegan_loop(run: _Run, model: VEEGAN) -> Iterator[TrainEvent]:
    optimizers = _joint_optimizers(run, model)
    for step in range(1, run.config.steps + 1):
        # Algorithm 1: D, F and G each on its own objective, updated together (see veegan.py)
        run.record(veegan_step(model, optimizers, run.real_batch(), run.noise_rng))
        yield from run.events(step, model.generator)


def _bigan_loop(run: _Run, model: BiGAN) -> Iterator[TrainEvent]:
    optimizers = _joint_optimizers(run, model)
    for step in range(1, run.config.steps + 1):
        # D against G and E with the labels swapped, updated together (see bigan.py)
        run.record(bigan_step(model, optimizers, run.real_batch(), run.noise_rng))
        yield from run.events(step, model.generator)


def _joint_optimizers(run: _Run, model: VEEGAN | BiGAN) -> dict[str, torch.optim.Optimizer]:
    """One Adam per network, after moving the networks to the run's device."""
    for network in (model.generator, model.discriminator, _encoder(model)):
        network.to(run.device).train()
    groups = model.param_groups()
    return {
        name: torch.optim.Adam(params, lr=run.config.lr, betas=run.config.betas)
        for name, params in groups.items()
    }
