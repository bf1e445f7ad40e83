"""GET /api/audits/{id}/second-look over a real review: one slipped key on a random pair moves
N_eff far outside its interval, the second look names it first, and a new judgement mends it."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import assert_problem, wait_for_audit
from tests.oracle import identities


def _review(client: TestClient, audit: dict[str, Any]) -> dict[int, dict[str, Any]]:
    """The oracle answers next-pair until the stopping rule says stop; the pairs it judged."""
    ids = identities(audit)
    judged: dict[int, dict[str, Any]] = {}
    for _ in range(2000):
        response = client.get(f"/api/audits/{audit['id']}/next-pair", params={"annotator": "o"})
        if response.status_code == 204:
            return judged
        pair = response.json()
        label = "duplicate" if ids[pair["i"]] == ids[pair["j"]] else "distinct"
        _judge(client, pair["id"], label)
        judged[pair["id"]] = {**pair, "label": label}
    raise AssertionError("the queue never stopped")


def _judge(client: TestClient, pair_id: int, label: str) -> None:
    posted = client.post(
        f"/api/pairs/{pair_id}/judgements", json={"label": label, "annotator": "o"}
    )
    assert posted.status_code == 201, posted.text


def test_a_slip_on_a_random_pair_comes_first(client: TestClient) -> None:
    body = {"synthetic": {"support": 2000}, "n": 300, "seed": 3}
    audit = wait_for_audit(client, client.post("/api/audits", json=body).json()["id"])
    assert audit["status"] == "done", audit
    url = f"/api/audits/{audit['id']}/second-look"
    empty = client.get(url).json()
    assert empty["items"] == [] and empty["n_eff"] is None  # nothing judged, nothing to doubt
    judged = _review(client, audit)
    right = client.get(f"/api/audits/{audit['id']}/estimate").json()
    before = client.get(url).json()
    assert before["n_eff"] == right["n_eff"]
    assert all(item["looks"] == 1 for item in before["items"])

    # One slipped key: a random pair of two different outputs called "duplicate".
    slipped = next(p for p in judged.values() if p["origin"] == "random")
    assert slipped["label"] == "distinct"
    _judge(client, slipped["id"], "duplicate")
    wrong = client.get(f"/api/audits/{audit['id']}/estimate").json()
    assert wrong["n_eff"] < right["n_eff_low"]  # far outside the interval the oracle's labels gave

    looks = client.get(url, params={"limit": 5}).json()
    assert len(looks["items"]) <= 5 and looks["n_eff"] == wrong["n_eff"]
    top = looks["items"][0]
    assert top["pair"]["id"] == slipped["id"] and top["pair"]["label"] == "duplicate"
    assert top["looks"] == 2 and top["slip_probability"] > 0.5
    # Bayes from the label's prior: no other random pair of its generation is a duplicate.
    judged_random = sum(p["origin"] == "random" for p in judged.values())
    assert top["prior_of_other_answer"] == pytest.approx(1 - 0.5 / judged_random)
    other, slip = top["prior_of_other_answer"], looks["slip_rate"]
    bayes = other * slip / (other * slip + (1 - other) * (1 - slip))
    assert top["slip_probability"] == pytest.approx(bayes)
    # Flipping it back is exactly the estimate before the slip.
    assert top["n_eff_if_flipped"] == right["n_eff"]
    assert top["d_hat_if_flipped"] == right["d_hat"]
    assert top["pair"]["image_urls"][0].endswith(f"/samples/{slipped['i']}.png")

    # The second look mends it: the estimate is back, the pair no longer first.
    _judge(client, slipped["id"], "distinct")
    mended = client.get(f"/api/audits/{audit['id']}/estimate").json()
    assert mended["n_eff"] == right["n_eff"]
    after = client.get(url).json()
    # Only judgements worth a look are listed: the oracle's right labels, before and after.
    assert [i["pair"]["id"] for i in after["items"]] == [i["pair"]["id"] for i in before["items"]]
    # Listed or not, it is no longer suspect: a "not duplicate" among random pairs without one.
    for item in after["items"]:
        if item["pair"]["id"] == slipped["id"]:
            assert item["slip_probability"] < 0.01 and item["looks"] == 3


def test_bad_requests(client: TestClient) -> None:
    assert_problem(client.get("/api/audits/999/second-look"), 404)
    body = {"synthetic": {"support": 50}, "n": 40}
    audit = wait_for_audit(client, client.post("/api/audits", json=body).json()["id"])
    for params in ({"limit": 0}, {"limit": 51}, {"level": 1.5}, {"limit": "x"}):
        assert_problem(client.get(f"/api/audits/{audit['id']}/second-look", params=params), 422)
