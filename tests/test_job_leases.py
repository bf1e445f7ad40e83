"""Two processes on one store (a server and a CLI run, or a server restarted while a CLI audit goes
on) never run one job twice: jobs are leased, a lease held elsewhere is waited out, a dead holder's
lease is taken over, and a holder whose lease was taken stops recording, even one that was
waiting for a busy store when it was taken."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from app.jobs.runner import JobRunner
from app.schemas import AuditCreate, SyntheticSpec
from app.services.audits import create_audit
from app.settings import Settings
from app.store import jobs as job_store
from app.store.db import Database
from app.store.models import Audit, CandidatePair, Job
from tests.conftest import wait_for


@pytest.fixture
def store(db: Database, tmp_path: Path) -> tuple[Database, Settings]:
    """SQLite, and PostgreSQL where a test server is given (its claims lock the job's row)."""
    settings = Settings(
        data_dir=tmp_path / "data",
        models_dir=tmp_path / "models",
        database_url=db.url,
        chunk_size=100,
        job_lease_s=1.0,
    )
    settings.ensure_dirs()
    return db, settings


def _audit(db: Database, settings: Settings, n: int = 1000) -> tuple[int, int]:
    body = AuditCreate(synthetic=SyntheticSpec(support=300), n=n, neighbours=3, miner="exact")
    audit, job = create_audit(db, settings, body)
    return audit.id, job.id


def _job(db: Database, job_id: int) -> Job:
    with db.read() as session:
        job = job_store.get_job(session, job_id)
        session.expunge(job)
        return job


def _pair_keys(db: Database, audit_id: int) -> list[tuple[int, int]]:
    from sqlalchemy import select

    with db.read() as session:
        rows = session.execute(
            select(CandidatePair.i, CandidatePair.j).where(CandidatePair.audit_id == audit_id)
        ).all()
    return [(int(i), int(j)) for i, j in rows]


def test_a_server_started_during_a_cli_run_leaves_its_job_alone(
    store: tuple[Database, Settings],
) -> None:
    db, settings = store
    audit_id, job_id = _audit(db, settings)
    going = threading.Event()

    def slow(done: int, n: int, pairs: int) -> None:
        going.set()
        time.sleep(0.4)  # longer than a third of the lease: the lease is renewed meanwhile

    cli = JobRunner(db, settings)
    outcome: dict[str, str] = {}
    thread = threading.Thread(
        target=lambda: outcome.update(status=cli.run_job(job_id, on_progress=slow).status)
    )
    thread.start()
    assert going.wait(30)
    server = JobRunner(db, settings)
    server.start()  # resumes active jobs: this one is the CLI's
    try:
        assert server.run_job(job_id).status == "elsewhere"
        thread.join(120)
        assert outcome == {"status": "done"}
        time.sleep(settings.job_lease_s + 1)  # the server's retry finds the job finished
    finally:
        server.stop()
    job = _job(db, job_id)
    assert (job.status, job.attempts, job.lease_owner) == ("done", 1, None)
    pairs = _pair_keys(db, audit_id)
    assert pairs and len(pairs) == len(set(pairs))


def test_a_lease_from_another_host_is_waited_out_then_taken(
    store: tuple[Database, Settings],
) -> None:
    db, settings = store
    audit_id, job_id = _audit(db, settings, n=300)
    with db.write() as session:
        job = job_store.get_job(session, job_id)
        job.status, job.lease_owner, job.lease_expires = "running", "elsewhere:1:x", time.time() + 2
    runner = JobRunner(db, settings)
    runner.start()
    try:
        time.sleep(1)
        assert _job(db, job_id).lease_owner == "elsewhere:1:x"  # not taken while it holds
        wait_for(lambda: _job(db, job_id).status == "done", 60, what="the job taken over")
    finally:
        runner.stop()
    with db.read() as session:
        assert session.get(Audit, audit_id).status == "done"  # type: ignore[union-attr]
    assert _job(db, job_id).attempts == 1


def test_a_dead_holder_on_this_host_is_taken_over_at_once(
    store: tuple[Database, Settings],
) -> None:
    db, settings = store
    _, job_id = _audit(db, settings, n=300)
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    owner = f"{os.uname().nodename}:{int(dead.stdout)}:gone"
    with db.write() as session:
        job = job_store.get_job(session, job_id)
        job.status, job.lease_owner, job.lease_expires = "running", owner, time.time() + 3600
    assert JobRunner(db, settings).run_job(job_id).status == "done"


def test_a_holder_whose_lease_was_taken_stops_recording(
    store: tuple[Database, Settings],
) -> None:
    db, settings = store
    audit_id, job_id = _audit(db, settings, n=3000)
    seen: list[int] = []

    def slow(done: int, n: int, pairs: int) -> None:
        seen.append(done)
        if len(seen) == 2:  # another process takes the job over (its holder looked dead)
            with db.write() as session:
                job_store.get_job(session, job_id).lease_owner = "elsewhere:1:y"
        time.sleep(0.3)

    outcome = JobRunner(db, settings).run_job(job_id, on_progress=slow)
    assert outcome.status == "elsewhere"
    assert len(seen) < 3000 // 100
    job = _job(db, job_id)
    assert job.status == "running" and job.lease_owner == "elsewhere:1:y"  # left to its holder
    with db.read() as session:
        assert session.get(Audit, audit_id).samples_done == seen[-1]  # type: ignore[union-attr]


def test_a_process_giving_a_job_up_frees_it_at_once(store: tuple[Database, Settings]) -> None:
    """Ctrl-C in `birthday audit`: the job stays active for whoever is next, unleased."""
    db, settings = store
    settings.job_lease_s = 3600.0  # no waiting the lease out
    _, job_id = _audit(db, settings, n=1000)

    def interrupt(done: int, n: int, pairs: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        JobRunner(db, settings).run_job(job_id, on_progress=interrupt)
    job = _job(db, job_id)
    assert (job.status, job.lease_owner) == ("running", None)
    assert JobRunner(db, settings).run_job(job_id).status == "done"


@pytest.mark.parametrize("taken", [True, False], ids=["taken-over", "left-alone"])
def test_a_store_held_past_the_lease_leaves_one_writer(
    store: tuple[Database, Settings], taken: bool, caplog: pytest.LogCaptureFixture
) -> None:
    """The store is held from the first step's end until the job's lease has run out (SQLite: by
    another writer, refusing the runner every 0.1 s, its renewals too; PostgreSQL: the job's row
    locked). If another process then takes the job (its claim wins when the store is free), the
    first holder writes nothing more; if no one does, it renews its lapsed lease and finishes."""
    db, settings = store
    audit_id, job_id = _audit(db, settings, n=500)
    runner_db = Database(db.url, busy_timeout_ms=100)
    other = Database(db.url)  # another process's
    held = threading.Event()
    at_takeover: dict[str, Any] = {}
    holders: list[threading.Thread] = []

    def hold_past_the_lease() -> None:
        with other.write() as session:
            locked = select(Job).where(Job.id == job_id).with_for_update()
            expires = session.scalars(locked).one().lease_expires
            held.set()
            assert expires is not None
            time.sleep(max(0.0, expires - time.time()) + 0.5)
            if taken:
                job, left = job_store.claim(session, job_id, "elsewhere:1:z", 3600.0)
                audit = session.get(Audit, audit_id)
                assert audit is not None
                at_takeover.update(left=left, owner=job.lease_owner, done=audit.samples_done)

    def after_each_step(done: int, n: int, pairs: int) -> None:
        if not holders:  # the first step is recorded: hold the store for the next one
            holders.append(threading.Thread(target=hold_past_the_lease))
            holders[0].start()
            assert held.wait(60)

    try:
        outcome = JobRunner(runner_db, settings).run_job(job_id, on_progress=after_each_step)
    finally:
        held.set()
        for holder in holders:
            holder.join()
        runner_db.dispose()
        other.dispose()
    job = _job(db, job_id)
    with db.read() as session:
        samples_done = session.get(Audit, audit_id).samples_done  # type: ignore[union-attr]
    if db.is_sqlite:
        assert "the store is busy" in caplog.text  # the runner was refused, not only slowed
    if taken:
        assert at_takeover == {"left": None, "owner": "elsewhere:1:z", "done": 100}
        assert outcome.status == "elsewhere", outcome
        assert (job.status, job.lease_owner) == ("running", "elsewhere:1:z")  # left to its holder
        assert samples_done == 100 and job.progress["samples_done"] == 100  # nothing written since
    else:
        assert outcome.status == "done", outcome
        assert (job.status, job.attempts, job.lease_owner, samples_done) == ("done", 1, None, 500)
        pairs = _pair_keys(db, audit_id)
        assert pairs and len(pairs) == len(set(pairs))


def test_a_refused_renewal_is_tried_again_soon(
    store: tuple[Database, Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A renewal refused by a busy store is tried again after a fraction of a second, not after
    another third of the lease, which would let a lease run out over a few refusals."""
    db, settings = store
    if not db.is_sqlite:
        pytest.skip("the runner's retry does not depend on the store; the refusal is SQLite's")
    settings.job_lease_s = 6.0  # renewed every 2 s
    _, job_id = _audit(db, settings, n=300)
    renew = job_store.renew
    tries: list[float] = []
    renewed = threading.Event()

    def busy_three_times(session: Session, owner: str, job_ids: list[int], lease_s: float) -> Any:
        if threading.current_thread().name.startswith("birthday-lease-"):
            tries.append(time.monotonic())
            if len(tries) <= 3:
                busy = sqlite3.OperationalError("database is locked")
                raise OperationalError("UPDATE jobs", {}, busy)
            renewed.set()
        return renew(session, owner, job_ids, lease_s)

    monkeypatch.setattr(job_store, "renew", busy_three_times)

    def after_each_step(done: int, n: int, pairs: int) -> None:
        assert renewed.wait(60), "the lease was never renewed"  # the job runs on meanwhile

    assert JobRunner(db, settings).run_job(job_id, on_progress=after_each_step).status == "done"
    assert len(tries) >= 4
    # 0.1 + 0.2 + 0.4 s from the first refusal to the renewal (it was 3 x 2 s)
    assert tries[3] - tries[0] < 3.0, tries
