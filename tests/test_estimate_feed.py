"""Live estimates: one computation per change for all watchers, pushed as `estimate` events."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import fastapi.routing
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from app.jobs.events import Event
from app.services import estimate_feed
from app.services.estimate_feed import EstimateFeed, estimate_body, estimate_digest
from app.services.estimates import audit_estimate
from app.store import audits as audit_store
from app.store.db import Database
from app.store.judgements import post_judgement
from app.store.models import CandidatePair
from tests.conftest import all_pairs, sse_events, wait_for, wait_for_audit
from tests.review_audits import finished_audit, judge_closest


class Published:
    """The feed's events, as a listener would get them."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self._lock = threading.Lock()

    def __call__(self, event: Event) -> None:
        with self._lock:
            self.events.append(event)

    def estimates(self) -> list[dict[str, Any]]:
        with self._lock:
            return [e.data for e in self.events if e.kind == "estimate"]

    def wait(self, count: int) -> dict[str, Any]:
        wait_for(lambda: len(self.estimates()) >= count, 60, what=f"{count} estimate events")
        return self.estimates()[count - 1]


@pytest.fixture
def published() -> Published:
    return Published()


@pytest.fixture
def feed(db: Database, published: Published) -> Iterator[EstimateFeed]:
    live = EstimateFeed(db, published, recheck_s=60.0, settle_s=0.05, min_gap_s=0.0)
    yield live
    live.stop()


def _expected(db: Database, audit_id: int) -> dict[str, Any]:
    return estimate_body(audit_estimate(db, audit_id))


def test_a_watched_audit_sends_its_estimate_and_each_change(
    db: Database, feed: EstimateFeed, published: Published
) -> None:
    audit_id = finished_audit(db)
    with feed.watching(audit_id) as latest:
        assert latest is None  # the first watcher gets its estimate as an event
        first = published.wait(1)
        assert first == _expected(db, audit_id) and first["labelled_pairs"] == 0
        assert published.events[0].topic == f"audit:{audit_id}"
        judge_closest(db, audit_id, "duplicate")
        feed.changed(audit_id)
        second = published.wait(2)
        assert second == _expected(db, audit_id) and second["labelled_pairs"] == 1
        # A second watcher is told the last estimate at once, and neither its coming nor its
        # going starts a computation.
        with feed.watching(audit_id) as latest:
            assert latest == second
        time.sleep(0.3)
        assert feed.computations(audit_id) == 2
        # A hint that changes nothing sends nothing.
        feed.changed(audit_id)
        wait_for(lambda: feed.computations(audit_id) == 3, 60, what="the third computation")
        assert len(published.estimates()) == 2


def test_a_burst_of_labels_costs_one_computation(
    db: Database, feed: EstimateFeed, published: Published, monkeypatch: pytest.MonkeyPatch
) -> None:
    audit_id = finished_audit(db)
    release, started = threading.Event(), threading.Event()
    real = estimate_feed._compute

    def slow(database: Database, audit: int) -> dict[str, Any] | None:
        result = real(database, audit)
        started.set()
        assert release.wait(60)
        return result

    monkeypatch.setattr(estimate_feed, "_compute", slow)
    with feed.watching(audit_id):
        assert started.wait(60)  # the first computation is under way and holds
        for _ in range(5):
            judge_closest(db, audit_id, "duplicate")
            feed.changed(audit_id)
        release.set()
        assert published.wait(1)["labelled_pairs"] == 0
        assert published.wait(2)["labelled_pairs"] == 5
        time.sleep(0.5)  # nothing else was asked for
        assert feed.computations(audit_id) == 2
        assert len(published.estimates()) == 2


def test_writers_it_cannot_hear_show_on_the_recheck(db: Database, published: Published) -> None:
    audit_id = finished_audit(db)
    feed = EstimateFeed(db, published, recheck_s=0.2, settle_s=0.0, min_gap_s=0.0)
    try:
        with feed.watching(audit_id):
            published.wait(1)
            judge_closest(db, audit_id, "distinct")  # e.g. the CLI: no hint
            assert published.wait(2)["labelled_pairs"] == 1
            # Rechecks of an unchanged audit send nothing.
            done = feed.computations(audit_id)
            wait_for(lambda: feed.computations(audit_id) >= done + 3, 60, what="rechecks")
            assert len(published.estimates()) == 2
    finally:
        feed.stop()


def test_the_thread_ends_with_its_last_watcher_or_its_audit(
    db: Database, feed: EstimateFeed, published: Published
) -> None:
    audit_id = finished_audit(db)
    with feed.watching(audit_id):
        published.wait(1)
    wait_for(lambda: not _feed_threads(audit_id), 60, what="the feed thread to end")
    with feed.watching(audit_id) as latest:
        assert latest is None  # forgotten: a new watcher starts afresh
        published.wait(2)
        with db.write() as session:
            audit_store.delete_audit_rows(session, audit_id)
        feed.changed(audit_id)
        wait_for(lambda: not _feed_threads(audit_id), 60, what="the feed thread to end")


