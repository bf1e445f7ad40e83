"""A SQLite store held by another process past the busy timeout: a running job waits and goes
on, and a request is told to come back (503 with Retry-After) rather than given a bare 500."""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient
from sqlalchemy.exc import IntegrityError

from app.api.problems import install_problem_handlers
from app.jobs.runner import JobRunner
from app.main import create_app
from app.schemas import AuditCreate, SyntheticSpec
from app.services.audits import create_audit
from app.settings import Settings
from app.store import audits as audit_store
from app.store import jobs as job_store
from app.store.audits import ChunkRows
from app.store.db import Database
from app.store.migrate import upgrade
from tests.conftest import assert_problem

BUSY_TIMEOUT_MS = 100  # short, so a held store refuses the next writer quickly


def _settings(tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        models_dir=tmp_path / "models",
        chunk_size=100,
        sqlite_busy_timeout_ms=BUSY_TIMEOUT_MS,
    )


def _sqlite_file(settings: Settings) -> str:
    return settings.resolved_database_url().removeprefix("sqlite:///")


@contextmanager
def _held(path: str) -> Iterator[sqlite3.Connection]:
    """Another connection (as another process would) holding the write lock until released."""
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    try:
        yield other
    finally:
        if other.in_transaction:
            other.execute("COMMIT")
        other.close()


class _Refusals(logging.Handler):
    """Sets `seen` when the runner says the store refused a write."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.seen = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if "store is busy" in record.getMessage():
            self.seen.set()


def test_a_job_waits_for_a_store_held_past_the_busy_timeout(tmp_path: Path) -> None:
    """The store is held from the first step's end until the runner has been refused at least
    once: the job then records its remaining steps and ends done, where it used to fail."""
    settings = _settings(tmp_path)
    settings.ensure_dirs()
    upgrade(settings.resolved_database_url())
    db = Database(settings.resolved_database_url(), settings.sqlite_busy_timeout_ms)
    body = AuditCreate(synthetic=SyntheticSpec(support=300), n=300, neighbours=3, miner="exact")
    audit, job = create_audit(db, settings, body)
    refusals = _Refusals()
    runner_log = logging.getLogger("app.jobs.runner")
    runner_log.addHandler(refusals)
    held = threading.Event()
    holders: list[threading.Thread] = []

    def hold_until_refused() -> None:
        with _held(_sqlite_file(settings)):
            held.set()
            refusals.seen.wait(60)

    def after_each_step(done: int, n: int, pairs: int) -> None:
        if not holders:  # the first step is recorded: hold the store for the next one
            holders.append(threading.Thread(target=hold_until_refused))
            holders[0].start()
            assert held.wait(60)

    try:
        outcome = JobRunner(db, settings).run_job(job.id, on_progress=after_each_step)
    finally:
        refusals.seen.set()
        for holder in holders:
            holder.join()
        runner_log.removeHandler(refusals)
    with db.read() as session:
        stored = audit_store.get_audit(session, audit.id)
        job_status = job_store.get_job(session, job.id).status
    db.dispose()
    assert outcome.status == "done", outcome
    assert (stored.status, stored.samples_done, job_status) == ("done", 300, "done")
    assert holders, "the store was never held"


def test_a_judgement_on_a_held_store_is_a_503_to_retry(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    with TestClient(create_app(settings)) as client:
        db: Database = client.app.state.birthday.db  # type: ignore[attr-defined]
        with db.write() as session:
            audit, _ = audit_store.create_audit(session, synthetic={"support": 10}, n=100)
            audit_store.record_chunk(session, audit.id, ChunkRows(100, [(0, 1, 0.5)], []))
        pair = client.get(f"/api/audits/{audit.id}/pairs").json()["items"][0]["id"]
        url = f"/api/pairs/{pair}/judgements"
        body = {"label": "duplicate", "annotator": "ann"}
        with _held(_sqlite_file(settings)):
            response = client.post(url, json=body)
        problem = assert_problem(response, 503)
        assert "busy" in problem["detail"]
        assert int(response.headers["Retry-After"]) >= 1
        assert client.post(url, json=body).status_code == 201  # released: it goes through


@pytest.mark.parametrize(
    "error",
    [RuntimeError("secret: /srv/birthday/keys"), IntegrityError("INSERT secret", {}, Exception())],
    ids=["any-exception", "a-database-fault"],
)
def test_an_unexpected_error_is_a_500_problem_that_tells_nothing_of_the_server(
    error: Exception,
) -> None:
    app = FastAPI()
    install_problem_handlers(app)

    @app.get("/boom")
    def boom() -> None:
        raise error

    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/boom")
    problem = assert_problem(response, 500)
    assert "secret" not in response.text
    assert problem["title"] == "Internal Server Error"


def test_a_page_that_fails_is_the_html_error_page_for_a_person() -> None:
    """A browser asking for a page gets the HTML error page; the API keeps problem details."""
    from fastapi.responses import HTMLResponse

    app = FastAPI()

    def page(_: Request, status: int, message: str) -> HTMLResponse:
        return HTMLResponse(f"<p>{message}</p>", status_code=status)

    install_problem_handlers(app, page=page)

    @app.get("/audits/1")
    def audit_page() -> None:
        raise RuntimeError("secret: /srv/birthday/keys")

    @app.get("/api/audits/1")
    def audit_api() -> None:
        raise RuntimeError("secret: /srv/birthday/keys")

    html = {"accept": "text/html"}
    with TestClient(app, raise_server_exceptions=False) as client:
        shown = client.get("/audits/1", headers=html)
        api = client.get("/api/audits/1", headers=html)
    assert shown.status_code == 500 and shown.text.startswith("<p>This page failed")
    assert "secret" not in shown.text
    assert_problem(api, 500)
