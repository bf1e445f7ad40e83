"""The discriminator embedder: a DCGAN discriminator's last hidden layer, loaded from a tagged file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from app.embed.discriminator import DiscriminatorEmbedder
from app.embed.factory import make_embedder
from app.gan.checkpoint import save_discriminator, save_generator
from app.gan.registry import build_discriminator, build_generator

OPTIONS = {"image_size": 16, "channels": 1, "base_width": 8, "latent_dim": 4}


def _trained_like(tmp_path: Path, seed: int = 0) -> tuple[Path, torch.nn.Module]:
    """A discriminator with random weights and non-trivial BatchNorm statistics, saved."""
    torch.manual_seed(seed)
    module = build_discriminator("dcgan", OPTIONS)
    module.train()
    with torch.no_grad():
        for _ in range(3):  # move the running statistics off their initial values
            module(torch.rand(32, 1, 16, 16) * 2 - 1)
    path = tmp_path / "trained" / "run_1.discriminator.safetensors"
    path.parent.mkdir(parents=True, exist_ok=True)
    save_discriminator(path, module, "dcgan", OPTIONS)
    return path, module.eval()


def test_rows_are_the_normalised_activations_before_the_logit(tmp_path: Path) -> None:
    path, module = _trained_like(tmp_path)
    embedder = DiscriminatorEmbedder(path, (1, 16, 16), device="cpu")
    images = torch.rand(10, 1, 16, 16) * 2 - 1
    rows = embedder.embed(images)
    with torch.no_grad():
        hidden = module.main[:-1](images).reshape(10, -1)  # 16 channels at 4x4 for 16 px
    expected = (hidden / hidden.norm(dim=1, keepdim=True)).numpy()
    assert embedder.dim == 16 * 4 * 4 == rows.shape[1]
    np.testing.assert_allclose(rows, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(rows, axis=1), 1.0, rtol=1e-5)
    # The logit is a linear map of these features: the file's weights were really used.
    with torch.no_grad():
        logits = module(images).numpy()
    last = module.main[-1].weight.detach().reshape(-1).numpy()
    np.testing.assert_allclose(hidden.numpy() @ last, logits, rtol=1e-4, atol=1e-5)


def test_a_sample_embeds_the_same_alone_or_in_a_batch(tmp_path: Path) -> None:
    """Eval-mode BatchNorm: a row never depends on the other samples of its chunk."""
    path, _ = _trained_like(tmp_path)
    embedder = DiscriminatorEmbedder(path, (1, 16, 16), device="cpu", batch_size=3)
    images = torch.rand(7, 1, 16, 16) * 2 - 1
    together = embedder.embed(images)
    alone = np.concatenate([embedder.embed(images[i : i + 1]) for i in range(7)])
    np.testing.assert_allclose(together, alone, rtol=1e-5, atol=1e-6)
    twice = embedder.embed(torch.cat([images[:1], images[:1]]))
    np.testing.assert_array_equal(twice[0], twice[1])


def test_unnormalised_rows_keep_their_scale(tmp_path: Path) -> None:
    path, module = _trained_like(tmp_path)
    embedder = DiscriminatorEmbedder(path, (1, 16, 16), device="cpu", normalize="none")
    images = torch.rand(4, 1, 16, 16) * 2 - 1
    with torch.no_grad():
        hidden = module.main[:-1](images).reshape(4, -1).numpy()
    np.testing.assert_allclose(embedder.embed(images), hidden, rtol=1e-5, atol=1e-6)


def test_files_that_are_not_an_image_discriminator_are_refused(tmp_path: Path) -> None:
    generator, _ = build_generator("dcgan", OPTIONS)
    as_generator = tmp_path / "g.safetensors"
    save_generator(as_generator, generator, "dcgan", OPTIONS)
    with pytest.raises(ValueError, match="not a discriminator file"):
        DiscriminatorEmbedder(as_generator, (1, 16, 16))
    mlp = tmp_path / "mlp.safetensors"
    save_discriminator(mlp, build_discriminator("mlp", {}), "mlp", {})
    with pytest.raises(ValueError, match="cannot embed images"):
        DiscriminatorEmbedder(mlp, (1, 16, 16))
    path, _ = _trained_like(tmp_path)
    with pytest.raises(ValueError, match=r"trained on images of shape \(1, 16, 16\)"):
        DiscriminatorEmbedder(path, (3, 16, 16))
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all}")
    with pytest.raises(ValueError, match="not a safetensors file"):
        DiscriminatorEmbedder(garbage, (1, 16, 16))


def test_a_wrong_network_under_the_right_tag_is_refused(tmp_path: Path) -> None:
    """Tensors that do not fit the named architecture never reach load_state_dict."""
    other = dict(OPTIONS, base_width=4)
    path = tmp_path / "d.safetensors"
    save_discriminator(path, build_discriminator("dcgan", other), "dcgan", other)
    raw = path.read_bytes()
    assert raw.count(b'base_width\\": 4') == 1  # the options metadata, a JSON string in JSON
    path.write_bytes(raw.replace(b'base_width\\": 4', b'base_width\\": 8'))
    with pytest.raises(ValueError, match="shape"):
        DiscriminatorEmbedder(path, (1, 16, 16))


def test_the_factory_builds_it_from_a_file_in_the_models_directory(tmp_path: Path) -> None:
    path, _ = _trained_like(tmp_path)
    relative = str(path.relative_to(tmp_path))
    embedder = make_embedder("discriminator", {"weights": relative}, (1, 16, 16), tmp_path)
    assert embedder.dim == 256 and "run_1.discriminator" in embedder.name
    with pytest.raises(ValueError, match="'weights' is required"):
        make_embedder("discriminator", {}, (1, 16, 16), tmp_path)
    with pytest.raises(ValueError, match="'normalize'"):
        make_embedder(
            "discriminator", {"weights": relative, "normalize": "l1"}, (1, 16, 16), tmp_path
        )
    with pytest.raises(ValueError, match=r"\.\."):
        make_embedder("discriminator", {"weights": "../d.safetensors"}, (1, 16, 16), tmp_path)
    with pytest.raises(FileNotFoundError):
        make_embedder("discriminator", {"weights": "nope.safetensors"}, (1, 16, 16), tmp_path)


def test_a_training_job_saves_the_discriminator_it_trained(tmp_path: Path) -> None:
    """The file holds the final discriminator: the same as an identical run's, not its init."""
    from app.gan.checkpoint import load_discriminator_safetensors
    from app.gan.training import TrainFinished, train
    from app.jobs.train import TrainTask, discriminator_file, run_training, train_config

    fields = {
        "dataset": "digits",
        "architecture": "dcgan",
        "loss": "rsgan",
        "latent_dim": 4,
        "d_width": 0.25,
        "g_width": 0.25,
        "steps": 4,
        "batch_size": 8,
        "dataset_options": {"image_size": 16},
        "sample_every": 0,
        "device": "cpu",
    }
    for _ in run_training(TrainTask(run_id=7, config=fields, models_dir=str(tmp_path))):
        pass
    saved = tmp_path / discriminator_file(7)
    module, architecture, options = load_discriminator_safetensors(saved)
    assert architecture == "dcgan" and options["image_size"] == 16
    again = next(e for e in train(train_config(fields)) if isinstance(e, TrainFinished))
    assert again.discriminator is not None
    reference = again.discriminator.state_dict()
    for name, tensor in module.state_dict().items():
        torch.testing.assert_close(tensor, reference[name], rtol=0, atol=0)
    initial = build_discriminator("dcgan", options).state_dict()
    assert any(not torch.equal(t, initial[k]) for k, t in module.state_dict().items())
