"""The whole pipeline on synthetic sources with known N_eff: the app's own sampler, pixel
embedder and miner, an oracle answering next-pairs over REST until the stopping rule says stop.

bench/estimator.py simulates the miner (each sample proposes its k nearest *earlier* samples)
to run thousands of seeds; the app's miner proposes each sample's k nearest in the whole pool,
so in a strongly collapsed pool every candidate pair is a duplicate, a case the simulation
never produces (bench/README.md, "collapse": a pool of ten outputs). This bench runs the real
thing on a few scenarios, from collapsed to nearly uniform, and prints per scenario: coverage
of the 95% interval against the true N_eff = 1/q, the same for the oracle estimator that knows
every identity in the pool, the median |N_eff / oracle N_eff - 1| (what the labels and the
miner cost), labels spent, candidate pairs, and how often the estimate warned.

    .venv/bin/python bench/live_review.py --seeds 3     # 7 scenarios x 3 seeds, ~2 min here
    .venv/bin/python bench/live_review.py               # 7 x 20, ~12 min
    .venv/bin/python bench/live_review.py --seeds 5 --slips 0.03   # a careless reviewer
    .venv/bin/python bench/live_review.py --seeds 5 --slips 0.03 --second-look 5

With `--second-look M` the reviewer, once the queue stops, answers again (with the same slip
rate) the judgements among the top M of GET /api/audits/{id}/second-look that nobody looked at
twice, then goes back to the queue, until the top M have all had two looks (column `2nd`: the
labels this cost). With `--during`, column `during` is the share of the review's rounds (an
estimate after every 5 labels, all seeds) whose interval holds the true N_eff: what a reader
of the live audit page is told before the stop.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fastapi.testclient import TestClient  # noqa: E402

from app.estimate import estimate_support, leverage  # noqa: E402
from app.main import create_app  # noqa: E402
from app.settings import Settings  # noqa: E402
from app.sources.synthetic import SyntheticConfig, SyntheticSource  # noqa: E402

LEVEL = 0.95
SCENARIOS: list[tuple[dict[str, Any], int]] = [
    ({"support": 10}, 300),  # collapsed onto ten outputs
    ({"support": 5, "continuous": 0.5}, 200),  # five outputs and half never repeating
    ({"support": 30, "zipf": 1.0}, 300),
    ({"support": 200, "zipf": 1.1}, 300),
    ({"support": 3000, "zipf": 1.2}, 400),
    ({"support": 1000}, 150),  # E[D] ~ 11
    ({"support": 1000, "continuous": 0.3}, 200),  # E[D] ~ 10
]


def _identities(audit: dict[str, Any]) -> tuple[NDArray[np.int64], float]:
    source = SyntheticSource(SyntheticConfig(**audit["synthetic"]), audit["seed"])
    chunk = source.generate(np.arange(audit["n"], dtype=np.int64))
    assert chunk.identities is not None
    return chunk.identities, 1.0 / source.true_simpson()


def _audit(client: TestClient, synthetic: dict[str, Any], n: int, seed: int) -> dict[str, Any]:
    body = {"synthetic": synthetic, "n": n, "seed": seed}
    created = client.post("/api/audits", json=body)
    created.raise_for_status()
    while True:
        audit: dict[str, Any] = client.get(f"/api/audits/{created.json()['id']}").json()
        if audit["status"] in ("done", "failed", "cancelled"):
            if audit["status"] != "done":
                raise RuntimeError(f"audit {audit['id']} {audit['status']}: {audit['error']}")
            return audit
        time.sleep(0.1)


def _review(
    client: TestClient,
    audit_id: int,
    ids: NDArray[np.int64],
    limit: int,
    slips: float = 0.0,
    rng: np.random.Generator | None = None,
    during: tuple[list[bool], float] | None = None,
) -> int:
    """Judge what the queue hands out, 5 pairs a round, until it hands out nothing; with
    `slips`, each answer is the wrong one with that probability (a careless reviewer). With
    `during` = (record, truth), whether each round's interval holds the truth is appended."""
    rng = rng if rng is not None else np.random.default_rng(0)
    spent = 0
    while spent < limit:
        if during is not None and spent:
            response = client.get(f"/api/audits/{audit_id}/estimate")
            response.raise_for_status()
            est = response.json()
            during[0].append(_covers(est["n_eff_low"], est["n_eff_high"], during[1]))
        response = client.get(
            f"/api/audits/{audit_id}/next-pairs", params={"annotator": "oracle", "limit": 5}
        )
        items = response.json()["items"] if response.status_code == 200 else []
        if not items:
            return spent
        for pair in items:
            _answer(client, pair, ids, slips, rng)
            spent += 1
    raise RuntimeError(f"audit {audit_id}: the queue still hands out pairs after {limit} labels")


def _answer(
    client: TestClient,
    pair: dict[str, Any],
    ids: NDArray[np.int64],
    slips: float,
    rng: np.random.Generator,
) -> None:
    same = bool(ids[pair["i"]] == ids[pair["j"]]) != bool(rng.random() < slips)
    body = {"label": "duplicate" if same else "distinct", "annotator": "oracle"}
    client.post(f"/api/pairs/{pair['id']}/judgements", json=body).raise_for_status()


