"""The designed review over REST: random non-candidate pairs, the queue, the stopping rule and the
estimate's parts, on synthetic sources whose true identities the oracle knows."""

from __future__ import annotations

import math
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from app.settings import Settings
from tests.conftest import all_pairs, wait_for_audit
from tests.oracle import identities, judge_all, true_duplicate_pairs
from tests.test_cli import BIRTHDAY


def _audit(client: TestClient, **body: Any) -> dict[str, Any]:
    response = client.post("/api/audits", json=body)
    assert response.status_code == 202, response.text
    audit = wait_for_audit(client, response.json()["id"])
    assert audit["status"] == "done", audit
    return audit


def _random_pairs(client: TestClient, audit_id: int) -> list[dict[str, Any]]:
    url = f"/api/audits/{audit_id}/pairs"
    return client.get(url, params={"origin": "random", "limit": 500}).json()["items"]


def _judge(client: TestClient, pair: dict[str, Any], ids: np.ndarray, who: str) -> None:
    label = "duplicate" if ids[pair["i"]] == ids[pair["j"]] else "distinct"
    response = client.post(
        f"/api/pairs/{pair['id']}/judgements",
        json={"label": label, "annotator": who},
        headers={"Idempotency-Key": str(uuid.uuid4())},
    )
    assert response.status_code == 201, response.text


def test_random_pairs_are_uniform_non_candidates_per_generation(client: TestClient) -> None:
    audit = _audit(client, synthetic={"support": 500}, n=300, neighbours=3, random_pairs=40)
    candidates = all_pairs(client, audit["id"])
    random = _random_pairs(client, audit["id"])
    assert len(candidates) == audit["progress"]["candidate_pairs"]
    assert all(p["origin"] == "candidate" for p in candidates)
    # Drawn pairs that are candidates are dropped: at most 40, none of them a candidate.
    assert 30 <= len(random) <= 40 and all(p["origin"] == "random" for p in random)
    assert not {(p["i"], p["j"]) for p in random} & {(p["i"], p["j"]) for p in candidates}
    assert all(0 <= p["i"] < p["j"] < 300 for p in random)
    # Each one's distance is the embedding distance, so far pairs are farther than candidates.
    assert np.median([p["distance"] for p in random]) > np.median(
        [p["distance"] for p in candidates]
    )
    for p in random[:3]:
        for url in p["image_urls"]:
            assert client.get(url).content.startswith(b"\x89PNG")

    extended = client.post(f"/api/audits/{audit['id']}/extend", json={"n_more": 200})
    assert extended.status_code == 202
    assert wait_for_audit(client, audit["id"])["status"] == "done"
    after = _random_pairs(client, audit["id"])
    old = {p["id"] for p in random}
    new = [p for p in after if p["id"] not in old]
    assert old <= {p["id"] for p in after}
    # The new generation covers the pairs that involve a new sample.
    assert 30 <= len(new) <= 40 and all(300 <= p["j"] < 500 for p in new)


def test_every_pair_judged_gives_the_exact_pooled_estimate(client: TestClient) -> None:
    audit = _audit(client, synthetic={"support": 300}, n=400, neighbours=3, seed=1)
    ids = identities(audit)
    judge_all(client, audit["id"], ids)
    for pair in _random_pairs(client, audit["id"]):
        _judge(client, pair, ids, "oracle")
    estimate = client.get(f"/api/audits/{audit['id']}/estimate").json()
    truth = true_duplicate_pairs(ids)
    pairs = 400 * 399 / 2
    assert estimate["complete"] and estimate["explored"]
    assert estimate["parts"]["unreviewed"] == 0 and estimate["parts"]["missed"] == 0
    assert estimate["duplicate_pairs"] == truth == estimate["d_hat"]
    assert estimate["n_eff"] == pytest.approx(pairs / truth)
    assert estimate["n_eff_low"] < estimate["n_eff"] < estimate["n_eff_high"]
    assert estimate["random_labelled"] == estimate["random_pairs"] > 0


