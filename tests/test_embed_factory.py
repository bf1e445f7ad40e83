"""make_embedder: builds what the options say and refuses anything it cannot honour; the list of
embedders and the weights files they can name."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient

from app.embed import PixelEmbedder, make_embedder, resolve_weights
from app.embed.clip import TINY_CLIP_MODEL
from app.settings import Settings

SHAPE = (3, 16, 16)


def test_pixels_options_reach_the_embedder(tmp_path: Path) -> None:
    embedder = make_embedder(
        "pixels", {"crop": 12, "resize": 6, "normalize": "l2"}, SHAPE, tmp_path, device="cpu"
    )
    assert isinstance(embedder, PixelEmbedder)
    assert (embedder.crop, embedder.resize, embedder.normalize) == (12, 6, "l2")
    assert embedder.dim == 3 * 6 * 6
    rows = embedder.embed(torch.rand(2, *SHAPE) * 2 - 1)
    np.testing.assert_allclose(np.linalg.norm(rows, axis=1), 1.0, rtol=1e-5)


def test_pixels_defaults_flatten_the_whole_image(tmp_path: Path) -> None:
    assert make_embedder("pixels", {}, SHAPE, tmp_path, device="cpu").dim == 3 * 16 * 16


@pytest.mark.parametrize(
    ("kind", "options", "message"),
    [
        ("vgg", {}, "unknown embedder 'vgg'; choose one of pixels, clip"),
        ("pixels", {"crop": 8, "blur": 1}, "unknown option.*'blur'.*allowed: batch_size, crop"),
        ("pixels", {"crop": "8"}, "'crop' must be a positive integer"),
        ("pixels", {"crop": True}, "'crop' must be a positive integer"),
        ("pixels", {"resize": 0}, "'resize' must be a positive integer"),
        ("pixels", {"crop": 17}, "crop must be between 1 and"),
        ("pixels", {"normalize": "l1"}, "'normalize' must be 'none' or 'l2'"),
        ("clip", {}, "'model' is required"),
        ("clip", {"model": TINY_CLIP_MODEL, "weights": "x", "extra": 1}, "unknown option"),
        ("clip", {"model": "ViT-B-32"}, "'weights' is required for CLIP model 'ViT-B-32'"),
        ("clip", {"model": TINY_CLIP_MODEL, "tag": 3}, "'tag' must be"),
    ],
)
def test_invalid_options_are_refused_with_a_message(
    tmp_path: Path, kind: str, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        make_embedder(kind, options, SHAPE, tmp_path, device="cpu")


def test_options_must_be_a_mapping(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="must be an object"):
        make_embedder("pixels", ["crop"], SHAPE, tmp_path)  # type: ignore[arg-type]


@pytest.mark.parametrize("shape", [(2, 16, 16), (3, 16), (3, 0, 16)])
def test_unusable_image_shapes_are_refused(tmp_path: Path, shape: Any) -> None:
    with pytest.raises(ValueError, match="channels|positive sides"):
        make_embedder("pixels", {}, shape, tmp_path)


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        ("/etc/passwd", "not absolute"),
        ("../outside.pt", "must not contain '..'"),
        ("clip/../../outside.pt", "must not contain '..'"),
        ("clip\\..\\outside.pt", "'/' separators"),
        ("", "non-empty"),
    ],
)
def test_weights_paths_cannot_leave_the_models_directory(
    tmp_path: Path, weights: str, message: str
) -> None:
    models = tmp_path / "models"
    models.mkdir()
    (tmp_path / "outside.pt").write_bytes(b"")
    with pytest.raises(ValueError, match=message):
        make_embedder(
            "clip", {"model": TINY_CLIP_MODEL, "weights": weights}, SHAPE, models, device="cpu"
        )


def test_a_missing_weights_file_names_the_relative_path(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="'clip/ViT-B-32.safetensors' not found"):
        make_embedder(
            "clip",
            {"model": "ViT-B-32", "weights": "clip/ViT-B-32.safetensors"},
            SHAPE,
            tmp_path,
            device="cpu",
        )


def test_resolve_weights_finds_a_nested_file(tmp_path: Path) -> None:
    (tmp_path / "clip").mkdir()
    (tmp_path / "clip" / "w.safetensors").write_bytes(b"x")
    assert resolve_weights(tmp_path, "clip/w.safetensors") == tmp_path / "clip" / "w.safetensors"


def test_tiny_clip_runs_untrained_or_from_a_file_in_the_models_directory(tmp_path: Path) -> None:
    untrained = make_embedder("clip", {"model": TINY_CLIP_MODEL}, (1, 28, 28), tmp_path, "cpu")
    assert "untrained" in untrained.name
    (tmp_path / "clip").mkdir()
    torch.save(untrained.model.state_dict(), tmp_path / "clip" / "tiny.pt")  # type: ignore[attr-defined]
    loaded = make_embedder(
        "clip",
        {"model": TINY_CLIP_MODEL, "weights": "clip/tiny.pt", "batch_size": 2},
        (1, 28, 28),
        tmp_path,
        "cpu",
    )
    assert loaded.name == f"clip:{TINY_CLIP_MODEL}:tiny.pt"
    batch = torch.rand(3, 1, 28, 28) * 2 - 1
    np.testing.assert_allclose(loaded.embed(batch), untrained.embed(batch), atol=1e-6)


def test_efficientnet_is_refused_with_an_install_hint_when_absent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import app.embed.efficientnet as efficientnet

    monkeypatch.setattr(efficientnet, "efficientnet_available", lambda: False)
    with pytest.raises(ValueError, match="pip install efficientnet-lite-pytorch"):
        make_embedder("efficientnet", {}, SHAPE, tmp_path, device="cpu")


def test_the_embedders_list_says_what_weights_each_takes_and_finds_them(
    client: TestClient, settings: Settings
) -> None:
    models = settings.models_dir
    for relative in (
        "clip/ViT-B-32.safetensors",  # weights a user put there
        "efficientnet/lite0.pth",
        "trained/run_1.discriminator.safetensors",
        "trained/run_1.safetensors",  # a trained generator
        "trained/run_2.state.safetensors",  # a run's resumable state
        "builtin/digit_classifier.pt",
        "builtin/mnist_classifier.0123456789abcdef.pt",
        "builtin/dcgan-digits-16.safetensors",  # a built-in generator
        "uploads/1-mine.safetensors",  # an uploaded generator
        ".cache/x.pt",
        "clip/README.txt",
    ):
        (models / relative).parent.mkdir(parents=True, exist_ok=True)
        (models / relative).write_bytes(b"")
    body = client.get("/api/embedders").json()
    uses = {e["name"]: (e["weights"], e["file_kind"]) for e in body["embedders"]}
    assert uses == {
        "pixels": ("none", None),
        "clip": ("required", "weights"),
        "efficientnet": ("optional", "weights"),
        "digits": ("optional", "digit_classifier"),
        "discriminator": ("required", "discriminator"),
    }
    options = {e["name"]: e["options"] for e in body["embedders"]}
    assert options["digits"] == ["batch_size", "classifier", "weights"]
    assert body["files"] == [
        {"path": "builtin/digit_classifier.pt", "kind": "digit_classifier"},
        {"path": "builtin/mnist_classifier.0123456789abcdef.pt", "kind": "digit_classifier"},
        {"path": "clip/ViT-B-32.safetensors", "kind": "weights"},
        {"path": "efficientnet/lite0.pth", "kind": "weights"},
        {"path": "trained/run_1.discriminator.safetensors", "kind": "discriminator"},
    ]


def test_a_huge_models_directory_is_walked_only_so_far(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.services import embedders

    for k in range(30):
        (tmp_path / "hub" / f"m{k:02d}").mkdir(parents=True)
        (tmp_path / "hub" / f"m{k:02d}" / "w.safetensors").write_bytes(b"")
    assert len(embedders.weights_files(tmp_path)) == 30
    monkeypatch.setattr(embedders, "MAX_VISITED", 40)  # the hub, its 30 folders, 9 files
    assert len(embedders.weights_files(tmp_path)) == 9
    monkeypatch.setattr(embedders, "MAX_LISTED_FILES", 5)
    monkeypatch.setattr(embedders, "MAX_VISITED", 10**6)
    assert len(embedders.weights_files(tmp_path)) == 5
