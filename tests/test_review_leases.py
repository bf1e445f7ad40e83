"""Review leases live in the store: two servers (or a server and the CLI) on one database never
hand one pair to two annotators within the lease, the pair comes back once the lease ran out,
and an annotator who asks again, through either server, gets their own pairs back.

A second server is a second `Database` on the same store under another URL (a path through
`./` on SQLite, another application_name on PostgreSQL): this process's caches and locks are
kept per URL, so it shares nothing in memory with the first, as another process would not.
The race at the end runs two real processes.
"""

from __future__ import annotations

import multiprocessing
from collections import defaultdict
from collections.abc import Iterator
from datetime import datetime, timedelta
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Event
from pathlib import Path

import pytest
from sqlalchemy import delete, func, select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

import app.services.review as review_service
from app.services.review import MAX_HANDOUT, next_pairs_for
from app.store import audits as audit_store
from app.store import review_leases as lease_store
from app.store.db import Database
from app.store.judgements import post_judgement
from app.store.models import CandidatePair, ReviewLease
from tests.review_audits import finished_audit


@pytest.fixture
def servers(db: Database) -> Iterator[tuple[Database, Database]]:
    """The store as two servers see it: `db`, and a second Database under another URL."""
    url = make_url(db.url)
    if db.is_sqlite:
        assert url.database is not None
        path = Path(url.database)
        other = url.set(database=f"{path.parent}/./{path.name}")
    else:
        other = url.update_query_dict({"application_name": "birthday-second-server"})
    second = Database(other.render_as_string(hide_password=False))
    assert second.url != db.url
    yield db, second
    second.dispose()


def _ids(db: Database, audit_id: int, annotator: str | None, limit: int) -> list[int]:
    return [r.pair.id for r in next_pairs_for(db, audit_id, annotator, limit).pairs]


