"""Fixtures: a fresh data dir, SQLite file and app per test (datasette's make_app_client pattern)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from app.store.db import Database
from tests.databases import fresh_database, migrated_database
from tests.memory_guard import pytest_configure, pytest_runtest_logstart  # noqa: F401 (hooks)

# TestClient and schemathesis send `Host: testserver`, and a server without tokens answers only to
# names a web page cannot rebind (app/api/cross_site.py): allow that one name in tests. Set at
# import, before any test module builds an app (test_fuzz.py does while it is collected).
os.environ.setdefault("BIRTHDAY_ALLOWED_HOSTS", "testserver")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        models_dir=tmp_path / "models",
        chunk_size=250,
        resume_jobs=True,
    )


@pytest.fixture(scope="session")
def mnist_classifier_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The MNIST digit classifier, trained once for the whole run (~25 s on two cores)."""
    from app.gan.digit_classifier import DIGIT_SETS, load_or_train_digit_classifier

    path = tmp_path_factory.mktemp("mnist-classifier") / DIGIT_SETS["mnist"].cache_file
    load_or_train_digit_classifier(path, digits="mnist")
    return path


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A migrated store of each kind (PostgreSQL skipped without a test server)."""
    yield from migrated_database(request.param, tmp_path)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.fixture(params=["sqlite", "postgresql"])
def any_client(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TestClient]:
    """The app on SQLite, and on PostgreSQL where a server is given (the same queries)."""
    for url in fresh_database(request.param, tmp_path):
        settings = Settings(
            data_dir=tmp_path / "data", models_dir=tmp_path / "models", database_url=url
        )
        with TestClient(create_app(settings)) as test_client:
            yield test_client


def wait_for(
    check: Callable[[], Any],
    timeout: float = 120.0,
    interval: float = 0.05,
    what: str = "condition",
) -> Any:
    """Poll until check() returns something truthy; fail with `what` after the timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def wait_for_audit(
    client: TestClient | httpx.Client, audit_id: int, timeout: float = 120.0
) -> dict:
    def finished() -> dict | None:
        body = client.get(f"/api/audits/{audit_id}").json()
        return body if body["status"] in ("done", "failed", "cancelled") else None

    return wait_for(finished, timeout, what=f"audit {audit_id} to finish")


def wait_for_run(
    client: TestClient | httpx.Client, run_id: int, timeout: float = 300
) -> dict[str, Any]:
    def finished() -> dict[str, Any] | None:
        run = client.get(f"/api/training-runs/{run_id}").json()
        return run if run["status"] in ("done", "failed", "cancelled") else None

    return wait_for(finished, timeout, what=f"training run {run_id}")


TINY_DCGAN_RUN: dict[str, Any] = {  # a training run done in seconds (add a dataset)
    "loss": "lsgan",
    "architecture": "dcgan",
    "latent_dim": 8,
    "d_width": 0.25,
    "g_width": 0.25,
    "steps": 2,
    "batch_size": 8,
    "sample_every": 0,
}


def finished_run(client: TestClient | httpx.Client, body: dict[str, Any]) -> dict[str, Any]:
    """Start a training run and wait for it; it must have finished, not failed."""
    response = client.post("/api/training-runs", json=body)
    assert response.status_code == 202, response.text
    run = wait_for_run(client, response.json()["id"])
    assert run["status"] == "done", run
    return run


def assert_problem(response: httpx.Response, status: int) -> dict:
    """Every error is an RFC 9457 problem-details body with the right status."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status
    assert isinstance(body["title"], str) and body["title"]
    assert isinstance(body["detail"], str) and body["detail"]
    return body


def all_pairs(client: TestClient | httpx.Client, audit_id: int) -> list[dict]:
    """Every candidate pair of an audit, walking the cursor."""
    items: list[dict] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 500, **({"cursor": cursor} if cursor else {})}
        page = client.get(f"/api/audits/{audit_id}/pairs", params=params).json()
        items += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return items


def sse_events(lines: Iterator[str], timeout: float = 60.0) -> Iterator[tuple[str, str, Any]]:
    """A server-sent event stream's (event, id, data); fails once `timeout` has passed (the
    server's keep-alive pings, made frequent by the test, bring each wait back here)."""
    deadline, fields = time.monotonic() + timeout, dict[str, str]()
    for line in lines:
        assert time.monotonic() < deadline, "the awaited event did not come"
        if line == "":  # a blank line ends an event
            if "data" in fields:
                yield fields.get("event", ""), fields.get("id", ""), json.loads(fields["data"])
            fields = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")
