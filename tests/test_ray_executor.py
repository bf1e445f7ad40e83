"""Jobs on a real local Ray cluster: the same results as in-process, cancellation, resume, lost workers.

The cluster declares one GPU as a logical resource (there is none on CI), so the tests also check
that a job asks for it; torch in the worker still finds no CUDA device and runs on the CPU.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import ray
from fastapi.testclient import TestClient

from app.jobs.audit import AuditTask, run_audit
from app.jobs.executors import InProcessExecutor, RayExecutor, WorkerLost, make_executor
from app.jobs.runner import JobRunner
from app.main import create_app
from app.schemas import AuditCreate, SyntheticSpec, TrainingRunCreate
from app.services.audits import create_audit
from app.services.training import create_run
from app.settings import Settings
from app.store import generators as generator_store
from app.store import jobs as job_store
from app.store import pairs as pair_store
from app.store import training as training_store
from app.store.db import Database
from app.store.migrate import upgrade
from tests.conftest import all_pairs, wait_for, wait_for_audit
from tests.server import Server
from tests.test_onnx import generator_model, upload

# The worker processes cannot import this test module: ship its functions by value.
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])


@pytest.fixture(scope="module", autouse=True)
def cluster() -> Iterator[None]:
    ray.init(address="local", num_cpus=2, num_gpus=1, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[tuple[Database, Settings]]:
    settings = Settings(data_dir=tmp_path / "data", models_dir=tmp_path / "models", chunk_size=100)
    settings.ensure_dirs()
    url = settings.resolved_database_url()
    upgrade(url)
    db = Database(url)
    yield db, settings
    db.dispose()


def _audit(db: Database, settings: Settings, n: int = 600) -> tuple[int, int]:
    body = AuditCreate(
        synthetic=SyntheticSpec(support=300), n=n, neighbours=3, miner="exact", seed=5
    )
    audit, job = create_audit(db, settings, body)
    return audit.id, job.id


def _stored(db: Database, audit_id: int) -> list[tuple[int, int, float]]:
    with db.read() as session:
        page, _ = pair_store.list_pairs(session, audit_id, None, 1_000_000, None)
    return sorted((r.pair.i, r.pair.j, r.pair.distance) for r in page)


# -- jobs the executor-level tests run remotely ------------------------------------------------
def _where(steps: int) -> Iterator[dict[str, Any]]:
    for step in range(steps):
        yield {"step": step, "pid": os.getpid(), "gpus": ray.get_gpu_ids()}


def _fails_at(step: int) -> Iterator[int]:
    for k in range(step):
        yield k
    raise ValueError(f"boom at step {k + 1}")


def _counts_forever(path: str) -> Iterator[int]:
    k = 0
    while True:
        Path(path).write_text(str(k))
        yield k
        k += 1
        time.sleep(0.02)


def _dies_at(step: int) -> Iterator[int]:
    for k in range(step):  # noqa: UP028 - Ray sends None into the job; a range cannot take it
        yield k
    os._exit(1)  # the worker process dies, as when its node is lost


def _audit_dies_after(
    task: AuditTask, resume_from: int, anchor: tuple[int, bytes] | None, chunks: int
) -> Iterator[Any]:
    for k, chunk in enumerate(run_audit(task, resume_from, anchor)):
        yield chunk
        if k + 1 == chunks:
            time.sleep(0.5)  # let the runner record it before the worker dies
            os._exit(1)


# -- the executor -------------------------------------------------------------------------------
def test_a_job_runs_in_a_ray_worker_with_the_clusters_gpu() -> None:
    batches = list(RayExecutor("local").stream(_where, 3))
    assert [b["step"] for b in batches] == [0, 1, 2]
    assert {b["pid"] for b in batches} != {os.getpid()}
    assert all(len(b["gpus"]) == 1 for b in batches)  # the cluster has a GPU: the job asked for it


def test_a_job_asks_for_the_gpus_the_setting_says() -> None:
    batches = list(RayExecutor("local", gpus=0).stream(_where, 1))
    assert batches[0]["gpus"] == []


def test_a_jobs_error_reads_as_in_process() -> None:
    with pytest.raises(ValueError, match="^boom at step 2$") as remote:
        list(RayExecutor("local").stream(_fails_at, 2))
    assert type(remote.value) is ValueError
    with pytest.raises(ValueError, match="^boom at step 2$"):
        list(InProcessExecutor().stream(_fails_at, 2))


def test_closing_the_stream_stops_the_ray_task(tmp_path: Path) -> None:
    counter = tmp_path / "count"
    steps = RayExecutor("local").stream(_counts_forever, str(counter))
    for k, _ in enumerate(steps):
        if k == 3:
            break
    steps.close()  # type: ignore[attr-defined]
    time.sleep(1.0)
    stopped_at = counter.read_text()
    time.sleep(1.0)
    assert counter.read_text() == stopped_at
    assert int(stopped_at) < 3 + 20  # it ran at most a few batches ahead (backpressure)


def test_a_dead_worker_is_reported_as_lost_not_as_the_jobs_error() -> None:
    with pytest.raises(WorkerLost):
        list(RayExecutor("local").stream(_dies_at, 2))


def test_settings_choose_the_executor(monkeypatch: pytest.MonkeyPatch) -> None:
    assert isinstance(make_executor(None), InProcessExecutor)
    assert isinstance(make_executor("auto"), RayExecutor)
    with pytest.raises(ValueError, match="Ray address"):
        RayExecutor("  ")
    with pytest.raises(ValueError, match="Ray Client"):
        RayExecutor("ray://head:10001")
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *_: None)  # no Ray installed
    with pytest.raises(RuntimeError, match=r"pip install -e '\.\[ray\]'"):
        RayExecutor("local")


# -- the runner on Ray --------------------------------------------------------------------------
def test_an_audit_on_ray_stores_what_the_in_process_worker_stores(
    store: tuple[Database, Settings],
) -> None:
    db, settings = store
    here_id, here_job = _audit(db, settings)
    ray_id, ray_job = _audit(db, settings)
    assert JobRunner(db, settings, executor=InProcessExecutor()).run_job(here_job).status == "done"
    runner = JobRunner(db, settings, executor=RayExecutor("local"))
    assert runner.run_job(ray_job).status == "done"
    assert _stored(db, ray_id) == _stored(db, here_id) != []
    with db.read() as session:
        assert job_store.get_job(session, ray_job).progress["samples_done"] == 600


def test_cancelling_an_audit_on_ray_stops_it(store: tuple[Database, Settings]) -> None:
    db, settings = store
    audit_id, job_id = _audit(db, settings, n=20_000)
    runner = JobRunner(db, settings, executor=RayExecutor("local"))
    seen: list[int] = []

    def cancel_after_two(done: int, n: int, pairs: int) -> None:
        seen.append(done)
        if len(seen) == 2:
            runner.cancel(job_id)

    assert runner.run_job(job_id, on_progress=cancel_after_two).status == "cancelled"
    with db.read() as session:
        job = job_store.get_job(session, job_id)
        assert job.status == "cancelled" and job.progress["samples_done"] == 200
    # the task itself stopped: it no longer embeds chunks into the audit's cache
    cache = settings.scratch_dir / f"audit_{audit_id}"
    time.sleep(1.0)
    embedded = sorted(cache.iterdir())
    time.sleep(1.5)
    assert sorted(cache.iterdir()) == embedded
    assert len(embedded) < 20_000 // 100


def test_an_audit_stopped_on_ray_resumes_where_it_was(store: tuple[Database, Settings]) -> None:
    db, settings = store
    here_id, here_job = _audit(db, settings)
    ray_id, ray_job = _audit(db, settings)
    JobRunner(db, settings, executor=InProcessExecutor()).run_job(here_job)
    first = JobRunner(db, settings, executor=RayExecutor("local"))
    calls: list[int] = []

    def shut_down_after_two(done: int, n: int, pairs: int) -> None:
        calls.append(done)
        if len(calls) == 2:
            first._stopping.set()  # what stop() does when the API process shuts down

    assert first.run_job(ray_job, on_progress=shut_down_after_two).status == "queued"
    partial = _stored(db, ray_id)
    second = JobRunner(db, settings, executor=RayExecutor("local"))
    assert second.run_job(ray_job).status == "done"
    assert set(partial) < set(_stored(db, ray_id))
    assert _stored(db, ray_id) == _stored(db, here_id)


class _LosesItsFirstWorker(RayExecutor):
    """The first attempt's worker dies after two stored chunks; later attempts run normally."""

    def __init__(self) -> None:
        super().__init__("local")
        self.attempts = 0

    def stream(self, job: Any, *args: Any) -> Iterator[Any]:
        self.attempts += 1
        if self.attempts == 1:
            return super().stream(_audit_dies_after, *args, 2)
        return super().stream(job, *args)


