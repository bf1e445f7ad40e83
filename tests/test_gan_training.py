"""The training loop: smoke runs of every loss on both architectures, events, determinism, a
short run that learns the ring, and the config's refusals."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch.nn.modules.module import register_module_parameter_registration_hook

import app.gan.training
from app.gan.checkpoint import load_generator_safetensors, save_generator
from app.gan.datasets import get_toy_dataset
from app.gan.evaluation import generate
from app.gan.losses import LOSSES, LossPair, lsgan_d, lsgan_g
from app.gan.metrics import mode_coverage
from app.gan.registry import build_discriminator
from app.gan.run_size import run_size
from app.gan.training import (
    TRAIN_LOSSES,
    TrainConfig,
    TrainEvent,
    TrainFinished,
    TrainingDiverged,
    TrainProgress,
    TrainSamples,
    check_config,
    initial_generator,
    train,
)
from app.jobs.train import train_config

TINY_MLP: dict[str, Any] = {
    "dataset": "ring8",
    "architecture": "mlp",
    "architecture_options": {"hidden": 16},
    "batch_size": 16,
}
TINY_DCGAN: dict[str, Any] = {
    "dataset": "stacked_digits",
    "architecture": "dcgan",
    "latent_dim": 8,
    "architecture_options": {"base_width": 8},
    "batch_size": 8,
}
ARCHITECTURES = {"mlp": TINY_MLP, "dcgan": TINY_DCGAN}
CASES = [
    (loss, arch)
    for loss in TRAIN_LOSSES
    for arch in ARCHITECTURES
    if (loss in LOSSES or arch == "mlp")
]


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """Tiny networks on shared cores run many times faster on one thread than on two."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def run(**fields: Any) -> list[TrainEvent]:
    return list(train(TrainConfig(**fields)))


def finished(events: list[TrainEvent]) -> TrainFinished:
    last = events[-1]
    assert isinstance(last, TrainFinished)
    return last


def weights(module: torch.nn.Module) -> list[torch.Tensor]:
    return [t.detach().clone() for t in module.state_dict().values()]


@pytest.mark.parametrize(("loss", "arch"), CASES)
def test_one_step_of_every_loss_moves_the_generator(loss: str, arch: str) -> None:
    """DCGAN's --dry-run: one step on CPU changes G, reports finite losses, and ends cleanly."""
    config = TrainConfig(loss=loss, steps=1, **ARCHITECTURES[arch])
    events = list(train(config))
    assert [type(e) for e in events] == [TrainProgress, TrainSamples, TrainFinished]
    progress, samples, done = events
    assert isinstance(progress, TrainProgress) and isinstance(samples, TrainSamples)
    assert progress.step == 1 and progress.steps == 1
    assert all(math.isfinite(v) for v in progress.losses.values())
    if loss in LOSSES:
        assert {"discriminator", "generator", "d_real", "d_fake"} <= set(progress.losses)
        assert ("gradient_penalty" in progress.losses) == loss.endswith("_gp")
    assert isinstance(done, TrainFinished) and done.losses == progress.losses
    assert not done.generator.training
    before = initial_generator(config).state_dict()
    after = done.generator.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)


@pytest.mark.parametrize(("loss", "arch"), CASES)
def test_few_steps_report_on_schedule(loss: str, arch: str) -> None:
    events = run(
        loss=loss, steps=6, log_every=2, sample_every=3, grid_size=9, **ARCHITECTURES[arch]
    )
    progress = [e for e in events if isinstance(e, TrainProgress)]
    samples = [e for e in events if isinstance(e, TrainSamples)]
    assert [e.step for e in progress] == [2, 4, 6]
    assert [e.step for e in samples] == [3, 6]
    assert finished(events).step == 6
    picture = samples[-1].image
    assert picture is not None and picture.dtype == np.uint8
    if arch == "dcgan":
        assert samples[-1].samples.shape == (9, 3, 8, 8)
        # 3 x 3 tiles of 8 pixels with 2-pixel padding
        assert picture.shape == (3 * 10 + 2, 3 * 10 + 2, 3)
    else:
        assert samples[-1].samples.shape == (1024, 2)
        assert picture.shape == (256, 256, 3)


