"""The start-up warm-up: which audits it warms, that a warmed audit's first requests build nothing,
that concurrent first requests build once, and that a failing audit does not stop it."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.services import estimates, history, review_state, secondary, warmup
from app.services.estimates import audit_estimate
from app.services.review import MAX_HANDOUT, next_pairs_for
from app.settings import Settings
from app.store import pairs as pair_store
from app.store.db import Database
from app.store.migrate import upgrade
from tests.review_audits import finished_audit, judge_closest


def test_audits_to_warm_puts_the_most_recently_judged_first(db: Database) -> None:
    first, second, third = finished_audit(db), finished_audit(db), finished_audit(db)
    finished_audit(db, pairs=False)  # no candidate pairs: nothing to build
    judge_closest(db, first, "duplicate")
    judge_closest(db, second, "duplicate")
    judge_closest(db, first, "duplicate")
    assert warmup.audits_to_warm(db, 8) == [first, second, third]
    assert warmup.audits_to_warm(db, 2) == [first, second]
    assert warmup.audits_to_warm(db, 0) == []


def test_a_warmed_audit_builds_nothing_on_its_first_requests(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    audit_id = finished_audit(db)
    for label in ("duplicate", "distinct", "duplicate"):
        judge_closest(db, audit_id, label)
    warmup.warm_audit(db, audit_id)
    warmup.warm_page(db, tmp_path, audit_id)

    def refuse(*args: object, **kwargs: object) -> object:
        raise AssertionError("built again after the warm-up")

    monkeypatch.setattr(pair_store, "pair_rows", refuse)
    monkeypatch.setattr(estimates, "estimate_incomplete", refuse)
    # The queue order and the ranks are sorts over every candidate: built, not redone.
    monkeypatch.setattr(np, "lexsort", refuse)
    monkeypatch.setattr(secondary, "_figures", refuse)
    estimate = audit_estimate(db, audit_id)
    assert estimate.labelled_pairs == 3
    # The audit page: the history's points are kept, the last one is the estimate just read.
    assert len(history.audit_estimate_history(db, audit_id).points) == 3
    assert secondary.audit_secondary(db, tmp_path, audit_id).n == 300
    handed = next_pairs_for(db, audit_id, "ada", limit=MAX_HANDOUT)
    assert len(handed.pairs) == MAX_HANDOUT
    assert {p.rank for p in handed.pairs if p.rank is not None}


def test_a_cold_audit_is_not_cached(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    """The check above can fail: without the warm-up the first estimate reads and computes."""
    audit_id = finished_audit(db)
    calls: list[str] = []
    real = estimates.estimate_incomplete

    def spy(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append("estimate")
        return real(*args, **kwargs)

    monkeypatch.setattr(estimates, "estimate_incomplete", spy)
    audit_estimate(db, audit_id)
    audit_estimate(db, audit_id)
    assert calls == ["estimate"]


def test_concurrent_first_requests_read_and_compute_once(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    audit_id = finished_audit(db)
    reads: list[str] = []
    computed: list[str] = []
    real_rows, real_estimate = pair_store.pair_rows, estimates.estimate_incomplete

    def slow_rows(session, audit_id, origin, after_id=0, **plan):  # type: ignore[no-untyped-def]
        reads.append(origin)
        time.sleep(0.3)  # long enough for the other thread to arrive while this one reads
        return real_rows(session, audit_id, origin, after_id, **plan)

    def slow_estimate(*args, **kwargs):  # type: ignore[no-untyped-def]
        computed.append("estimate")
        time.sleep(0.3)
        return real_estimate(*args, **kwargs)

    monkeypatch.setattr(pair_store, "pair_rows", slow_rows)
    monkeypatch.setattr(estimates, "estimate_incomplete", slow_estimate)
    results: list[float] = []
    threads = [
        threading.Thread(target=lambda: results.append(audit_estimate(db, audit_id).q))
        for _ in range(3)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(results) == 3 and len(set(results)) == 1
    assert sorted(reads) == ["candidate", "random"]
    assert computed == ["estimate"]


def test_a_failing_audit_does_not_stop_the_warm_up(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    good, bad = finished_audit(db), finished_audit(db)
    real = review_state.load_review

    def flaky(db_: Database, audit_id: int) -> review_state.ReviewState:
        if audit_id == bad:
            raise RuntimeError("disk on fire")
        return real(db_, audit_id)

    monkeypatch.setattr(warmup, "load_review", flaky)
    job = warmup.Warmup(db, 8, tmp_path)
    job.start()
    assert job.wait(60)
    assert job.warmed == [good]


def test_a_warm_up_waits_while_an_earlier_one_is_still_in_a_step(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """stop() cannot interrupt a step in hand; a warm-up started meanwhile (the app started
    again) waits for it instead of building the same caches beside it."""
    audit_id = finished_audit(db)
    release, entered = threading.Event(), threading.Event()
    guard = threading.Lock()
    inside = [0]
    most = [0]

    def slow(db_: Database, audit_id_: int) -> None:
        with guard:
            inside[0] += 1
            most[0] = max(most[0], inside[0])
        entered.set()
        release.wait(30)
        with guard:
            inside[0] -= 1

    monkeypatch.setattr(warmup, "warm_audit", slow)
    first = warmup.Warmup(db, 8, tmp_path)
    first.start()
    assert entered.wait(30)
    first.stop(timeout=0.05)
    assert not first.wait(0)  # still inside its step
    second = warmup.Warmup(db, 8, tmp_path)
    second.start()
    time.sleep(0.5)
    assert not second.wait(0) and most[0] == 1
    release.set()
    assert first.wait(30) and second.wait(30)
    assert most[0] == 1
    assert first.warmed == [audit_id] and second.warmed == [audit_id]
    # One stopped while it waits ends without doing anything.
    release.clear()
    entered.clear()
    third, fourth = warmup.Warmup(db, 8, tmp_path), warmup.Warmup(db, 8, tmp_path)
    third.start()
    assert entered.wait(30)
    fourth.start()
    fourth.stop(timeout=5)
    assert fourth.wait(0) and fourth.warmed == [] and fourth.reviews_ready.is_set()
    release.set()
    assert third.wait(30) and third.warmed == [audit_id]


def _settings(tmp_path: Path, warm: int) -> Settings:
    return Settings(data_dir=tmp_path / "data", models_dir=tmp_path / "models", warm_audits=warm)


def test_the_app_warms_the_judged_audit_at_start_up(tmp_path: Path) -> None:
    settings = _settings(tmp_path, 3)
    db = Database(settings.resolved_database_url())
    settings.ensure_dirs()
    upgrade(settings.resolved_database_url())
    audit_id = finished_audit(db)
    judge_closest(db, audit_id, "duplicate")
    db.dispose()
    app = create_app(settings)
    with TestClient(app) as client:
        assert app.state.warmup.wait(60)
        assert app.state.warmup.reviews_ready.is_set()
        assert app.state.warmup.warmed == [audit_id]
        assert client.get(f"/api/audits/{audit_id}/estimate").json()["labelled_pairs"] == 1


def test_no_warm_up_when_turned_off(tmp_path: Path) -> None:
    settings = _settings(tmp_path, 0)
    settings.ensure_dirs()
    upgrade(settings.resolved_database_url())
    db = Database(settings.resolved_database_url())
    finished_audit(db)
    db.dispose()
    app = create_app(settings)
    with TestClient(app):
        assert app.state.warmup.wait(1)
        assert app.state.warmup.warmed == []


def test_an_app_started_twice_warms_at_each_start(tmp_path: Path) -> None:
    settings = _settings(tmp_path, 3)
    settings.ensure_dirs()
    upgrade(settings.resolved_database_url())
    db = Database(settings.resolved_database_url())
    audit_id = finished_audit(db)
    db.dispose()
    app = create_app(settings)
    for _ in range(2):
        with TestClient(app):
            assert app.state.warmup.wait(60)
            assert app.state.warmup.warmed == [audit_id]
