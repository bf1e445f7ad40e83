"""bench/zoo.py's stacked-digits audit: a tiny trained generator audited through the REST API by
the classifier oracle, and the Simpson figure it is compared with."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from app.gan.digit_classifier import load_or_train_digit_classifier
from app.gan.training import TrainConfig
from tests.bench_modules import load_bench

zoo = load_bench("zoo")


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize(
    ("counts", "expected"),
    [
        ([2, 1, 1], 6.0),  # C(4, 2) = 6 pairs, one of them a duplicate
        ([3, 3], 15 / 6),  # C(6, 2) = 15 pairs, 3 + 3 duplicates
        ([5], 1.0),
        ([1, 1, 1], math.inf),
    ],
)
def test_simpson_n_eff_on_exact_small_histograms(counts: list[int], expected: float) -> None:
    assert zoo.simpson_n_eff(counts) == pytest.approx(expected)


@pytest.mark.parametrize("embedder", ["pixels", "digits"])
def test_a_trained_generator_is_audited_through_the_api(tmp_path: Path, embedder: str) -> None:
    config = TrainConfig(
        dataset="stacked_digits",
        architecture="dcgan",
        latent_dim=8,
        architecture_options={"base_width": 8},
        batch_size=8,
        steps=2,
        sample_every=0,
    )
    done = zoo.trained(config)
    classifier_path = tmp_path / "digits.safetensors"
    classifier = load_or_train_digit_classifier(classifier_path).model
    n = 24
    with zoo.AuditApp(tmp_path, classifier, classifier_path) as app:
        generator_id = app.upload("tiny", done)
        plan = zoo.AuditPlan(embedder, n=n, neighbours=n - 1)
        result = app.audit(generator_id, plan, seed=3)
    pairs = n * (n - 1) // 2
    assert 0 < result.candidates <= pairs
    assert result.labels >= 1
    assert 0 <= result.duplicates <= result.oracle_duplicates <= pairs
    assert result.oracle_n_eff == pytest.approx(
        pairs / result.oracle_duplicates if result.oracle_duplicates else math.inf
    )
    if result.n_eff is not None:
        assert result.low is not None and result.low <= result.n_eff


def test_stacked_mnist_is_audited_with_the_mnist_classifier(
    tmp_path: Path, mnist_classifier_file: Path
) -> None:
    config = zoo.stacked_config(0.25, 2, 0, "stacked_mnist")
    config = dataclasses.replace(config, architecture_options={"base_width": 8}, batch_size=8)
    done = zoo.trained(config)
    classifier = load_or_train_digit_classifier(mnist_classifier_file, digits="mnist").model
    n = 20
    with zoo.AuditApp(tmp_path, classifier, mnist_classifier_file, "mnist") as app:
        generator_id = app.upload("tiny", done)
        audit = app.audit(generator_id, zoo.AuditPlan("digits", n=n, neighbours=n - 1), seed=3)
        options = app.client.get("/api/audits").json()[0]["embedder_options"]
    assert options == {"classifier": "mnist"}
    assert 0 <= audit.duplicates <= audit.oracle_duplicates <= n * (n - 1) // 2


def test_the_width_table_fits_what_the_support_figure_fits() -> None:
    from app.estimate.across_runs import PoolCount

    def point(width: float, n_eff: float) -> PoolCount:
        return PoolCount(width, width, 100.0, 100.0 * n_eff)  # Var(log N_eff-hat) = 1 / 100

    exact = [point(w, 100 * (w / 0.25) ** 0.5) for w in (0.25, 0.5, 1.0) for _ in range(2)]
    text = zoo.width_table({"reference": exact, "pixels audits": [point(0.5, 50.0)]}, 6)
    reference, pixels = text.splitlines()[2:]
    # Counts exactly at their means: tau = 0, and the Poisson information 100 per run gives
    # se(b) = sqrt(0.01 / sum (ln w - mean)^2) = sqrt(0.01 / (4 ln(2)^2)), times t(4) = 2.776
    assert "| 6 / 6 " in reference and "| 100 [" in reference and "| 0.50 [0.30, 0.70]" in reference
    assert "| 1 / 6 " in pixels and "needs 3 runs, duplicates at 2 widths" in pixels


def test_the_models_table_trains_each_model_with_dcgan_networks(tmp_path: Path) -> None:
    tiny = dataclasses.replace(zoo.QUICK, stacked_seeds=(0,), stacked_steps=2)
    text = zoo.models_table(tiny, tmp_path / "digits.safetensors")
    rows = [line for line in text.splitlines()[2:] if line.startswith("|")]
    assert [row.split("|")[1].strip() for row in rows] == [
        "SGAN",
        "VEEGAN",
        "BiGAN",
        "ALI",
        "Unrolled GAN (not run)",
    ]
    assert "VEEGAN: 150 modes, KL 2.95" in rows[1] and "ALI: 16 modes" in rows[3]
