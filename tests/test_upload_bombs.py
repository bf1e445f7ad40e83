"""Small uploads that would cost far more than their size: each is refused before the expensive
step (a full-size build, torch.load, zipfile's directory, a PNG's pixels, the probe's images)."""

from __future__ import annotations

import io
import json
import struct
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from onnx import TensorProto, helper, numpy_helper
from PIL import Image, ImageFile

from app.gan import checkpoint
from app.gan.checkpoint import (
    MAX_STATE_DICT_RECORDS,
    load_generator_safetensors,
    load_generator_state_dict,
)
from app.gan.registry import build_generator
from app.main import create_app
from app.settings import Settings
from app.sources import archive, factory, zip_archive
from app.sources.archive import inspect_npz, sample_archive_kind
from app.sources.factory import archive_size
from app.sources.generator_worker import WORKER_ADDRESS_SPACE, array_bytes, bytes_array
from app.sources.isolated import GeneratorProcess
from app.sources.zip_archive import ZipSource, inspect_zip
from tests.conftest import assert_problem, wait_for_audit

OPTIONS = {"image_size": 8, "channels": 1, "latent_dim": 4, "g_width": 0.125}
HUGE = {"image_size": 64, "base_width": 1024, "g_width": 16.0}  # 1.8e11 parameters


@pytest.fixture
def meta_builds_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if the loader builds a real (allocated) generator."""
    build = checkpoint.build_generator

    def guarded(architecture: str, options: Any) -> Any:
        assert torch.get_default_device().type == "meta", "built a real network"
        return build(architecture, options)

    monkeypatch.setattr(checkpoint, "build_generator", guarded)


def no_call(what: str) -> Any:
    def refuse(*_: object, **__: object) -> None:
        raise AssertionError(f"{what} was called")

    return refuse


def metadata_only_safetensors(options: dict[str, Any]) -> bytes:
    """A safetensors file of no tensors, whose metadata names an architecture and options."""
    metadata = {"birthday.architecture": "dcgan", "birthday.options": json.dumps(options)}
    header = json.dumps({"__metadata__": metadata}).encode()
    return struct.pack("<Q", len(header)) + header


# 1. The options are counted on the meta device before the network is built.


def test_safetensors_options_asking_for_a_huge_network_are_refused_unbuilt(
    tmp_path: Path, meta_builds_only: None
) -> None:
    path = tmp_path / "g.safetensors"
    path.write_bytes(metadata_only_safetensors(HUGE))  # 144 bytes
    with pytest.raises(ValueError, match=r"180,599,619,584 parameters, more than the 200,000,000"):
        load_generator_safetensors(path)


def test_a_header_that_does_not_match_is_refused_unbuilt(
    tmp_path: Path, meta_builds_only: None
) -> None:
    path = tmp_path / "g.safetensors"
    path.write_bytes(metadata_only_safetensors({"image_size": 64, "base_width": 256}))  # 47M
    with pytest.raises(ValueError, match="missing tensors"):
        load_generator_safetensors(path)


def test_state_dict_options_asking_for_a_huge_network_are_refused_unbuilt(
    tmp_path: Path, meta_builds_only: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    module, _ = build_generator("dcgan", OPTIONS)
    path = tmp_path / "g.pt"
    torch.save(module.state_dict(), path)
    monkeypatch.setattr(torch, "load", no_call("torch.load"))
    with pytest.raises(ValueError, match="parameters, more than"):
        load_generator_state_dict(path, "dcgan", HUGE)


def test_an_upload_asking_for_a_huge_network_is_a_problem(
    client: TestClient, meta_builds_only: None
) -> None:
    response = client.post(
        "/api/generators",
        data={"name": "g", "format": "safetensors"},
        files={"file": ("g.safetensors", metadata_only_safetensors(HUGE))},
    )
    assert "parameters" in assert_problem(response, 422)["detail"]  # type: ignore[arg-type]


# 2. A state_dict .pt is checked as a zip before torch.load.


def saved_state(extra: dict[str, torch.Tensor] | None = None) -> bytes:
    module, _ = build_generator("dcgan", OPTIONS)
    buffer = io.BytesIO()
    torch.save({**module.state_dict(), **(extra or {})}, buffer)
    return buffer.getvalue()


def deflated(pt: bytes) -> bytes:
    """The same records, compressed: what torch.save never writes, and torch.load inflates."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(pt)) as source, zipfile.ZipFile(out, "w") as target:
        for info in source.infolist():
            target.writestr(info.filename, source.read(info), zipfile.ZIP_DEFLATED)
    return out.getvalue()


@pytest.fixture
def no_torch_load(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch, "load", no_call("torch.load"))


