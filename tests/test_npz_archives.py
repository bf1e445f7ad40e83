""".npz sample archives: read a chunk at a time, stored or deflated; headers that lie, bombs,
non-finite values and damaged data are refused before anything large is allocated."""

from __future__ import annotations

import ast
import io
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient

from app.sources.archive import MAX_RATIO, NpzSource, describe_npz, inspect_npz
from tests.conftest import assert_problem, wait_for_audit


def npz_bytes(array: np.ndarray, *, compressed: bool) -> bytes:
    buffer = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buffer, images=array)
    return buffer.getvalue()


def npy_member(header: dict[str, object], data: bytes) -> bytes:
    """A zip holding one .npy whose header says whatever the test wants."""
    npy = io.BytesIO()
    np.lib.format.write_array_header_1_0(npy, header)  # type: ignore[arg-type]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("images.npy", npy.getvalue() + data)
    return buffer.getvalue()


def upload(client: TestClient, content: bytes) -> object:
    return client.post(
        "/api/generators",
        data={"name": "archive", "format": "samples"},
        files={"file": ("samples.npz", content)},
    )


def uploads_left(client: TestClient) -> list[Path]:
    models: Path = client.app.state.birthday.settings.models_dir  # type: ignore[attr-defined]
    return sorted((models / "uploads").glob("*")) if (models / "uploads").exists() else []


@pytest.mark.parametrize("compressed", [False, True])
def test_stored_and_deflated_archives_give_the_same_images(
    tmp_path: Path, compressed: bool
) -> None:
    rng = np.random.default_rng(1)
    array = rng.uniform(-1, 1, size=(40, 3, 8, 8)).astype(np.float32)
    path = tmp_path / "s.npz"
    path.write_bytes(npz_bytes(array, compressed=compressed))
    assert describe_npz(path) == (40, (3, 8, 8))
    source = NpzSource(path)
    assert source.layout.stored is not compressed
    # Out of order, repeated, then behind where the stream stands: each row is the array's row.
    for indices in ([7, 3, 3, 39, 0], [1, 2], [38], [0, 39]):
        chunk = source.generate(np.array(indices, dtype=np.int64))
        torch.testing.assert_close(chunk.images, torch.from_numpy(array[indices]))
    with pytest.raises(ValueError, match="only 40 samples"):
        source.generate(np.array([40], dtype=np.int64))


def test_float_images_at_the_ends_of_the_range_are_accepted(tmp_path: Path) -> None:
    array = np.zeros((3, 1, 4, 4), dtype=np.float32)
    array[0] = -1.0
    array[1] = 1.0
    array[2, 0, 0, 0] = np.nextafter(np.float32(1), np.float32(2))  # float rounding past 1
    path = tmp_path / "ends.npz"
    path.write_bytes(npz_bytes(array, compressed=True))
    assert describe_npz(path) == (3, (1, 4, 4))


def test_deflated_uint8_nhwc_reads_as_nchw_in_range(tmp_path: Path) -> None:
    images = np.random.default_rng(0).integers(0, 256, size=(6, 8, 8, 3), dtype=np.uint8)
    (tmp_path / "s.npz").write_bytes(npz_bytes(images, compressed=True))
    chunk = NpzSource(tmp_path / "s.npz").generate(np.array([5, 4], dtype=np.int64))
    expected = torch.from_numpy(images[[5, 4]].astype(np.float32)).permute(0, 3, 1, 2) / 127.5 - 1
    torch.testing.assert_close(chunk.images, expected)


def test_reading_a_deflated_archive_holds_a_chunk_not_the_array(tmp_path: Path) -> None:
    array = np.random.default_rng(2).uniform(-1, 1, size=(1600, 3, 32, 32)).astype(np.float32)
    (tmp_path / "big.npz").write_bytes(npz_bytes(array, compressed=True))
    tracemalloc.start()
    try:
        describe_npz(tmp_path / "big.npz")
        source = NpzSource(tmp_path / "big.npz")
        for start in range(0, 1600, 200):
            source.generate(np.arange(start, start + 200, dtype=np.int64))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert array.nbytes == 19_660_800
    assert peak < array.nbytes / 4  # a chunk of 200 images is 2,457,600 bytes


def test_a_header_claiming_a_huge_array_is_refused_without_allocating(
    client: TestClient, tmp_path: Path
) -> None:
    header = {"descr": "|u1", "fortran_order": False, "shape": (10**7, 1024, 1024, 3)}
    content = npy_member(header, b"")
    assert len(content) < 1_000
    (tmp_path / "huge.npz").write_bytes(content)
    with pytest.raises(ValueError, match="declares"):
        inspect_npz(tmp_path / "huge.npz")
    body = assert_problem(upload(client, content), 422)  # type: ignore[arg-type]
    assert "declares" in body["detail"]
    assert uploads_left(client) == []


def test_a_header_that_disagrees_with_its_data_is_refused(tmp_path: Path) -> None:
    data = np.zeros((10, 3, 8, 8), dtype=np.float32).tobytes()
    header = {"descr": "<f4", "fortran_order": False, "shape": (100, 3, 8, 8)}
    (tmp_path / "liar.npz").write_bytes(npy_member(header, data))
    with pytest.raises(ValueError, match="declares 76800 bytes but its member holds 7680"):
        inspect_npz(tmp_path / "liar.npz")


