"""Early in a review the interval's ends stay numbers a reader can use: N_eff's upper end is
bounded by what the confirmed duplicates alone guarantee (Markov), and a share stays a share."""

from __future__ import annotations

import math

from fastapi.testclient import TestClient

from app.estimate.incomplete import MARKOV_SHARE, markov_d_floor
from tests.conftest import wait_for_audit


def test_the_floor_is_markovs_at_a_tenth_of_the_lower_tail() -> None:
    assert markov_d_floor(0, 0.95) == 0.0
    assert math.isclose(markov_d_floor(4, 0.95), 4 * MARKOV_SHARE * 0.025)
    assert markov_d_floor(4, 0.99) < markov_d_floor(4, 0.95)


def test_one_confirmed_duplicate_bounds_n_eff_by_markov(client: TestClient) -> None:
    created = client.post("/api/audits", json={"synthetic": {"support": 50}, "n": 2000})
    audit_id = wait_for_audit(client, created.json()["id"])["id"]
    pairs = 2000 * 1999 // 2
    for confirmed in (1, 2):
        pair = client.get(f"/api/audits/{audit_id}/next-pair", params={"annotator": "ada"}).json()
        body = {"label": "duplicate", "annotator": "ada"}
        assert client.post(f"/api/pairs/{pair['id']}/judgements", json=body).status_code == 201
        estimate = client.get(f"/api/audits/{audit_id}/estimate").json()
        assert estimate["parts"]["confirmed"] == confirmed
        # Before, one label read N_eff up to 1.4e77; now at most C(n,2) / (a c).
        ceiling = pairs / markov_d_floor(confirmed, 0.95)
        assert estimate["n_eff"] <= estimate["n_eff_high"] <= ceiling * (1 + 1e-9)
        assert 0.0 <= estimate["stop"]["unreviewed_share_ucb"] <= 1.0


def test_a_target_no_pool_reaches_is_said_not_refused(client: TestClient) -> None:
    created = client.post("/api/audits", json={"synthetic": {"support": 50}, "n": 300})
    audit_id = wait_for_audit(client, created.json()["id"])["id"]
    pair = client.get(f"/api/audits/{audit_id}/next-pair", params={"annotator": "ada"}).json()
    body = {"label": "duplicate", "annotator": "ada"}
    assert client.post(f"/api/pairs/{pair['id']}/judgements", json=body).status_code == 201
    for params in ({"level": 0.9999999999999999}, {"target": 1e-320}):
        response = client.get(f"/api/audits/{audit_id}/estimate", params=params)
        assert response.status_code == 200, (params, response.text)
        stop = response.json()["stop"]
        assert stop["samples_to_go"] is None and not stop["reached"], stop
        # The miner's check leaves no width of its own here: not the miner's limit.
        if (stop["miner_relative_half_width"] or 0.0) < stop["target_relative_half_width"]:
            assert stop["limited_by"] != "miner", stop


def test_a_pool_confirmed_as_one_cluster_reads_the_exact_bound(client: TestClient) -> None:
    """A collapsed generator reviewed to the end: every pair a confirmed duplicate, so D is
    known and nothing is unreviewed or missed; the design's leftover variances had widened the
    exact [1, 0.025^(-2/n)] to [1, 1.095] at n = 100, with bounds of 171 and 277 duplicates
    on parts that are 0."""
    created = client.post("/api/audits", json={"synthetic": {"support": 1}, "n": 100})
    audit_id = wait_for_audit(client, created.json()["id"])["id"]
    for _ in range(1000):
        asked = client.get(f"/api/audits/{audit_id}/next-pair", params={"annotator": "ada"})
        if asked.status_code == 204:
            break
        body = {"label": "duplicate", "annotator": "ada"}
        assert client.post(f"/api/pairs/{asked.json()['id']}/judgements", json=body).is_success
    estimate = client.get(f"/api/audits/{audit_id}/estimate").json()
    assert estimate["parts"]["confirmed"] == 100 * 99 // 2 and estimate["complete"]
    assert estimate["n_eff_low"] == 1.0
    assert math.isclose(estimate["n_eff_high"], 0.025 ** (-2 / 100))
    assert estimate["parts"]["unreviewed_ucb"] == estimate["parts"]["missed_ucb"] == 0.0
