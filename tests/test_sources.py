"""Sources: sample i is a pure function of (source, seed, i); synthetic identities follow the weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import stats

from app.gan.checkpoint import save_generator
from app.gan.registry import build_generator
from app.sources.archive import NpzSource, describe_npz
from app.sources.checkpoint import CheckpointSource
from app.sources.synthetic import SyntheticConfig, SyntheticSource, prototype_weights


def test_synthetic_sample_is_pure_function_of_index() -> None:
    source = SyntheticSource(SyntheticConfig(support=50, noise=0.05), seed=7)
    whole = source.generate(np.arange(40, dtype=np.int64))
    picked = source.generate(np.array([33, 2, 17], dtype=np.int64))
    assert torch.equal(picked.images, whole.images[[33, 2, 17]])
    assert picked.identities is not None and whole.identities is not None
    assert picked.identities.tolist() == whole.identities[[33, 2, 17]].tolist()
    other_seed = SyntheticSource(SyntheticConfig(support=50, noise=0.05), seed=8)
    assert not torch.equal(other_seed.generate(np.arange(5)).images, whole.images[:5])


def test_same_identity_means_near_duplicate_images() -> None:
    source = SyntheticSource(SyntheticConfig(support=3, noise=0.01), seed=0)
    chunk = source.generate(np.arange(60, dtype=np.int64))
    assert chunk.identities is not None
    flat = chunk.images.flatten(1)
    same = chunk.identities[:, None] == chunk.identities[None, :]
    dist = torch.cdist(flat, flat).numpy()
    off_diagonal = ~np.eye(60, dtype=bool)
    assert dist[same & off_diagonal].max() < dist[~same].min()
    assert chunk.images.min() >= -1 and chunk.images.max() <= 1


@pytest.mark.parametrize("zipf", [0.0, 1.1])
def test_identity_frequencies_follow_weights(zipf: float) -> None:
    support = 20
    source = SyntheticSource(SyntheticConfig(support=support, zipf=zipf, image_size=4, detail=2), 1)
    ids = np.array([source.identity(i)[0] for i in range(20_000)])
    observed = np.bincount(ids, minlength=support)
    expected = prototype_weights(support, zipf) * len(ids)
    assert stats.chisquare(observed, expected).pvalue > 1e-3


def test_continuous_part_never_repeats_and_true_simpson() -> None:
    config = SyntheticConfig(support=10, continuous=0.3, image_size=4, detail=2)
    source = SyntheticSource(config, 2)
    ids = np.array([source.identity(i)[0] for i in range(5000)])
    continuous = ids >= 10
    assert abs(continuous.mean() - 0.3) < 0.03
    assert len(set(ids[continuous].tolist())) == int(continuous.sum())
    assert source.true_simpson() == pytest.approx(0.7**2 * 0.1)


def test_bad_synthetic_config_is_refused() -> None:
    with pytest.raises(ValueError, match="support"):
        SyntheticSource(SyntheticConfig(support=0), 0)


def test_checkpoint_source_is_batch_independent(tmp_path: Path) -> None:
    options = {"image_size": 16, "channels": 3, "latent_dim": 8, "g_width": 0.25}
    module, _ = build_generator("dcgan", options)
    save_generator(tmp_path / "g.safetensors", module, "dcgan", options)
    source = CheckpointSource(
        tmp_path / "g.safetensors", "safetensors", None, None, seed=5, device="cpu", batch_size=3
    )
    assert source.image_shape == (3, 16, 16)
    whole = source.generate(np.arange(10, dtype=np.int64))
    alone = source.generate(np.array([7], dtype=np.int64))
    torch.testing.assert_close(alone.images[0], whole.images[7])
    assert whole.images.abs().max() <= 1
    assert whole.identities is None


def test_npz_source_reads_uint8_nhwc(tmp_path: Path) -> None:
    images = np.random.default_rng(0).integers(0, 256, size=(6, 8, 8, 3), dtype=np.uint8)
    np.savez(tmp_path / "s.npz", images=images)
    assert describe_npz(tmp_path / "s.npz") == (6, (3, 8, 8))
    source = NpzSource(tmp_path / "s.npz")
    chunk = source.generate(np.array([4], dtype=np.int64))
    expected = torch.from_numpy(images[4].astype(np.float32)).permute(2, 0, 1) / 127.5 - 1
    torch.testing.assert_close(chunk.images[0], expected)
    with pytest.raises(ValueError, match="only 6 samples"):
        source.generate(np.array([6], dtype=np.int64))


def test_npz_with_objects_is_refused(tmp_path: Path) -> None:
    np.savez(tmp_path / "bad.npz", images=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ValueError):
        describe_npz(tmp_path / "bad.npz")


def test_huge_uniform_support_needs_no_table() -> None:
    source = SyntheticSource(SyntheticConfig(support=10**9, image_size=4, detail=2), 0)
    ids = [source.identity(i)[0] for i in range(1000)]
    assert len(set(ids)) == 1000 and max(ids) < 10**9
    assert source.true_simpson() == pytest.approx(1e-9)


def test_builtin_generator_is_registered_once_and_auditable(tmp_path: Path) -> None:
    import shutil

    from fastapi.testclient import TestClient

    from app.main import create_app
    from app.settings import Settings
    from tests.conftest import wait_for_audit

    shipped = (
        Path(__file__).resolve().parents[1] / "models" / "builtin" / "dcgan-digits-16.safetensors"
    )
    settings = Settings(data_dir=tmp_path / "data", models_dir=tmp_path / "models")
    (settings.models_dir / "builtin").mkdir(parents=True)
    shutil.copy(shipped, settings.models_dir / "builtin")
    for _ in range(2):  # a restart must not register it twice
        with TestClient(create_app(settings)) as client:
            generators = client.get("/api/generators").json()
    assert [g["name"] for g in generators] == ["built-in: dcgan-digits-16"]
    assert generators[0]["image_shape"] == [1, 16, 16] and generators[0]["latent_dim"] == 32
    with TestClient(create_app(settings)) as client:
        audit = client.post("/api/audits", json={"generator_id": generators[0]["id"], "n": 300})
        assert wait_for_audit(client, audit.json()["id"])["status"] == "done"
