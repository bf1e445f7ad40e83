"""Sample archives as .zip of PNGs: a good one audits; bombs, traversal, non-images, mixed sizes are refused."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image

from app.sources.zip_archive import ZipSource, inspect_zip
from tests.conftest import assert_problem, wait_for_audit


def png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def make_zip(members: dict[str, bytes], compression: int = zipfile.ZIP_STORED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def images(count: int, size: int = 8, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8) for _ in range(count)]


def upload(client: TestClient, content: bytes) -> object:
    return client.post(
        "/api/generators",
        data={"name": "archive", "format": "samples"},
        files={"file": ("samples.zip", content)},
    )


def test_zip_source_reads_members_in_order(tmp_path: Path) -> None:
    arrays = images(5)
    (tmp_path / "s.zip").write_bytes(
        make_zip({f"img_{k}.png": png(a) for k, a in enumerate(arrays)})
    )
    source = ZipSource(tmp_path / "s.zip")
    assert source.image_shape == (3, 8, 8) and source.max_samples == 5
    chunk = source.generate(np.array([3, 0], dtype=np.int64))
    expected = torch.from_numpy(arrays[3].astype(np.float32)).permute(2, 0, 1) / 127.5 - 1
    torch.testing.assert_close(chunk.images[0], expected)


def test_zip_archive_upload_and_audit(client: TestClient) -> None:
    arrays = images(40)
    arrays[7] = arrays[3].copy()  # a planted exact duplicate
    content = make_zip({f"{k:03d}.png": png(a) for k, a in enumerate(arrays)})
    response = upload(client, content)
    assert response.status_code == 201, response.text  # type: ignore[attr-defined]
    generator = response.json()  # type: ignore[attr-defined]
    assert generator["image_shape"] == [3, 8, 8]
    too_many = client.post("/api/audits", json={"generator_id": generator["id"], "n": 41})
    assert too_many.status_code == 422 and "archive of 40 samples" in too_many.json()["detail"]
    audit = client.post("/api/audits", json={"generator_id": generator["id"], "n": 40}).json()
    audit = wait_for_audit(client, audit["id"])
    assert audit["status"] == "done", audit
    closest = client.get(f"/api/audits/{audit['id']}/pairs", params={"limit": 1}).json()["items"][0]
    assert (closest["i"], closest["j"], closest["distance"]) == (3, 7, 0.0)


@pytest.mark.parametrize(
    ("members", "message"),
    [
        ({"../evil.png": png(images(1)[0])}, "unsafe member name"),
        ({"/abs.png": png(images(1)[0])}, "unsafe member name"),
        ({"a.png": png(images(1)[0]), "readme.txt": b"hello"}, "not a .png"),
        ({"a.png": png(images(1, 8)[0]), "b.png": png(images(1, 16)[0])}, "mixed image sizes"),
        ({"a.png": b"\x89PNG\r\n\x1a\n garbage"}, "not a readable PNG"),
        ({}, "no images"),
    ],
)
def test_bad_archives_are_refused(
    client: TestClient, tmp_path: Path, members: dict[str, bytes], message: str
) -> None:
    content = make_zip(members)
    (tmp_path / "bad.zip").write_bytes(content)
    with pytest.raises(ValueError, match=message):
        inspect_zip(tmp_path / "bad.zip")
    body = assert_problem(upload(client, content), 422)  # type: ignore[arg-type]
    assert message in body["detail"]


def test_zip_bomb_is_refused_before_decompression(client: TestClient, tmp_path: Path) -> None:
    bomb = make_zip({"bomb.png": b"\0" * (40 * 1024 * 1024)}, compression=zipfile.ZIP_DEFLATED)
    assert len(bomb) < 200_000
    (tmp_path / "bomb.zip").write_bytes(bomb)
    with pytest.raises(ValueError, match="declares|ratio"):
        inspect_zip(tmp_path / "bomb.zip")
    assert_problem(upload(client, bomb), 422)  # type: ignore[arg-type]


def test_high_ratio_member_under_the_size_cap_is_refused(tmp_path: Path) -> None:
    data = make_zip({"x.png": b"\0" * (2 * 1024 * 1024)}, compression=zipfile.ZIP_DEFLATED)
    (tmp_path / "r.zip").write_bytes(data)
    with pytest.raises(ValueError, match="ratio"):
        inspect_zip(tmp_path / "r.zip")


def test_member_lying_about_its_size_is_refused(tmp_path: Path) -> None:
    real = png(images(1)[0])
    content = bytearray(make_zip({"a.png": real}))
    # Shrink the declared size in the local header and the central directory to 10 bytes.
    for signature, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        start = content.find(signature)
        content[start + offset : start + offset + 4] = (10).to_bytes(4, "little")
    (tmp_path / "liar.zip").write_bytes(bytes(content))
    with pytest.raises(ValueError):
        inspect_zip(tmp_path / "liar.zip")