def test_a_compressed_state_dict_is_refused_before_torch_load(
    tmp_path: Path, no_torch_load: None
) -> None:
    path = tmp_path / "bomb.pt"
    # 16 MiB of zeros in a ~20 KB file (the reviewer's: 512 MB in 510 KB, +515 MB to load)
    path.write_bytes(deflated(saved_state({"pad": torch.zeros(4 * 2**20)})))
    assert path.stat().st_size < 2**20 / 8
    with pytest.raises(ValueError, match="compressed records"):
        load_generator_state_dict(path, "dcgan", OPTIONS)


def test_a_state_dict_far_larger_than_its_architecture_is_refused_before_torch_load(
    tmp_path: Path, no_torch_load: None
) -> None:
    path = tmp_path / "padded.pt"
    path.write_bytes(saved_state({"pad": torch.zeros(2 * 2**20)}))  # 8 MiB past ~6 KB of weights
    with pytest.raises(ValueError, match="this architecture's weights take"):
        load_generator_state_dict(path, "dcgan", OPTIONS)


def test_a_pre_zip_pickle_is_refused_before_torch_load(tmp_path: Path, no_torch_load: None) -> None:
    path = tmp_path / "old.pt"
    module, _ = build_generator("dcgan", OPTIONS)
    torch.save(module.state_dict(), path, _use_new_zipfile_serialization=False)
    with pytest.raises(ValueError, match="older format is not accepted"):
        load_generator_state_dict(path, "dcgan", OPTIONS)


def test_state_dict_round_trip_still_loads(tmp_path: Path) -> None:
    path = tmp_path / "g.pt"
    path.write_bytes(saved_state())
    module, spec = load_generator_state_dict(path, "dcgan", OPTIONS)
    assert spec.output_shape == (1, 8, 8) and not module.training


# 3 and 4. Zip archives: the directory before zipfile reads it, PNG headers before pixels.


def directory_only_zip(entries: int, declared: int | None = None, zip64: bool = True) -> bytes:
    """The reviewer's bomb: one-byte-named central-directory entries and no data, ended by a
    zip64 end record (declaring `declared` entries, default all) or a classic one."""
    entry = struct.pack(
        "<4s4B4HL2L5H2L", b"PK\x01\x02", 20, 3, 20, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0
    )
    size = entries * (len(entry) + 1)
    count = entries if declared is None else declared
    if not zip64:
        end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, count, count, size, 0, 0)
        return (entry + b"a") * entries + end
    record = struct.pack("<4sQ2H2L4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, count, count, size, 0)
    locator = struct.pack("<4sLQL", b"PK\x06\x07", 0, size, 1)
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    return (entry + b"a") * entries + record + locator + end


CAP = 1000  # MAX_MEMBERS for these tests: the bombs stay small, the code path is the same


@pytest.fixture
def small_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    for module in (zip_archive, archive, factory):
        monkeypatch.setattr(module, "MAX_MEMBERS", CAP)


@pytest.fixture
def no_zipfile(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(zipfile, "ZipFile", no_call("zipfile.ZipFile"))


@pytest.mark.parametrize(
    "bomb",
    [
        directory_only_zip(CAP + 1),  # declares (zip64) and holds one entry too many
        directory_only_zip(CAP + 1, declared=1),  # declares one, holds more
        directory_only_zip(CAP + 1, declared=1, zip64=False),
        directory_only_zip(10 * CAP, declared=1)[: -(76 + 22)]  # its directory outgrows the cap
        + struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 1, 1, 10 * CAP * 47, 0, 0),
    ],
    ids=["declared", "lying", "lying-classic", "oversize"],
)
def test_a_huge_central_directory_is_refused_before_zipfile_reads_it(
    tmp_path: Path, small_cap: None, no_zipfile: None, bomb: bytes
) -> None:
    path = tmp_path / "bomb.zip"
    path.write_bytes(bomb)
    with pytest.raises(ValueError, match="entries|central directory takes"):
        sample_archive_kind(path)
    with pytest.raises(ValueError, match="entries|central directory takes"):
        inspect_zip(path)
    with pytest.raises(ValueError, match="entries|central directory takes"):
        archive_size(path)
    with pytest.raises(ValueError, match="entries|central directory takes"):
        ZipSource(path)


def test_an_npz_with_many_entries_is_refused_before_zipfile_reads_it(
    tmp_path: Path, no_zipfile: None
) -> None:
    path = tmp_path / "bomb.npz"
    path.write_bytes(directory_only_zip(archive.MAX_ENTRIES + 1))
    with pytest.raises(ValueError, match="entries"):
        inspect_npz(path)


def test_a_state_dict_with_many_records_is_refused_before_zipfile_reads_it(
    tmp_path: Path, no_zipfile: None
) -> None:
    path = tmp_path / "bomb.pt"
    path.write_bytes(directory_only_zip(MAX_STATE_DICT_RECORDS + 1))
    with pytest.raises(ValueError, match="entries"):
        load_generator_state_dict(path, "dcgan", OPTIONS)


def png(size: tuple[int, int], mode: str = "L") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size).save(buffer, "PNG")
    return buffer.getvalue()


