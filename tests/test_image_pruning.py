"""Pruning stored sample PNGs: what goes, what stays, that the images shown do not change, and the
audits whose PNGs must stay (generator file changed, sources the server does not draw)."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import func, select

from app.main import create_app
from app.schemas import AuditCreate, SyntheticSpec
from app.services.audits import create_audit
from app.services.image_pruning import prune_sample_images
from app.settings import Settings
from app.store.db import Database
from app.store.errors import Conflict
from app.store.models import Sample
from tests.conftest import wait_for_audit
from tests.test_cli import run as run_cli
from tests.test_sample_images import _archive, _save_dcgan, _upload_archive, _upload_dcgan

CHUNK = 250


def _settings(data: Path, **extra: Any) -> Settings:
    return Settings(data_dir=data / "data", models_dir=data / "models", chunk_size=CHUNK, **extra)


def _stored_audit(client: TestClient, **body: Any) -> int:
    response = client.post("/api/audits", json={"n": 600, "neighbours": 3, "seed": 4, **body})
    assert response.status_code == 202, response.text
    audit = wait_for_audit(client, response.json()["id"])
    assert audit["status"] == "done", audit
    return int(audit["id"])


def _pngs(db: Database, audit_id: int) -> tuple[int, int]:
    with db.read() as session:
        count, size = session.execute(
            select(func.count(), func.coalesce(func.sum(func.length(Sample.png)), 0)).where(
                Sample.audit_id == audit_id, Sample.png.is_not(None)
            )
        ).one()
    return int(count), int(size)


def _pixels(client: TestClient, audit_id: int, idx: int) -> np.ndarray:
    response = client.get(f"/api/audits/{audit_id}/samples/{idx}.png")
    assert response.status_code == 200, response.text
    return np.asarray(Image.open(io.BytesIO(response.content)))


SHOWN = (0, 1, 249, 250, 333, 599)


def test_pruning_keeps_one_png_per_step_and_every_image_shown_the_same(tmp_path: Path) -> None:
    settings = _settings(tmp_path, sample_images="stored")
    with TestClient(create_app(settings)) as client:
        audit_id = _stored_audit(client, synthetic={"support": 200, "noise": 0.05})
        before = {idx: _pixels(client, audit_id, idx) for idx in SHOWN}
        db: Database = client.app.state.birthday.db  # type: ignore[attr-defined]
        count, size = _pngs(db, audit_id)
        assert count == 600
        result = prune_sample_images(db, settings, audit_id)
        assert (result.dropped, result.kept, result.checked) == (597, 3, 8)
        assert result.bytes_freed == size - _pngs(db, audit_id)[1] > 0
        with db.read() as session:
            kept = session.scalars(
                select(Sample.idx).where(Sample.audit_id == audit_id, Sample.png.is_not(None))
            )
            assert sorted(kept) == [0, 250, 500]
        again = prune_sample_images(db, settings, audit_id)
        assert (again.dropped, again.kept, again.bytes_freed) == (0, 3, 0)
    with TestClient(create_app(_settings(tmp_path))) as client:  # a fresh server: no cache
        for idx, pixels in before.items():
            assert np.array_equal(_pixels(client, audit_id, idx), pixels), idx


def test_a_changed_generator_keeps_its_pngs(tmp_path: Path) -> None:
    settings = _settings(tmp_path, sample_images="stored")
    with TestClient(create_app(settings)) as client:
        generator = _upload_dcgan(client, tmp_path, seed=1)
        audit_id = _stored_audit(client, generator_id=generator["id"], n=300)
        db: Database = client.app.state.birthday.db  # type: ignore[attr-defined]
        path = next((settings.models_dir / "uploads").glob("*"))
        _save_dcgan(path, seed=2)
        with pytest.raises(Conflict, match="not the one audited"):
            prune_sample_images(db, settings, audit_id)
        assert _pngs(db, audit_id)[0] == 300


def test_pngs_the_server_cannot_draw_and_running_audits_are_left_alone(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    archive, _ = _archive(tmp_path, "npz_compressed")
    with TestClient(create_app(settings)) as client:
        audit_id = _stored_audit(client, generator_id=_upload_archive(client, archive), n=300)
        db: Database = client.app.state.birthday.db  # type: ignore[attr-defined]
        with pytest.raises(Conflict, match="only copy") as refused:
            prune_sample_images(db, settings, audit_id)
        assert refused.value.status == 422 and _pngs(db, audit_id)[0] == 300
    db = Database(settings.resolved_database_url())
    queued, _ = create_audit(db, settings, AuditCreate(synthetic=SyntheticSpec(support=10), n=50))
    with pytest.raises(Conflict, match="is queued"):
        prune_sample_images(db, settings, queued.id)


def test_the_cli_prunes_and_vacuums(tmp_path: Path) -> None:
    data = tmp_path / "cli"
    settings = Settings(data_dir=data, models_dir=data / "models", sample_images="stored")
    with TestClient(create_app(settings)) as client:
        audit_id = _stored_audit(client, synthetic={"support": 300, "image_size": 32}, n=1500)
    store = data / "birthday.sqlite3"
    size_before = store.stat().st_size
    done = run_cli("prune-images", str(audit_id), "--vacuum", "--json", data_dir=data)
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    (result,) = answer["pruned"]
    assert answer["kept_as_is"] == []
    assert result["audit_id"] == audit_id and result["kept"] == 2 and result["dropped"] == 1498
    assert store.stat().st_size < size_before - result["bytes_freed"] // 2
    missing = run_cli("prune-images", "999", data_dir=data)
    assert missing.returncode == 2 and "audit 999 does not exist" in " ".join(
        missing.stderr.split()
    )
    neither = run_cli("prune-images", data_dir=data)
    assert neither.returncode == 2 and "--all" in neither.stderr


def test_the_cli_prunes_every_audit_and_lists_those_it_keeps(tmp_path: Path) -> None:
    data = tmp_path / "cli"
    settings = Settings(data_dir=data, models_dir=data / "models", sample_images="stored")
    archive, _ = _archive(tmp_path, "npz_compressed")
    with TestClient(create_app(settings)) as client:
        drawable = _stored_audit(client, synthetic={"support": 300}, n=500)
        archived = _stored_audit(client, generator_id=_upload_archive(client, archive), n=300)
    done = run_cli("prune-images", "--all", "--json", data_dir=data)
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert [r["audit_id"] for r in answer["pruned"]] == [drawable]
    assert answer["pruned"][0]["dropped"] == 499
    (kept,) = answer["kept_as_is"]
    assert kept["audit_id"] == archived and "only copy" in kept["reason"]


def _anchors(db: Database, audit_id: int) -> list[int]:
    with db.read() as session:
        return sorted(
            session.scalars(
                select(Sample.idx).where(Sample.audit_id == audit_id, Sample.png.is_not(None))
            )
        )


def _extended(client: TestClient) -> int:
    audit_id = _stored_audit(client, synthetic={"support": 200})
    response = client.post(f"/api/audits/{audit_id}/extend", json={"n_more": 200})
    assert response.status_code == 202, response.text
    assert wait_for_audit(client, audit_id)["status"] == "done"
    return audit_id


def test_an_extended_audit_keeps_the_anchors_a_new_one_would_store(tmp_path: Path) -> None:
    """Steps of an extension start where the pool ended (600), not at a multiple of the chunk."""
    with TestClient(create_app(_settings(tmp_path / "auto"))) as client:
        drawn = _anchors(client.app.state.birthday.db, _extended(client))  # type: ignore[attr-defined]
    assert drawn == [0, 250, 500, 600, 750]
    settings = _settings(tmp_path / "stored", sample_images="stored")
    with TestClient(create_app(settings)) as client:
        db: Database = client.app.state.birthday.db  # type: ignore[attr-defined]
        audit_id = _extended(client)
        assert len(_anchors(db, audit_id)) == 800
        prune_sample_images(db, settings, audit_id)
        assert _anchors(db, audit_id) == drawn
