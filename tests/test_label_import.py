"""Labels carried over to a re-mined audit of the same samples: what matches is copied under its
annotator, undone judgements stay undone, a second import copies nothing, and audits of other
samples are refused."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from tests.conftest import all_pairs, assert_problem, wait_for_audit
from tests.oracle import identities
from tests.test_review_design_api import _follow_queue, _random_pairs

SPEC = {"synthetic": {"support": 400}, "n": 200, "seed": 5}


def _audit(client: TestClient, **body: Any) -> dict[str, Any]:
    response = client.post("/api/audits", json={**SPEC, **body})
    assert response.status_code == 202, response.text
    return wait_for_audit(client, response.json()["id"])


def _labels(client: TestClient, aid: int) -> dict[tuple[int, int], str]:
    pairs = all_pairs(client, aid) + _random_pairs(client, aid)
    return {(p["i"], p["j"]): p["label"] for p in pairs if p["label"] is not None}


def test_labels_carry_over_to_a_re_mined_audit(client: TestClient) -> None:
    first = _audit(client, neighbours=2)
    ids = identities(first)

    def oracle(pair: dict[str, Any]) -> str:
        return "duplicate" if ids[pair["i"]] == ids[pair["j"]] else "distinct"

    assert _follow_queue(client, first["id"], "ada", oracle)["stop"]
    # Bea disagrees once and then takes it back; her undone judgement must not travel.
    pair = all_pairs(client, first["id"])[0]
    wrong = "distinct" if oracle(pair) == "duplicate" else "duplicate"
    judged = client.post(
        f"/api/pairs/{pair['id']}/judgements", json={"label": wrong, "annotator": "bea"}
    ).json()
    assert client.delete(f"/api/judgements/{judged['id']}").status_code == 200
    before = _labels(client, first["id"])
    estimate_before = client.get(f"/api/audits/{first['id']}/estimate").json()

    second = _audit(client, neighbours=6)
    url = f"/api/audits/{second['id']}/import-labels"
    result = client.post(url, json={"from_audit": first["id"]})
    assert result.status_code == 200, result.text
    body = result.json()
    assert body["judged_pairs"] == len(before) + (0 if (pair["i"], pair["j"]) in before else 1)
    after = _labels(client, second["id"])
    # Every candidate pair of the k = 2 audit is one of the k = 6 audit's (exact k-NN).
    assert set(before) - set(after) <= {
        (p["i"], p["j"]) for p in _random_pairs(client, first["id"])
    }
    assert {key: after[key] for key in before if key in after} == {
        key: label for key, label in before.items() if key in after
    }
    assert body["matched_pairs"] == len(after) and body["copied"] == len(after)
    # The same duplicates are confirmed before anyone looked at the new audit.
    estimate = client.get(f"/api/audits/{second['id']}/estimate").json()
    assert estimate["duplicate_pairs"] >= estimate_before["parts"]["direct"] - 1
    agreement = client.get(f"/api/audits/{second['id']}/agreement").json()
    assert set(agreement["judgements"]) == {"ada"}

    again = client.post(url, json={"from_audit": first["id"]}).json()
    assert again["copied"] == 0 and again["kept"] == body["copied"]
    # The queue goes on from there: the re-mined audit needs fewer new labels than the first.
    spent_first = estimate_before["labelled_pairs"]
    assert _follow_queue(client, second["id"], "ada", oracle)["stop"]
    spent_second = client.get(f"/api/audits/{second['id']}/estimate").json()["labelled_pairs"]
    assert spent_second - body["copied"] < spent_first


def test_labels_of_other_samples_are_refused(client: TestClient) -> None:
    first = _audit(client, neighbours=2)
    other_seed = _audit(client, seed=6)
    url = f"/api/audits/{first['id']}/import-labels"
    assert_problem(client.post(url, json={"from_audit": other_seed["id"]}), 422)
    assert_problem(client.post(url, json={"from_audit": first["id"]}), 422)
    assert_problem(client.post(url, json={"from_audit": 999}), 404)
    assert_problem(client.post(url, json={"from_audit": 0}), 422)
    assert_problem(client.post("/api/audits/999/import-labels", json={"from_audit": 1}), 404)
