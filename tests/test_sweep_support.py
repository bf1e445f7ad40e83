"""The birthday test across a sweep, end to end against known support: generators that draw from
K prototypes (K growing with the discriminator width), audited and labelled by an oracle through
the API, summarised per cell and as a trend over width."""

from __future__ import annotations

import csv
import io
import math
from collections import Counter
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from app.schemas import SweepPublic, SweepSupportRun, TrainingProgress, TrainingRunPublic
from app.services.sweep_support import (
    extend_empty_pools,
    next_review,
    support_csv,
    sweep_support,
)
from app.services.sweeps import sweep_cells
from tests.conftest import wait_for_audit
from tests.oracle import judge_all

POOL = 90


def _archive_generator(
    client: TestClient, support: int, seed: int, distinct: bool = False, size: int = POOL
) -> tuple[int, np.ndarray]:
    """A generator whose pool is `size` (POOL) draws from `support` random 8x8 prototypes (each
    drawn once with `distinct`), and the prototype behind each sample (its true identity)."""
    rng = np.random.default_rng(seed)
    prototypes = rng.integers(0, 256, size=(support, 8, 8, 3), dtype=np.uint8)
    ids = rng.permutation(support)[:size] if distinct else rng.integers(0, support, size)
    buffer = io.BytesIO()
    np.savez(buffer, images=prototypes[ids])
    response = client.post(
        "/api/generators",
        data={"name": f"K{support} seed {seed}", "format": "samples"},
        files={"file": ("g.npz", buffer.getvalue())},
    )
    assert response.status_code == 201, response.text
    return response.json()["id"], ids


def _run(run_id: int, width: float, seed: int, generator_id: int | None, status: str = "done"):
    return TrainingRunPublic(
        id=run_id,
        status=status,
        progress=TrainingProgress(step=1, steps=1),
        generator_id=generator_id,
        config={"loss": "rasgan", "d_width": width, "latent_dim": 8, "seed": seed},
        modes=None,
        sweep_id=1,
        job_id=None,
        error=None,
        auditable=True,
    )


def _audit(client: TestClient, generator_id: int, **extra: Any) -> int:
    body = {"generator_id": generator_id, "n": POOL, "random_pairs": 0, **extra}
    response = client.post("/api/audits", json=body)
    assert response.status_code == 202, response.text
    return int(wait_for_audit(client, response.json()["id"])["id"])


def _sweep(runs: list[TrainingRunPublic]) -> SweepPublic:
    return SweepPublic(id=1, grid={}, runs=runs, cells=sweep_cells(runs), audits=[])