def _second_looks(
    client: TestClient,
    audit_id: int,
    ids: NDArray[np.int64],
    top: int,
    slips: float,
    rng: np.random.Generator,
    limit: int,
) -> tuple[int, int]:
    """Second looks at the top `top` judgements, back to the queue after each round, until the
    top ones have all been looked at twice: (second looks, queue labels) spent."""
    looked = queued = 0
    for _ in range(20):
        items = client.get(f"/api/audits/{audit_id}/second-look", params={"limit": top}).json()
        fresh = [item["pair"] for item in items["items"] if item["looks"] < 2]
        if not fresh:
            return looked, queued
        for pair in fresh:
            _answer(client, pair, ids, slips, rng)
        looked += len(fresh)
        queued += _review(client, audit_id, ids, limit, slips, rng)
    return looked, queued


def _covers(low: float, high: float | None, truth: float) -> bool:
    return low <= truth <= (high if high is not None else math.inf)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument(
        "--slips", type=float, default=0.0, help="share of answers the oracle gets wrong"
    )
    parser.add_argument(
        "--second-look",
        type=int,
        default=0,
        metavar="M",
        help="answer the top M judgements of the second-look list again",
    )
    parser.add_argument(
        "--worth",
        type=float,
        default=None,
        help="list a judgement when its expected shift reaches this share of the interval's "
        "half-width (default: the app's)",
    )
    parser.add_argument(
        "--during",
        action="store_true",
        help="also the share of rounds of 5 labels whose interval holds the true N_eff",
    )
    args = parser.parse_args()
    if args.seeds < 1:
        parser.error("--seeds must be >= 1")
    if not 0.0 <= args.slips < 0.5:
        parser.error("--slips must be in [0, 0.5)")
    if not 0 <= args.second_look <= 50:
        parser.error("--second-look must be in 0..50")
    if args.worth is not None and args.during:
        parser.error("--during measures the review alone: leave out --worth")
    if args.worth is not None:
        leverage.WORTH_SHARE = args.worth  # the app runs in this process
    start = time.perf_counter()
    print(
        f"{'scenario':40s} {'n':>4s} {'N_eff':>7s} {'cover':>6s} {'orcl':>6s} {'vs.o':>6s} "
        f"{'labels':>6s} {'2nd':>4s} {'cands':>6s} {'warned':>6s}"
        + (f" {'during':>6s}" if args.during else "")
    )
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp) / "data", models_dir=Path(tmp) / "models")
        with TestClient(create_app(settings), base_url="http://127.0.0.1") as client:
            for synthetic, n in SCENARIOS:
                rows = []
                truth = math.nan
                rounds: list[bool] = []
                for seed in range(args.seeds):
                    audit = _audit(client, synthetic, n, seed)
                    ids, truth = _identities(audit)
                    rng = np.random.default_rng([seed, 0x511])
                    watch = (rounds, truth) if args.during else None
                    spent = _review(client, audit["id"], ids, 20 * n, args.slips, rng, watch)
                    second = 0
                    if args.second_look:
                        second, queued = _second_looks(
                            client, audit["id"], ids, args.second_look, args.slips, rng, 20 * n
                        )
                        spent += queued
                    est = client.get(f"/api/audits/{audit['id']}/estimate").json()
                    sizes = [c for c in Counter(ids.tolist()).values() if c >= 2]
                    oracle = estimate_support(ids.size, sizes, LEVEL)
                    agree = (
                        abs(est["n_eff"] / oracle.n_eff - 1)
                        if est["n_eff"] and oracle.n_eff
                        else float(est["n_eff"] != oracle.n_eff)
                    )
                    rows.append(
                        (
                            _covers(est["n_eff_low"], est["n_eff_high"], truth),
                            _covers(oracle.n_eff_low, oracle.n_eff_high, truth),
                            agree,
                            spent,
                            second,
                            est["candidate_pairs"],
                            bool(est["warnings"]),
                        )
                    )
                a = np.array(rows, dtype=np.float64)
                name = ", ".join(f"{k} {v}" for k, v in synthetic.items())
                print(
                    f"{name:40s} {n:4d} {truth:7.1f} {a[:, 0].mean():6.2f} {a[:, 1].mean():6.2f} "
                    f"{np.median(a[:, 2]):6.3f} {np.median(a[:, 3]):6.0f} "
                    f"{np.median(a[:, 4]):4.0f} {np.median(a[:, 5]):6.0f} {a[:, 6].mean():6.2f}"
                    + (f" {np.mean(rounds):6.2f}" if args.during else ""),
                    flush=True,
                )
    print(
        f"# {args.seeds} seeds per scenario, slips {args.slips}, "
        f"second look at the top {args.second_look} (worth {leverage.WORTH_SHARE}), "
        f"{time.perf_counter() - start:.0f} s"
    )


if __name__ == "__main__":
    main()