def test_an_audit_whose_worker_dies_goes_on_from_the_store(
    store: tuple[Database, Settings],
) -> None:
    db, settings = store
    here_id, here_job = _audit(db, settings)
    ray_id, ray_job = _audit(db, settings)
    JobRunner(db, settings, executor=InProcessExecutor()).run_job(here_job)
    executor = _LosesItsFirstWorker()
    done: list[int] = []
    outcome = JobRunner(db, settings, executor=executor).run_job(
        ray_job, on_progress=lambda d, n, p: done.append(d)
    )
    assert outcome.status == "done" and executor.attempts == 2
    assert done[:2] == [100, 200] and done[2] == 300  # the second attempt began at 200
    assert _stored(db, ray_id) == _stored(db, here_id)


def test_a_training_run_on_ray_registers_its_generator(store: tuple[Database, Settings]) -> None:
    db, settings = store
    body = TrainingRunCreate(
        dataset="ring8", loss="rasgan", steps=40, log_every=10, sample_every=20
    )
    run, job = create_run(db, settings.data_dir, body)
    outcome = JobRunner(db, settings, executor=RayExecutor("local")).run_job(job.id)
    assert outcome.status == "done", outcome.error
    with db.read() as session:
        finished = training_store.get_run(session, run.id)
        assert finished.generator_id is not None
        assert finished.step == 40
        assert finished.generator_id is not None
        path = generator_store.get_generator(session, finished.generator_id).path
    assert (settings.models_dir / path).is_file()


