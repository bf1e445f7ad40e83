"""The insights endpoints against numbers worked out by hand on a tiny hand-labelled audit.

The expected values are computed here from first principles (C(n,2)/D, 1 - exp(-C(s,2) q), the
Wilson formula, the probability that a batch holds both members of a planted pair), not with
`app.estimate`, so a wiring or formula slip in the service shows up.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from tests.conftest import all_pairs, assert_problem, wait_for_audit

N = 400
PAIRS = N * (N - 1) // 2  # C(400, 2) = 79,800
Z95 = 1.959963984540054


@pytest.fixture
def audit(client: TestClient) -> dict[str, Any]:
    body = {"synthetic": {"support": 300}, "n": N, "neighbours": 3, "seed": 0}
    created = client.post("/api/audits", json=body)
    assert created.status_code == 202, created.text
    done = wait_for_audit(client, created.json()["id"])
    assert done["status"] == "done"
    return done


def _triangle(pairs: list[dict[str, Any]]) -> tuple[dict[str, Any], ...]:
    """Three candidate pairs over three samples x < y < z: (x,y), (y,z), (x,z)."""
    by_ends = {(p["i"], p["j"]): p for p in pairs}
    neighbours: dict[int, set[int]] = {}
    for i, j in by_ends:
        neighbours.setdefault(i, set()).add(j)
        neighbours.setdefault(j, set()).add(i)
    for (x, y), xy in sorted(by_ends.items()):
        for z in sorted(neighbours[x] & neighbours[y]):
            if z > y:
                return xy, by_ends[(y, z)], by_ends[(x, z)]
    raise AssertionError("the audit has no triangle of candidate pairs")


class Labeller:
    """Posts judgements in order and remembers them, as a reviewer would."""

    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.ids: list[int] = []

    def __call__(self, pair: dict[str, Any], label: str) -> int:
        response = self.client.post(
            f"/api/pairs/{pair['id']}/judgements", json={"label": label, "annotator": "hand"}
        )
        assert response.status_code == 201, response.text
        self.ids.append(response.json()["id"])
        return self.ids[-1]


@pytest.fixture
def scene(client: TestClient, audit: dict[str, Any]) -> dict[str, Any]:
    """xy, yz duplicate (x-z implied), de duplicate, fg distinct; then xz distinct; one undone."""
    pairs = all_pairs(client, audit["id"])
    xy, yz, xz = _triangle(pairs)
    used = {xy["i"], xy["j"], yz["j"]}
    others = [p for p in pairs if p["i"] not in used and p["j"] not in used]
    de = others[0]
    fg = next(p for p in reversed(others) if {p["i"], p["j"]}.isdisjoint({de["i"], de["j"]}))
    spare = next(p for p in others[1:] if p["id"] != fg["id"])
    label = Labeller(client)
    return {
        "audit": audit,
        "pairs": pairs,
        "xy": xy,
        "yz": yz,
        "xz": xz,
        "de": de,
        "fg": fg,
        "spare": spare,
        "label": label,
    }


def _url(audit: dict[str, Any], what: str) -> str:
    return f"/api/audits/{audit['id']}/{what}"


def test_clusters_count_direct_and_implied_pairs(client: TestClient, scene: dict) -> None:
    label, xy, yz, de = scene["label"], scene["xy"], scene["yz"], scene["de"]
    label(xy, "duplicate")
    label(yz, "duplicate")
    label(de, "duplicate")
    label(scene["fg"], "distinct")
    body = client.get(_url(scene["audit"], "clusters")).json()
    triple = sorted({xy["i"], xy["j"], yz["j"]})
    assert body["n"] == N and body["clusters_total"] == 2
    assert body["duplicate_pairs"] == 3 + 1 and body["direct"] == 3 and body["implied"] == 1
    big, small = body["clusters"]
    assert (big["rank"], big["size"], big["pairs"], big["direct"], big["implied"]) == (
        1,
        3,
        3,
        2,
        1,
    )
    assert big["members"] == triple
    assert big["image_urls"] == [
        f"/api/audits/{scene['audit']['id']}/samples/{i}.png" for i in triple
    ]
    assert (small["size"], small["members"], small["implied"]) == (2, [de["i"], de["j"]], 0)
    assert body["blocked"] == []
    assert client.get(big["image_urls"][0]).content.startswith(b"\x89PNG")
    assert (
        len(client.get(_url(scene["audit"], "clusters"), params={"limit": 1}).json()["clusters"])
        == 1
    )


def test_clusters_say_which_duplicates_the_random_check_found(
    client: TestClient, scene: dict
) -> None:
    """A random pair judged duplicate joins the gallery's clusters but not the estimate's
    confirmed D (it feeds the part missed by the miner); the gallery says so."""
    label, audit = scene["label"], scene["audit"]
    label(scene["de"], "duplicate")
    randoms = client.get(_url(audit, "pairs"), params={"origin": "random", "limit": 2}).json()
    label(randoms["items"][0], "duplicate")
    label(randoms["items"][1], "distinct")
    body = client.get(_url(audit, "clusters")).json()
    assert (body["duplicate_pairs"], body["direct"], body["from_random"]) == (2, 2, 1)
    estimate = client.get(_url(audit, "estimate")).json()
    assert estimate["duplicate_pairs"] == 1
    gallery = client.get(f"/audits/{audit['id']}/gallery").text
    assert 'data-from-random="1"' in gallery and "1 of them was found among the random" in gallery


def test_a_distinct_judgement_blocks_the_later_merge(client: TestClient, scene: dict) -> None:
    label, xy, yz, xz = scene["label"], scene["xy"], scene["yz"], scene["xz"]
    label(xy, "duplicate")
    label(yz, "duplicate")
    label(xz, "distinct")
    body = client.get(_url(scene["audit"], "clusters")).json()
    # Merges go closest first, so the farther of xy and yz is the one the cannot-link refuses.
    kept, refused = sorted((xy, yz), key=lambda p: (p["distance"], p["i"], p["j"]))
    assert [c["members"] for c in body["clusters"]] == [[kept["i"], kept["j"]]]
    assert body["blocked"] == [
        {"i": refused["i"], "j": refused["j"], "distance": pytest.approx(refused["distance"])}
    ]
    assert body["duplicate_pairs"] == 1


def test_estimate_history_replays_standing_judgements(client: TestClient, scene: dict) -> None:
    label = scene["label"]
    label(scene["xy"], "duplicate")  # D = 1
    label(scene["yz"], "duplicate")  # D = 3 (x, y, z together)
    label(scene["de"], "duplicate")  # D = 4
    label(scene["fg"], "distinct")  # D = 4
    label(scene["xz"], "distinct")  # the x-z cannot-link splits the triple: D = 2
    undone = label(scene["spare"], "duplicate")
    assert client.delete(f"/api/judgements/{undone}").status_code == 200

    body = client.get(_url(scene["audit"], "estimate-history")).json()
    assert body["n"] == N and body["judgements"] == 5
    expected_d = [1, 3, 4, 4, 2]
    assert [p["judgements"] for p in body["points"]] == [1, 2, 3, 4, 5]
    assert [p["labelled_pairs"] for p in body["points"]] == [1, 2, 3, 4, 5]
    assert [p["duplicate_pairs"] for p in body["points"]] == expected_d
    # Hand-picked labels are no designed sample: the unreviewed part leans on the fit, so N_eff
    # is at most what the confirmed pairs alone would say.
    for point, d in zip(body["points"], expected_d, strict=True):
        assert point["n_eff"] <= PAIRS / d * (1 + 1e-9)
        assert point["n_eff_low"] < point["n_eff"]
        assert point["n_eff_high"] is None or point["n_eff"] < point["n_eff_high"]

    # The last point is today's estimate.
    estimate = client.get(_url(scene["audit"], "estimate")).json()
    last = body["points"][-1]
    assert (last["n_eff"], last["n_eff_low"], last["n_eff_high"]) == pytest.approx(
        (estimate["n_eff"], estimate["n_eff_low"], estimate["n_eff_high"])
    )
    # Thinned to 2 points: the multiples of the smallest power of two (4) leaving fewer than 2,
    # and the last judgement.
    thin = client.get(_url(scene["audit"], "estimate-history"), params={"points": 2}).json()
    assert [p["judgements"] for p in thin["points"]] == [4, 5]
    assert [p["duplicate_pairs"] for p in thin["points"]] == [4, 2]


def test_estimate_history_relabel_counts_the_latest_label(client: TestClient, scene: dict) -> None:
    label = scene["label"]
    label(scene["de"], "duplicate")
    label(scene["de"], "unsure")
    body = client.get(_url(scene["audit"], "estimate-history")).json()
    assert [(p["labelled_pairs"], p["duplicate_pairs"]) for p in body["points"]] == [(1, 1), (1, 0)]
    assert body["points"][1]["n_eff"] is None
    # "unsure" settles nothing: as with no judgement, only the worst-case bound remains.
    estimate = client.get(_url(scene["audit"], "estimate")).json()
    assert estimate["labelled_pairs"] == 1 and estimate["n_eff"] is None
    assert body["points"][1]["n_eff_low"] == pytest.approx(estimate["n_eff_low"])
    assert client.get(_url(scene["audit"], "estimate-history")).json() == body


def test_estimate_history_follows_the_consensus(client: TestClient, scene: dict) -> None:
    pair = scene["de"]

    def vote(who: str, label: str) -> None:
        body = {"label": label, "annotator": who}
        assert client.post(f"/api/pairs/{pair['id']}/judgements", json=body).status_code == 201

    vote("ada", "duplicate")  # 1 vote: duplicate
    vote("bob", "distinct")  # 1:1, a tie: unlabelled
    vote("cy", "duplicate")  # 2:1: duplicate
    vote("bob", "duplicate")  # bob's latest vote replaces his first: 3:0
    ruling = client.post(f"/api/pairs/{pair['id']}/adjudication", json={"label": "distinct"})
    assert ruling.status_code == 201, ruling.text  # an admin's ruling outweighs the votes
    body = client.get(_url(scene["audit"], "estimate-history")).json()
    assert [(p["labelled_pairs"], p["duplicate_pairs"]) for p in body["points"]] == [
        (1, 1),
        (0, 0),
        (1, 1),
        (1, 1),
        (1, 0),
    ]
    estimate = client.get(_url(scene["audit"], "estimate")).json()
    assert estimate["duplicate_pairs"] == 0 and estimate["labelled_pairs"] == 1
    assert body["points"][-1]["n_eff_low"] == pytest.approx(estimate["n_eff_low"])


def _s50(q: float) -> int:
    s = 2
    while 1 - math.exp(-s * (s - 1) / 2 * q) < 0.5:
        s += 1
    return s


def test_batch_curve_follows_the_collision_formula(client: TestClient, scene: dict) -> None:
    scene["label"](scene["de"], "duplicate")  # one planted pair: D = 1
    body = client.get(_url(scene["audit"], "batch-curve")).json()
    estimate = client.get(_url(scene["audit"], "estimate")).json()
    q = estimate["q"]  # D_hat / C(n,2): the confirmed pair and the estimated unreviewed ones
    assert q >= 1 / PAIRS and estimate["parts"]["confirmed"] == 1
    assert body["n"] == N and body["q"] == pytest.approx(q)
    assert body["s50"] == _s50(q) and body["paper_support"] == _s50(q) ** 2
    sizes = [p["s"] for p in body["points"]]
    assert sizes == sorted(set(sizes)) and sizes[0] == 2 and body["s50"] in sizes
    for p in body["points"]:
        assert p["p"] == pytest.approx(1 - math.exp(-p["s"] * (p["s"] - 1) / 2 * q))
        assert p["p_low"] <= p["p"] <= p["p_high"]
    # Pool batches hold the planted pair with probability s(s-1) / (n(n-1)), drawn 200 times each.
    pooled = [p for p in body["points"] if p["p_pool"] is not None]
    assert len(pooled) >= 5 and all(p["s"] <= N for p in pooled)
    for p in pooled:
        exact = p["s"] * (p["s"] - 1) / (N * (N - 1))
        assert abs(p["p_pool"] - exact) <= 4.5 * math.sqrt(exact * (1 - exact) / 200) + 1e-9
    assert client.get(_url(scene["audit"], "batch-curve")).json() == body  # seeded: stable


def test_batch_curve_with_no_duplicate_is_flat_under_its_bound(
    client: TestClient, audit: dict[str, Any]
) -> None:
    body = client.get(_url(audit, "batch-curve")).json()
    assert body["q"] == 0 and body["s50"] is None and body["paper_support"] is None
    q_high = 1 / client.get(_url(audit, "estimate")).json()["n_eff_low"]  # the estimate's bound
    for p in body["points"]:
        assert p["p"] == 0 and p["p_low"] == 0 and p["p_pool"] in (None, 0)
        assert p["p_high"] == pytest.approx(1 - math.exp(-p["s"] * (p["s"] - 1) / 2 * q_high))
    # The axis runs out to where the upper band passes 99%.
    assert body["points"][-1]["p_high"] >= 0.99


def _wilson(k: int, n: int) -> tuple[float, float]:
    p = k / n
    centre = (p + Z95**2 / (2 * n)) / (1 + Z95**2 / n)
    half = Z95 / (1 + Z95**2 / n) * math.sqrt(p * (1 - p) / n + Z95**2 / (4 * n**2))
    return centre - half, centre + half


def test_calibration_bins_labels_over_the_candidate_histogram(
    client: TestClient, scene: dict
) -> None:
    label = scene["label"]
    label(scene["xy"], "duplicate")
    label(scene["yz"], "duplicate")
    label(scene["xz"], "distinct")
    label(scene["de"], "unsure")
    label(scene["fg"], "distinct")
    body = client.get(_url(scene["audit"], "calibration"), params={"bins": 4}).json()
    distances = np.array([p["distance"] for p in scene["pairs"]])
    counts, edges = np.histogram(distances, bins=4)
    assert body["candidate_pairs"] == len(scene["pairs"]) and body["labelled_pairs"] == 5
    assert [b["candidates"] for b in body["bins"]] == counts.tolist()
    assert [b["low"] for b in body["bins"]] == pytest.approx(edges[:-1].tolist())
    assert body["bins"][-1]["high"] == pytest.approx(edges[-1])

    def bin_of(d: float) -> int:
        return min(int(np.searchsorted(edges, d, side="right")) - 1, 3)

    tally = {b: {"duplicate": 0, "distinct": 0, "unsure": 0} for b in range(4)}
    for key, lab in (
        ("xy", "duplicate"),
        ("yz", "duplicate"),
        ("xz", "distinct"),
        ("de", "unsure"),
        ("fg", "distinct"),
    ):
        tally[bin_of(scene[key]["distance"])][lab] += 1
    for b, got in enumerate(body["bins"]):
        want = tally[b]
        assert {k: got[k] for k in want} == want
        judged = want["duplicate"] + want["distinct"]
        if judged:
            assert got["p_duplicate"] == pytest.approx(want["duplicate"] / judged)
            assert (got["p_low"], got["p_high"]) == pytest.approx(
                _wilson(want["duplicate"], judged)
            )
        else:
            assert got["p_duplicate"] is None and got["p_low"] is None
    assert sorted(p["pair_id"] for p in body["points"]) == sorted(
        scene[k]["id"] for k in ("xy", "yz", "xz", "de", "fg")
    )
    fitted = [f["p"] for f in body["fit"]]
    assert fitted == sorted(fitted, reverse=True) and all(0 <= p <= 1 for p in fitted)
    # The farthest labelled pair is distinct, so the decreasing fit ends at 0.
    assert fitted[-1] == 0


def test_calibration_can_zoom_on_the_labelled_distances(client: TestClient, scene: dict) -> None:
    scene["label"](scene["xy"], "duplicate")
    scene["label"](scene["de"], "distinct")
    body = client.get(_url(scene["audit"], "calibration"), params={"span": "labelled"}).json()
    distances = np.array([p["distance"] for p in scene["pairs"]])
    top = max(scene["xy"]["distance"], scene["de"]["distance"])
    high = min(distances.max(), distances.min() + 1.25 * (top - distances.min()))
    assert body["bins"][0]["low"] == pytest.approx(distances.min())
    assert body["bins"][-1]["high"] == pytest.approx(high)
    assert body["beyond"] == int(np.count_nonzero(distances > high))
    assert sum(b["candidates"] for b in body["bins"]) + body["beyond"] == len(distances)
    assert sum(b["duplicate"] + b["distinct"] for b in body["bins"]) == 2
    assert client.get(_url(scene["audit"], "calibration")).json()["beyond"] == 0


def test_calibration_of_an_unlabelled_audit(client: TestClient, audit: dict[str, Any]) -> None:
    body = client.get(_url(audit, "calibration")).json()
    assert body["labelled_pairs"] == 0 and body["points"] == [] and body["fit"] == []
    assert sum(b["candidates"] for b in body["bins"]) == audit["progress"]["candidate_pairs"]
    assert all(b["p_duplicate"] is None for b in body["bins"])


@pytest.mark.parametrize("what", ["batch-curve", "calibration", "estimate-history", "clusters"])
def test_unknown_audit_is_a_404_problem(client: TestClient, what: str) -> None:
    assert_problem(client.get(f"/api/audits/999/{what}"), 404)


@pytest.mark.parametrize(
    ("what", "params"),
    [
        ("calibration", {"bins": 0}),
        ("calibration", {"span": "some"}),
        ("estimate-history", {"points": 51}),
        ("clusters", {"limit": 0}),
        ("batch-curve", {"level": 1.5}),
    ],
)
def test_bad_parameters_are_422_problems(
    client: TestClient, audit: dict[str, Any], what: str, params: dict[str, Any]
) -> None:
    assert_problem(client.get(_url(audit, what), params=params), 422)


def test_insights_are_documented(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for what in ("batch-curve", "calibration", "estimate-history", "clusters"):
        operation = paths[f"/api/audits/{{audit_id}}/{what}"]["get"]
        assert operation["tags"] == ["insights"]


@pytest.mark.parametrize("what", ["batch-curve", "calibration", "estimate-history", "clusters"])
def test_an_id_beyond_64_bits_is_a_422_problem(client: TestClient, what: str) -> None:
    assert_problem(client.get(f"/api/audits/{2**64}/{what}"), 422)


def test_history_points_shrink_on_huge_audits() -> None:
    from app.services.history import HISTORY_PAIR_BUDGET, MIN_HISTORY_POINTS, history_points

    assert history_points(50, 10_000) == 50
    assert history_points(50, 5 * 10**6) == max(
        MIN_HISTORY_POINTS, HISTORY_PAIR_BUDGET // (5 * 10**6)
    )
    assert history_points(50, 10**9) == MIN_HISTORY_POINTS
    assert history_points(3, 10**9) == 3  # never more than asked


def test_estimate_history_takes_fewer_points_where_pairs_are_many(
    client: TestClient, scene: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    import app.services.history as history

    for pair in ("xy", "yz", "de", "fg", "xz"):
        scene["label"](scene[pair], "duplicate")
    monkeypatch.setattr(history, "MIN_HISTORY_POINTS", 1)
    audit = client.get(f"/api/audits/{scene['audit']['id']}").json()
    pairs = audit["progress"]["candidate_pairs"]
    monkeypatch.setattr(history, "HISTORY_PAIR_BUDGET", 2 * pairs)
    body = client.get(_url(scene["audit"], "estimate-history")).json()
    assert [p["judgements"] for p in body["points"]] == [4, 5]  # 2 points, ending at today's