def test_a_compression_bomb_is_refused_and_its_uncompressed_twin_accepted(
    client: TestClient, tmp_path: Path
) -> None:
    zeros = np.zeros((600, 3, 32, 32), dtype=np.float32)  # a pool collapsed onto one image
    bomb = npz_bytes(zeros, compressed=True)
    assert zeros.nbytes > MAX_RATIO * len(bomb)
    (tmp_path / "bomb.npz").write_bytes(bomb)
    with pytest.raises(ValueError, match="np.savez, uncompressed"):
        inspect_npz(tmp_path / "bomb.npz")
    assert_problem(upload(client, bomb), 422)  # type: ignore[arg-type]
    assert uploads_left(client) == []
    stored = upload(client, npz_bytes(zeros, compressed=False))
    assert stored.status_code == 201, stored.text  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.full((4, 3, 8, 8), np.nan, dtype=np.float32), "NaN or infinite"),
        # float pixels in [0, 255] would be clipped to white: 60 distinct images, one "mode"
        (
            np.random.default_rng(0).integers(1, 255, (4, 1, 8, 8)).astype(np.float32),
            "float images must lie in [-1, 1], got values from 1 to 254 (pixels in [0, 255]?",
        ),
        (np.full((4, 3, 8, 8), 5.0, dtype=np.float32), "got values from 5 to 5"),
        (np.full((4, 3, 8, 8), -1.5, dtype=np.float16), "got values from -1.5 to -1.5"),
        (np.zeros((4, 3, 8, 8), dtype=np.int32), "got dtype int32"),
        (np.zeros((4, 8, 8), dtype=np.uint8), "4-d image array"),
        (np.zeros((4, 8, 8, 2), dtype=np.uint8), "1 or 3 channels"),
        (np.asfortranarray(np.zeros((4, 3, 8, 8), dtype=np.float32)), "Fortran order"),
        (np.zeros((4, 3, 2048, 8), dtype=np.float32), "unsupported archive shape"),
    ],
)
def test_bad_arrays_are_refused_with_a_reason(
    client: TestClient, array: np.ndarray, message: str
) -> None:
    body = assert_problem(upload(client, npz_bytes(array, compressed=True)), 422)  # type: ignore[arg-type]
    assert message in body["detail"]


def test_objects_and_two_arrays_are_refused(tmp_path: Path) -> None:
    np.savez(tmp_path / "obj.npz", images=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ValueError, match="got dtype object"):
        describe_npz(tmp_path / "obj.npz")
    np.savez(tmp_path / "two.npz", a=np.zeros((4, 3, 8, 8)), b=np.zeros((4, 3, 8, 8)))
    with pytest.raises(ValueError, match="exactly one array, found 2"):
        describe_npz(tmp_path / "two.npz")


def test_damaged_deflated_data_is_refused(tmp_path: Path) -> None:
    array = np.random.default_rng(3).uniform(-1, 1, size=(50, 3, 8, 8)).astype(np.float32)
    content = bytearray(npz_bytes(array, compressed=True))
    middle = len(content) // 2
    content[middle : middle + 64] = bytes(64)
    (tmp_path / "damaged.npz").write_bytes(bytes(content))
    with pytest.raises(ValueError, match="cannot be read"):
        describe_npz(tmp_path / "damaged.npz")


def test_the_header_is_parsed_as_a_literal(tmp_path: Path) -> None:
    """numpy reads the header with ast.literal_eval: code in it is a syntax error, never run."""
    npy = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        npy, {"descr": "<f4", "fortran_order": False, "shape": (1, 3, 8, 8)}
    )
    evil = npy.getvalue().replace(b"(1, 3, 8, 8)", b"__import__('os').getpid()")
    with pytest.raises(ValueError):
        ast.literal_eval(evil[10:].decode("latin1"))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("images.npy", evil)
    (tmp_path / "evil.npz").write_bytes(buffer.getvalue())
    with pytest.raises(ValueError, match="header"):
        inspect_npz(tmp_path / "evil.npz")


def test_a_deflated_archive_audits(client: TestClient) -> None:
    images = np.random.default_rng(4).integers(0, 256, size=(60, 8, 8, 3), dtype=np.uint8)
    images[30:] = images[:30]  # every image twice: 30 duplicate pairs in the whole pool
    response = upload(client, npz_bytes(images, compressed=True))
    assert response.status_code == 201, response.text  # type: ignore[attr-defined]
    generator = response.json()  # type: ignore[attr-defined]
    audit = client.post("/api/audits", json={"generator_id": generator["id"], "n": 60})
    assert audit.status_code == 202, audit.text
    done = wait_for_audit(client, audit.json()["id"])
    assert done["status"] == "done", done
    pairs = client.get(f"/api/audits/{done['id']}/pairs", params={"limit": 200}).json()
    exact = {(p["i"], p["j"]) for p in pairs["items"] if p["distance"] == 0}
    assert exact == {(i, i + 30) for i in range(30)}
