"""A team reviewing one audit through the queue: one annotator takes a page and leaves, one
answers "unsure" now and then, one judges everything. The review still reaches its stop, and
the estimate holds the truth."""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

from fastapi.testclient import TestClient

from app.estimate import estimate_support
from tests.conftest import wait_for_audit
from tests.oracle import identities, true_duplicate_pairs


def test_a_team_with_an_absent_and_an_unsure_annotator_reaches_the_stop(
    client: TestClient,
) -> None:
    created = client.post(
        "/api/audits",
        json={"synthetic": {"support": 400, "zipf": 1.1}, "n": 300, "seed": 4},
    )
    assert created.status_code == 202, created.text
    audit = wait_for_audit(client, created.json()["id"])
    aid, ids = audit["id"], identities(audit)
    url = f"/api/audits/{aid}/next-pairs"
    # Cy takes a page of candidate and random pairs and never comes back (leases of a minute).
    left = client.get(url, params={"annotator": "cy", "limit": 20}).json()["items"]
    assert any(p["origin"] == "random" for p in left)

    answered = Counter[str]()
    stopped: set[str] = set()
    for _ in range(300):
        progress = False
        for who in ("ada", "bea"):
            page = client.get(url, params={"annotator": who, "limit": 5}).json()
            if page["stop"]:
                stopped.add(who)
                continue
            for pair in page["items"]:
                truth = "duplicate" if ids[pair["i"]] == ids[pair["j"]] else "distinct"
                unsure = who == "ada" and sum(answered.values()) % 7 == 3
                body: dict[str, Any] = {"label": "unsure" if unsure else truth, "annotator": who}
                response = client.post(f"/api/pairs/{pair['id']}/judgements", json=body)
                assert response.status_code == 201, response.text
                answered["unsure" if unsure else who] += 1
                progress = True
        if stopped == {"ada", "bea"}:
            break
        assert progress, "the queue ran dry before its stopping rule said stop"
    assert stopped == {"ada", "bea"} and answered["unsure"] >= 5

    estimate = client.get(f"/api/audits/{aid}/estimate").json()
    assert estimate["explored"] and estimate["stop"]["limited_by"] in (None, "samples")
    # The pool's own N_eff, every identity known, lies in the interval the labels give.
    sizes = Counter(ids.tolist()).values()
    oracle = estimate_support(len(ids), sizes)
    assert oracle.d == true_duplicate_pairs(ids)
    assert estimate["n_eff_low"] <= oracle.n_eff <= estimate["n_eff_high"]
    assert math.isclose(estimate["d_hat"], oracle.d, rel_tol=0.25)
