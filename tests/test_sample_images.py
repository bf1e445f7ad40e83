"""Sample images drawn again on demand: which audits keep their PNGs, that a redrawn image is the
audited one (checked against the source itself), and that a changed generator file is refused."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import func, select

from app.gan.checkpoint import save_generator
from app.gan.registry import build_generator
from app.main import create_app
from app.settings import Settings
from app.sources.factory import SourceSpec, build_source, cheap_to_regenerate
from app.sources.synthetic import SyntheticConfig, SyntheticSource
from app.sources.thumbnails import to_uint8
from app.store.models import Generator, Sample
from tests.conftest import assert_problem, wait_for, wait_for_audit

DCGAN = {"image_size": 16, "channels": 1, "latent_dim": 8, "g_width": 0.25, "d_width": 0.25}
CHUNK = 250


def _settings(tmp_path: Path, **extra: Any) -> Settings:
    return Settings(
        data_dir=tmp_path / "data", models_dir=tmp_path / "models", chunk_size=CHUNK, **extra
    )


def _audit(client: TestClient, **body: Any) -> dict[str, Any]:
    payload = {"n": 600, "neighbours": 3, "seed": 5, **body}
    response = client.post("/api/audits", json=payload)
    assert response.status_code == 202, response.text
    audit = wait_for_audit(client, response.json()["id"])
    assert audit["status"] == "done", audit
    return audit


def _stored(client: TestClient, audit_id: int) -> list[int]:
    db = client.app.state.birthday.db  # type: ignore[attr-defined]
    with db.read() as session:
        return list(
            session.scalars(
                select(Sample.idx)
                .where(Sample.audit_id == audit_id, Sample.png.is_not(None))
                .order_by(Sample.idx)
            )
        )


def _pixels(client: TestClient, audit_id: int, idx: int) -> np.ndarray:
    response = client.get(f"/api/audits/{audit_id}/samples/{idx}.png")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    return np.asarray(Image.open(io.BytesIO(response.content)))


def _save_dcgan(path: Path, seed: int) -> None:
    """An untrained DCGAN draws flat grey; larger weights give images with structure."""
    torch.manual_seed(seed)
    module, _ = build_generator("dcgan", DCGAN)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.mul_(3.0)
    save_generator(path, module, "dcgan", DCGAN)


def _upload_dcgan(client: TestClient, tmp_path: Path, seed: int) -> dict[str, Any]:
    path = tmp_path / f"g{seed}.safetensors"
    _save_dcgan(path, seed)
    response = client.post(
        "/api/generators",
        data={"name": f"g{seed}", "format": "safetensors", "architecture": "dcgan"},
        files={"file": ("g.safetensors", path.read_bytes())},
    )
    assert response.status_code == 201, response.text
    generator: dict[str, Any] = response.json()
    return generator


def test_a_synthetic_audit_keeps_one_png_per_step_and_redraws_the_rest_exactly(
    tmp_path: Path,
) -> None:
    synthetic = {"support": 200, "noise": 0.05}
    with TestClient(create_app(_settings(tmp_path))) as client:
        audit = _audit(client, synthetic=synthetic)
        assert _stored(client, audit["id"]) == [0, 250, 500]  # each step's anchor
        truth = SyntheticSource(SyntheticConfig(**synthetic), seed=5)
        for idx in (0, 1, 249, 251, 377, 599):
            expected = to_uint8(truth.generate(np.array([idx])).images[0])
            assert np.array_equal(_pixels(client, audit["id"], idx), expected), idx
        # Asked again: the same bytes (from the cache), and a sample past the pool is a 404.
        first = client.get(f"/api/audits/{audit['id']}/samples/377.png").content
        assert client.get(f"/api/audits/{audit['id']}/samples/377.png").content == first
        assert_problem(client.get(f"/api/audits/{audit['id']}/samples/600.png"), 404)


def test_stored_mode_keeps_every_png(tmp_path: Path) -> None:
    with TestClient(create_app(_settings(tmp_path, sample_images="stored"))) as client:
        audit = _audit(client, synthetic={"support": 200}, n=300)
        assert _stored(client, audit["id"]) == list(range(300))


def test_a_checkpoint_audit_redraws_what_the_worker_drew(tmp_path: Path) -> None:
    """The pool's images as the audit's worker drew them (a second audit in stored mode, same
    generator and seed) are the images the first audit's server draws again."""
    with TestClient(create_app(_settings(tmp_path))) as client:
        generator = _upload_dcgan(client, tmp_path, seed=1)
        redrawn = _audit(client, generator_id=generator["id"], n=300)
        assert _stored(client, redrawn["id"]) == [0, 250]
        images = {idx: _pixels(client, redrawn["id"], idx) for idx in (3, 120, 299)}
        assert all(image.std() > 5 for image in images.values())  # not flat grey
    with TestClient(create_app(_settings(tmp_path, sample_images="stored"))) as client:
        stored = _audit(client, generator_id=generator["id"], n=300)
        assert len(_stored(client, stored["id"])) == 300
        for idx, pixels in images.items():
            assert np.array_equal(_pixels(client, stored["id"], idx), pixels), idx


