"""Several annotators on one audit: majority consensus, Cohen's kappa, disagreements, adjudication."""

from __future__ import annotations

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sklearn.metrics import cohen_kappa_score

from app.estimate.agreement import cohen_kappa
from tests.conftest import all_pairs, assert_problem, wait_for_audit


def judge(client: TestClient, pair_id: int, label: str, who: str) -> dict:
    response = client.post(
        f"/api/pairs/{pair_id}/judgements", json={"label": label, "annotator": who}
    )
    assert response.status_code == 201, response.text
    return response.json()


def test_kappa_matches_an_independent_implementation() -> None:
    rng = np.random.default_rng(0)
    labels = ["duplicate", "distinct", "unsure"]
    for _ in range(50):
        size = int(rng.integers(2, 40))
        a = list(rng.choice(labels, size))
        b = [x if rng.random() < 0.7 else str(rng.choice(labels)) for x in a]
        expected = cohen_kappa_score(a, b)
        got = cohen_kappa(a, b)
        if np.isnan(expected):
            assert got is None
        else:
            assert got == pytest.approx(expected)
    assert cohen_kappa([], []) is None
    assert cohen_kappa(["distinct"] * 3, ["distinct"] * 3) is None


def test_consensus_agreement_and_adjudication(client: TestClient) -> None:
    response = client.post("/api/audits", json={"synthetic": {"support": 50}, "n": 80})
    audit = wait_for_audit(client, response.json()["id"])
    pairs = [p["id"] for p in all_pairs(client, audit["id"])[:6]]
    ada = ["duplicate", "duplicate", "distinct", "distinct", "unsure", "duplicate"]
    bob = ["duplicate", "distinct", "distinct", "duplicate", "unsure", "duplicate"]
    for pair_id, a, b in zip(pairs, ada, bob, strict=True):
        judge(client, pair_id, a, "ada")
        judge(client, pair_id, b, "bob")

    agreement = client.get(f"/api/audits/{audit['id']}/agreement").json()
    assert agreement["judgements"] == {"ada": 6, "bob": 6}
    [pair_stats] = agreement["pairs"]
    assert (pair_stats["a"], pair_stats["b"], pair_stats["shared"]) == ("ada", "bob", 6)
    assert pair_stats["agreement"] == pytest.approx(4 / 6)
    assert pair_stats["kappa"] == pytest.approx(cohen_kappa_score(ada, bob))

    # A 1-1 split leaves the pair unlabelled until a third opinion or a ruling.
    split = client.get(f"/api/audits/{audit['id']}/disagreements").json()
    assert sorted(d["pair"]["id"] for d in split) == sorted([pairs[1], pairs[3]])
    labels = {p["id"]: p["label"] for p in all_pairs(client, audit["id"])}
    assert labels[pairs[0]] == "duplicate" and labels[pairs[1]] is None
    assert labels[pairs[3]] is None and labels[pairs[4]] == "unsure"

    judge(client, pairs[1], "distinct", "cy")  # 2-1 majority
    ruling = client.post(f"/api/pairs/{pairs[3]}/adjudication", json={"label": "duplicate"})
    assert ruling.status_code == 201
    labels = {p["id"]: p["label"] for p in all_pairs(client, audit["id"])}
    assert labels[pairs[1]] == "distinct" and labels[pairs[3]] == "duplicate"
    client.delete(f"/api/judgements/{ruling.json()['id']}")
    labels = {p["id"]: p["label"] for p in all_pairs(client, audit["id"])}
    assert labels[pairs[3]] is None
    assert_problem(client.post("/api/pairs/999999/adjudication", json={"label": "duplicate"}), 404)