def test_same_seed_same_run_and_other_seed_other_run() -> None:
    for fields in (
        dict(TINY_DCGAN, loss="rasgan"),
        dict(TINY_MLP, loss="wgan_gp", d_steps=2),
        dict(TINY_MLP, loss="veegan"),
    ):
        a = run(steps=4, log_every=1, sample_every=2, seed=5, **fields)
        b = run(steps=4, log_every=1, sample_every=2, seed=5, **fields)
        c = run(steps=4, log_every=1, sample_every=2, seed=6, **fields)
        assert [e.losses for e in a if isinstance(e, TrainProgress)] == [
            e.losses for e in b if isinstance(e, TrainProgress)
        ]
        grids = [[e.samples for e in events if isinstance(e, TrainSamples)] for events in (a, b, c)]
        assert all(np.array_equal(x, y) for x, y in zip(grids[0], grids[1], strict=True))
        assert not np.array_equal(grids[0][-1], grids[2][-1])
        wa, wb, wc = (weights(finished(e).generator) for e in (a, b, c))
        assert all(torch.equal(x, y) for x, y in zip(wa, wb, strict=True))
        assert not all(torch.equal(x, y) for x, y in zip(wa, wc, strict=True))


def test_training_leaves_the_global_rng_alone() -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    run(steps=2, loss="rsgan", **TINY_MLP)
    assert torch.equal(torch.rand(3), expected)


@pytest.mark.parametrize("seed", [0, 3])
def test_a_short_run_learns_the_ring(seed: int) -> None:
    """From a generator whose samples all sit near the origin (no mode within 3 sigma) to one
    that puts samples on most of the eight modes. Measured after 1,500 steps on seeds 0-7: 5-8
    modes and a high-quality fraction of 0.023-0.43 (seed 3 is the weakest), against 0 and 0.0
    at initialisation."""
    ring = get_toy_dataset("ring8")
    assert ring.means is not None
    config = TrainConfig(
        dataset="ring8", loss="sgan_nonsaturating", steps=1500, lr=1e-3, batch_size=128, seed=seed
    )
    before = mode_coverage(
        generate(initial_generator(config), 2, 2500, seed=9), ring.means, ring.std
    )
    done = finished(list(train(config)))
    after = mode_coverage(generate(done.generator, 2, 2500, seed=9), ring.means, ring.std)
    assert before.modes_captured == 0 and before.high_quality_fraction == 0.0
    assert after.modes_captured >= 4
    assert after.high_quality_fraction >= 0.01


def test_finished_generator_saves_and_loads(tmp_path: Path) -> None:
    done = finished(run(loss="hinge", steps=2, **TINY_DCGAN))
    assert done.architecture == "dcgan"
    assert done.options == {
        "latent_dim": 8,
        "image_size": 8,
        "channels": 3,
        "base_width": 8,
        "g_width": 1.0,
        "d_width": 1.0,
        "d_norm": "batch",
    }
    assert_saves_and_loads(tmp_path / "g.safetensors", done)


def assert_saves_and_loads(path: Path, done: TrainFinished) -> None:
    """The trained generator saved as safetensors loads back drawing the same images."""
    save_generator(path, done.generator, done.architecture, done.options)
    loaded, spec = load_generator_safetensors(path)
    z = torch.randn(4, 8)
    with torch.no_grad():
        torch.testing.assert_close(loaded(z), done.generator(z))
    assert spec.output_shape == (3, 8, 8)


def test_joint_models_save_their_generator(tmp_path: Path) -> None:
    for loss in ("veegan", "bigan"):
        done = finished(run(loss=loss, steps=2, latent_dim=3, **TINY_MLP))
        assert done.options["latent_dim"] == 3 and done.options["data_dim"] == 2
        save_generator(tmp_path / f"{loss}.safetensors", done.generator, "mlp", done.options)


@pytest.mark.parametrize("loss", ["veegan", "bigan", "ali"])
def test_joint_models_train_dcgan_networks_on_images(tmp_path: Path, loss: str) -> None:
    """VEEGAN, BiGAN and ALI on square images with convolutional networks (ALI's layout): the
    generator is a DCGAN generator like any other, saved and loaded as one (the widths of the
    encoder and joint discriminator: tests/test_gan_joint.py)."""
    fields = dict(TINY_DCGAN, architecture_options={"base_width": 4}, d_width=2.0)
    events = run(loss=loss, steps=3, log_every=1, sample_every=3, **fields)
    done = finished(events)
    assert done.architecture == "dcgan" and done.discriminator is None
    assert done.options["image_size"] == 8 and done.options["d_width"] == 2.0
    progress = [e for e in events if isinstance(e, TrainProgress)]
    assert len(progress) == 3 and all(math.isfinite(v) for v in progress[-1].losses.values())
    assert_saves_and_loads(tmp_path / f"{loss}.safetensors", done)


