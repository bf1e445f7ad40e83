"""Work has an owner on a shared server: only whoever started a job, audit, training run or sweep
(or an admin) may stop or change it, each annotator's unfinished jobs are capped, and so is a
sweep's grid."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from app.main import create_app
from app.settings import Settings
from app.store.annotators import create_annotator
from app.store.db import Database
from app.store.models import Audit, Job, Sweep, TrainingRun, utcnow
from tests.conftest import assert_problem, wait_for, wait_for_audit
from tests.databases import insert_row

# A run that holds the one worker until cancelled, so that later jobs stay queued.
LONG_RUN = {"dataset": "ring8", "loss": "rasgan", "steps": 10**6}
SMALL_AUDIT = {"synthetic": {"support": 50}, "n": 60}
Headers = dict[str, str]


@contextmanager
def team(settings: Settings, **overrides: Any) -> Iterator[tuple[TestClient, dict[str, Headers]]]:
    """A server with tokens (reading open to all, so polling needs none): annotators ada and
    bob, admin root."""
    settings.auth = "on"
    settings.public_read = True
    for name, value in overrides.items():
        setattr(settings, name, value)
    app = create_app(settings)
    with TestClient(app) as client:
        tokens = {}
        with app.state.birthday.db.write() as session:
            for name, role in (("ada", "annotator"), ("bob", "annotator"), ("root", "admin")):
                tokens[name] = create_annotator(session, name, role)[1]
        yield client, {name: {"Authorization": f"Bearer {t}"} for name, t in tokens.items()}


def _stop(client: TestClient, root: Headers, job_id: int) -> None:
    assert client.post(f"/api/jobs/{job_id}/cancel", headers=root).status_code == 200
    wait_for(
        lambda: client.get(f"/api/jobs/{job_id}").json()["status"] == "cancelled",
        what=f"job {job_id} to stop",
    )


def test_only_the_starter_or_an_admin_cancels_a_job(settings: Settings) -> None:
    with team(settings) as (client, who):
        run = client.post("/api/training-runs", json=LONG_RUN, headers=who["ada"]).json()
        assert run["created_by"] == "ada"
        job = client.get(f"/api/jobs/{run['job_id']}").json()
        assert job["created_by"] == "ada"
        audits = [
            client.post("/api/audits", json=SMALL_AUDIT, headers=who["ada"]).json()
            for _ in range(2)
        ]
        assert [a["created_by"] for a in audits] == ["ada", "ada"]

        # bob (an annotator too) may not stop ada's training run nor her queued audit
        for job_id in (run["job_id"], audits[0]["job_id"]):
            refused = assert_problem(
                client.post(f"/api/jobs/{job_id}/cancel", headers=who["bob"]), 403
            )
            assert "only ada, who started it, or an admin may cancel" in refused["detail"]
        assert client.get(f"/api/jobs/{run['job_id']}").json()["cancel_requested"] is False

        # ada may stop her own, an admin anyone's
        mine = client.post(f"/api/jobs/{audits[0]['job_id']}/cancel", headers=who["ada"])
        assert mine.status_code == 200 and mine.json()["status"] == "cancelled"
        theirs = client.post(f"/api/jobs/{audits[1]['job_id']}/cancel", headers=who["root"])
        assert theirs.status_code == 200 and theirs.json()["status"] == "cancelled"
        _stop(client, who["root"], run["job_id"])
        assert client.get(f"/api/training-runs/{run['id']}").json()["created_by"] == "ada"


def test_only_the_starter_or_an_admin_extends_or_retargets_an_audit(settings: Settings) -> None:
    with team(settings) as (client, who):
        audit = client.post("/api/audits", json=SMALL_AUDIT, headers=who["ada"]).json()
        wait_for_audit(client, audit["id"])
        url = f"/api/audits/{audit['id']}"

        refused = assert_problem(
            client.post(f"{url}/extend", json={"n_more": 10}, headers=who["bob"]), 403
        )
        assert "ada" in refused["detail"] and "extend audit" in refused["detail"]
        assert_problem(client.patch(url, json={"target": 0.5}, headers=who["bob"]), 403)
        unchanged = client.get(url).json()
        assert unchanged["n"] == 60 and unchanged["target"] == audit["target"]

        # judging is anyone's: bob labels a pair of ada's audit
        pair = client.get(f"{url}/next-pair", headers=who["bob"]).json()
        judged = client.post(
            f"/api/pairs/{pair['id']}/judgements", json={"label": "distinct"}, headers=who["bob"]
        )
        assert judged.status_code == 201 and judged.json()["annotator"] == "bob"

        assert client.patch(url, json={"target": 0.5}, headers=who["ada"]).json()["target"] == 0.5
        assert client.patch(url, json={"target": 0.3}, headers=who["root"]).status_code == 200
        grown = client.post(f"{url}/extend", json={"n_more": 10}, headers=who["ada"])
        assert grown.status_code == 202 and grown.json()["created_by"] == "ada"
        wait_for_audit(client, audit["id"])
        again = client.post(f"{url}/extend", json={"n_more": 10}, headers=who["root"])
        assert again.status_code == 202
        # the admin queued this job; ada, whose audit it grows, may still stop it
        job = client.get(f"/api/jobs/{again.json()['job_id']}").json()
        assert job["created_by"] == "root"
        if job["status"] in ("queued", "running"):
            assert_problem(client.post(f"/api/jobs/{job['id']}/cancel", headers=who["bob"]), 403)
            stopped = client.post(f"/api/jobs/{job['id']}/cancel", headers=who["ada"])
            assert stopped.status_code == 200
        wait_for_audit(client, audit["id"])


def test_only_the_starter_or_an_admin_cancels_or_extends_a_sweep(settings: Settings) -> None:
    body = {"dataset": "ring8", "losses": ["rasgan"], "seeds": [0, 1], "steps": 10**6}
    with team(settings) as (client, who):
        sweeps = [client.post("/api/sweeps", json=body, headers=who["ada"]).json() for _ in "ab"]
        assert all(s["created_by"] == "ada" for s in sweeps)
        assert {r["created_by"] for s in sweeps for r in s["runs"]} == {"ada"}
        first, second = (s["id"] for s in sweeps)

        refused = assert_problem(
            client.post(f"/api/sweeps/{first}/cancel", headers=who["bob"]), 403
        )
        assert "only ada, who started it, or an admin may cancel sweep" in refused["detail"]
        assert_problem(client.post(f"/api/sweeps/{first}/extend", json={}, headers=who["bob"]), 403)
        runs = client.get(f"/api/sweeps/{first}").json()["runs"]
        assert all(r["status"] in ("queued", "running") for r in runs)
        # ada's own sweep: allowed (nothing to extend yet: a 422, not a 403)
        assert_problem(client.post(f"/api/sweeps/{first}/extend", json={}, headers=who["ada"]), 422)

        for sweep_id, headers in ((first, who["ada"]), (second, who["root"])):
            answer = client.post(f"/api/sweeps/{sweep_id}/cancel", headers=headers)
            assert answer.status_code == 200, answer.text
        for sweep_id in (first, second):
            wait_for(
                lambda sweep_id=sweep_id: all(
                    r["status"] == "cancelled"
                    for r in client.get(f"/api/sweeps/{sweep_id}").json()["runs"]
                ),
                what=f"sweep {sweep_id} to stop",
            )


def test_an_annotators_unfinished_jobs_are_capped_admins_are_not(settings: Settings) -> None:
    with team(settings, max_unfinished_jobs=2) as (client, who):
        run = client.post("/api/training-runs", json=LONG_RUN, headers=who["ada"]).json()
        queued = client.post("/api/audits", json=SMALL_AUDIT, headers=who["ada"])
        assert queued.status_code == 202
        for url, body in (("/api/audits", SMALL_AUDIT), ("/api/training-runs", LONG_RUN)):
            full = assert_problem(client.post(url, json=body, headers=who["ada"]), 429)
            assert "ada has 2 unfinished jobs" in full["detail"]
            assert "BIRTHDAY_MAX_UNFINISHED_JOBS" in full["detail"]
        # a sweep that alone needs more than the cap could never fit: 422, not "try later"
        sweep = {"dataset": "ring8", "losses": ["rasgan"], "seeds": [0, 1, 2], "steps": 10}
        too_many = assert_problem(client.post("/api/sweeps", json=sweep, headers=who["bob"]), 422)
        assert "BIRTHDAY_MAX_UNFINISHED_JOBS" in too_many["detail"]
        # another annotator's jobs are their own count; an admin is not capped
        assert client.post("/api/audits", json=SMALL_AUDIT, headers=who["bob"]).status_code == 202
        for _ in range(3):
            answer = client.post("/api/audits", json=SMALL_AUDIT, headers=who["root"])
            assert answer.status_code == 202
        # a finished (here: cancelled) job leaves room
        client.post(f"/api/jobs/{queued.json()['job_id']}/cancel", headers=who["ada"])
        assert client.post("/api/audits", json=SMALL_AUDIT, headers=who["ada"]).status_code == 202
        _stop(client, who["root"], run["job_id"])


def test_two_requests_at_once_cannot_both_slip_under_the_cap(settings: Settings) -> None:
    with team(settings, max_unfinished_jobs=1) as (client, who):
        barrier = threading.Barrier(4)
        answers: list[int] = []

        def queue() -> None:
            barrier.wait()
            answer = client.post("/api/training-runs", json=LONG_RUN, headers=who["ada"])
            answers.append(answer.status_code)

        threads = [threading.Thread(target=queue) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(answers) == [202, 429, 429, 429]
        db = client.app.state.birthday.db  # type: ignore[attr-defined]
        with db.read() as session:
            jobs = list(session.scalars(select(Job).where(Job.created_by == "ada")))
        assert len(jobs) == 1
        _stop(client, who["root"], jobs[0].id)


def test_a_sweep_larger_than_the_setting_is_refused(settings: Settings) -> None:
    body = {"dataset": "ring8", "losses": ["rasgan", "lsgan"], "seeds": [0, 1, 2], "steps": 10}
    with team(settings, max_sweep_runs=5) as (client, who):
        for name in ("ada", "root"):  # admins too: the setting is the server's
            refused = assert_problem(client.post("/api/sweeps", json=body, headers=who[name]), 422)
            assert "6 runs" in refused["detail"] and "at most 5" in refused["detail"]
            assert "BIRTHDAY_MAX_SWEEP_RUNS" in refused["detail"]
        assert client.get("/api/sweeps").json() == []
        fits = client.post("/api/sweeps", json=body | {"seeds": [0, 1]}, headers=who["root"])
        assert fits.status_code == 202 and len(fits.json()["runs"]) == 4


def test_rows_from_before_the_migration_are_kept_and_only_admins_may_stop_them(
    settings: Settings,
) -> None:
    from alembic import command
    from app.store.migrate import alembic_config

    settings.ensure_dirs()
    url = settings.resolved_database_url()
    command.upgrade(alembic_config(url), "0009")
    db = Database(url)
    now = utcnow()
    audit_id = insert_row(
        db,
        "audits",
        synthetic=SMALL_AUDIT["synthetic"],
        n=60,
        seed=0,
        embedder="pixels",
        embedder_options={},
        miner="auto",
        neighbours=5,
        chunk_size=1000,
        status="queued",
        samples_done=0,
        candidate_pairs=0,
        created_at=now,
    )
    sweep_id = insert_row(db, "sweeps", grid={"losses": ["rasgan"]}, created_at=now)
    run_id = insert_row(
        db,
        "training_runs",
        config=LONG_RUN | {"d_width": 1.0},
        status="queued",
        step=0,
        steps=10**6,
        sweep_id=sweep_id,
        created_at=now,
    )
    job_ids = [
        insert_row(
            db,
            "jobs",
            kind=kind,
            status="queued",
            progress={},
            cancel_requested=False,
            attempts=0,
            created_at=now,
            **subject,
        )
        for kind, subject in (
            ("audit", {"audit_id": audit_id}),
            ("train", {"training_run_id": run_id}),
        )
    ]
    db.dispose()

    # the server upgrades the store as it starts; the old jobs stay queued (no resuming)
    with team(settings, resume_jobs=False) as (client, who):
        with client.app.state.birthday.db.read() as session:  # type: ignore[attr-defined]
            rows = [
                session.get(Audit, audit_id),
                session.get(Sweep, sweep_id),
                session.get(TrainingRun, run_id),
                *(session.get(Job, job_id) for job_id in job_ids),
            ]
        assert all(row is not None and row.created_by is None for row in rows)
        assert client.get(f"/api/audits/{audit_id}").json()["created_by"] is None
        for job_id in job_ids:
            refused = assert_problem(
                client.post(f"/api/jobs/{job_id}/cancel", headers=who["ada"]), 403
            )
            assert refused["detail"].startswith(f"only an admin may cancel job {job_id}")
        assert_problem(client.post(f"/api/sweeps/{sweep_id}/cancel", headers=who["ada"]), 403)
        assert_problem(
            client.patch(f"/api/audits/{audit_id}", json={"target": 0.5}, headers=who["ada"]), 403
        )
        for job_id in job_ids:
            answer = client.post(f"/api/jobs/{job_id}/cancel", headers=who["root"])
            assert answer.status_code == 200 and answer.json()["status"] == "cancelled"


def test_on_loopback_the_local_user_starts_and_stops_anything(client: TestClient) -> None:
    audit = client.post("/api/audits", json=SMALL_AUDIT).json()
    assert audit["created_by"] is None
    assert client.post(f"/api/jobs/{audit['job_id']}/cancel").status_code == 200


def test_pages_offer_the_starters_controls_only_to_those_who_may_use_them(
    settings: Settings,
) -> None:
    """The API refuses bob's cancel of ada's job and his extension of her audit; the pages
    show him those controls disabled, saying who may, and ada and an admin enabled."""
    with team(settings) as (client, who):
        run = client.post("/api/training-runs", json=LONG_RUN, headers=who["ada"]).json()
        audit = client.post("/api/audits", json=SMALL_AUDIT, headers=who["ada"]).json()
        job_button = f'data-cancel="{run["job_id"]}"'
        title = 'title="only ada, who started it, or an admin may cancel it"'

        def cancel_button(html: str) -> str:
            start = html.index(job_button)
            return html[start : html.index(">", start)]

        for name, allowed in (("bob", False), ("ada", True), ("root", True)):
            home = client.get("/", headers=who[name]).text
            assert (title in cancel_button(home)) is not allowed, name
            assert ("disabled" in cancel_button(home)) is not allowed, name
            page = client.get(f"/training/{run['id']}", headers=who[name]).text
            start = page.index("data-cancel-run")
            assert ("disabled" in page[start : page.index(">", start)]) is not allowed, name
            page = client.get(f"/audits/{audit['id']}", headers=who[name]).text
            assert ("data-not-owner" in page) is not allowed, name
            start = page.index("<form data-extend>")
            form = page[start : page.index("</form>", start)]
            assert ("disabled" in form) is not allowed, name
        _stop(client, who["root"], run["job_id"])
        wait_for_audit(client, audit["id"])