def test_the_oracle_stops_when_the_rule_says_with_few_labels(client: TestClient) -> None:
    support = 2000
    audit = _audit(client, synthetic={"support": support}, n=1500, neighbours=4, seed=5)
    ids = identities(audit)
    url = f"/api/audits/{audit['id']}/next-pairs"
    seen: set[int] = set()
    for _ in range(400):
        body = client.get(url, params={"annotator": "oracle", "limit": 10, "target": 0.3}).json()
        if body["stop"] or not body["items"]:
            break
        for pair in body["items"]:
            assert pair["id"] not in seen
            seen.add(pair["id"])
            _judge(client, pair, ids, "oracle")
    assert body["stop"] is True
    assert (
        client.get(
            f"/api/audits/{audit['id']}/next-pair", params={"annotator": "oracle", "target": 0.3}
        ).status_code
        == 204
    )
    estimate = client.get(f"/api/audits/{audit['id']}/estimate", params={"target": 0.3}).json()
    truth = true_duplicate_pairs(ids)
    candidates = estimate["candidate_pairs"]
    # Far fewer labels than candidates, and the random check of the miner was done.
    assert estimate["labelled_pairs"] == len(seen) < candidates / 4
    assert estimate["random_labelled"] >= 20 and estimate["explored"]
    assert estimate["stop"]["reached"] or estimate["stop"]["labels_done"]
    parts = estimate["parts"]
    assert parts["confirmed"] + parts["unreviewed"] + parts["missed"] == pytest.approx(
        estimate["d_hat"]
    )
    assert parts["confirmed"] <= truth
    assert abs(estimate["d_hat"] - truth) < 4 * math.sqrt(truth)
    assert estimate["n_eff_low"] <= 1500 * 1499 / 2 / truth <= estimate["n_eff_high"]
    assert estimate["n_eff_low"] <= support <= estimate["n_eff_high"]
    assert estimate["warnings"] == []  # exact duplicates: the embedder ranks them first


def test_annotators_get_disjoint_batches_and_their_own_back(client: TestClient) -> None:
    audit = _audit(client, synthetic={"support": 300}, n=400, neighbours=3)
    url = f"/api/audits/{audit['id']}/next-pairs"
    ada = client.get(url, params={"annotator": "ada", "limit": 8}).json()["items"]
    bob = client.get(url, params={"annotator": "bob", "limit": 8}).json()["items"]
    assert len(ada) == len(bob) == 8
    assert not {p["id"] for p in ada} & {p["id"] for p in bob}
    # Asking again before judging hands the same pairs back first (a reload loses nothing).
    again = client.get(url, params={"annotator": "ada", "limit": 8}).json()["items"]
    assert {p["id"] for p in again} == {p["id"] for p in ada}
    for p in ada:
        assert (p["rank"] is None) == (p["origin"] == "random")


def test_the_estimate_warns_when_its_assumptions_look_broken(client: TestClient) -> None:
    audit = _audit(client, synthetic={"support": 10**6}, n=300, neighbours=3)
    url = f"/api/audits/{audit['id']}/estimate"
    pairs = sorted(all_pairs(client, audit["id"]), key=lambda p: p["distance"])
    body = {"label": "distinct", "annotator": "ada"}
    handed = client.get(
        f"/api/audits/{audit['id']}/next-pairs", params={"annotator": "ada", "limit": 10}
    ).json()["items"]
    for pair in handed:  # the design's sample, all distinct: D-hat = 0
        client.post(f"/api/pairs/{pair['id']}/judgements", json=body)
    assert client.get(url).json()["d_hat"] == 0
    assert "No duplicate among the labelled pairs" in " ".join(client.get(url).json()["warnings"])

    far = pairs[-1]  # judged a duplicate although the embedder puts it farthest
    client.post(f"/api/pairs/{far['id']}/judgements", json={**body, "label": "duplicate"})
    warnings = client.get(url).json()["warnings"]
    assert any("farther than half the pairs judged distinct" in w for w in warnings)
    assert not any("random check" in w for w in warnings)

    random, *others = _random_pairs(client, audit["id"])
    client.post(f"/api/pairs/{random['id']}/judgements", json={**body, "label": "duplicate"})
    estimate = client.get(url).json()
    found = [w for w in estimate["warnings"] if "random check found" in w]
    assert len(found) == 1 and f"(samples {random['i']}-{random['j']})" in found[0]
    # The rest of the check judged: the duplicate alone carries most of D-hat (it stands for
    # every pair the miner did not propose), and the warning says so.
    for pair in others:
        client.post(f"/api/pairs/{pair['id']}/judgements", json=body)
    estimate = client.get(url).json()
    found = [w for w in estimate["warnings"] if "random check found" in w]
    share = estimate["parts"]["missed"] / estimate["d_hat"]
    assert share > 0.5 and f"({share:.0%}): worth a second look" in found[0]
    panel = client.get(f"/audits/{audit['id']}/panel").text
    assert panel.count("data-warning") == len(estimate["warnings"])