def test_an_audit_without_samples_sends_nothing_until_it_has_some(
    db: Database, feed: EstimateFeed, published: Published
) -> None:
    with db.write() as session:
        audit, _ = audit_store.create_audit(session, synthetic={"support": 10}, n=40)
        audit_id = audit.id
    with feed.watching(audit_id):
        wait_for(lambda: feed.computations(audit_id) == 1, 60, what="the first computation")
        assert published.estimates() == []


def _feed_threads(audit_id: int) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == f"estimate-feed-{audit_id}"]


def test_the_event_stream_carries_estimates_as_labels_arrive(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fastapi.routing, "_PING_INTERVAL", 0.5)
    response = client.post(
        "/api/audits", json={"synthetic": {"support": 300}, "n": 400, "neighbours": 3}
    )
    audit_id = wait_for_audit(client, response.json()["id"])["id"]
    closest = all_pairs(client, audit_id)[:3]
    with client.stream("GET", f"/api/audits/{audit_id}/events") as stream:
        events = sse_events(stream.iter_lines())
        assert next(events)[0] == "progress"
        kind, ident, estimate = next(events)
        assert kind == "estimate"
        assert estimate == client.get(f"/api/audits/{audit_id}/estimate").json()
        assert estimate["labelled_pairs"] == 0
        # The id names the content; the audit page's panel names the estimate it shows the same way.
        assert ident == estimate_digest(estimate)
        panel = client.get(f"/audits/{audit_id}/panel").text
        assert f'data-estimate="{ident}"' in panel
        for pair in closest:  # another annotator's labels, an undo
            posted = client.post(
                f"/api/pairs/{pair['id']}/judgements",
                json={"label": "duplicate", "annotator": "other"},
            )
            assert posted.status_code == 201
        assert client.delete(f"/api/judgements/{posted.json()['id']}").status_code == 200
        expected = client.get(f"/api/audits/{audit_id}/estimate").json()
        assert expected["labelled_pairs"] == 2
        for kind, ident, estimate in events:
            assert kind == "estimate" and ident == estimate_digest(estimate)
            if estimate == expected:
                break


def test_posting_a_judgement_names_its_audit(db: Database) -> None:
    audit_id = finished_audit(db)
    with db.write() as session:
        pair_id = session.scalar(
            select(CandidatePair.id).where(CandidatePair.audit_id == audit_id).limit(1)
        )
        assert pair_id is not None
        view, _ = post_judgement(session, pair_id, "duplicate", "someone", None)
    assert view.audit_id == audit_id


def test_a_stream_without_estimates_starts_no_computation(client: TestClient) -> None:
    response = client.post("/api/audits", json={"synthetic": {"support": 50}, "n": 60})
    audit_id = wait_for_audit(client, response.json()["id"])["id"]
    feed = client.app.state.birthday.feed  # type: ignore[attr-defined]
    pair = all_pairs(client, audit_id)[0]
    with client.stream("GET", f"/api/audits/{audit_id}/events?estimates=false") as stream:
        lines = stream.iter_lines()
        assert next(lines) == "event: progress"
        posted = client.post(
            f"/api/pairs/{pair['id']}/judgements", json={"label": "distinct", "annotator": "x"}
        )
        assert posted.status_code == 201
        time.sleep(0.5)
        assert feed.computations(audit_id) == 0


def test_an_infinite_figure_is_null_in_the_body_as_in_the_api(db: Database) -> None:
    real = audit_estimate(db, finished_audit(db))
    body = estimate_body(real.model_copy(update={"n_eff_high": float("inf")}))
    assert body["n_eff_high"] is None
    json.dumps(body, allow_nan=False)  # valid JSON for any client


def test_a_review_design_stored_by_a_handout_reaches_the_stream(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first hand-out stores the review design, and the estimate moves with it: pages
    following the audit get the new one at once, not at the next recheck."""
    monkeypatch.setattr(fastapi.routing, "_PING_INTERVAL", 0.5)
    feed = client.app.state.birthday.feed  # type: ignore[attr-defined]
    monkeypatch.setattr(feed, "_recheck_s", 3600.0)
    response = client.post(
        "/api/audits", json={"synthetic": {"support": 300}, "n": 400, "neighbours": 3}
    )
    audit_id = wait_for_audit(client, response.json()["id"])["id"]
    for pair in all_pairs(client, audit_id)[:5]:  # labels given outside the queue
        body = {"label": "duplicate", "annotator": "other"}
        assert client.post(f"/api/pairs/{pair['id']}/judgements", json=body).status_code == 201
    with client.stream("GET", f"/api/audits/{audit_id}/events") as stream:
        events = sse_events(stream.iter_lines(), timeout=30)
        assert next(events)[0] == "progress"
        kind, _, before = next(events)
        assert kind == "estimate"
        handed = client.get(f"/api/audits/{audit_id}/next-pairs", params={"annotator": "ada"})
        assert handed.status_code == 200 and handed.json()["items"]
        expected = client.get(f"/api/audits/{audit_id}/estimate").json()
        assert expected != before  # the stored design moved it
        for kind, _, estimate in events:
            if kind == "estimate" and estimate == expected:
                break
