"""The audit job: chunked mining equals the contract, and an interrupted job resumes exactly."""

from __future__ import annotations

from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from app.jobs.audit import AuditTask, chunk_bounds, run_audit
from app.jobs.runner import JobRunner
from app.schemas import AuditCreate, SyntheticSpec
from app.services.audits import create_audit
from app.settings import Settings
from app.sources.factory import SourceSpec
from app.sources.synthetic import SyntheticConfig, SyntheticSource
from app.store import pairs as pair_store
from app.store.db import Database
from app.store.migrate import upgrade


def _task(tmp_path: Path, miner: str = "exact", n: int = 600, chunk: int = 128) -> AuditTask:
    return AuditTask(
        audit_id=1,
        source=SourceSpec(synthetic={"support": 400, "noise": 0.02}),
        n=n,
        seed=11,
        embedder="pixels",
        embedder_options={},
        miner=miner,
        neighbours=3,
        chunk_size=chunk,
        scratch_dir=str(tmp_path / "scratch"),
        models_dir=str(tmp_path / "models"),
    )


def _pairs(chunks: list) -> set[tuple[int, int]]:
    return {(i, j) for c in chunks for i, j, _ in c.pairs}


def test_chunks_are_aligned_so_resume_cuts_the_same_way() -> None:
    assert list(chunk_bounds(0, 10, 4)) == [(0, 4), (4, 8), (8, 10)]
    assert list(chunk_bounds(5, 10, 4)) == [(5, 8), (8, 10)]


def test_job_pairs_match_brute_force_knn(tmp_path: Path) -> None:
    task = _task(tmp_path)
    chunks = list(run_audit(task))
    assert chunks[-1].samples_done == task.n
    source = SyntheticSource(SyntheticConfig(support=400, noise=0.02), 11)
    x = source.generate(np.arange(task.n, dtype=np.int64)).images.flatten(1).double().numpy()
    # Each row's k nearest among the rows before it, and the earlier rows whose k nearest it
    # enters on arrival (app/mining/reverse.py): the same however the pool is chunked.
    k = task.neighbours
    expected: set[tuple[int, int]] = set()
    top = np.full((task.n, k), np.inf, dtype=np.float32)  # each row's k nearest so far
    for row in range(1, task.n):
        d = np.linalg.norm(x[:row] - x[row], axis=1)
        expected |= {(int(other), row) for other in np.argsort(d, kind="stable")[:k]}
        expected |= {(int(i), row) for i in np.flatnonzero(d.astype(np.float32) < top[:row, -1])}
        top[:row] = np.sort(np.column_stack([top[:row], d.astype(np.float32)]), axis=1)[:, :k]
        top[row, : min(k, row)] = np.sort(d)[:k]
    assert _pairs(chunks) == expected
    distances = {(i, j): dist for c in chunks for i, j, dist in c.pairs}
    for (i, j), dist in list(distances.items())[:50]:
        assert dist == pytest.approx(np.linalg.norm(x[i] - x[j]), rel=1e-9)
    # every sample that appears in a pair has its thumbnail, exactly once
    thumbs = [idx for c in chunks for idx, _, _ in c.samples]
    assert sorted(thumbs) == sorted({k for pair in expected for k in pair})


@pytest.mark.parametrize("miner", ["exact", "hnsw"])
def test_resume_gives_the_same_pairs_as_an_uninterrupted_run(tmp_path: Path, miner: str) -> None:
    reference = list(run_audit(_task(tmp_path / "a", miner)))
    task = _task(tmp_path / "b", miner)
    first = list(islice(run_audit(task), 2))  # the job dies after two stored chunks
    resumed = list(run_audit(task, resume_from=first[-1].samples_done))
    assert _pairs(first) | _pairs(resumed) == _pairs(reference)
    assert not _pairs(first) & _pairs(resumed)


def test_runner_resumes_a_job_left_running(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", models_dir=tmp_path / "models", chunk_size=100)
    settings.ensure_dirs()
    url = settings.resolved_database_url()
    upgrade(url)
    db = Database(url)
    body = AuditCreate(synthetic=SyntheticSpec(support=300), n=500, neighbours=3, miner="exact")
    audit, job = create_audit(db, settings, body)
    calls: list[int] = []

    class Crash(BaseException):
        """Stands for the process dying: nothing in the runner may catch it."""

    def die_after_two(done: int, n: int, pairs: int) -> None:
        calls.append(done)
        if len(calls) == 2:
            raise Crash

    with pytest.raises(Crash):
        JobRunner(db, settings).run_job(job.id, on_progress=die_after_two)
    with db.read() as session:
        partial = {(p.i, p.j) for p in _all_pairs(session, audit.id)}
    outcome = JobRunner(db, settings).run_job(job.id)
    assert outcome.status == "done"
    with db.read() as session:
        pairs = [(p.i, p.j) for p in _all_pairs(session, audit.id)]
    reference = _pairs(list(run_audit(JobRunner(db, settings).audit_task(audit.id))))
    assert len(pairs) == len(set(pairs)) and set(pairs) == reference
    assert partial < set(pairs)
    db.dispose()


def test_a_finished_audit_refreshes_the_planner_statistics(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(data_dir=tmp_path / "data", models_dir=tmp_path / "models", chunk_size=100)
    settings.ensure_dirs()
    url = settings.resolved_database_url()
    upgrade(url)
    db = Database(url)
    refreshed: list[bool] = []
    monkeypatch.setattr(db, "refresh_statistics", lambda: refreshed.append(True))
    body = AuditCreate(synthetic=SyntheticSpec(support=300), n=200, neighbours=3, miner="exact")
    _, job = create_audit(db, settings, body)
    assert JobRunner(db, settings).run_job(job.id).status == "done"
    assert refreshed == [True]
    db.dispose()


def _all_pairs(session, audit_id):  # type: ignore[no-untyped-def]
    page, _ = pair_store.list_pairs(session, audit_id, None, 100_000, None)
    return [r.pair for r in page]


class _NanSource:
    image_shape = (1, 4, 4)
    max_samples = None

    def generate(self, indices):  # type: ignore[no-untyped-def]
        from app.sources.base import SampleChunk

        images = torch.zeros((len(indices), 1, 4, 4))
        images[0, 0, 0, 0] = float("nan")
        return SampleChunk(images=images, identities=None)


def test_probe_refuses_nan_samples_with_a_clear_message() -> None:
    from app.jobs.audit import ProbeError, probe_source

    with pytest.raises(ProbeError, match="NaN or infinite"):
        probe_source(_NanSource())


def test_a_resumed_run_never_asks_the_source_for_older_samples(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each step's PNGs are its own samples: after a resume (or an extension), older samples
    are neither regenerated nor stored again, which for a deflated .npz meant reading the
    archive from its start at every step."""
    task = _task(tmp_path)
    first = list(islice(run_audit(task), 2))
    resume_from = first[-1].samples_done
    asked: list[tuple[int, int]] = []
    generate = SyntheticSource.generate

    def recording(self: SyntheticSource, indices: np.ndarray) -> Any:
        asked.append((int(indices.min()), int(indices.max())))
        return generate(self, indices)

    monkeypatch.setattr(SyntheticSource, "generate", recording)
    resumed = list(run_audit(task, resume_from=resume_from))
    bounds = list(chunk_bounds(resume_from, task.n, task.chunk_size))
    assert asked[1:] == [(start, stop - 1) for start, stop in bounds]  # [0]: the probe
    stored = [idx for c in first + resumed for idx, _, _ in c.samples]
    assert sorted(stored) == list(range(task.n))  # every sample once, by its own step