def test_networks_beyond_the_parameter_budget_are_refused_before_they_exist() -> None:
    """A request for absurd widths is a clear error, counted on the meta device: nothing is
    allocated."""
    huge = TrainConfig(
        dataset="stacked_digits",
        architecture="dcgan",
        loss="ali",
        d_width=16.0,
        architecture_options={"base_width": 1024},
    )
    with pytest.raises(ValueError, match=r"5,644,699,849 parameters, more than the 200,000,000"):
        train(huge)
    # A batch whose layer outputs would not fit is refused the same way.
    wide_batch = TrainConfig(
        dataset="stacked_digits",
        dataset_options={"image_size": 64},
        architecture="dcgan",
        d_width=4.0,
        batch_size=8192,
    )
    with pytest.raises(ValueError, match=r"GiB of activations, more than the 4 GiB"):
        train(wide_batch)
    # The count is the networks' own: a small run's equals its built generator and discriminator.
    config = TrainConfig(**dict(TINY_DCGAN, loss="lsgan", steps=1))
    done = finished(list(train(config)))
    assert done.discriminator is not None
    built = [*done.generator.parameters(), *done.discriminator.parameters()]
    size = run_size(config, done.options, (3, 8, 8))
    assert size.parameters == sum(p.numel() for p in built)
    # Per sample at 8x8x3, base width 8: G's ConvT to 8x4x4, BatchNorm, ReLU (128 each), ConvT to
    # 3x8x8 and Tanh (192 each): 768; D's Conv to 8x4x4 and LeakyReLU (128 each) and the logit:
    # 257, on a generated and a real sample. 1,282 floats, 4 bytes, batch of 8.
    assert size.activation_bytes == 4 * (768 + 2 * 257) * 8


def test_a_request_is_checked_without_building_its_networks() -> None:
    """The API checks a training request in its own process: every parameter made there is a
    meta one (a real build of a run near the budget would take gigabytes per request)."""
    devices: list[str] = []

    def record(_module: torch.nn.Module, _name: str, param: torch.nn.Parameter | None) -> None:
        if param is not None:
            devices.append(param.device.type)

    fields = dict(TINY_DCGAN, loss="ali", architecture_options={"base_width": 4})
    hook = register_module_parameter_registration_hook(record)
    try:
        assert train_config(fields) == TrainConfig(**fields)
        assert devices and set(devices) == {"meta"}
        with pytest.raises(ValueError, match="more than the 200,000,000"):
            train_config(dict(fields, architecture_options={"base_width": 1024}, d_width=16.0))
        # train() itself builds them for real
        devices.clear()
        finished(list(train(TrainConfig(**dict(fields, steps=1)))))
        assert "cpu" in devices
    finally:
        hook.remove()


@pytest.mark.parametrize("weight", [None, 0.0, 0.1])
def test_the_gradient_penalty_weighs_what_gp_weight_says(weight: float | None) -> None:
    """The critic's loss is the Wasserstein estimate plus lambda times the penalty: the loss's
    own lambda (10) by default, gp_weight when given (0.1 is WGAN-GP's code on toy data)."""
    (progress, *_) = run(loss="wgan_gp", steps=1, gp_weight=weight, **TINY_MLP)
    assert isinstance(progress, TrainProgress)
    losses = progress.losses
    wasserstein = losses["d_fake"] - losses["d_real"]
    lam = 10.0 if weight is None else weight
    assert losses["gradient_penalty"] > 0
    assert losses["discriminator"] == pytest.approx(
        wasserstein + lam * losses["gradient_penalty"], rel=1e-5, abs=1e-6
    )


@pytest.mark.parametrize(
    ("loss", "chosen", "used"),
    [
        ("wgan_gp", None, "layer"),
        ("rasgan_gp", None, "layer"),
        ("wgan_gp", "none", "none"),
        ("rasgan", None, "batch"),
        ("rasgan", "layer", "layer"),
    ],
)
def test_a_penalised_loss_gets_a_critic_without_batchnorm(
    loss: str, chosen: str | None, used: str
) -> None:
    """Gulrajani et al. 2017, sec. 4: the penalty is per sample, so the critic must not mix the
    batch; the choice reaches the saved options, which the discriminator embedder rebuilds from."""
    options = {"base_width": 8} | ({} if chosen is None else {"d_norm": chosen})
    config = TrainConfig(  # 16x16: the DCGAN critic's first normalisation layer
        **TINY_DCGAN
        | {"loss": loss, "architecture_options": options, "dataset_options": {"image_size": 16}}
    )
    _, resolved = check_config(config)
    assert resolved["d_norm"] == used
    norms = {type(m) for m in build_discriminator("dcgan", resolved).modules()}
    assert (torch.nn.BatchNorm2d in norms) == (used == "batch")
    assert (torch.nn.GroupNorm in norms) == (used == "layer")


