"""The paper's protocol from a user's own batches: shares with exact intervals, s50 and s50^2,
the uniform MLE with its profile interval, and the test of the uniform model, each against
ground truth (simulated generators of known support, scipy's exact binomial interval)."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest
from fastapi.testclient import TestClient
from scipy.stats import binomtest

from app.services.paper_protocol import BatchCount, PaperProtocolCreate, paper_protocol
from app.settings import Settings
from tests.conftest import assert_problem
from tests.test_cli import BIRTHDAY


def _p_duplicate(size: int, big_n: int) -> float:
    return 1 - float(np.prod(1 - np.arange(size) / big_n))


def _draw(rng: np.random.Generator, weights: np.ndarray, size: int, batches: int) -> int:
    """Batches of fresh samples from a generator with these output weights; those holding a
    repeated output."""
    draws = rng.choice(weights.size, size=(batches, size), p=weights)
    return int(sum(np.unique(row).size < size for row in draws))


def test_exact_shares_of_a_uniform_generator_give_its_support() -> None:
    big_n, total = 1000, 200_000
    rows = [
        BatchCount(size=s, batches=total, with_duplicate=round(_p_duplicate(s, big_n) * total))
        for s in (20, 40, 60)
    ]
    out = paper_protocol(PaperProtocolCreate(batches=rows))
    assert out.n_hat == pytest.approx(big_n, rel=0.01)
    assert out.n_low is not None and out.n_high is not None
    assert out.n_low < big_n < out.n_high
    assert out.uniform_fit_p is not None and out.uniform_fit_p > 0.5
    for share in out.sizes:
        assert share.uniform_share == pytest.approx(_p_duplicate(share.size, big_n), abs=2e-3)
    # P(duplicate) reaches 1/2 at s = 38 for N = 1000: of the sizes given, 40 is the first.
    assert (out.s50, out.paper_support) == (40, 1600)


def test_the_profile_interval_covers_a_uniform_support() -> None:
    rng = np.random.default_rng(7)
    big_n, seeds = 500, 200
    weights = np.full(big_n, 1 / big_n)
    covered = 0
    for _ in range(seeds):
        rows = [
            BatchCount(size=s, batches=15, with_duplicate=_draw(rng, weights, s, 15))
            for s in (15, 30, 45)
        ]
        out = paper_protocol(PaperProtocolCreate(batches=rows))
        low = out.n_low or 0.0
        high = out.n_high if out.n_high is not None else np.inf
        covered += low <= big_n <= high
    # 95% nominal: a binomial test, not a bare threshold.
    assert binomtest(covered, seeds, 0.95).pvalue > 0.001, covered


def test_a_clumped_generator_fails_the_uniform_model() -> None:
    """A tenth of the mass on one output, the rest on a million: the one output repeats in
    small batches about as a uniform N = 100 would, but large batches repeat far less often than
    that uniform model says (one heavy output saturates); the fit test says s50^2 misreads it."""
    rng = np.random.default_rng(3)
    weights = np.concatenate([[0.1], np.full(1_000_000, 0.9 / 1_000_000)])
    rows = [
        BatchCount(size=s, batches=400, with_duplicate=_draw(rng, weights, s, 400))
        for s in (5, 20, 40)
    ]
    out = paper_protocol(PaperProtocolCreate(batches=rows))
    assert out.uniform_fit_p is not None and out.uniform_fit_p < 1e-6
    # The same batch counts drawn from a uniform generator pass.
    uniform = np.full(2000, 1 / 2000)
    rows = [
        BatchCount(size=s, batches=400, with_duplicate=_draw(rng, uniform, s, 400))
        for s in (20, 60, 100)
    ]
    out = paper_protocol(PaperProtocolCreate(batches=rows))
    assert out.uniform_fit_p is not None and out.uniform_fit_p > 0.001


def test_shares_carry_the_exact_binomial_interval() -> None:
    rows = [
        BatchCount(size=50, batches=12, with_duplicate=5),
        BatchCount(size=80, batches=9, with_duplicate=9),
    ]
    out = paper_protocol(PaperProtocolCreate(batches=rows, level=0.9))
    for share, (hits, total) in zip(out.sizes, ((5, 12), (9, 9)), strict=True):
        expected = binomtest(hits, total).proportion_ci(confidence_level=0.9, method="exact")
        assert share.share_low == pytest.approx(expected.low)
        assert share.share_high == pytest.approx(expected.high)
    assert out.s50 == 80 and out.paper_support == 6400


def test_no_duplicate_anywhere_gives_a_lower_bound_only() -> None:
    out = paper_protocol(
        PaperProtocolCreate(batches=[BatchCount(size=100, batches=5, with_duplicate=0)])
    )
    assert out.n_hat is None and out.n_high is None and out.s50 is None
    assert out.n_low is not None and out.n_low > 100
    assert out.uniform_fit_p is None


def test_a_share_of_half_at_the_smallest_size_bounds_s50_from_above(
    settings: Settings,
) -> None:
    every = paper_protocol(
        PaperProtocolCreate(batches=[BatchCount(size=200, batches=10, with_duplicate=10)])
    )
    # Every batch of 200 held a duplicate: s50 is somewhere at or below 200.
    assert every.s50 == 200 and every.s50_upper_bound and every.paper_support == 40_000
    assert every.n_low is None and every.n_high is not None
    two = paper_protocol(
        PaperProtocolCreate(
            batches=[
                BatchCount(size=100, batches=10, with_duplicate=2),
                BatchCount(size=200, batches=10, with_duplicate=10),
            ]
        )
    )
    assert two.s50 == 200 and not two.s50_upper_bound  # crossed between two sizes tried
    shown = subprocess.run(
        [BIRTHDAY, "paper-protocol", "200:10/10", "--data-dir", str(settings.data_dir)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert shown.returncode == 0, shown.stderr
    text = " ".join(shown.stdout.split())
    assert "s50 <= 200" in text and "s50^2 <= 40,000" in text and "N in [1, " in text


def test_the_endpoint_and_the_cli(client: TestClient, settings: Settings) -> None:
    body = {
        "batches": [
            {"size": 60, "batches": 10, "with_duplicate": 3},
            {"size": 120, "batches": 10, "with_duplicate": 8},
        ]
    }
    response = client.post("/api/paper-protocol", json=body)
    assert response.status_code == 200, response.text
    expected = paper_protocol(PaperProtocolCreate.model_validate(body))
    assert response.json() == expected.model_dump(mode="json")
    for bad, message in (
        ({"batches": [{"size": 60, "batches": 3, "with_duplicate": 4}]}, "exceeds batches"),
        (
            {"batches": [{"size": 60, "batches": 3, "with_duplicate": 1}] * 2},
            "each batch size once",
        ),
        (
            {"batches": [{"size": 1, "batches": 3, "with_duplicate": 1}]},
            "greater than or equal to 2",
        ),
        ({"batches": [{"size": 10**7, "batches": 3, "with_duplicate": 1}]}, "less than or equal"),
        ({"batches": []}, "at least 1"),
    ):
        problem = assert_problem(client.post("/api/paper-protocol", json=bad), 422)
        assert message in str(problem), problem

    shown = subprocess.run(
        [
            BIRTHDAY,
            "paper-protocol",
            "60:3/10",
            "120:8/10",
            "--json",
            "--data-dir",
            str(settings.data_dir),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert shown.returncode == 0, shown.stderr
    assert '"s50": 120' in shown.stdout
    table = subprocess.run(
        [BIRTHDAY, "paper-protocol", "60:3/10", "120:8/10", "--data-dir", str(settings.data_dir)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert table.returncode == 0, table.stderr
    assert "s50 = 120" in table.stdout and "14,400" in table.stdout
    refused = subprocess.run(
        [BIRTHDAY, "paper-protocol", "60:4/3", "--data-dir", str(settings.data_dir)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert refused.returncode == 2 and "60:4/3: HITS (4) exceeds BATCHES (3)" in refused.stderr