def zip_of(tmp_path: Path, members: list[bytes]) -> Path:
    path = tmp_path / "pngs.zip"
    with zipfile.ZipFile(path, "w") as target:
        for i, data in enumerate(members):
            target.writestr(f"{i:03d}.png", data)
    return path


@pytest.fixture
def decoded(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[int, int]]]:
    """The sizes of the PNGs whose pixels were decoded; any over 1024 a side fails the test."""
    sizes: list[tuple[int, int]] = []
    load = ImageFile.ImageFile.load

    def counted(image: ImageFile.ImageFile) -> Any:
        assert max(image.size) <= 1024, f"decoded a {image.size} image"
        sizes.append(image.size)
        return load(image)

    monkeypatch.setattr(ImageFile.ImageFile, "load", counted)
    yield sizes


def test_an_oversized_png_is_refused_from_its_header(
    tmp_path: Path, decoded: list[tuple[int, int]]
) -> None:
    path = zip_of(tmp_path, [png((2000, 2000))] * 3)
    with pytest.raises(ValueError, match="between 4 and 1024 pixels a side, got 2000x2000"):
        inspect_zip(path)
    assert decoded == []


def test_a_later_oversized_png_is_refused_before_it_is_decoded(
    tmp_path: Path, decoded: list[tuple[int, int]]
) -> None:
    path = zip_of(tmp_path, [png((8, 8)), png((2000, 2000))])
    with pytest.raises(ValueError, match="1024 pixels a side"):
        inspect_zip(path)
    assert decoded == [(8, 8)]
    source = ZipSource(path)  # checks the first image only
    with pytest.raises(ValueError, match="1024 pixels a side"):
        source.generate(np.array([1]))
    source.close()
    assert decoded == [(8, 8), (8, 8)]


def test_a_png_of_another_shape_is_refused_before_it_is_decoded(
    tmp_path: Path, decoded: list[tuple[int, int]]
) -> None:
    path = zip_of(tmp_path, [png((8, 8)), png((8, 8), "RGB")])
    with pytest.raises(ValueError, match="mixed image sizes"):
        inspect_zip(path)
    assert decoded == [(8, 8)]