def test_cells_and_the_width_trend_recover_known_support(any_client: TestClient) -> None:
    client = any_client
    db = client.app.state.birthday.db  # type: ignore[attr-defined]
    widths, seeds = (0.5, 1.0, 2.0), (0, 1)
    runs, truth = [], {}
    for width in widths:
        support = round(40 * width)  # N_eff ~ width^1
        for seed in seeds:
            generator_id, ids = _archive_generator(client, support, 100 * seed + support)
            judge_all(client, _audit(client, generator_id), ids)
            runs.append(_run(len(runs) + 1, width, seed, generator_id))
            truth[runs[-1].id] = (support, sum(c * (c - 1) // 2 for c in Counter(ids).values()))
    # Runs that cannot enter, each with its reason.
    unlabelled, _ids = _archive_generator(client, 40, 7)
    _audit(client, unlabelled)
    # an archive of twice the pool: the pool with no duplicate can be grown from it below
    no_duplicate, distinct_ids = _archive_generator(client, 500, 9, distinct=True, size=2 * POOL)
    judge_all(client, _audit(client, no_duplicate), distinct_ids)
    runs += [
        _run(89, 4.0, 2, no_duplicate),
        _run(90, 1.0, 2, unlabelled),
        _run(91, 1.0, 3, None, status="running"),
        _run(92, 1.0, 4, _archive_generator(client, 40, 8)[0]),
    ]

    support = sweep_support(db, _sweep(runs))
    rows = {r.run_id: r for r in support.runs}
    pairs = POOL * (POOL - 1) / 2
    for run_id, (_support, d) in truth.items():
        row = rows[run_id]
        assert row.used and row.waiting_for is None and row.n == POOL
        # in the figure; a review done short of its target says what its pool needs
        assert row.reason is None or "its review is done at" in row.reason, row.reason
        assert row.n_eff == pairs / d  # every pair labelled: Simpson's estimate exactly
        assert row.n_eff_low is not None and row.n_eff_high is not None
    assert "review" in (rows[90].reason or "") and not rows[90].used
    # Labelling goes where the figure needs it: the audit it leaves out for want of review.
    assert all(rows[r].stop_reached and rows[r].labels_to_go == 0 for r in truth)
    assert rows[90].stop_reached is False and rows[90].labels_to_go
    assert support.next_review is not None
    assert (support.next_review.run_id, support.next_review.audit_id) == (90, rows[90].audit_id)
    assert rows[91].reason == "the run is running"
    assert rows[92].reason == "no finished audit of its generator yet"
    assert [rows[r].waiting_for for r in (89, 90, 91, 92)] == ["samples", "review", "run", "audit"]
    assert all(rows[r].waiting_for is None for r in truth)
    assert (rows[89].reason or "").startswith("no duplicate in its pool (N_eff >= ")
    assert rows[89].n_eff is None and rows[89].n_eff_low == pytest.approx(pairs / -math.log(0.05))
    # The pool with no duplicate joins the trend as a count of 0 (so its estimate's warning
    # about the bound counts); its cell has no mean.
    assert rows[89].used and rows[89].warnings
    # Every audit here draws no random pairs (random_pairs 0): each warns that the miner's
    # misses are not bounded, and the figure's note names them all.
    assert support.notes[0].startswith("The estimates of audits #")
    assert f"#{rows[89].audit_id}" in support.notes[0]
    assert support.notes[1].startswith("No pool of cell (rasgan, latent 8, width 4) holds")
    assert f"N_eff >= {rows[89].n_eff_low:.4g}" in support.notes[1]
    assert support.notes[2] == "3 of 10 runs are not in the figure yet (see each reason)."
    assert support.notes[3].startswith("1 pool holds no duplicate: each enters the fits as a")
    unbounded = "No random pair was drawn"
    assert all(w.startswith(unbounded) for r in truth for w in rows[r].warnings)  # nothing else

    assert support.embedders == ["pixels"]
    assert [(c.d_width, c.runs) for c in support.cells] == [(0.5, 2), (1.0, 2), (2.0, 2)]
    for cell in support.cells:
        members = [
            rows[r].n_eff for r in truth if rows[r].d_width == cell.d_width and rows[r].n_eff
        ]
        assert min(members) <= cell.n_eff <= max(members)
        assert cell.n_eff_low <= round(40 * cell.d_width) <= cell.n_eff_high
    assert support.tau is not None
    (trend,) = support.trends
    assert (trend.loss, trend.latent_dim, trend.runs, trend.widths, trend.df) == (
        "rasgan",
        8,
        7,
        4,
        5,
    )
    assert trend.empty_pools == 1
    assert trend.exponent_low <= 1.0 <= trend.exponent_high
    assert trend.exponent_low > 0  # support grows with width here, and the test sees it
    assert 20 < trend.n_eff_at_width_1 < 80  # the line at width 1, where K = 40

    # The same rows as CSV (through the API: this sweep is not in the store, so the service).
    rows_csv = list(csv.DictReader(io.StringIO(support_csv(support))))
    assert [int(r["run_id"]) for r in rows_csv] == [r.run_id for r in support.runs]
    first = rows_csv[0]
    assert float(first["n_eff"]) == rows[1].n_eff and first["used"] == "True"
    assert rows_csv[-1]["audit_id"] == "" and rows_csv[-1]["reason"] == rows[92].reason

    # Only audits with another embedder: nothing to go on, and the reason says so.
    other = sweep_support(db, _sweep(runs), embedder="clip")
    assert not other.cells and not other.trends
    assert {r.reason for r in other.runs if r.run_id in truth} == {
        "no finished audit of its generator yet"
    }

    # The pool with no duplicate is grown in place (by its own size), the others left alone.
    settings = client.app.state.birthday.settings  # type: ignore[attr-defined]
    extended = extend_empty_pools(db, settings, support, None)
    assert [(audit.id, audit.n, job.status) for audit, job in extended] == [
        (rows[89].audit_id, 2 * POOL, "queued")
    ]
    with pytest.raises(ValueError, match="exceed"):
        extend_empty_pools(db, settings, support, 1_000_000)
    # Past its archive's 180 images: refused before anything is queued.
    with pytest.raises(ValueError, match="archive of 180 samples; the pool asks for 181"):
        extend_empty_pools(db, settings, support, POOL + 1)
    assert client.get(f"/api/audits/{rows[89].audit_id}").json()["n"] == 2 * POOL


def test_one_seed_per_cell_says_the_spread_between_seeds_is_unknown(client: TestClient) -> None:
    db = client.app.state.birthday.db  # type: ignore[attr-defined]
    runs = []
    for width in (1.0, 2.0):
        generator_id, ids = _archive_generator(client, round(30 * width), int(width))
        judge_all(client, _audit(client, generator_id), ids)
        runs.append(_run(len(runs) + 1, width, 0, generator_id))
    support = sweep_support(db, _sweep(runs), level=0.9)
    assert support.tau is None and support.level == 0.9
    assert any("sampling noise" in note for note in support.notes)
    assert any("No trend for rasgan, latent 8" in note for note in support.notes)
    rows = {r.run_id: r for r in support.runs}
    for cell, run_id in zip(support.cells, (1, 2), strict=True):
        # One run: the cell is that generator, its interval the audit's read on the log scale.
        row = rows[run_id]
        assert row.n_eff_low is not None and row.n_eff_high is not None
        assert cell.n_eff == pytest.approx(row.n_eff)
        assert (cell.n_eff_low, cell.n_eff_high) == pytest.approx((row.n_eff_low, row.n_eff_high))


def test_compare_divides_each_n_eff_by_the_first(any_client: TestClient) -> None:
    client = any_client
    small, small_ids = _archive_generator(client, 30, 1)
    large, large_ids = _archive_generator(client, 90, 2)
    first = _audit(client, small)
    judge_all(client, first, small_ids)
    other = _audit(client, large)
    judge_all(client, other, large_ids)
    again = _audit(client, small, n=60)  # the first audit's pool again, in part: not independent
    judge_all(client, again, small_ids)

    items = client.get(f"/api/compare?ids={first},{other},{again}&level=0.9").json()
    assert [item["ratio_to_first"] for item in items[::2]] == [None, None]
    ratio = items[1]["ratio_to_first"]
    estimates = [item["estimate"] for item in items[:2]]
    assert ratio["baseline_audit_id"] == first
    assert ratio["value"] == pytest.approx(estimates[1]["n_eff"] / estimates[0]["n_eff"])
    assert ratio["low"] < ratio["value"] < ratio["high"]
    # The interval is wider than either audit's alone: their variances add on the log scale.
    spread = [math.log(e["n_eff_high"] / e["n_eff_low"]) for e in estimates]
    assert math.log(ratio["high"] / ratio["low"]) > max(spread)
    uploaded = client.get(f"/audits/{first}").text  # an uploaded generator: no run to link
    assert "data-trained-by" not in uploaded and f'href="/audits/{first}/review"' in uploaded
    page = client.get(f"/compare?ids={first},{other},{again}").text
    assert "baseline" in page and "same pool" in page
    assert f"{ratio['value']:.3g} <span" in page
    at_95 = client.get(f"/api/compare?ids={first},{other}").json()[1]["ratio_to_first"]
    assert at_95["low"] > 1  # K = 90 against K = 30: told apart, and the page says so
    assert f"[{at_95['low']:.3g}, {at_95['high']:.3g}]" in page
    assert "<strong>larger</strong>" in page


def test_the_next_review_is_what_keeps_a_run_out_of_the_figure_first() -> None:
    def row(run_id: int, used: bool, reached: bool | None, waiting: Any) -> SweepSupportRun:
        return SweepSupportRun(
            run_id=run_id, loss="sgan", latent_dim=None, d_width=1.0, seed=0,
            generator_id=run_id, audit_id=None if reached is None else 100 + run_id, n=None,
            n_eff=None, n_eff_low=None, n_eff_high=None, used=used, waiting_for=waiting,
            reason=waiting, stop_reached=reached,
            labels_to_go=None if reached is None else 7 * run_id,
        )  # fmt: skip

    rows = [
        row(1, True, True, None),
        row(2, True, False, None),  # in the figure, its interval still wider than the target
        row(3, False, None, "audit"),
        row(4, False, False, "samples"),  # labels cannot give it a duplicate
        row(5, False, False, "review"),
    ]
    first = next_review(rows)
    assert first is not None and (first.run_id, first.audit_id, first.labels_to_go) == (5, 105, 35)
    then = next_review(rows[:4])
    assert then is not None and then.run_id == 2
    assert next_review([rows[0], rows[2]]) is None


def test_synthetic_pools_of_one_seed_are_never_independent() -> None:
    from types import SimpleNamespace

    from app.services.compare import share_samples

    def audit(seed: int, synthetic: dict | None = None, generator: int | None = None) -> Any:
        return SimpleNamespace(seed=seed, synthetic=synthetic, generator_id=generator)

    clean, noisy = {"support": 50, "noise": 0.0}, {"support": 50, "noise": 0.02}
    # Sample i draws its prototype from one uniform number per (seed, i): the same
    # prototypes whatever the noise, nested ones whatever K.
    assert share_samples(audit(0, clean), audit(0, noisy))
    assert share_samples(audit(0, clean), audit(0, {"support": 100}))
    assert not share_samples(audit(0, clean), audit(1, noisy))
    assert share_samples(audit(0, generator=3), audit(0, generator=3))
    assert not share_samples(audit(0, generator=3), audit(0, generator=4))
    assert not share_samples(audit(0, clean), audit(0, generator=3))


def test_a_review_done_short_of_its_target_says_the_pool_must_grow(client: TestClient) -> None:
    """Its queue answers 204 (more labels would barely help), so the figure counts its review
    as done, but its interval is wider than its target: the run says by how many samples."""
    db = client.app.state.birthday.db  # type: ignore[attr-defined]
    generator_id, ids = _archive_generator(client, 60, 5)
    audit_id = _audit(client, generator_id, target=0.01)
    judge_all(client, audit_id, ids)
    estimate = client.get(f"/api/audits/{audit_id}/estimate").json()
    stop = estimate["stop"]
    assert stop["labels_done"] and not stop["reached"] and stop["limited_by"] == "samples"
    row = sweep_support(db, _sweep([_run(1, 1.0, 0, generator_id)])).runs[0]
    assert row.stop_reached and row.waiting_for is None and row.reason is not None
    assert f"against a target of +-1%: extend its pool by about {stop['samples_to_go']:,}" in (
        row.reason
    )