def test_the_runner_runs_as_many_audits_at_once_as_the_cluster_has_room_for(
    store: tuple[Database, Settings],
) -> None:
    db, settings = store
    executor = RayExecutor("local", gpus=0)  # CPU jobs: the cluster's 2 CPUs make 2 slots
    assert executor.slots() == 2
    assert RayExecutor("local").slots() == 1  # one GPU, one job per GPU
    jobs = [_audit(db, settings, n=3000)[1] for _ in range(2)]
    runner = JobRunner(db, settings, executor=executor)
    runner.start()
    try:
        for job_id in jobs:
            runner.submit(job_id)

        def finished() -> list[Any] | None:
            with db.read() as session:
                rows = [job_store.get_job(session, job_id) for job_id in jobs]
                if all(row.status == "done" for row in rows):
                    return [(row.started_at, row.finished_at) for row in rows]
            return None

        (start_a, end_a), (start_b, end_b) = wait_for(finished, what="both audits")
    finally:
        runner.stop()
    assert start_a < end_b and start_b < end_a  # they overlapped


def test_serve_with_ray_runs_audits_and_resumes_one_after_a_restart(tmp_path: Path) -> None:
    """`birthday serve --ray local`: the app's own jobs go to Ray; a graceful stop mid-audit
    leaves the job queued, and the next start finishes it with the pairs an in-process run stores."""
    data = tmp_path / "served"
    server = Server(
        data,
        args=["--ray", "local"],
        env={"BIRTHDAY_RAY_NUM_CPUS": "1", "BIRTHDAY_CHUNK_SIZE": "100"},
    )
    body = {"synthetic": {"support": 300}, "n": 6000, "neighbours": 3, "miner": "exact", "seed": 5}
    try:
        client = server.start()
        audit = client.post("/api/audits", json=body).json()
        wait_for(
            lambda: (
                client.get(f"/api/audits/{audit['id']}").json()["progress"]["samples_done"] >= 300
            ),
            what="a few chunks",
        )
        server.stop()  # SIGTERM: the runner stops the job at its next chunk
        assert "jobs:Raycluster(local)" in "".join(
            server.log.read_text().split()
        )  # rich wraps lines
        stopped = Database(Settings(data_dir=data).resolved_database_url())
        with stopped.read() as session:
            job = job_store.get_job(session, audit["job_id"])
            assert job.status == "queued" and 300 <= job.progress["samples_done"] < 6000
        stopped.dispose()
        client = server.start()
        assert client.get("/api/jobs/workers").json() == {
            "executor": "ray",
            "description": "Ray cluster (local)",
            "concurrent_jobs": 1,  # 1 CPU, no GPU
        }
        done = wait_for_audit(client, audit["id"])
        assert done["status"] == "done" and done["progress"]["samples_done"] == 6000
        served = sorted((p["i"], p["j"], p["distance"]) for p in all_pairs(client, audit["id"]))
    finally:
        server.stop()
    settings = Settings(data_dir=data, models_dir=data / "models", chunk_size=100)
    db = Database(settings.resolved_database_url())
    try:
        again_id, again_job = _audit(db, settings, n=6000)
        runner = JobRunner(db, settings, executor=InProcessExecutor())
        assert runner.run_job(again_job).status == "done"
        assert served == _stored(db, again_id)
    finally:
        db.dispose()


def test_an_uploaded_onnx_generator_is_audited_on_ray_as_in_process(tmp_path: Path) -> None:
    """Uploaded graphs run in a child of the job's process: on Ray, a child of the Ray worker."""
    settings = Settings(
        data_dir=tmp_path / "data", models_dir=tmp_path / "models", ray_address="local"
    )
    with TestClient(create_app(settings)) as client:
        state = client.app.state.birthday  # type: ignore[attr-defined]
        assert isinstance(state.runner.executor, RayExecutor)
        response = upload(client, generator_model().SerializeToString())
        assert response.status_code == 201, response.text  # type: ignore[attr-defined]
        body = {"generator_id": response.json()["id"], "n": 300, "miner": "exact"}  # type: ignore[attr-defined]
        on_ray = wait_for_audit(client, client.post("/api/audits", json=body).json()["id"])
        assert on_ray["status"] == "done", on_ray
        here, job = create_audit(state.db, settings, AuditCreate(**body))
        runner = JobRunner(state.db, settings, executor=InProcessExecutor())
        assert runner.run_job(job.id).status == "done"
        assert _stored(state.db, on_ray["id"]) == _stored(state.db, here.id) != []