def test_total_decoded_pixels_are_bounded_before_decoding(
    tmp_path: Path, decoded: list[tuple[int, int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(zip_archive, "MAX_TOTAL_PIXELS", 3 * 8 * 8)
    path = zip_of(tmp_path, [png((8, 8))] * 4)
    with pytest.raises(ValueError, match="256 pixels to check"):
        inspect_zip(path)
    assert decoded == [(8, 8)]


def test_a_zip_upload_opens_the_archive_once(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[object] = []
    real = zipfile.ZipFile

    def counted(*args: Any, **kwargs: Any) -> zipfile.ZipFile:
        opened.append(args[0])
        return real(*args, **kwargs)

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as target:
        for i in range(5):
            target.writestr(f"{i}.png", png((8, 8)))
    monkeypatch.setattr(zipfile, "ZipFile", counted)
    response = client.post(
        "/api/generators",
        data={"name": "z", "format": "samples"},
        files={"file": ("s.zip", buffer.getvalue())},
    )
    assert response.status_code == 201, response.text
    assert response.json()["samples"] == 5
    assert len(opened) == 1


# 5. Probed generators: image sides, the size of what the child answers, its address space.


def constant_images(shape: tuple[int, int, int]) -> bytes:
    """An ONNX graph of a few hundred bytes answering (B, *shape) zeros for z of (B, 4)."""
    nodes = [
        helper.make_node("Shape", ["z"], ["zs"]),
        helper.make_node("Slice", ["zs", "s0", "s1"], ["b"]),
        helper.make_node("Concat", ["b", "chw"], ["shape"], axis=0),
        helper.make_node("Expand", ["zero", "shape"], ["image"]),
    ]
    initializers = [
        numpy_helper.from_array(np.array([0], np.int64), "s0"),
        numpy_helper.from_array(np.array([1], np.int64), "s1"),
        numpy_helper.from_array(np.array(shape, np.int64), "chw"),
        numpy_helper.from_array(np.array(0.0, np.float32), "zero"),
    ]
    z = helper.make_tensor_value_info("z", TensorProto.FLOAT, ["B", 4])
    image = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["B", *shape])
    graph = helper.make_graph(nodes, "g", [z], [image], initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


def upload_onnx(client: TestClient, content: bytes) -> Any:
    return client.post(
        "/api/generators",
        data={"name": "g", "format": "onnx"},
        files={"file": ("g.onnx", content)},
    )


def test_an_onnx_generator_of_oversized_images_is_refused_unread(client: TestClient) -> None:
    # 4 x 3 x 1100 x 1100 float32: 58 MB, over the 50 MB that 1024x1024 RGB images take
    body = assert_problem(upload_onnx(client, constant_images((3, 1100, 1100))), 422)
    assert "at most 1024 pixels a side" in body["detail"], body


@pytest.mark.parametrize("shape", [(3, 4, 2000), (1, 2, 2)])
def test_probed_image_sides_are_bounded(client: TestClient, shape: tuple[int, int, int]) -> None:
    body = assert_problem(upload_onnx(client, constant_images(shape)), 422)
    assert "between 4 and 1024 pixels a side" in body["detail"], body


def test_a_frame_header_cannot_make_the_reader_allocate() -> None:
    frame = io.BytesIO()
    header = {"descr": "<f4", "fortran_order": False, "shape": (2**40,)}  # 4 TiB declared
    np.lib.format.write_array_header_1_0(frame, header)
    with pytest.raises(ValueError, match="holds"):
        bytes_array(frame.getvalue() + bytes(8))
    assert bytes_array(array_bytes(np.arange(6.0).reshape(2, 3))).tolist() == [
        [0.0, 1.0, 2.0],
        [3.0, 4.0, 5.0],
    ]


def test_the_generator_worker_caps_its_address_space(tmp_path: Path) -> None:
    path = tmp_path / "g.onnx"
    path.write_bytes(constant_images((1, 8, 8)))
    process = GeneratorProcess(path, "onnx")
    try:
        process.run(np.zeros((1, 4), np.float32), 4 * 64)
        limits = Path(f"/proc/{process._process.pid}/limits").read_text()
    finally:
        process.close()
    line = next(row for row in limits.splitlines() if row.startswith("Max address space"))
    assert line.split()[3:5] == [str(WORKER_ADDRESS_SPACE)] * 2


# 6. TorchScript accepted on one's own machine does not run on a server that allows no code.


def scripted() -> bytes:
    module, _ = build_generator("dcgan", OPTIONS)
    buffer = io.BytesIO()
    torch.jit.save(torch.jit.trace(module.eval(), torch.randn(2, 4)), buffer)
    return buffer.getvalue()


def test_torchscript_is_not_audited_where_code_uploads_are_off(settings: Settings) -> None:
    assert settings.code_uploads_allowed  # loopback, no tokens: the uploader's own machine
    with TestClient(create_app(settings)) as client:
        generator = client.post(
            "/api/generators",
            data={"name": "ts", "format": "torchscript", "latent_dim": "4"},
            files={"file": ("g.pt", scripted())},
        ).json()
        audit = client.post("/api/audits", json={"generator_id": generator["id"], "n": 40}).json()
        assert wait_for_audit(client, audit["id"])["status"] == "done"

    shared = settings.model_copy(update={"allow_code_uploads": False})
    with TestClient(create_app(shared)) as client:
        created = client.post("/api/audits", json={"generator_id": generator["id"], "n": 40})
        body = assert_problem(created, 422)
        assert "TorchScript (executable code)" in body["detail"]
        assert "ONNX" in body["detail"]
        extended = client.post(f"/api/audits/{audit['id']}/extend", json={"n_more": 10})
        assert "TorchScript" in assert_problem(extended, 422)["detail"]
        assert client.get(f"/api/audits/{audit['id']}").json()["status"] == "done"


def test_a_torchscript_audit_queued_on_loopback_does_not_run_on_a_shared_server(
    settings: Settings,
) -> None:
    """The job checks too: an audit queued while the server ran code uploads, then started by a
    server that does not (restarted on a shared address, jobs resumed), fails with the reason."""
    from app.jobs.runner import JobRunner
    from app.schemas import AuditCreate
    from app.services.audits import create_audit
    from app.store import audits as audit_store
    from app.store.db import Database

    with TestClient(create_app(settings)) as client:
        generator = client.post(
            "/api/generators",
            data={"name": "ts", "format": "torchscript", "latent_dim": "4"},
            files={"file": ("g.pt", scripted())},
        ).json()
    db = Database(settings.resolved_database_url(), settings.sqlite_busy_timeout_ms)
    audit, job = create_audit(db, settings, AuditCreate(generator_id=generator["id"], n=40))
    shared = settings.model_copy(update={"allow_code_uploads": False})
    outcome = JobRunner(db, shared).run_job(job.id)
    assert outcome.status == "failed"
    assert "TorchScript (executable code)" in (outcome.error or "")
    with db.read() as session:
        assert audit_store.get_audit(session, audit.id).status == "failed"