def test_a_pool_of_one_output_is_not_blamed_on_the_embedder(client: TestClient) -> None:
    """Every sample the same image: all pairs are duplicates, near and far, and nothing judged
    distinct says the embedder mixes them, so no ranking warning (the candidates' median
    used to stand in for the distinct ones and flagged half the confirmed pairs)."""
    audit = _audit(client, synthetic={"support": 1}, n=60, neighbours=3)
    items = client.get(
        f"/api/audits/{audit['id']}/next-pairs", params={"annotator": "ada", "limit": 30}
    ).json()["items"]
    for pair in items:
        body = {"label": "duplicate", "annotator": "ada"}
        client.post(f"/api/pairs/{pair['id']}/judgements", json=body)
    estimate = client.get(f"/api/audits/{audit['id']}/estimate").json()
    assert estimate["duplicate_pairs"] > 0 and estimate["n_eff"] < 1.5
    assert estimate["n_eff_low"] >= 1.0
    assert not any("farther than half" in w for w in estimate["warnings"])


def test_pairs_only_the_closure_implies_are_sent_to_review(client: TestClient) -> None:
    audit = _audit(client, synthetic={"support": 40}, n=200, neighbours=4, seed=3)
    pairs = all_pairs(client, audit["id"])
    by_ends = {(p["i"], p["j"]): p for p in pairs}
    triangle = next(
        (by_ends[(x, y)], by_ends[(y, z)], by_ends[(x, z)])
        for (x, y) in sorted(by_ends)
        for z in range(y + 1, 200)
        if (y, z) in by_ends and (x, z) in by_ends
    )
    xy, yz, xz = triangle
    for pair in (xy, yz):
        body = {"label": "duplicate", "annotator": "ada"}
        assert client.post(f"/api/pairs/{pair['id']}/judgements", json=body).status_code == 201
    used = {xy["i"], xy["j"], yz["j"]}
    others = [p for p in pairs if not {p["i"], p["j"]} & used][:7]
    for pair in others:  # 9 labels: the 10th is a check of the closure
        body = {"label": "distinct", "annotator": "ada"}
        assert client.post(f"/api/pairs/{pair['id']}/judgements", json=body).status_code == 201
    estimate = client.get(f"/api/audits/{audit['id']}/estimate").json()
    assert estimate["parts"]["implied"] == 1
    handed = client.get(
        f"/api/audits/{audit['id']}/next-pairs", params={"annotator": "bob", "limit": 5}
    ).json()["items"]
    assert handed[0]["id"] == xz["id"]  # the pair only the closure asserts
    again = client.get(
        f"/api/audits/{audit['id']}/next-pairs", params={"annotator": "bob", "limit": 5}
    ).json()["items"]
    assert xz["id"] in {p["id"] for p in again}  # held for bob until judged
    # A "distinct" on it is a cannot-link: the closure no longer asserts it.
    body = {"label": "distinct", "annotator": "bob"}
    client.post(f"/api/pairs/{xz['id']}/judgements", json=body)
    after = client.get(f"/api/audits/{audit['id']}/estimate").json()
    assert after["parts"]["confirmed"] < estimate["parts"]["confirmed"]


