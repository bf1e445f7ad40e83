"""Image datasets from local files (.npz archives, image folders) and `make_dataset`'s checks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from app.gan.datasets import DATASETS, make_dataset
from app.gan.image_data import ImageArrayDataset


def test_npz_uint8_nhwc_with_labels(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(30, 8, 8, 3), dtype=np.uint8)
    labels = np.repeat(np.array([7, 3, 11]), 10)
    np.savez(tmp_path / "data.npz", images=images, y=labels)
    dataset = make_dataset("npz", path=tmp_path / "data.npz", labels_key="y")
    assert isinstance(dataset, ImageArrayDataset)
    assert dataset.sample_shape == (3, 8, 8) and len(dataset) == 30
    # labels renumbered in sorted order: 3 -> 0, 7 -> 1, 11 -> 2
    assert dataset.n_modes == 3
    x, modes = dataset.sample(200, torch.Generator().manual_seed(0))
    assert x.dtype == torch.float32 and x.min() >= -1 and x.max() <= 1
    # each drawn image is one of the stored ones, carrying that image's label
    stored = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1
    for image, mode in zip(x[:10], modes[:10], strict=True):
        index = int(torch.nonzero((stored == image).flatten(1).all(dim=1))[0])
        assert int(mode) == {7: 1, 3: 0, 11: 2}[int(labels[index])]


def test_npz_float_nchw_resized(tmp_path: Path) -> None:
    images = np.linspace(-1, 1, 5 * 1 * 16 * 16, dtype=np.float32).reshape(5, 1, 16, 16)
    np.savez(tmp_path / "f.npz", images)
    dataset = make_dataset("npz", path=str(tmp_path / "f.npz"), image_size=8)
    assert dataset.sample_shape == (1, 8, 8) and dataset.n_modes == 0
    x, modes = dataset.sample(4, torch.Generator().manual_seed(1))
    assert (modes == -1).all()
    assert x.min() >= -1 and x.max() <= 1


@pytest.mark.parametrize(
    ("arrays", "options", "message"),
    [
        (
            {"a": np.zeros((2, 8, 8, 3), np.uint8), "b": np.zeros(2)},
            {},
            "name the images with key=",
        ),
        ({"a": np.zeros((2, 8, 8), np.uint8)}, {}, "expected a 4-d image array"),
        ({"a": np.zeros((2, 8, 8, 2), np.uint8)}, {}, "1 or 3 channels"),
        ({"a": np.zeros((2, 1, 8, 8), np.int32)}, {}, "expected uint8 NHWC or float NCHW"),
        ({"a": np.full((2, 1, 8, 8), 2.0, np.float32)}, {}, r"within \[-1, 1\]"),
        ({"a": np.zeros((3, 8, 8, 1), np.uint8)}, {"max_images": 2}, "max_images=2"),
        ({"a": np.zeros((3, 8, 8, 1), np.uint8)}, {"key": "x"}, "no array 'x'; arrays: a"),
        (
            {"a": np.zeros((3, 8, 8, 1), np.uint8), "y": np.zeros(2, np.int64)},
            {"labels_key": "y"},
            "2 labels for 3 images",
        ),
        (
            {"a": np.zeros((3, 8, 8, 1), np.uint8), "y": np.zeros(3)},
            {"labels_key": "y"},
            "must be a 1-d integer array",
        ),
    ],
)
def test_npz_refusals(
    tmp_path: Path, arrays: dict[str, np.ndarray], options: dict[str, object], message: str
) -> None:
    np.savez(tmp_path / "bad.npz", **arrays)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=message):
        make_dataset("npz", path=tmp_path / "bad.npz", **options)


def test_npz_that_is_not_an_archive(tmp_path: Path) -> None:
    (tmp_path / "x.npz").write_bytes(b"hello")
    with pytest.raises(ValueError, match="not a readable .npz archive"):
        make_dataset("npz", path=tmp_path / "x.npz")
    np.save(tmp_path / "y.npy", np.zeros((2, 8, 8, 3), np.uint8))
    with pytest.raises(ValueError, match="a .npy array, not a .npz archive"):
        make_dataset("npz", path=tmp_path / "y.npy")
    np.savez(tmp_path / "obj.npz", a=np.array([{"x": 1}], dtype=object))
    with pytest.raises(ValueError, match="not a readable .npz archive"):
        make_dataset("npz", path=tmp_path / "obj.npz")


def test_image_folder_crops_resizes_and_converts(tmp_path: Path) -> None:
    # a wide red image with a green centre square, a grey image, and a file that is not an image
    wide = np.zeros((20, 40, 3), np.uint8)
    wide[:, :, 0] = 255
    wide[5:15, 15:25] = (0, 255, 0)
    Image.fromarray(wide).save(tmp_path / "a.png")
    Image.fromarray(np.full((10, 10), 128, np.uint8)).save(tmp_path / "b.jpg")
    (tmp_path / "notes.txt").write_text("ignored: not an image suffix")
    rgb = make_dataset("folder", path=tmp_path, image_size=8)
    assert isinstance(rgb, ImageArrayDataset)
    assert rgb.images.shape == (2, 3, 8, 8) and rgb.images.dtype == torch.uint8
    # centre crop keeps the green square in the middle of a red field
    first = rgb.images[0]
    assert first[:, 4, 4].tolist() == [0, 255, 0]
    assert first[:, 0, 0].tolist() == [255, 0, 0]
    grey = make_dataset("folder", path=tmp_path, image_size=8, channels=1)
    assert isinstance(grey, ImageArrayDataset)
    assert grey.sample_shape == (1, 8, 8)
    assert abs(int(grey.images[1, 0, 4, 4]) - 128) <= 2  # JPEG may move a flat grey by a step


def test_image_folder_refusals(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="does not exist or is not a directory"):
        make_dataset("folder", path=tmp_path / "missing")
    with pytest.raises(ValueError, match="no image files"):
        make_dataset("folder", path=tmp_path)
    (tmp_path / "broken.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="cannot read image"):
        make_dataset("folder", path=tmp_path)
    with pytest.raises(ValueError, match="channels must be 1 or 3"):
        make_dataset("folder", path=tmp_path, channels=4)
    with pytest.raises(ValueError, match="max_images=0"):
        make_dataset("folder", path=tmp_path, max_images=0)


def test_make_dataset_names_and_options() -> None:
    assert list(DATASETS) == [
        "ring8",
        "grid25",
        "spiral",
        "normal",
        "digits",
        "stacked_digits",
        "mnist",
        "stacked_mnist",
        "npz",
        "folder",
    ]
    assert make_dataset("grid25").n_modes == 25
    with pytest.raises(ValueError, match="unknown dataset 'cifar10'; known: ring8, grid25"):
        make_dataset("cifar10")
    with pytest.raises(
        ValueError, match="unknown option.*size for dataset 'digits'; allowed: image_size"
    ):
        make_dataset("digits", size=16)
    with pytest.raises(ValueError, match="for dataset 'spiral'; allowed: none"):
        make_dataset("spiral", turns=2)
    with pytest.raises(ValueError, match="dataset 'folder' needs option.*path"):
        make_dataset("folder")