def test_a_changed_generator_file_is_refused_not_shown(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    with TestClient(create_app(settings)) as client:
        generator = _upload_dcgan(client, tmp_path, seed=1)
        audit = _audit(client, generator_id=generator["id"], n=300)
        db = client.app.state.birthday.db  # type: ignore[attr-defined]
        with db.read() as session:
            relative = session.get(Generator, generator["id"]).path
    # Another generator of the same architecture under the audited file's name.
    _save_dcgan(settings.models_dir / relative, seed=2)
    with TestClient(create_app(settings)) as client:
        problem = assert_problem(client.get(f"/api/audits/{audit['id']}/samples/7.png"), 409)
        assert "not the one audited" in problem["detail"]
        # The stored anchor is still served: it is what was audited.
        assert client.get(f"/api/audits/{audit['id']}/samples/0.png").status_code == 200


def test_a_replaced_file_is_seen_without_a_restart_and_the_pool_cannot_grow_from_it(
    tmp_path: Path,
) -> None:
    settings = _settings(tmp_path)
    with TestClient(create_app(settings)) as client:
        generator = _upload_dcgan(client, tmp_path, seed=1)
        audit = _audit(client, generator_id=generator["id"], n=300)
        original = _pixels(client, audit["id"], 7)  # the source is loaded and cached now
        db = client.app.state.birthday.db  # type: ignore[attr-defined]
        with db.read() as session:
            path = settings.models_dir / session.get(Generator, generator["id"]).path
        saved = path.read_bytes()
        _save_dcgan(path, seed=2)
        problem = assert_problem(client.get(f"/api/audits/{audit['id']}/samples/8.png"), 409)
        assert "not the one audited" in problem["detail"]
        # Growing the pool would mix the two generators: refused, the audit left as it was.
        grown = client.post(f"/api/audits/{audit['id']}/extend", json={"n_more": 50})
        assert "not the one audited" in assert_problem(grown, 409)["detail"]
        after = client.get(f"/api/audits/{audit['id']}").json()
        assert (after["status"], after["n"]) == ("done", 300)
        # The audited file put back: its images are served again, the same as before.
        path.write_bytes(saved)
        assert np.array_equal(_pixels(client, audit["id"], 7), original)
        grown = client.post(f"/api/audits/{audit['id']}/extend", json={"n_more": 50})
        assert grown.status_code == 202, grown.text
        assert wait_for_audit(client, audit["id"])["progress"]["samples_done"] == 350


def test_a_growing_job_refuses_a_source_that_draws_other_samples(tmp_path: Path) -> None:
    """The job's own check, for the sources only workers load (TorchScript, ONNX) and a file
    replaced between the request and the job: the stored anchor must be drawn again."""
    from app.jobs.audit import AuditTask, SourceChanged, run_audit
    from app.sources.thumbnails import encode_png

    synthetic = {"support": 50, "noise": 0.05}
    source = SyntheticSource(SyntheticConfig(**synthetic), seed=5)
    sample = lambda i: encode_png(source.generate(np.array([i])).images[0])  # noqa: E731
    task = AuditTask(
        audit_id=1,
        source=SourceSpec(synthetic=synthetic),
        n=20,
        seed=5,
        embedder="pixels",
        embedder_options={},
        miner="exact",
        neighbours=2,
        chunk_size=10,
        scratch_dir=str(tmp_path),
        models_dir=str(tmp_path),
    )
    grown = list(run_audit(task, resume_from=10, anchor=(9, sample(9))))
    assert grown[-1].samples_done == 20
    with pytest.raises(SourceChanged, match="stored sample 9 differs"):
        next(run_audit(task, resume_from=10, anchor=(9, sample(3))))


def _upload_archive(client: TestClient, archive: Path) -> int:
    response = client.post(
        "/api/generators",
        data={"name": "pool", "format": "samples"},
        files={"file": (archive.name, archive.read_bytes())},
    )
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def _archive(directory: Path, kind: str) -> tuple[Path, np.ndarray]:
    """300 grey 12x12 images as an uncompressed or compressed .npz, or a .zip of PNGs."""
    images = np.random.default_rng(0).integers(0, 256, size=(300, 12, 12, 1), dtype=np.uint8)
    if kind == "zip":
        path = directory / "pool.zip"
        with zipfile.ZipFile(path, "w") as archive:
            for k, image in enumerate(images):
                buffer = io.BytesIO()
                Image.fromarray(image[:, :, 0]).save(buffer, format="PNG")
                archive.writestr(f"{k:05d}.png", buffer.getvalue())
        return path, images
    path = directory / "pool.npz"
    (np.savez_compressed if kind == "npz_compressed" else np.savez)(path, images=images)
    return path, images


@pytest.mark.parametrize(
    ("kind", "stored"),
    [("npz", [0, 250]), ("zip", [0, 250]), ("npz_compressed", list(range(300)))],
)
def test_archives_keep_pngs_only_where_random_access_is_dear(
    tmp_path: Path, kind: str, stored: list[int]
) -> None:
    archive, truth = _archive(tmp_path, kind)
    with TestClient(create_app(_settings(tmp_path))) as client:
        audit = _audit(client, generator_id=_upload_archive(client, archive), n=300)
        assert _stored(client, audit["id"]) == stored
        for idx in (1, 200, 299, 17):
            assert np.array_equal(_pixels(client, audit["id"], idx), truth[idx, :, :, 0]), idx


def test_which_sources_the_server_draws_itself(tmp_path: Path) -> None:
    models = tmp_path
    assert cheap_to_regenerate(SourceSpec(synthetic={"support": 10}), models)
    assert cheap_to_regenerate(SourceSpec(path="g.safetensors", format="safetensors"), models)
    assert cheap_to_regenerate(SourceSpec(path="g.pt", format="state_dict"), models)
    assert cheap_to_regenerate(SourceSpec(path="pool.zip", format="samples"), models)
    # Code and graphs run in workers only; an unreadable archive is stored, not guessed at.
    assert not cheap_to_regenerate(SourceSpec(path="g.pt", format="torchscript"), models)
    assert not cheap_to_regenerate(SourceSpec(path="g.onnx", format="onnx"), models)
    assert not cheap_to_regenerate(SourceSpec(path="missing.npz", format="samples"), models)


def test_the_store_holds_a_fraction_of_the_bytes(tmp_path: Path) -> None:
    def png_bytes(mode: str) -> int:
        settings = _settings(tmp_path / mode, sample_images=mode)
        with TestClient(create_app(settings)) as client:
            audit = _audit(client, synthetic={"support": 500, "image_size": 32}, n=500)
            db = client.app.state.birthday.db  # type: ignore[attr-defined]
            with db.read() as session:
                total = session.scalar(
                    select(func.sum(func.length(Sample.png))).where(Sample.audit_id == audit["id"])
                )
            return int(total or 0)

    stored, redrawn = png_bytes("stored"), png_bytes("auto")
    assert redrawn * 100 <= stored  # 2 anchors of 500 images


def test_a_worker_built_source_matches_the_servers_draw_on_every_pixel(tmp_path: Path) -> None:
    """The server draws on its CPU with the job's own source code path (build_source)."""
    spec = SourceSpec(synthetic={"support": 50, "channels": 3, "image_size": 8})
    worker = build_source(spec, 9, tmp_path)
    server = build_source(spec, 9, tmp_path, device="cpu")
    indices = np.arange(40, dtype=np.int64)
    batch = worker.generate(indices).images
    for idx in (0, 17, 39):
        one = server.generate(np.array([idx], dtype=np.int64)).images[0]
        assert np.array_equal(to_uint8(one), to_uint8(batch[idx]))


def test_a_downgrade_refuses_to_drop_audits_whose_pngs_are_redrawn(tmp_path: Path) -> None:
    from alembic import command
    from app.store.migrate import alembic_config

    settings = _settings(tmp_path)
    with TestClient(create_app(settings)) as client:
        _audit(client, synthetic={"support": 100}, n=300)
    config = alembic_config(settings.resolved_database_url())
    with pytest.raises(RuntimeError, match="no stored PNG"):
        command.downgrade(config, "0006")


def test_the_bench_measures_both_modes_on_a_small_pool(tmp_path: Path) -> None:
    from tests.bench_modules import load_bench

    bench = load_bench("sample_images")
    sizes = {}
    for mode in ("stored", "auto"):
        result, images, audit_id = bench.run("digits", mode, 1200, tmp_path)
        sizes[mode] = result.png_bytes
        if mode == "auto":
            first, drawn, cached = bench.serve(images, audit_id, 1200)
            assert len(drawn) == len(cached) == bench.SHOWN - 1
        images.close()
    assert 0 < sizes["auto"] * 100 < sizes["stored"]  # two anchors of 1,200 PNGs


def test_concurrent_requests_across_more_sources_than_are_kept_all_get_their_images(
    tmp_path: Path,
) -> None:
    """Three audits (three seeds: three sources, one more than the server keeps loaded) drawn
    from eight threads at once: every image is its own sample, whatever was evicted meanwhile."""
    from concurrent.futures import ThreadPoolExecutor

    synthetic = {"support": 100, "noise": 0.1}
    settings = _settings(tmp_path, sample_image_cache_bytes=0)  # every request draws
    with TestClient(create_app(settings)) as client:
        audits = {
            seed: _audit(client, synthetic=synthetic, n=300, seed=seed)["id"] for seed in (1, 2, 3)
        }
        images = client.app.state.birthday.samples  # type: ignore[attr-defined]
        requests = [(seed, idx) for idx in range(1, 120, 7) for seed in audits]

        def draw(request: tuple[int, int]) -> np.ndarray:
            seed, idx = request
            png = images.png(audits[seed], idx)
            return np.asarray(Image.open(io.BytesIO(png)))

        with ThreadPoolExecutor(8) as pool:
            got = list(pool.map(draw, requests))
    for (seed, idx), pixels in zip(requests, got, strict=True):
        truth = SyntheticSource(SyntheticConfig(**synthetic), seed=seed)
        assert np.array_equal(pixels, to_uint8(truth.generate(np.array([idx])).images[0]))


def _audited_archive(
    tmp_path: Path, kind: str
) -> tuple[Settings, dict[str, Any], Path, np.ndarray]:
    """An archive uploaded and audited: the settings, the audit, the stored file, its images."""
    archive, images = _archive(tmp_path, kind)
    settings = _settings(tmp_path)
    with TestClient(create_app(settings)) as client:
        audit = _audit(client, generator_id=_upload_archive(client, archive), n=300)
    (stored,) = (settings.models_dir / "uploads").glob("*")
    return settings, audit, stored, images


@pytest.mark.parametrize("damage", ["garbage", "truncated", "flipped"])
def test_an_archive_damaged_after_its_audit_is_a_conflict_not_a_crash(
    tmp_path: Path, damage: str
) -> None:
    settings, audit, stored, _ = _audited_archive(tmp_path, "zip")
    content = stored.read_bytes()
    if damage == "flipped":  # one byte inside sample 5's PNG: its CRC no longer holds
        with zipfile.ZipFile(stored) as opened:
            info = opened.getinfo("00005.png")
        at = info.header_offset + 30 + len(info.filename) + 40
        content = content[:at] + bytes([content[at] ^ 0xFF]) + content[at + 1 :]
        stored.write_bytes(content)
    else:
        stored.write_bytes(b"not a zip at all" * 64 if damage == "garbage" else content[:-400])
    with TestClient(create_app(settings)) as client:
        problem = assert_problem(client.get(f"/api/audits/{audit['id']}/samples/5.png"), 409)
        assert "cannot be drawn again" in problem["detail"]


def test_gpu_draws_use_float32_convolutions_and_leave_the_flags_as_they_were() -> None:
    from app.sources.checkpoint import full_precision

    before = torch.backends.cudnn.allow_tf32
    with full_precision("cuda:0"):
        assert torch.backends.cudnn.allow_tf32 is False
    assert torch.backends.cudnn.allow_tf32 == before
    with full_precision("cpu"):
        assert torch.backends.cudnn.allow_tf32 == before


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_a_gpu_drawn_sample_is_the_cpu_drawn_one_to_rounding(tmp_path: Path) -> None:
    """What the anchor check relies on when workers draw on a GPU and the server on its CPU:
    a CelebA-sized DCGAN's samples agree to well within ANCHOR_TOLERANCE."""
    from app.services.sample_images import ANCHOR_TOLERANCE
    from app.sources.checkpoint import CheckpointSource

    torch.manual_seed(0)
    module, _ = build_generator("dcgan", {})
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.mul_(3.0)
    path = tmp_path / "g.safetensors"
    save_generator(path, module, "dcgan", {})
    indices = np.arange(64, dtype=np.int64)
    gpu = CheckpointSource(path, "safetensors", None, None, seed=3, device="cuda")
    cpu = CheckpointSource(path, "safetensors", None, None, seed=3, device="cpu")
    drawn_gpu = gpu.generate(indices).images
    differences = [
        np.abs(
            to_uint8(drawn_gpu[k]).astype(float)
            - to_uint8(cpu.generate(indices[k : k + 1]).images[0]).astype(float)
        )
        for k in range(0, 64, 9)
    ]
    assert max(float(d.mean()) for d in differences) < ANCHOR_TOLERANCE / 5
    assert max(float(d.max()) for d in differences) <= 2


def test_each_step_is_checked_against_its_own_anchor(tmp_path: Path) -> None:
    """An archive rewritten after its audit with its second step's images changed: the first
    step's samples are still shown, the second step's are refused."""
    settings, audit, stored, images = _audited_archive(tmp_path, "npz")
    changed = images.copy()
    changed[CHUNK:] = 255 - changed[CHUNK:]
    with stored.open("wb") as out:
        np.savez(out, images=changed)
    with TestClient(create_app(settings)) as client:
        assert np.array_equal(_pixels(client, audit["id"], 5), images[5, :, :, 0])
        problem = assert_problem(client.get(f"/api/audits/{audit['id']}/samples/260.png"), 409)
        assert f"stored sample {CHUNK} differs" in problem["detail"]


def test_a_burst_of_image_requests_leaves_the_servers_threads_to_other_requests(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fifty image requests whose draws are held (more than the server's 40 worker threads):
    an audit read, a synchronous route like a judgement, still gets its answer, and every image
    comes once the draws go on. Images are drawn on the service's own threads."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from app.services.sample_images import SampleImages

    release = threading.Event()
    drawing: list[str] = []
    original = SampleImages._draw

    def held(self: SampleImages, loaded: Any, idx: int) -> Any:
        drawing.append(threading.current_thread().name)
        release.wait(60)
        return original(self, loaded, idx)

    monkeypatch.setattr(SampleImages, "_draw", held)
    with TestClient(create_app(_settings(tmp_path))) as client:
        audit = _audit(client, synthetic={"support": 200}, n=300)
        url = f"/api/audits/{audit['id']}/samples"
        with ThreadPoolExecutor(50) as pool:
            images = [pool.submit(client.get, f"{url}/{i}.png") for i in range(1, 51)]
            wait_for(lambda: len(drawing) >= 1, timeout=30, what="a draw to start")
            answer: list[Any] = []
            reader = threading.Thread(
                target=lambda: answer.append(client.get(f"/api/audits/{audit['id']}"))
            )
            reader.start()
            reader.join(timeout=30)
            blocked = reader.is_alive()
            release.set()
            reader.join()
            results = [future.result() for future in images]
    assert not blocked, "the audit read waited for the held image draws"
    assert answer[0].status_code == 200
    assert [r.status_code for r in results] == [200] * 50
    assert drawing and all(name.startswith("sample-images") for name in drawing)


def test_image_requests_beyond_the_queue_are_told_to_come_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With three requests held (one drawing, two waiting), three more get a 503 problem with
    Retry-After at once instead of queueing; once the draws go on, a request is served again."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from app.services.sample_images import SampleImages

    release = threading.Event()
    original = SampleImages._draw

    def held(self: SampleImages, loaded: Any, idx: int) -> Any:
        release.wait(60)
        return original(self, loaded, idx)

    monkeypatch.setattr(SampleImages, "_draw", held)
    settings = _settings(tmp_path, sample_image_queue=3, sample_image_threads=1)
    with TestClient(create_app(settings)) as client:
        audit = _audit(client, synthetic={"support": 200}, n=300)
        url = f"/api/audits/{audit['id']}/samples"
        with ThreadPoolExecutor(6) as pool:
            requests = [pool.submit(client.get, f"{url}/{i}.png") for i in range(1, 7)]
            wait_for(
                lambda: sum(f.done() for f in requests) >= 3, timeout=30, what="three refusals"
            )
            refused = [f.result() for f in requests if f.done()]
            release.set()
            results = [f.result() for f in requests]
        assert len(refused) == 3
        for response in refused:
            problem = assert_problem(response, 503)
            assert "try again" in problem["detail"]
            assert response.headers["retry-after"] == "1"
        assert sorted(r.status_code for r in results) == [200, 200, 200, 503, 503, 503]
        again = client.get(f"{url}/7.png")
        assert again.status_code == 200 and again.content.startswith(b"\x89PNG")
