"""WGAN-GP's own training loop (Gulrajani et al. 2017, Algorithm 1: lambda 10, n_critic 5, Adam
alpha 1e-4, beta1 0, beta2 0.9): where its settings live, and that the defaults stay DCGAN's, so
that a run stored or resumed with them trains as it did."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from app.gan.losses import LOSSES
from app.gan.training import (
    TRAIN_LOSSES,
    TrainCheckpoint,
    TrainConfig,
    paper_loop,
    train,
)


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_wgan_gp_has_its_papers_loop() -> None:
    assert paper_loop("wgan_gp") == {"d_steps": 5, "lr": 1e-4, "betas": (0.0, 0.9)}
    assert LOSSES["wgan_gp"].gradient_penalty_weight == 10.0  # lambda: the loss's own
    config = TrainConfig(loss="wgan_gp", **paper_loop("wgan_gp"))
    assert (config.d_steps, config.lr, config.betas) == (5, 1e-4, (0.0, 0.9))
    assert config.gp_weight is None
    paper_loop("wgan_gp")["d_steps"] = 1  # a copy: the table stays as the paper has it
    assert paper_loop("wgan_gp")["d_steps"] == 5


def test_the_other_losses_train_with_the_defaults() -> None:
    assert all(paper_loop(loss) == {} for loss in TRAIN_LOSSES if loss != "wgan_gp")


def test_the_defaults_stay_dcgans_for_every_loss() -> None:
    """Not chosen per loss: a stored run's config, and a state saved by it, go on as before."""
    for loss in TRAIN_LOSSES:
        config = TrainConfig(loss=loss)
        assert (config.d_steps, config.lr, config.betas) == (1, 2e-4, (0.5, 0.999))


def test_a_run_with_the_papers_loop_takes_five_critic_steps_per_generator_step() -> None:
    config = TrainConfig(
        loss="wgan_gp",
        steps=2,
        dataset="ring8",
        architecture_options={"hidden": 16},
        batch_size=16,
        sample_every=0,
        **paper_loop("wgan_gp"),
    )
    state = next(e for e in train(config, checkpoint_every=1) if isinstance(e, TrainCheckpoint))
    # Adam's step counts after one generator update
    assert float(state.state.tensors["optimizer.discriminator.0.step"]) == 5
    assert float(state.state.tensors["optimizer.generator.0.step"]) == 1
