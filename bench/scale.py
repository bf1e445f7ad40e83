"""Audit throughput on the in-process worker and on Ray with 1 and 2 job slots.

Samples per second from generation to stored pairs (sampling, embedding, mining, anchor PNGs and
the store's writes, which stay in this process), for several audits submitted at once to the
JobRunner the API uses, on a fresh SQLite store per configuration:

* in-process: the embedded default, one job at a time on a thread of this process;
* Ray, 1 slot: a private local Ray instance with 1 CPU (one job at a time, each a Ray task);
* Ray, 2 slots: the same with 2 CPUs (two jobs at once).

The source is the built-in DCGAN digits generator (models/builtin, 16x16) with the pixel
embedder, or the synthetic known-support source (`--source synthetic`).

    .venv/bin/python bench/scale.py                     # 2 audits x 20,000 samples
    .venv/bin/python bench/scale.py --n 100000 --jobs 4

Ray sets one thread per task (OMP_NUM_THREADS = its CPUs), while the in-process worker's torch
uses every core: on a 2-core machine one in-process job already uses both.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.jobs.executors import Executor, InProcessExecutor, RayExecutor  # noqa: E402
from app.jobs.runner import JobRunner  # noqa: E402
from app.schemas import AuditCreate, SyntheticSpec  # noqa: E402
from app.services.audits import create_audit  # noqa: E402
from app.services.builtin import register_builtin_generators  # noqa: E402
from app.settings import Settings  # noqa: E402
from app.store import jobs as job_store  # noqa: E402
from app.store.db import Database  # noqa: E402
from app.store.migrate import upgrade  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Run:
    name: str
    seconds: float
    samples: int
    pairs: int

    @property
    def rate(self) -> float:
        return self.samples / self.seconds


def _audit_body(source: str, generator_id: int | None, n: int, seed: int) -> AuditCreate:
    if source == "synthetic":
        return AuditCreate(synthetic=SyntheticSpec(support=max(n, 1000)), n=n, seed=seed)
    return AuditCreate(generator_id=generator_id, n=n, seed=seed)


def run_config(
    name: str, executor: Executor, slots: int, source: str, n: int, jobs: int, work: Path
) -> Run:
    settings = Settings(
        data_dir=work / name.replace(" ", "_").replace(",", ""),
        models_dir=REPO / "models",
        concurrent_jobs=slots,
    )
    settings.ensure_dirs()
    url = settings.resolved_database_url()
    upgrade(url)
    db = Database(url)
    generator_id = None
    if source == "dcgan":
        register_builtin_generators(db, settings)
        generator_id = 1
    job_ids = [
        create_audit(db, settings, _audit_body(source, generator_id, n, seed))[1].id
        for seed in range(jobs)
    ]
    runner = JobRunner(db, settings, executor=executor)
    runner.start()  # connects to Ray (a few seconds) before the clock starts
    began = time.perf_counter()
    for job_id in job_ids:
        runner.submit(job_id)
    while True:
        with db.read() as session:
            rows = [job_store.get_job(session, job_id) for job_id in job_ids]
            if all(row.status not in job_store.ACTIVE for row in rows):
                break
        time.sleep(0.05)
    seconds = time.perf_counter() - began
    runner.stop()
    failed = [row.error for row in rows if row.status != "done"]
    if failed:
        raise SystemExit(f"{name}: jobs failed: {failed}")
    pairs = sum(int(row.progress.get("candidate_pairs", 0)) for row in rows)
    db.dispose()
    return Run(name, seconds, n * jobs, pairs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=20_000, help="samples per audit")
    parser.add_argument("--jobs", type=int, default=2, help="audits submitted at once")
    parser.add_argument("--source", choices=("dcgan", "synthetic"), default="dcgan")
    args = parser.parse_args()
    configs: list[tuple[str, Executor, int]] = [
        ("in-process", InProcessExecutor(), 1),
        ("Ray, 1 slot", RayExecutor("local", num_cpus=1, gpus=0), 1),
        ("Ray, 2 slots", RayExecutor("local", num_cpus=2, gpus=0), 2),
    ]
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, executor, slots in configs:
            run = run_config(name, executor, slots, args.source, args.n, args.jobs, Path(tmp))
            runs.append(run)
            print(
                f"{run.name:14s} {run.seconds:8.1f} s {run.rate:9.0f} samples/s "
                f"({run.samples} samples, {run.pairs} pairs)",
                flush=True,
            )
    base, one, two = runs
    print(
        f"# {args.jobs} audits x {args.n} samples ({args.source}); Ray 1 slot / in-process "
        f"{one.rate / base.rate:.2f}x, Ray 2 slots / 1 slot {two.rate / one.rate:.2f}x; "
        f"peak RSS of this process {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB"
    )


if __name__ == "__main__":
    main()
