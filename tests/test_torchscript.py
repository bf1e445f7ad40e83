"""TorchScript uploads: accepted only where code uploads are allowed, and run only in a child process."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import torch
from fastapi.testclient import TestClient

from app.gan.registry import build_generator
from app.main import create_app
from app.settings import Settings
from tests.conftest import assert_problem, wait_for_audit

OPTIONS = {"image_size": 8, "channels": 1, "latent_dim": 4, "g_width": 0.25}


def scripted_bytes() -> bytes:
    module, _ = build_generator("dcgan", OPTIONS)
    buffer = io.BytesIO()
    torch.jit.save(torch.jit.trace(module.eval(), torch.randn(2, 4)), buffer)
    return buffer.getvalue()


def upload(client: TestClient, content: bytes, latent_dim: str | None = "4") -> object:
    data = {"name": "ts", "format": "torchscript"}
    if latent_dim is not None:
        data["latent_dim"] = latent_dim
    return client.post("/api/generators", data=data, files={"file": ("g.pt", content)})


def test_torchscript_is_probed_and_audited_outside_the_api_process(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*_: object, **__: object) -> None:
        raise AssertionError("the API process loaded TorchScript")

    monkeypatch.setattr(torch.jit, "load", refuse)
    response = upload(client, scripted_bytes())
    assert response.status_code == 201, response.text  # type: ignore[attr-defined]
    generator = response.json()  # type: ignore[attr-defined]
    assert generator["image_shape"] == [1, 8, 8] and generator["latent_dim"] == 4
    audit = client.post("/api/audits", json={"generator_id": generator["id"], "n": 120}).json()
    audit = wait_for_audit(client, audit["id"])
    assert audit["status"] == "done", audit
    assert audit["progress"]["candidate_pairs"] > 0


def test_bad_torchscript_is_refused_clearly(client: TestClient) -> None:
    body = assert_problem(upload(client, b"not torchscript"), 422)  # type: ignore[arg-type]
    assert "cannot load TorchScript" in body["detail"]
    assert_problem(upload(client, scripted_bytes(), latent_dim=None), 422)  # type: ignore[arg-type]
    wrong = assert_problem(upload(client, scripted_bytes(), latent_dim="7"), 422)  # type: ignore[arg-type]
    assert "RuntimeError" in wrong["detail"] or "size" in wrong["detail"]


def test_shared_servers_refuse_code_uploads(settings: Settings, tmp_path: Path) -> None:
    settings.allow_code_uploads = False
    with TestClient(create_app(settings)) as client:
        body = assert_problem(upload(client, scripted_bytes()), 422)  # type: ignore[arg-type]
        assert "executable code" in body["detail"]
    assert not list((settings.models_dir / "uploads").glob("*"))


@pytest.mark.parametrize(
    ("host", "auth", "allowed"),
    [
        ("127.0.0.1", "auto", True),  # one user's machine
        ("localhost", "off", True),
        ("127.0.0.1", "on", False),  # tokens asked: others use it (a proxy in front, say)
        ("0.0.0.0", "auto", False),
        ("0.0.0.0", "off", False),  # reachable by others without tokens: still shared
        ("10.0.0.5", "on", False),
    ],
)
def test_code_uploads_default_to_a_single_users_machine(
    tmp_path: Path, host: str, auth: str, allowed: bool
) -> None:
    settings = Settings(data_dir=tmp_path, host=host, auth=auth)  # type: ignore[arg-type]
    assert settings.code_uploads_allowed is allowed
    settings.allow_code_uploads = True
    assert settings.code_uploads_allowed
