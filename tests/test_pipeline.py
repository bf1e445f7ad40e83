"""The whole product on a source with known support: audit, oracle judgements over REST, estimate."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from tests.conftest import wait_for_audit
from tests.databases import fresh_database
from tests.oracle import identities, judge_all, true_duplicate_pairs


def test_pipeline_estimate_covers_true_support(client: TestClient) -> None:
    support = 2000
    response = client.post(
        "/api/audits",
        json={"synthetic": {"support": support}, "n": 1000, "seed": 3, "neighbours": 3},
    )
    assert response.status_code == 202, response.text
    audit = wait_for_audit(client, response.json()["id"])
    assert audit["status"] == "done", audit
    ids = identities(audit)
    truth_d = true_duplicate_pairs(ids)
    assert truth_d > 100  # E[D] = C(1000, 2) / 2000 ~ 250: enough for a meaningful interval

    judge_all(client, audit["id"], ids)
    estimate = client.get(f"/api/audits/{audit['id']}/estimate").json()

    # Every true duplicate pair in the pool was proposed by the miner and confirmed (closure counts).
    assert estimate["duplicate_pairs"] == truth_d
    assert estimate["complete"] is True
    assert estimate["labelled_pairs"] == estimate["candidate_pairs"]
    assert estimate["n_eff_low"] <= support <= estimate["n_eff_high"]
    assert estimate["n_eff"] == (1000 * 999 / 2) / truth_d
    assert estimate["s50"] is not None and estimate["paper_support"] == estimate["s50"] ** 2


def test_the_same_app_runs_on_postgresql(tmp_path: Path) -> None:
    """BIRTHDAY_DATABASE_URL switches the store to PostgreSQL with the same code and migrations."""
    for url in fresh_database("postgresql", tmp_path):
        settings = Settings(
            data_dir=tmp_path / "data", models_dir=tmp_path / "models", database_url=url
        )
        with TestClient(create_app(settings)) as client:
            response = client.post(
                "/api/audits", json={"synthetic": {"support": 100}, "n": 200, "neighbours": 2}
            )
            audit = wait_for_audit(client, response.json()["id"])
            assert audit["status"] == "done", audit
            ids = identities(audit)
            judge_all(client, audit["id"], ids)
            estimate = client.get(f"/api/audits/{audit['id']}/estimate").json()
            assert estimate["complete"] and estimate["duplicate_pairs"] == true_duplicate_pairs(ids)
