"""The secondary figures are kept per set of labels: the audit page asks on every poll."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from app.store.db import Database
from tests.review_audits import finished_audit, judge_closest


def test_secondary_figures_are_computed_once_per_set_of_labels(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.services import secondary

    calls: list[int] = []
    real = secondary._figures

    def spy(n, labelled, *args):  # type: ignore[no-untyped-def]
        calls.append(len(labelled))
        return real(n, labelled, *args)

    monkeypatch.setattr(secondary, "_figures", spy)
    audit_id = finished_audit(db)
    judge_closest(db, audit_id, "duplicate")
    first = secondary.audit_secondary(db, tmp_path, audit_id)
    assert secondary.audit_secondary(db, tmp_path, audit_id) == first
    assert calls == [1]
    judge_closest(db, audit_id, "duplicate")
    second = secondary.audit_secondary(db, tmp_path, audit_id)
    assert calls == [1, 2]
    assert second.chao1.observed == first.chao1.observed - 1  # two pairs joined: one output fewer


def test_concurrent_first_views_compute_the_vendi_scores_once(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The page's polls and the start-up warm-up may ask together; each computation holds a
    kernel and its eigendecomposition (~1 GB for 4,000 images), so one computes, the rest wait."""
    from app.services import secondary

    calls: list[int] = []

    def slow(directory: Path, n: int, seed: int) -> secondary.VendiPublic:
        calls.append(n)
        time.sleep(0.3)  # long enough for the other threads to arrive meanwhile
        return secondary.VendiPublic(order1=2.0, order2=1.5, samples=n)

    monkeypatch.setattr(secondary, "_vendi", slow)
    audit_id = finished_audit(db)
    results: list[secondary.VendiPublic | None] = []
    threads = [
        threading.Thread(
            target=lambda: results.append(secondary.audit_secondary(db, tmp_path, audit_id).vendi)
        )
        for _ in range(3)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert calls == [300]
    assert len(results) == 3 and all(r is not None and r.order1 == 2.0 for r in results)
