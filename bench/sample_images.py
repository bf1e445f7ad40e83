"""What drawing sample images again on demand saves, and what it costs when one is shown.

For each source, one audit with every sample's PNG stored (`BIRTHDAY_SAMPLE_IMAGES=stored`)
and one with only each job step's anchor stored (`auto`, the default), on the in-process worker
and a fresh SQLite store each: the audit's wall time, the PNG bytes in the store and the store's
files on disk; then, for the `auto` audit, the latency of serving sample images through the
service the API uses (the first one loads the generator and checks the anchor; then random
samples, each a fresh draw; then the same samples again, from the cache).

Sources: the built-in DCGAN digits generator (16x16 grey, models/builtin), and a DCGAN at the
paper's CelebA size (64x64 RGB, the default DCGAN options) with random weights scaled up so its
images have structure (an untrained one draws flat grey, which compresses to nothing).

    .venv/bin/python bench/sample_images.py                # 10,000 samples per audit
    .venv/bin/python bench/sample_images.py --n 50000
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import func, select  # noqa: E402

from app.gan.checkpoint import save_generator  # noqa: E402
from app.gan.registry import build_generator  # noqa: E402
from app.jobs.runner import JobRunner  # noqa: E402
from app.schemas import AuditCreate  # noqa: E402
from app.services.audits import create_audit  # noqa: E402
from app.services.builtin import register_builtin_generators  # noqa: E402
from app.services.sample_images import SampleImages  # noqa: E402
from app.settings import Settings  # noqa: E402
from app.store import jobs as job_store  # noqa: E402
from app.store.db import Database  # noqa: E402
from app.store.migrate import upgrade  # noqa: E402
from app.store.models import Generator, Sample  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
SHOWN = 200  # sample images served per audit


@dataclass(frozen=True)
class Result:
    seconds: float
    png_bytes: int
    disk_bytes: int


def _celeba_sized(models_dir: Path) -> str:
    """A DCGAN-64 RGB checkpoint under models_dir/trained, returned relative to models_dir."""
    torch.manual_seed(0)
    module, _ = build_generator("dcgan", {})
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.mul_(3.0)
    relative = "trained/dcgan64_rgb.safetensors"
    (models_dir / "trained").mkdir(parents=True, exist_ok=True)
    save_generator(models_dir / relative, module, "dcgan", {})
    return relative


def _generator(db: Database, settings: Settings, source: str) -> int:
    if source == "digits":
        register_builtin_generators(db, settings)
        with db.read() as session:
            found = session.scalars(
                select(Generator.id).where(Generator.path.like("builtin/%digits%"))
            ).first()
        if found is None:
            raise SystemExit("no built-in digits generator under models/builtin")
        return int(found)
    relative = _celeba_sized(settings.models_dir)
    with db.write() as session:
        generator = Generator(
            name="dcgan64 rgb",
            format="safetensors",
            architecture="dcgan",
            options={},
            latent_dim=100,
            image_shape=[3, 64, 64],
            path=relative,
            status="ready",
        )
        session.add(generator)
        session.flush()
        return int(generator.id)


def _disk(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.glob("birthday.sqlite3*"))


def run(source: str, mode: str, n: int, work: Path) -> tuple[Result, SampleImages, int]:
    data = work / f"{source}_{mode}"
    models = work / f"models_{source}"
    if source == "digits":
        models = REPO / "models"
    settings = Settings(data_dir=data, models_dir=models, sample_images=mode)  # type: ignore[arg-type]
    settings.ensure_dirs()
    url = settings.resolved_database_url()
    upgrade(url)
    db = Database(url)
    generator_id = _generator(db, settings, source)
    audit, job = create_audit(db, settings, AuditCreate(generator_id=generator_id, n=n, seed=0))
    runner = JobRunner(db, settings)
    runner.start()
    began = time.perf_counter()
    runner.submit(job.id)
    while True:
        with db.read() as session:
            row = job_store.get_job(session, job.id)
            if row.status not in job_store.ACTIVE:
                break
        time.sleep(0.05)
    seconds = time.perf_counter() - began
    runner.stop()
    if row.status != "done":
        raise SystemExit(f"{source} {mode}: the audit failed: {row.error}")
    with db.read() as session:
        png_bytes = session.scalar(
            select(func.coalesce(func.sum(func.length(Sample.png)), 0)).where(
                Sample.audit_id == audit.id
            )
        )
    db.dispose()
    with sqlite3.connect(data / "birthday.sqlite3") as connection:  # fold the WAL into the file
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return Result(seconds, int(png_bytes or 0), _disk(data)), SampleImages(db, settings), audit.id


def serve(images: SampleImages, audit_id: int, n: int) -> tuple[float, list[float], list[float]]:
    """First image (load + anchor check), then SHOWN random ones drawn, then the same cached."""
    rng = np.random.default_rng(1)
    shown = rng.choice(np.arange(1, n), size=SHOWN, replace=False).tolist()
    began = time.perf_counter()
    images.png(audit_id, int(shown[0]))
    first = time.perf_counter() - began
    drawn, cached = [], []
    for times, indices in ((drawn, shown[1:]), (cached, shown[1:])):
        for idx in indices:
            began = time.perf_counter()
            images.png(audit_id, int(idx))
            times.append(time.perf_counter() - began)
    return first, drawn, cached


def _ms(values: list[float], q: float) -> float:
    return float(np.quantile(values, q)) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=10_000, help="samples per audit")
    parser.add_argument("--sources", default="digits,celeba64", help="digits, celeba64")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for source in args.sources.split(","):
            results = {}
            for mode in ("stored", "auto"):
                result, images, audit_id = run(source, mode, args.n, Path(tmp))
                results[mode] = result
                print(
                    f"{source:9s} {mode:7s} audit {result.seconds:7.1f} s "
                    f"{args.n / result.seconds:6.0f} samples/s; PNGs in store "
                    f"{result.png_bytes / 1e6:8.2f} MB; store on disk "
                    f"{result.disk_bytes / 1e6:8.2f} MB",
                    flush=True,
                )
                if mode == "auto":
                    first, drawn, cached = serve(images, audit_id, args.n)
                    print(
                        f"{source:9s} shown   first image {first * 1e3:.0f} ms (load + anchor "
                        f"check); drawn median {_ms(drawn, 0.5):.1f} ms, p95 "
                        f"{_ms(drawn, 0.95):.1f} ms; cached median {_ms(cached, 0.5):.2f} ms "
                        f"({len(drawn)} images)",
                        flush=True,
                    )
                images.close()
            stored, auto = results["stored"], results["auto"]
            print(
                f"# {source}, {args.n} samples: PNG bytes stored/auto "
                f"{stored.png_bytes / max(auto.png_bytes, 1):.0f}x, store on disk "
                f"{stored.disk_bytes / max(auto.disk_bytes, 1):.1f}x, audit time auto/stored "
                f"{auto.seconds / stored.seconds:.2f}x",
                flush=True,
            )


if __name__ == "__main__":
    main()