def _later(monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    """Move the store's clock `seconds` on, for every server of this process."""
    real = lease_store.store_now

    def store_now(session: Session) -> datetime:
        return real(session) + timedelta(seconds=seconds)

    monkeypatch.setattr(lease_store, "store_now", store_now)


def test_a_pair_handed_out_by_one_server_is_kept_from_the_other_servers_annotators(
    servers: tuple[Database, Database],
) -> None:
    first, second = servers
    audit_id = finished_audit(first)
    ada = _ids(first, audit_id, "ada", 5)
    bea = _ids(second, audit_id, "bea", 5)
    assert len(ada) == 5 and len(bea) == 5
    assert not set(ada) & set(bea)
    # Neither server hands either page to a third annotator.
    cy = _ids(first, audit_id, "cy", MAX_HANDOUT) + _ids(second, audit_id, "cy", MAX_HANDOUT)
    assert cy and not set(cy) & (set(ada) | set(bea))


def test_a_pair_goes_to_another_annotator_once_its_lease_ran_out(
    servers: tuple[Database, Database], monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = servers
    audit_id = finished_audit(first)
    (pair,) = _ids(first, audit_id, "ada", 1)
    assert pair not in _ids(second, audit_id, "bea", MAX_HANDOUT)
    _later(monkeypatch, review_service.LEASE_SECONDS - 1)
    assert pair not in _ids(second, audit_id, "bea", MAX_HANDOUT)  # a second to go
    _later(monkeypatch, 2)  # one second past Ada's lease (Bea's, taken just now, still runs)
    assert pair in _ids(second, audit_id, "cy", MAX_HANDOUT)
    # Now it is Cy's: Ada, back late, is not handed it again.
    assert pair not in _ids(first, audit_id, "ada", MAX_HANDOUT)


def test_an_annotator_asking_again_through_either_server_gets_their_own_pairs_back(
    servers: tuple[Database, Database],
) -> None:
    first, second = servers
    audit_id = finished_audit(first)
    ada = _ids(first, audit_id, "ada", 3)
    bea = _ids(first, audit_id, "bea", 3)
    again = _ids(second, audit_id, "ada", 6)
    assert set(ada) <= set(again)
    assert not set(again) & set(bea)


def test_a_pair_whose_lease_another_annotator_holds_is_skipped_for_the_next(
    servers: tuple[Database, Database], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Even a handout that planned as if nobody held a lease hands out none of Ada's pairs:
    their takes are refused, and the pairs after them are handed (and leased) instead."""
    first, second = servers
    audit_id = finished_audit(first)
    ada = _ids(first, audit_id, "ada", 3)
    monkeypatch.setattr(lease_store, "leased_to_others", lambda *args: set())
    bea = _ids(second, audit_id, "bea", 3)
    assert len(bea) == 3 and not set(bea) & set(ada)
    with second.read() as session:
        now = lease_store.store_now(session)
        assert lease_store.held_by(session, audit_id, "bea", now) == set(bea)
        assert lease_store.held_by(session, audit_id, "ada", now) == set(ada)


def test_an_unnamed_look_through_another_server_leases_nothing(
    servers: tuple[Database, Database],
) -> None:
    """The look skips the pairs leased to annotators and takes none itself."""
    first, second = servers
    audit_id = finished_audit(first)
    ada = _ids(first, audit_id, "ada", 3)
    looked = _ids(second, audit_id, None, 3)
    assert looked and not set(looked) & set(ada)
    assert set(_ids(first, audit_id, "bea", 3)) == set(looked)


def test_leases_are_rows_that_go_with_their_pair_and_audit(db: Database) -> None:
    audit_id = finished_audit(db)
    handed = _ids(db, audit_id, "ada", 4)

    def leased() -> set[int]:
        with db.read() as session:
            stmt = select(ReviewLease.pair_id).where(ReviewLease.audit_id == audit_id)
            return set(session.scalars(stmt))

    assert leased() == set(handed)
    with db.write() as session:  # a pair deleted under its lease takes the lease with it
        session.execute(delete(CandidatePair).where(CandidatePair.id == handed[0]))
    assert leased() == set(handed[1:])
    with db.write() as session:
        audit_store.delete_audit_rows(session, audit_id)
    with db.read() as session:
        assert session.scalar(select(func.count()).select_from(ReviewLease)) == 0


def test_a_lease_is_taken_only_where_the_pair_is_free_expired_or_already_ones_own(
    db: Database,
) -> None:
    audit_id = finished_audit(db)
    with db.read() as session:
        pair = session.scalars(
            select(CandidatePair.id).where(CandidatePair.audit_id == audit_id).limit(1)
        ).one()
    with db.write() as session:
        now = lease_store.store_now(session)
        assert lease_store.take(session, audit_id, pair, "ada", now, 60)
        assert not lease_store.take(session, audit_id, pair, "bea", now, 60)
        assert lease_store.take(session, audit_id, pair, "ada", now, 60)  # renewed
        assert lease_store.leased_to_others(session, audit_id, "bea", now) == {pair}
        assert lease_store.held_by(session, audit_id, "ada", now) == {pair}
        later = now + timedelta(seconds=60)
        assert lease_store.leased_to_others(session, audit_id, "bea", later) == set()
        assert lease_store.take(session, audit_id, pair, "bea", later, 60)
        assert lease_store.held_by(session, audit_id, "bea", later) == {pair}
        assert lease_store.drop_expired(session, audit_id, later + timedelta(seconds=61)) == 1


# -- two real processes ----------------------------------------------------------------------
ROUNDS = 25


def _hand_out(
    url: str, audit_id: int, names: tuple[str, ...], go: Event, results: Queue[object]
) -> None:
    """One server: its annotators take turns asking for pages and judging some of what they
    get (which moves the design the other server plans with); every page goes on `results`."""
    review_service.LEASE_SECONDS = 3600.0  # no lease runs out while the race lasts
    db = Database(url)
    try:
        pages: list[tuple[str, list[int]]] = []
        go.wait(120)
        for round_ in range(ROUNDS):
            for k, name in enumerate(names):
                ids = _ids(db, audit_id, name, 1 + (round_ + k) % 4)
                pages.append((name, ids))
                for pid in ids[: (round_ + k) % 2]:
                    with db.write() as session:
                        post_judgement(session, pid, "distinct", name, None)
        results.put(("ok", pages))
    except Exception as exc:  # noqa: BLE001 - the test reports what went wrong
        results.put(("error", f"{type(exc).__name__}: {exc}"[:500]))
    finally:
        db.dispose()


def test_two_processes_handing_out_pairs_at_once_never_share_one(db: Database) -> None:
    audit_id = finished_audit(db)
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    go = context.Event()
    teams = (("ada", "cy"), ("bea", "dan"))
    processes = [
        context.Process(target=_hand_out, args=(db.url, audit_id, team, go, results))
        for team in teams
    ]
    for process in processes:
        process.start()
    try:
        go.set()
        outcomes = [results.get(timeout=300) for _ in processes]
    finally:
        for process in processes:
            process.join(60)
            if process.exitcode is None:
                process.kill()
    errors = [outcome[1] for outcome in outcomes if outcome[0] != "ok"]
    assert not errors, errors
    holders: defaultdict[int, set[str]] = defaultdict(set)
    for _, pages in outcomes:
        for name, ids in pages:
            for pid in ids:
                holders[pid].add(name)
    shared = {pid: names for pid, names in holders.items() if len(names) > 1}
    assert len(holders) >= 20  # both teams were handed pairs
    assert not shared, shared