def _follow_queue(
    client: TestClient, aid: int, who: str, answer: Callable[[dict[str, Any]], str]
) -> dict[str, Any]:
    """Judge what next-pairs hands `who` with answer(pair) until it stops or runs dry."""
    page: dict[str, Any] = {}
    for _ in range(200):
        page = client.get(
            f"/api/audits/{aid}/next-pairs", params={"annotator": who, "limit": 20}
        ).json()
        if page["stop"] or not page["items"]:
            break
        for pair in page["items"]:
            body = {"label": answer(pair), "annotator": who}
            response = client.post(f"/api/pairs/{pair['id']}/judgements", json=body)
            assert response.status_code == 201, response.text
    return page


def test_the_stop_says_when_the_miner_limits_the_width(
    client: TestClient, settings: Settings
) -> None:
    """A reviewer finds duplicates among the random pairs that no candidate joins: their share
    of the non-candidate pairs is so noisy that no pool size meets the target, and the estimate,
    the panel and the CLI say the miner is what limits it."""
    audit = _audit(client, synthetic={"support": 10**6}, n=200, neighbours=2, random_pairs=50)
    aid = audit["id"]
    found: list[int] = []

    def answer(pair: dict[str, Any]) -> str:
        if pair["origin"] == "random" and len(found) < 2:
            found.append(pair["id"])
            return "duplicate"
        return "distinct"

    page = _follow_queue(client, aid, "ada", answer)
    assert len(found) == 2 and page["stop"]
    estimate = client.get(f"/api/audits/{aid}/estimate").json()
    stop = estimate["stop"]
    assert estimate["parts"]["missed"] > 100 and estimate["duplicate_pairs"] == 0
    assert stop["labels_done"] and not stop["reached"]
    assert stop["limited_by"] == "miner" and stop["samples_to_go"] is None
    assert stop["miner_relative_half_width"] > stop["target_relative_half_width"]
    panel = client.get(f"/audits/{aid}/panel").text
    assert 'data-limited-by="miner"' in panel and "extend the pool" not in panel
    text = subprocess.run(
        [BIRTHDAY, "estimate", str(aid), "--data-dir", str(settings.data_dir)],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "BIRTHDAY_MODELS_DIR": str(settings.models_dir)},
    )
    assert text.returncode == 0, text.stderr
    assert "limited by the miner" in text.stdout and "extend the pool" not in text.stdout


