"""Digits embedder: per-channel class probabilities from the project's digit classifier, so that
stacked digits of one class triple embed near each other whatever their handwriting."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient

from app.embed import make_embedder
from app.embed.digits import DigitEmbedder
from app.gan.digit_classifier import (
    DIGIT_SETS,
    digit_probabilities,
    load_or_train_digit_classifier,
    split_digits,
)
from app.gan.digits import digit_arrays
from app.settings import Settings
from tests.conftest import wait_for_audit

CLASSIFIER_FILE = DIGIT_SETS["sklearn"].cache_file  # where the train job caches it too


@pytest.fixture(scope="module")
def classifier_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The classifier trained once for the module (5-15 s), at the models dir's builtin path."""
    models = tmp_path_factory.mktemp("models")
    load_or_train_digit_classifier(models / CLASSIFIER_FILE)
    return models / CLASSIFIER_FILE


@pytest.fixture
def models_dir(tmp_path: Path, classifier_file: Path) -> Path:
    models = tmp_path / "models"
    (models / CLASSIFIER_FILE).parent.mkdir(parents=True)
    shutil.copyfile(classifier_file, models / CLASSIFIER_FILE)
    return models


def stacked(digits: torch.Tensor, triples: torch.Tensor) -> torch.Tensor:
    """Images (n, 3, S, S) whose channels are the digits at the index triples (n, 3)."""
    return digits[triples.flatten()].reshape(len(triples), 3, *digits.shape[2:])


def held_out_by_class() -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The classifier's held-out digits, and their indices (into all digits) per class."""
    digits, classes = digit_arrays()
    _, held_out = split_digits()
    return digits, [held_out[classes[held_out] == c] for c in range(10)]


def pick(
    by_class: list[torch.Tensor], triple: tuple[int, ...], rng: np.random.Generator
) -> list[int]:
    return [int(rng.choice(by_class[c].numpy())) for c in triple]


def test_rows_are_per_channel_probabilities(classifier_file: Path) -> None:
    digits, _ = digit_arrays()
    embedder = DigitEmbedder((3, 8, 8), classifier_file, device="cpu")
    assert embedder.dim == 30
    rows = embedder.embed(stacked(digits, torch.arange(15).reshape(5, 3)))
    assert rows.shape == (5, 30) and rows.dtype == np.float32
    assert (rows >= 0).all()
    np.testing.assert_allclose(rows.reshape(5, 3, 10).sum(axis=2), 1.0, rtol=1e-5)


def test_one_channel_rows_read_the_digit(classifier_file: Path) -> None:
    digits, by_class = held_out_by_class()
    index = torch.tensor([int(by_class[c][0]) for c in range(10)])
    rows = DigitEmbedder((1, 8, 8), classifier_file, device="cpu").embed(digits[index])
    assert rows.shape == (10, 10)
    assert (rows.argmax(axis=1) == np.arange(10)).sum() >= 9


def test_upsampled_digits_are_shrunk_as_the_classifier_shrinks_them(classifier_file: Path) -> None:
    small, _ = digit_arrays(8)
    large, _ = digit_arrays(32)
    triples = torch.arange(60).reshape(20, 3)
    rows_small = DigitEmbedder((3, 8, 8), classifier_file, device="cpu").embed(
        stacked(small, triples)
    )
    rows_large = DigitEmbedder((3, 32, 32), classifier_file, device="cpu").embed(
        stacked(large, triples)
    )
    assert rows_large.shape == (20, 30)
    model = load_or_train_digit_classifier(classifier_file).model
    expected = digit_probabilities(model, stacked(large, triples)).reshape(20, 30)
    np.testing.assert_allclose(rows_large, expected.numpy(), atol=1e-6)
    # pooling undoes the upsampling closely, not exactly: measured 57 of these 60 digits agree
    agree = rows_small.reshape(20, 3, 10).argmax(axis=2) == rows_large.reshape(20, 3, 10).argmax(2)
    assert agree.mean() >= 0.9


def test_embedding_is_deterministic(classifier_file: Path) -> None:
    images = torch.rand(7, 3, 8, 8) * 2 - 1
    first = DigitEmbedder((3, 8, 8), classifier_file, device="cpu", batch_size=3)
    again = DigitEmbedder((3, 8, 8), classifier_file, device="cpu")
    rows = first.embed(images)
    np.testing.assert_array_equal(rows, first.embed(images))
    np.testing.assert_allclose(rows, again.embed(images), rtol=1e-5, atol=1e-7)


