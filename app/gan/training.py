"""Training a built-in GAN: one loop for every adversarial loss, plus VEEGAN and BiGAN/ALI.

`train(config)` validates everything and builds the data and networks when it is called, then
returns an iterator whose loop reads like pytorch/examples `dcgan/main.py`: a D step on real data
and `fake.detach()`, a G step on fresh noise through the updated D, a grid from fixed noise now
and then. It yields events instead of printing, so the job layer (which owns storage,
cancellation and resumption) stays outside it: stopping the iteration stops training.

Every random draw comes from generators seeded by `config.seed` (network init, batches, noise,
the WGAN-GP interpolation), so on CPU two runs with one config give identical events and weights.
With `checkpoint_every` the loop also yields a TrainCheckpoint now and then: every weight, Adam
moment, RNG state and partial loss sum, so `train(config, resume=state)` goes on from that step
as if it had never stopped (on CPU, bit for bit; `app/gan/resume.py` stores it).
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor, nn

from app.gan.architectures import DCGAN_IMAGE_SIZES, MAX_MLP_IMAGE_SIZE
from app.gan.bigan import BiGAN, bigan_step
from app.gan.datasets import Dataset, make_dataset
from app.gan.image_data import MAX_IMAGES
from app.gan.losses import LOSSES, PENALISED, LossPair, gradient_penalty
from app.gan.networks import generator_of, init_networks, named_networks
from app.gan.registry import ARCHITECTURES, canonical_options, get_architecture, parse_options
from app.gan.run_size import check_size, run_size
from app.gan.sample_grids import image_grid, scatter_image
from app.gan.veegan import VEEGAN, veegan_step

# models with an encoder and a joint discriminator; "ali" is BiGAN with ALI's Gaussian encoder
JOINT_MODELS = ("veegan", "bigan", "ali")
TRAIN_LOSSES = (*LOSSES, *JOINT_MODELS)
# architecture options a TrainConfig sets itself, from its own fields or from the data
_DERIVED_OPTIONS = ("latent_dim", "g_width", "d_width", "data_dim", "image_size", "channels")
MAX_STEPS = 10_000_000
MAX_BATCH_SIZE = 65_536
MAX_GRID_SIZE = 1024
MAX_GP_WEIGHT = 10_000.0
SCATTER_POINTS = 1024  # fixed-noise points drawn in a 2D progress picture
# The loop a loss's own paper trained with, where it is not TrainConfig's defaults (DCGAN's).
# ALI is not here: its code trains images with Adam 1e-4, beta1 0.5 and its 2-D mixture with
# 1e-3, so no one rate per loss is its paper's (give `lr` for either); the rest keep DCGAN's.
PAPER_LOOPS: dict[str, dict[str, Any]] = {
    # Gulrajani et al. 2017, Algorithm 1: n_critic 5, Adam alpha 1e-4, beta1 0, beta2 0.9
    # (its lambda 10 is already the loss's own gp_weight)
    "wgan_gp": {"d_steps": 5, "lr": 1e-4, "betas": (0.0, 0.9)},
}


def paper_loop(loss: str) -> dict[str, Any]:
    """The TrainConfig fields `loss`'s paper trained with where they differ from the defaults
    (DCGAN's: one D step per G step, Adam lr 2e-4, betas (0.5, 0.999)), for
    `TrainConfig(loss=loss, **paper_loop(loss), ...)`; empty when the defaults are the paper's.

    TrainConfig does not apply them by itself, so that a stored config (every field written out)
    resumes as it trained; a request that leaves them out gets them (`loop_defaults`)."""
    return dict(PAPER_LOOPS.get(loss, {}))


LOOP_FIELDS = ("lr", "betas", "d_steps")  # the fields whose default follows the loss


def loop_defaults(loss: str) -> dict[str, Any]:
    """What a request's lr, betas and d_steps are when it leaves them out: `loss`'s paper's loop,
    which is DCGAN's for every loss but WGAN-GP (a critic trained once per generator step with
    Adam's beta1 0.5 is not the WGAN-GP its paper measured)."""
    fields = dataclasses.fields(TrainConfig)
    defaults = {f.name: f.default for f in fields if f.name in LOOP_FIELDS}
    return {**defaults, **paper_loop(loss)}


@dataclass(frozen=True)
class TrainConfig:
    """One training run; every field is plain data, so a config crosses process boundaries."""

    dataset: str = "ring8"  # a name `make_dataset` knows: ring8, grid25, spiral, digits, ...
    dataset_options: Mapping[str, Any] = field(default_factory=dict)  # e.g. {"image_size": 16}
    loss: str = "sgan_nonsaturating"  # a key of losses.LOSSES, or "veegan", "bigan" or "ali"
    architecture: str = "mlp"  # "mlp" for vectors or flat images, "dcgan" for square images
    latent_dim: int | None = None  # size of z ~ N(0, I); None: the architecture's default
    d_width: float = 1.0  # discriminator width multiplier (the paper's RQ2 knob)
    g_width: float = 1.0  # generator width multiplier
    # more architecture options: hidden and depth (mlp), base_width (dcgan)
    architecture_options: Mapping[str, Any] = field(default_factory=dict)
    steps: int = 2000  # generator updates
    # d_steps, lr and betas default to DCGAN's for every loss; `paper_loop(loss)` has the
    # settings of a loss's own paper (WGAN-GP: 5, 1e-4, (0, 0.9)), which requests that leave them
    # out train with (`loop_defaults`)
    d_steps: int = 1  # discriminator updates per generator update
    batch_size: int = 64  # samples per batch, real and fake alike
    lr: float = 2e-4  # Adam learning rate of every network (DCGAN's)
    betas: tuple[float, float] = (0.5, 0.999)  # Adam betas (DCGAN's)
    # lambda of the gradient penalty (wgan_gp, rsgan_gp, rasgan_gp); None: the loss's own, 10 as
    # in the papers' image experiments (WGAN-GP's own code uses 0.1 on its toy 2-D data)
    gp_weight: float | None = None
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
        fields = dataclasses.fields(get_architecture(self.architecture).config_type)
        takes = [f.name for f in fields if f.name not in _DERIVED_OPTIONS]
        unknown = sorted(str(k) for k in self.architecture_options if k not in takes)
        if unknown:
            raise ValueError(
                f"architecture_options for {self.architecture} take {', '.join(takes)}; "
                f"unknown: {', '.join(unknown)}"
            )
        if self.penalised and self.architecture_options.get("d_norm") == "batch":
            raise ValueError(
                f"{self.loss}'s gradient penalty is taken per sample, and a BatchNorm critic "
                "mixes the batch (Gulrajani et al. 2017, sec. 4): use d_norm layer (its default "
                "here) or none"
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
        if self.gp_weight is not None:
            if not self.penalised:
                raise ValueError(
                    "gp_weight is the gradient penalty's lambda: only "
                    f"{', '.join(PENALISED)} have one"
                )
            weight = self.gp_weight
            if isinstance(weight, bool) or not isinstance(weight, int | float):
                raise ValueError(f"gp_weight must be a number, got {weight!r}")
            if not (math.isfinite(weight) and 0 <= weight <= MAX_GP_WEIGHT):
                raise ValueError(f"gp_weight must be in [0, {MAX_GP_WEIGHT:g}], got {weight!r}")
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
        if self.architecture == "mlp" and len(sample_shape) == 3:
            channels, side = sample_shape[0], sample_shape[-1]
            options.update(data_dim=channels * side * side, channels=channels, image_size=side)
        elif self.architecture == "mlp":
            options["data_dim"] = sample_shape[0]
        else:
            options.update(channels=sample_shape[0], image_size=sample_shape[-1])
            if self.penalised:
                options.setdefault("d_norm", "layer")
        return options

    @property
    def penalised(self) -> bool:
        """Whether the loss adds a gradient penalty to the discriminator's."""
        return self.loss in PENALISED

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
    # The trained discriminator over samples alone, in eval mode: its features can embed an
    # audit's pool. None for VEEGAN and BiGAN, whose discriminator also needs z.
    discriminator: nn.Module | None = None


@dataclass(frozen=True)
class TrainState:
    """Everything a run needs to go on after `step` as if it had never stopped.

    `tensors`, all on CPU and copied out of the run: each network's weights and buffers
    ("network.<name>.<key>"), each Adam's moments and step count ("optimizer.<name>.<param
    index>.<key>"), the batch and noise RNG states ("rng.data", "rng.noise") and the loss sums
    since the last TrainProgress ("loss_sum.<loss>"). Network and optimiser names are those of
    `train`: generator and discriminator, plus reconstructor (VEEGAN) or encoder (BiGAN).
    """

    step: int  # generator updates done
    tensors: dict[str, Tensor]
    loss_count: int  # steps summed in the loss_sum tensors
    last_losses: dict[str, float]  # the last TrainProgress's losses (TrainFinished repeats them)
    device_type: str  # "cpu" or "cuda": the noise RNG state of one does not fit the other


@dataclass(frozen=True)
class TrainCheckpoint:
    """A resumable state after `step`, every `checkpoint_every` steps but never at the last."""

    step: int
    state: TrainState


TrainEvent = TrainProgress | TrainSamples | TrainCheckpoint | TrainFinished


class TrainingDiverged(RuntimeError):
    """A loss became NaN or infinite."""


def train(
    config: TrainConfig, *, resume: TrainState | None = None, checkpoint_every: int = 0
) -> Iterator[TrainEvent]:
    """Check the config against the data and device, build everything, and return the loop.

    Bad data, options or devices, and a `resume` state that does not fit this config, raise
    ValueError here, before any event. The loop yields a TrainProgress every `log_every` steps,
    a TrainSamples every `sample_every` steps and at the end, a TrainCheckpoint every
    `checkpoint_every` steps (0: never) except at the end, then one TrainFinished; it raises
    TrainingDiverged if a loss stops being finite. With `resume` (a TrainCheckpoint's state of
    the same config) it starts after `resume.step`: its first events are those of later steps.
    """
    device = _device(config.device)
    dataset, options = check_config(config, checkpoint_every=checkpoint_every)
    run = _Run(config, dataset, options, device, checkpoint_every)
    model = init_networks(config, options)
    networks = named_networks(model)
    for network in networks.values():
        network.to(device).train()
    # one Adam per network, made after the move so that its state lives on the device
    optimizers: dict[str, torch.optim.Optimizer] = {
        name: torch.optim.Adam(network.parameters(), lr=config.lr, betas=config.betas)
        for name, network in networks.items()
    }
    start = run.bind(networks, optimizers, resume)
    if isinstance(model, VEEGAN):
        return _veegan_loop(run, model, start)
    if isinstance(model, BiGAN):
        return _bigan_loop(run, model, start)
    return _adversarial_loop(run, LOSSES[config.loss], start)


def check_config(
    config: TrainConfig, *, checkpoint_every: int = 0, datasets: dict[str, Dataset] | None = None
) -> tuple[Dataset, dict[str, Any]]:
    """Everything `train` refuses, found without allocating a network (they are counted on the
    meta device), so that a request is checked at once and at no memory cost; returns the data
    and the canonical architecture options. `datasets`: data read already, by dataset and
    options, filled as read (a sweep's cells share their data)."""
    _device(config.device)
    _check_data_size(config)
    key = json.dumps([config.dataset, dict(config.dataset_options)], sort_keys=True, default=str)
    dataset = None if datasets is None else datasets.get(key)
    if dataset is None:
        dataset = make_dataset(config.dataset, **config.dataset_options)
        if datasets is not None:
            datasets[key] = dataset
    options = canonical_options(config.architecture, _checked_options(config, dataset))
    _check_int("checkpoint_every", checkpoint_every, 0, MAX_STEPS)
    check_size(run_size(config, options, tuple(dataset.sample_shape)))
    return dataset, options


def _check_data_size(config: TrainConfig) -> None:
    """Refuse an image side the architecture cannot take, and more images than a dataset loads
    by default, before the data is read: a folder of 300 small PNGs read at side 1,024 took 900
    MB and 8 s of the request before the architecture refused the side."""
    options = config.dataset_options
    size = options.get("image_size")
    if isinstance(size, int) and not isinstance(size, bool):
        if config.architecture == "dcgan" and size not in DCGAN_IMAGE_SIZES:
            raise ValueError(
                f"architecture 'dcgan' takes images of side {', '.join(map(str, DCGAN_IMAGE_SIZES))}"
                f"; dataset_options.image_size is {size}"
            )
        if config.architecture == "mlp" and size > MAX_MLP_IMAGE_SIZE:
            raise ValueError(
                f"architecture 'mlp' takes images up to {MAX_MLP_IMAGE_SIZE}x{MAX_MLP_IMAGE_SIZE}; "
                f"dataset_options.image_size is {size}"
            )
    limit = options.get("max_images")
    if limit is not None and (
        not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_IMAGES
    ):
        raise ValueError(f"dataset_options.max_images must be an integer from 1 to {MAX_IMAGES}")


def initial_generator(config: TrainConfig) -> nn.Module:
    """The generator `train(config)` starts from (same seed, same init), on CPU: the baseline a
    trained generator is compared with."""
    dataset = make_dataset(config.dataset, **config.dataset_options)
    options = canonical_options(config.architecture, _checked_options(config, dataset))
    return generator_of(init_networks(config, options))


def _device(name: str) -> torch.device:
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available here; use 'cpu'")
    return device


def _checked_options(config: TrainConfig, dataset: Dataset) -> dict[str, Any]:
    shape = dataset.sample_shape
    if config.architecture == "mlp" and len(shape) == 3:
        if shape[1] != shape[2] or shape[0] not in (1, 3) or shape[1] > MAX_MLP_IMAGE_SIZE:
            raise ValueError(
                f"architecture 'mlp' takes vectors or square images of 1 or 3 channels up to "
                f"{MAX_MLP_IMAGE_SIZE}x{MAX_MLP_IMAGE_SIZE}, but dataset {config.dataset!r} has "
                f"samples of shape {shape}"
            )
    elif config.architecture == "mlp" and len(shape) != 1:
        raise ValueError(
            f"architecture 'mlp' takes vectors or square images, but dataset {config.dataset!r} "
            f"has samples of shape {shape}"
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


class _Run:
    """What every loop shares: networks and optimisers, seeded batches and noise, fixed noise,
    the events, and saving and restoring all of it."""

    def __init__(
        self,
        config: TrainConfig,
        dataset: Dataset,
        options: dict[str, Any],
        device: torch.device,
        checkpoint_every: int = 0,
    ) -> None:
        self.config = config
        self.dataset = dataset
        self.options = options
        self.device = device
        self.checkpoint_every = checkpoint_every
        self.networks: dict[str, nn.Module] = {}
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
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

    def bind(
        self,
        networks: dict[str, nn.Module],
        optimizers: dict[str, torch.optim.Optimizer],
        resume: TrainState | None,
    ) -> int:
        """Take the run's networks and optimisers, restore `resume` into everything; returns the
        number of steps already done."""
        self.networks, self.optimizers = networks, optimizers
        if resume is None:
            return 0
        self._restore(resume)
        return resume.step

    def state(self, step: int) -> TrainState:
        """A copy, on CPU, of everything that changes as the run goes on."""
        tensors: dict[str, Tensor] = {}
        for name, network in self.networks.items():
            for key, value in network.state_dict().items():
                tensors[f"network.{name}.{key}"] = _cpu_copy(value)
        for name, optimizer in self.optimizers.items():
            for index, entry in optimizer.state_dict()["state"].items():
                for key, value in entry.items():
                    tensors[f"optimizer.{name}.{index}.{key}"] = _cpu_copy(torch.as_tensor(value))
        tensors["rng.data"] = self.data_rng.get_state()
        tensors["rng.noise"] = self.noise_rng.get_state()
        for name, total in self._sums.items():
            tensors[f"loss_sum.{name}"] = _cpu_copy(total)
        return TrainState(step, tensors, self._count, dict(self.last_losses), self.device.type)

    def _restore(self, state: TrainState) -> None:
        if not 1 <= state.step < self.config.steps:
            raise ValueError(
                f"a resumable state after step {state.step} does not fit a run of "
                f"{self.config.steps} steps"
            )
        if state.device_type != self.device.type:
            raise ValueError(
                f"the state was saved on {state.device_type} and cannot go on on {self.device.type}"
            )
        tensors = dict(state.tensors)
        for name, network in self.networks.items():
            weights = _take(tensors, f"network.{name}.")
            try:
                network.load_state_dict(weights, strict=True)
            except RuntimeError as exc:
                raise ValueError(f"the saved {name} does not fit this run: {exc}") from None
        for name, optimizer in self.optimizers.items():
            _restore_adam(optimizer, _take(tensors, f"optimizer.{name}."), name)
        try:
            self.data_rng.set_state(tensors.pop("rng.data"))
            self.noise_rng.set_state(tensors.pop("rng.noise"))
        except (KeyError, RuntimeError, TypeError) as exc:
            raise ValueError(f"the saved RNG states do not fit this run: {exc}") from None
        self._sums = {k: v.to(self.device) for k, v in _take(tensors, "loss_sum.").items()}
        self._count = state.loss_count
        self.last_losses = dict(state.last_losses)
        if tensors:
            raise ValueError(f"unexpected entries in the saved state: {_some(sorted(tensors))}")

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
            discriminator = None
            if self.config.loss not in JOINT_MODELS:
                discriminator = self.networks["discriminator"].eval()
            yield TrainFinished(
                step,
                generator.eval(),
                self.config.architecture,
                self.options,
                self.last_losses,
                discriminator,
            )
        elif self.checkpoint_every and step % self.checkpoint_every == 0:
            yield TrainCheckpoint(step, self.state(step))

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


def _adversarial_loop(run: _Run, loss: LossPair, start: int) -> Iterator[TrainEvent]:
    config = run.config
    if config.gp_weight is not None:
        loss = dataclasses.replace(loss, gradient_penalty_weight=float(config.gp_weight))
    penalised = config.penalised  # with gp_weight 0 too: the penalty is still reported
    net_g, net_d = run.networks["generator"], run.networks["discriminator"]
    opt_g, opt_d = run.optimizers["generator"], run.optimizers["discriminator"]
    for step in range(start + 1, config.steps + 1):
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
            if penalised:
                penalty = gradient_penalty(net_d, real, fake.detach(), run.noise_rng)
                loss_d = loss_d + loss.gradient_penalty_weight * penalty
            opt_d.zero_grad()
            loss_d.backward()
            opt_d.step()

        ############################
        # (2) Update G: minimise loss.g(D(x), D(G(z))) on fresh z, through the D just updated
        ###########################
        # A fresh z, not the last critic step's: WGAN-GP's Algorithm 1 (line 11) samples a new
        # batch for the generator, as the relativistic reference code does for every loss, and
        # the last critic step has just fitted D to its own z. The relativistic losses also
        # compare with D(x) on a fresh real batch there; the others ignore d_real.
        # Resuming a state saved before this loop drew its own z (and real batch): the saved
        # RNG states load as ever and are consumed in this order from the next step on, so such
        # a run goes on as this loop would from its weights, not as the old loop would have.
        fake_g = net_g(run.noise())
        d_fake_g = net_d(fake_g)
        d_real_g = net_d(run.real_batch()) if loss.g_uses_real else d_real.detach()
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
        if penalised:
            losses["gradient_penalty"] = penalty
        run.record(losses)
        yield from run.events(step, net_g)


def _veegan_loop(run: _Run, model: VEEGAN, start: int) -> Iterator[TrainEvent]:
    for step in range(start + 1, run.config.steps + 1):
        # Algorithm 1: D, F and G each on its own objective, updated together (see veegan.py)
        run.record(veegan_step(model, run.optimizers, run.real_batch(), run.noise_rng))
        yield from run.events(step, model.generator)


def _bigan_loop(run: _Run, model: BiGAN, start: int) -> Iterator[TrainEvent]:
    for step in range(start + 1, run.config.steps + 1):
        # D against G and E with the labels swapped, updated together (see bigan.py)
        run.record(bigan_step(model, run.optimizers, run.real_batch(), run.noise_rng))
        yield from run.events(step, model.generator)


def _cpu_copy(tensor: Tensor) -> Tensor:
    return tensor.detach().to("cpu", copy=True)


def _take(tensors: dict[str, Tensor], prefix: str) -> dict[str, Tensor]:
    """Remove and return the entries under `prefix`, keyed by the rest of their names."""
    names = [k for k in tensors if k.startswith(prefix)]
    return {k[len(prefix) :]: tensors.pop(k) for k in names}


def _restore_adam(optimizer: torch.optim.Optimizer, entries: dict[str, Tensor], name: str) -> None:
    """Load per-parameter state saved as "<param index>.<key>" into `optimizer`, after checking
    that the moments have their parameters' shapes."""
    params = [p for group in optimizer.param_groups for p in group["params"]]
    state: dict[int, dict[str, Tensor]] = {}
    for entry, value in entries.items():
        index, _, key = entry.partition(".")
        if not (index.isdigit() and int(index) < len(params) and key):
            raise ValueError(f"unexpected entry {entry!r} in the saved {name} optimiser")
        # a copy: Adam updates its moments in place, and the caller's state must stay as saved
        state.setdefault(int(index), {})[key] = value.clone()
    for position, moments in state.items():
        for key in ("exp_avg", "exp_avg_sq"):
            if key in moments and moments[key].shape != params[position].shape:
                raise ValueError(f"the saved {name} optimiser does not fit this run")
    saved = optimizer.state_dict()
    saved["state"] = state
    optimizer.load_state_dict(saved)


def _some(items: list[str], limit: int = 5) -> str:
    shown = ", ".join(items[:limit])
    return shown if len(items) <= limit else f"{shown} (and {len(items) - limit} more)"