@pytest.mark.parametrize("loss", list(LOSSES))
def test_the_generator_step_draws_its_own_noise(loss: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """WGAN-GP's Algorithm 1 (line 11) samples a fresh z for the generator after its critic
    steps, and the relativistic reference code does so for every loss, with a fresh real batch
    for D(x): the G step must not reuse the last critic step's z (nor its x)."""
    calls: list[tuple[str, torch.Tensor | None]] = []  # in order: G and D inputs, loss calls
    build = app.gan.training.init_networks

    def recorded(config: TrainConfig, options: dict[str, Any]) -> Any:
        net_g, net_d = build(config, options)
        net_g.register_forward_pre_hook(lambda _, args: calls.append(("G", args[0].clone())))
        net_d.register_forward_pre_hook(lambda _, args: calls.append(("D", args[0].clone())))
        return net_g, net_d

    pair = LOSSES[loss]

    def loss_d(d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
        calls.append(("loss_d", None))
        return pair.d(d_real, d_fake)

    def loss_g(d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
        calls.append(("loss_g", None))
        return pair.g(d_real, d_fake)

    monkeypatch.setattr(app.gan.training, "init_networks", recorded)
    monkeypatch.setitem(LOSSES, loss, dataclasses.replace(pair, d=loss_d, g=loss_g))
    finished(run(loss=loss, steps=1, d_steps=2, **TINY_MLP))

    names = [name for name, _ in calls]
    assert names.count("loss_d") == 2 and names.count("loss_g") == 1
    end = names.index("loss_g") + 1  # the G calls after it draw the sample grid
    calls, names = calls[:end], names[:end]
    last_critic = max(i for i, name in enumerate(names) if name == "loss_d")
    critic_z = [x for name, x in calls[:last_critic] if name == "G"]
    assert len(critic_z) == 2 and not torch.equal(critic_z[0], critic_z[1])
    # the generator's loss is on the last G(z) before it
    z_of_g_loss = [x for name, x in calls if name == "G"][-1]
    assert not torch.equal(z_of_g_loss, critic_z[-1])
    assert not torch.equal(z_of_g_loss, critic_z[0])
    g_step = calls[last_critic + 1 : -1]  # after the last critic loss: G step (and D's penalty)
    if pair.g_uses_real:
        # the critic step's D(x) is D's first input after that step's G(z)
        last_g = max(i for i, name in enumerate(names[:last_critic]) if name == "G")
        critic_real = next(x for name, x in calls[last_g:] if name == "D")
        seen_by_d = [x for name, x in g_step if name == "D"]
        assert seen_by_d[-1] is not None and seen_by_d[-1].shape == critic_real.shape
        assert all(not torch.equal(x, critic_real) for x in seen_by_d)


def test_widths_reach_the_networks() -> None:
    done = finished(run(loss="lsgan", steps=1, g_width=0.5, d_width=2.0, **TINY_DCGAN))
    assert done.options["g_width"] == 0.5 and done.options["d_width"] == 2.0
    first = next(m for m in done.generator.modules() if isinstance(m, torch.nn.ConvTranspose2d))
    assert first.out_channels == 4  # base 8 x g_width 0.5; 8x8 has one stage, so no doubling


def test_digits_upsampled_train_at_their_size() -> None:
    events = run(
        loss="sgan_nonsaturating",
        steps=1,
        dataset="digits",
        dataset_options={"image_size": 16},
        architecture="dcgan",
        latent_dim=4,
        architecture_options={"base_width": 4},
        batch_size=4,
        grid_size=4,
    )
    assert finished(events).options["image_size"] == 16
    assert finished(events).options["channels"] == 1


def test_divergence_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    def nan_d(d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
        return lsgan_d(d_real, d_fake) * float("nan")

    monkeypatch.setitem(LOSSES, "lsgan", LossPair(nan_d, lsgan_g))
    events = train(TrainConfig(loss="lsgan", steps=10, log_every=5, **TINY_MLP))
    with pytest.raises(
        TrainingDiverged, match="discriminator.*not finite by step 5; try a lower lr"
    ):
        next(events)


def test_config_round_trips_through_json_like_dicts() -> None:
    config = TrainConfig(
        dataset="digits", dataset_options={"image_size": 16}, architecture="dcgan", betas=(0.0, 0.9)
    )
    data = config.to_dict()
    assert data["betas"] == [0.0, 0.9]
    assert TrainConfig.from_dict(data) == config
    with pytest.raises(ValueError, match="unknown training option.*epochs"):
        TrainConfig.from_dict({"epochs": 3})


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"loss": "minimax"}, "unknown loss 'minimax'; known: sgan_saturating"),
        ({"architecture": "resnet"}, "unknown architecture 'resnet'; known: dcgan, mlp"),
        ({"steps": 0}, "steps must be an integer from 1"),
        ({"steps": 2.5}, "steps must be an integer"),
        ({"batch_size": True}, "batch_size must be an integer"),
        ({"d_steps": 5, "loss": "bigan"}, "d_steps must be 1"),
        ({"lr": 0}, r"lr must be in \(0, 1\]"),
        ({"lr": float("nan")}, r"lr must be in \(0, 1\]"),
        ({"lr": "fast"}, "lr must be a number"),
        ({"betas": (0.5, 1.0)}, r"betas must be two numbers in \[0, 1\)"),
        ({"betas": [0.5, 0.9]}, "betas must be two numbers"),
        ({"seed": -1}, "seed must be an integer from 0"),
        ({"device": "gpu0"}, "device must name a torch device"),
        ({"sample_every": -1}, "sample_every must be an integer from 0"),
        ({"latent_dim": 0}, "latent_dim must be an integer from 1 to 512"),
        ({"d_width": 0}, r"d_width must be a number in \(0, 16\]"),
        ({"architecture_options": {"hidden": 0}}, "hidden must be an integer"),
        (
            {"architecture_options": {"ngf": 3}},
            "architecture_options for mlp take hidden, depth; unknown: ngf",
        ),
        ({"architecture_options": {"latent_dim": 3}}, "may not set latent_dim"),
        (
            {
                "loss": "wgan_gp",
                "architecture": "dcgan",
                "architecture_options": {"d_norm": "batch"},
            },
            "gradient penalty is taken per sample.*use d_norm layer",
        ),
        ({"dataset_options": [1]}, "dataset_options must be a JSON object"),
        ({"gp_weight": 1.0}, "gp_weight is the gradient penalty's lambda: only wgan_gp, "),
        ({"loss": "wgan_gp", "gp_weight": -1.0}, r"gp_weight must be in \[0, 10000\]"),
        ({"loss": "wgan_gp", "gp_weight": "10"}, "gp_weight must be a number"),
    ],
)
def test_config_errors_say_what_to_do(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TrainConfig(**fields)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"dataset": "emnist"}, "unknown dataset 'emnist'; known: ring8"),
        ({"dataset": "ring8", "architecture": "dcgan"}, "takes square images.*image_size="),
        ({"dataset": "ring8", "dataset_options": {"std": 1}}, "unknown option.*std.*ring8"),
        ({"dataset": "npz", "architecture": "dcgan"}, "dataset 'npz' needs option.*path"),
    ],
)
def test_data_that_does_not_fit_is_refused_before_training(
    fields: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        train(TrainConfig(**fields))


def test_an_mlp_takes_square_images_flat_and_refuses_others(tmp_path: Path) -> None:
    np.savez(tmp_path / "wide.npz", images=np.zeros((4, 8, 12, 1), np.uint8))
    wide = {"dataset": "npz", "dataset_options": {"path": str(tmp_path / "wide.npz")}}
    with pytest.raises(ValueError, match="'mlp' takes vectors or square images.*shape"):
        train(TrainConfig(**wide))
    for loss in ("sgan_nonsaturating", "veegan", "bigan"):
        done = finished(run(loss=loss, dataset="digits", steps=2, latent_dim=4, batch_size=8))
        assert done.options["image_size"] == 8 and done.options["data_dim"] == 64
        with torch.no_grad():
            assert done.generator(torch.randn(3, 4)).shape == (3, 1, 8, 8)
        assert (done.discriminator is None) == (loss != "sgan_nonsaturating")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a CPU-only machine")
def test_cuda_without_a_gpu_is_refused() -> None:
    with pytest.raises(ValueError, match="CUDA is not available here; use 'cpu'"):
        train(TrainConfig(device="cuda"))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_runs_on_the_gpu() -> None:
    done = finished(run(loss="rasgan", steps=3, device="cuda", **TINY_DCGAN))
    assert next(done.generator.parameters()).is_cuda
