"""Secondary figures over REST against the synthetic source's true identities."""

from __future__ import annotations

from typing import Any

import numpy as np
from fastapi.testclient import TestClient

from tests.conftest import wait_for_audit
from tests.oracle import identities, judge_all


def _audit(client: TestClient, **body: Any) -> dict[str, Any]:
    response = client.post("/api/audits", json=body)
    assert response.status_code == 202, response.text
    audit = wait_for_audit(client, response.json()["id"])
    assert audit["status"] == "done", audit
    return audit


def _batch_hit_rate(ids: np.ndarray, s: int, draws: int = 4000) -> float:
    rng = np.random.default_rng(0)
    hits = [np.unique(ids[rng.choice(ids.size, s, replace=False)]).size < s for _ in range(draws)]
    return float(np.mean(hits))


def test_secondary_figures_match_the_truth(client: TestClient) -> None:
    support, n = 300, 400
    audit = _audit(client, synthetic={"support": support}, n=n, neighbours=3, seed=2)
    ids = identities(audit)
    judge_all(client, audit["id"], ids)
    body = client.get(f"/api/audits/{audit['id']}/secondary").json()
    assert body["n"] == n
    # Every duplicate is confirmed, so Chao1 sees exactly the distinct outputs of the pool.
    assert body["chao1"]["observed"] == np.unique(ids).size
    assert body["chao1"]["low"] <= body["chao1"]["estimate"] <= body["chao1"]["high"]
    assert body["chao1"]["estimate"] >= body["chao1"]["observed"]
    # s50 over the pool: batches of s50 hold a duplicate at least half the time, of s50 - 1 not.
    s = body["paper"]["s50"]
    assert body["paper"]["paper_support"] == s * s
    assert _batch_hit_rate(ids, s) >= 0.5 - 0.03 and _batch_hit_rate(ids, s - 1) < 0.5 + 0.03
    mle = body["batch_mle"]
    assert mle["batch_size"] == s and mle["batches"] == n // s
    assert mle["low"] <= support <= mle["high"] and mle["low"] <= mle["n_hat"] <= mle["high"]
    vendi = body["vendi"]
    assert vendi["samples"] == n and 1 <= vendi["order2"] <= vendi["order1"] <= n


def test_vendi_sees_collapse_without_labels(client: TestClient) -> None:
    collapsed = _audit(client, synthetic={"support": 4}, n=300, neighbours=2)
    diverse = _audit(client, synthetic={"support": 10**6}, n=300, neighbours=2)
    low = client.get(f"/api/audits/{collapsed['id']}/secondary").json()["vendi"]
    high = client.get(f"/api/audits/{diverse['id']}/secondary").json()["vendi"]
    assert low["order1"] <= 4.0 + 1e-6  # four distinct images: at most 4 effective samples
    assert high["order1"] > 10 * low["order1"]


def test_the_estimate_panel_names_the_secondary_figures(client: TestClient) -> None:
    audit = _audit(client, synthetic={"support": 50}, n=200, neighbours=2)
    ids = identities(audit)
    judge_all(client, audit["id"], ids)
    html = client.get(f"/audits/{audit['id']}/panel").text
    secondary = client.get(f"/api/audits/{audit['id']}/secondary").json()
    assert "data-secondary" in html and "none of them is N<sub>eff</sub>" in html
    assert f"{secondary['chao1']['observed']:,} seen" in html
    assert "lower bound on the number of distinct outputs" in html
    assert "label-free diversity" in html