def test_a_random_pair_an_annotator_abandoned_does_not_stall_the_review(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bea fetches a page and leaves; Ada reviews on. The miner check counts a prefix of the
    random order, so Bea's random pairs hold it back until her lease runs out and they come
    back to Ada; meanwhile the queue does not claim the check done."""
    import app.services.review as review_service

    monkeypatch.setattr(review_service, "LEASE_SECONDS", 1.0)
    audit = _audit(client, synthetic={"support": 10**6}, n=200, neighbours=2, random_pairs=50)
    aid = audit["id"]
    abandoned = client.get(
        f"/api/audits/{aid}/next-pairs", params={"annotator": "bea", "limit": 20}
    ).json()
    assert any(p["origin"] == "random" for p in abandoned["items"])
    _follow_queue(client, aid, "ada", lambda pair: "distinct")
    time.sleep(1.1)
    page = _follow_queue(client, aid, "ada", lambda pair: "distinct")
    estimate = client.get(f"/api/audits/{aid}/estimate").json()
    assert page["stop"], estimate["stop"]
    assert estimate["explored"]


def test_a_tied_random_pair_does_not_stall_a_team_of_two(client: TestClient) -> None:
    """Ada and Bea split on a random pair: neither is asked again, and nobody else is there.
    The miner check passes over the tie as over "unsure" until a ruling settles it."""
    audit = _audit(client, synthetic={"support": 10**6}, n=200, neighbours=2, random_pairs=50)
    aid = audit["id"]
    tied: list[int] = []

    def answer(pair: dict[str, Any]) -> str:
        if pair["origin"] == "random" and not tied:
            tied.append(pair["id"])
            return "duplicate"
        return "distinct"

    first = _follow_queue(client, aid, "ada", answer)
    assert tied
    vote = {"label": "distinct", "annotator": "bea"}
    assert client.post(f"/api/pairs/{tied[0]}/judgements", json=vote).status_code == 201
    split = next(p for p in _random_pairs(client, aid) if p["id"] == tied[0])
    assert split["label"] is None
    ada = _follow_queue(client, aid, "ada", lambda pair: "distinct")
    bea = _follow_queue(client, aid, "bea", lambda pair: "distinct")
    estimate = client.get(f"/api/audits/{aid}/estimate").json()
    assert (first["stop"] or ada["stop"]) and bea["stop"], estimate["stop"]
    assert estimate["explored"] and estimate["parts"]["missed"] == 0
    history = client.get(f"/api/audits/{aid}/estimate-history").json()
    assert history["points"][-1]["n_eff_low"] == pytest.approx(estimate["n_eff_low"])


def test_an_extension_gets_its_own_miner_check(client: TestClient) -> None:
    """The pairs an extension adds are most of the pool's pairs; their missed part comes from
    their own generation of random pairs, so the review judges some of those before it stops
    (before, the first pool's check counted for all, and the new pairs' missed part was 0)."""
    audit = _audit(client, synthetic={"support": 3000}, n=300, neighbours=3, random_pairs=50)
    aid = audit["id"]

    ids = identities({**audit, "n": 900})  # the source is seeded: the first 300 are the pool's

    def oracle(pair: dict[str, Any]) -> str:
        return "duplicate" if ids[pair["i"]] == ids[pair["j"]] else "distinct"

    assert _follow_queue(client, aid, "ada", oracle)["stop"]
    assert client.post(f"/api/audits/{aid}/extend", json={"n_more": 600}).status_code == 202
    assert wait_for_audit(client, aid)["status"] == "done"
    assert _follow_queue(client, aid, "ada", oracle)["stop"]
    judged = Counter(p["j"] >= 300 for p in _random_pairs(client, aid) if p["label"] is not None)
    assert judged[False] >= 20 and judged[True] >= 20
    estimate = client.get(f"/api/audits/{aid}/estimate").json()
    assert estimate["explored"] and estimate["random_labelled"] == sum(judged.values())


@pytest.mark.parametrize(
    ("origin", "n", "drawn"),
    [("random", 200, 50), ("candidate", 40, 10)],
)
def test_an_unsure_pair_does_not_stall_the_review(
    client: TestClient, origin: str, n: int, drawn: int
) -> None:
    """A pair judged "unsure" is passed over (missing at random), not a hole that keeps the
    design from ever finishing: a random one in the miner check's prefix, or a candidate in a
    small pool's stratum of a few pairs, which then could not reach its exploration sample
    (before, a lone reviewer was stuck: no pair to hand out, and no stop)."""
    audit = _audit(client, synthetic={"support": 10**6}, n=n, neighbours=2, random_pairs=drawn)
    unsure: list[int] = []

    def answer(pair: dict[str, Any]) -> str:
        if pair["origin"] == origin and not unsure:
            unsure.append(pair["id"])
            return "unsure"
        return "distinct"

    page = _follow_queue(client, audit["id"], "ada", answer)
    estimate = client.get(f"/api/audits/{audit['id']}/estimate").json()
    assert unsure and page["stop"], estimate["stop"]
    assert estimate["explored"]
    passed = origin == "random"  # the unsure random pair does not count
    assert estimate["random_labelled"] >= min(20, estimate["random_pairs"] - passed)


def test_a_call_naming_no_annotator_only_looks(client: TestClient) -> None:
    """Nobody unnamed can judge, so an unnamed look at the queue leases nothing: Ada is handed
    the very pairs it saw, where a named caller's page would have been kept from her."""
    audit = _audit(client, synthetic={"support": 10**6}, n=200, neighbours=2, random_pairs=50)
    url = f"/api/audits/{audit['id']}/next-pairs"
    looked = client.get(url, params={"limit": 5}).json()["items"]
    ada = client.get(url, params={"annotator": "ada", "limit": 5}).json()["items"]
    assert {p["id"] for p in ada} == {p["id"] for p in looked} and len(ada) == 5
    bea = client.get(url, params={"annotator": "bea", "limit": 5}).json()["items"]
    assert not {p["id"] for p in bea} & {p["id"] for p in ada}
