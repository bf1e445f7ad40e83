"""A team reviewing one audit through the queue: one annotator takes a page and leaves, one
answers "unsure" now and then, one judges everything. The review still reaches its stop, and
the estimate holds the truth."""

from __future__ import annotations

import math
import os
import time
from collections import Counter
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

import app.services.review as review_service
from app.estimate import estimate_support
from tests.conftest import wait_for_audit
from tests.oracle import identities, true_duplicate_pairs

SEEDS = [int(s) for s in os.environ.get("BIRTHDAY_TEAM_SEEDS", "1 2 3").split()]


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


@pytest.mark.parametrize("seed", SEEDS)
def test_a_noisy_team_never_stalls_the_queue(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, seed: int
) -> None:
    """Three annotators in random turns on a collapsed pool: pages abandoned half-done, "unsure"
    answers, mistakes that split pairs into ties, short leases. Whatever the state, the queue
    hands someone a pair or says stop: an empty page without a stop, for everyone, after the
    leases ran out, is a stall."""
    monkeypatch.setattr(review_service, "LEASE_SECONDS", 0.05)
    rng = np.random.default_rng(seed)
    created = client.post(
        "/api/audits",
        json={"synthetic": {"support": 300, "zipf": 1.2}, "n": 150, "seed": seed, "neighbours": 3},
    )
    audit = wait_for_audit(client, created.json()["id"])
    aid, ids = audit["id"], identities(audit)
    team = ("ada", "bea", "cy")
    stopped: set[str] = set()
    dry: set[str] = set()
    for _ in range(600):
        who = team[int(rng.integers(len(team)))]
        page = client.get(
            f"/api/audits/{aid}/next-pairs",
            params={"annotator": who, "limit": int(rng.integers(1, 7))},
        ).json()
        if page["stop"]:
            stopped.add(who)
            if stopped == set(team):
                break
            continue
        if not page["items"]:
            dry.add(who)
            assert dry != set(team), "nobody is handed a pair, and the queue does not stop"
            time.sleep(0.06)
            continue
        dry.clear()
        for pair in page["items"]:
            roll = rng.random()
            if roll < 0.15:
                break  # the rest of the page is abandoned
            truth = ids[pair["i"]] == ids[pair["j"]]
            if roll < 0.25:
                label = "unsure"
            else:
                wrong = roll > 0.95
                label = "duplicate" if truth != wrong else "distinct"
            body = {"label": label, "annotator": who}
            assert client.post(f"/api/pairs/{pair['id']}/judgements", json=body).status_code == 201
    assert stopped == set(team)