def test_same_class_triples_embed_closer_than_different_ones(classifier_file: Path) -> None:
    """Held-out digits in different handwriting: a pair of one triple is nearer than a pair of two
    triples, for nearly every such comparison (the classifier gets ~1% of digits wrong)."""
    digits, by_class = held_out_by_class()
    rng = np.random.default_rng(0)
    triples = [tuple(int(c) for c in rng.integers(0, 10, 3)) for _ in range(100)]
    others = [
        tuple(int(c) for c in rng.integers(0, 10, 3)) for _ in range(100)
    ]  # nearly all differ from their partner in `triples`; the ones that do not are dropped
    first = torch.tensor([pick(by_class, t, rng) for t in triples])
    same = torch.tensor([pick(by_class, t, rng) for t in triples])
    different = torch.tensor([pick(by_class, t, rng) for t in others])
    embedder = DigitEmbedder((3, 8, 8), classifier_file, device="cpu")
    a, b, c = (embedder.embed(stacked(digits, index)) for index in (first, same, different))
    same_distance = np.linalg.norm(a - b, axis=1)
    differs = np.array([t != o for t, o in zip(triples, others, strict=True)])
    different_distance = np.linalg.norm(a - c, axis=1)[differs]
    assert np.median(same_distance) < 0.05
    assert np.median(different_distance) > 1.0
    # the chance that a same-triple pair is nearer than a different-triple pair (ROC AUC)
    nearer = (same_distance[:, None] < different_distance[None, :]).mean()
    assert nearer > 0.95


def test_factory_builds_it_at_the_models_dirs_builtin_path(models_dir: Path) -> None:
    embedder = make_embedder("digits", {"batch_size": 5}, (3, 8, 8), models_dir, device="cpu")
    assert isinstance(embedder, DigitEmbedder)
    assert embedder.classifier_path == models_dir / CLASSIFIER_FILE
    assert (embedder.dim, embedder.batch_size) == (30, 5)


@pytest.mark.parametrize(
    ("options", "shape", "message"),
    [
        ({"resize": 8}, (3, 8, 8), "unknown option.*'resize'.*allowed: batch_size, classifier"),
        ({"classifier": "emnist"}, (3, 8, 8), "'classifier' must be one of 'sklearn', 'mnist'"),
        ({"weights": "../x.pt"}, (3, 8, 8), "must not contain '..'"),
        ({"weights": ""}, (3, 8, 8), "weights must be a non-empty path"),
        ({"batch_size": 0}, (3, 8, 8), "'batch_size' must be a positive integer"),
        ({}, (3, 4, 4), "at least 8x8"),
        ({}, (2, 8, 8), "1 or 3 channels"),
    ],
)
def test_factory_refuses_what_it_cannot_honour(
    tmp_path: Path, options: dict, shape: tuple[int, int, int], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        make_embedder("digits", options, shape, tmp_path, device="cpu")


def test_images_of_another_shape_are_refused(classifier_file: Path) -> None:
    with pytest.raises(ValueError, match="must have shape"):
        DigitEmbedder((3, 8, 8), classifier_file, device="cpu").embed(torch.zeros(1, 3, 16, 16))


def test_constructing_it_does_not_train_the_classifier(tmp_path: Path) -> None:
    make_embedder("digits", {}, (3, 8, 8), tmp_path, device="cpu")
    assert not (tmp_path / CLASSIFIER_FILE).exists()


def test_an_audit_with_the_digits_embedder_runs_over_the_api(
    settings: Settings, client: TestClient, classifier_file: Path
) -> None:
    cached = settings.models_dir / CLASSIFIER_FILE
    cached.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(classifier_file, cached)
    body = {
        "synthetic": {"support": 20, "image_size": 8, "channels": 3},
        "n": 60,
        "neighbours": 5,
        "embedder": "digits",
    }
    response = client.post("/api/audits", json=body)
    assert response.status_code == 202, response.text
    audit = wait_for_audit(client, response.json()["id"])
    assert audit["status"] == "done", audit
    assert audit["embedder"] == "digits"
    pairs = client.get(f"/api/audits/{audit['id']}/pairs", params={"limit": 500}).json()["items"]
    assert pairs
    # rows are probability vectors of 3 channels: no two lie further apart than sqrt(2 * 3)
    assert all(0 <= pair["distance"] <= 6**0.5 + 1e-6 for pair in pairs)
    assert client.get(f"/api/audits/{audit['id']}/estimate").status_code == 200


def test_unknown_options_over_the_api_are_422(client: TestClient) -> None:
    body = {
        "synthetic": {"support": 5, "image_size": 8, "channels": 3},
        "embedder": "digits",
        "embedder_options": {"crop": 4},
    }
    response = client.post("/api/audits", json=body)
    assert response.status_code == 422
    assert "crop" in response.json()["detail"]
