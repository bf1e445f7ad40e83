"""Creating, extending and describing audits: one call each for the API, the pages and the CLI."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, cast

from sqlalchemy import select

from app.embed.factory import make_embedder
from app.gan.digit_classifier import DATASET_DIGITS, PACKAGED, digit_set
from app.jobs.runner import audit_source_spec
from app.mining.factory import DEFAULT_NEIGHBOURS, MinerKind, miner_bytes
from app.schemas import AuditCreate, AuditPublic, Progress
from app.services.generators import read_archive_samples
from app.services.sample_images import check_redraw, open_source
from app.settings import Settings
from app.sources.base import close_source
from app.sources.factory import SourceSpec, cheap_to_regenerate, synthetic_config
from app.store import audits as audit_store
from app.store import generators as generator_store
from app.store import jobs as job_store
from app.store import training as training_store
from app.store.db import Database
from app.store.errors import Conflict
from app.store.jobs import LOCAL_STARTER, Starter
from app.store.models import Audit, Generator, Job

MAX_POOL = 1_000_000  # samples per audit (AuditCreate.n allows as many)


def _image_shape(db: Database, body: AuditCreate) -> list[int]:
    if body.synthetic is not None:
        config = synthetic_config(body.synthetic.model_dump())
        return [config.channels, config.image_size, config.image_size]
    assert body.generator_id is not None
    with db.read() as session:
        generator = generator_store.get_generator(session, body.generator_id)
        if generator.status != "ready":
            raise Conflict(f"generator {generator.id} is {generator.status}, not ready", 422)
        if not generator.draws_images:
            raise Conflict(f"generator {generator.id} does not produce images", 422)
        return list(generator.image_shape or [])


def check_archive_size(db: Database, settings: Settings, generator_id: int | None, n: int) -> None:
    """Refuse a pool larger than the archive it is drawn from (sample i is its i-th image)."""
    if generator_id is None:
        return
    with db.read() as session:
        generator = generator_store.get_generator(session, generator_id)
        try:
            size = read_archive_samples(generator, settings.models_dir)
        except (ValueError, OSError) as exc:
            raise Conflict(f"generator {generator_id}'s archive cannot be read: {exc}") from exc
    if size is not None and n > size:
        raise ValueError(
            f"generator {generator_id} is an archive of {size:,} samples; the pool asks for "
            f"{n:,} (sample i is the archive's i-th image)"
        )


def check_code_allowed(db: Database, settings: Settings, generator_id: int | None) -> None:
    """Refuse to draw from TorchScript (code) where this server does not run code uploads: the
    file may have been accepted when it ran on loopback, and the policy is the server's now."""
    if generator_id is None or settings.code_uploads_allowed:
        return
    with db.read() as session:
        fmt = generator_store.get_generator(session, generator_id).format
    if fmt == "torchscript":
        raise Conflict(
            f"generator {generator_id} is TorchScript (executable code), and this server does not "
            "run code uploads: export it to ONNX (a graph with no code in it) and upload that, "
            "or have an admin allow code uploads (BIRTHDAY_ALLOW_CODE_UPLOADS)",
            422,
        )


def check_source_unchanged(
    spec: SourceSpec, seed: int, settings: Settings, audit_id: int, anchor: tuple[int, bytes]
) -> None:
    """A Conflict unless the audit's source draws its stored sample `anchor` again."""
    source = open_source(spec, seed, settings)
    try:
        check_redraw(source, audit_id, *anchor)
    finally:
        close_source(source)


# What one step of the audit job holds per sample of its chunk, in copies of a float32 image and
# of its float32 embedding (the source's batch and the chunk it fills, the PNGs; the embedder's
# output, its centred and normalised copies). Measured: 2.3 images a sample with a small
# embedding (128x128x3, resize 16), 6 images with one as large (pixels unresized).
CHUNK_IMAGE_COPIES = 3
CHUNK_EMBEDDING_COPIES = 4


def chunk_bytes(chunk_size: int, image_shape: tuple[int, int, int], dim: int) -> int:
    """Memory one audit step holds beside the index: its chunk's images and embeddings."""
    c, h, w = image_shape
    per_sample = CHUNK_IMAGE_COPIES * 4 * c * h * w + CHUNK_EMBEDDING_COPIES * 4 * dim
    return chunk_size * per_sample


def check_memory(
    n: int,
    dim: int,
    limit: int,
    miner: MinerKind = "auto",
    chunk: tuple[int, tuple[int, int, int]] | None = None,
    neighbours: int = DEFAULT_NEIGHBOURS,
) -> None:
    """Refuse a pool whose index cannot fit (mining.factory.miner_bytes): n x dim float32 values
    and each row's bookkeeping, and above the exact miner's largest pool (the "auto" choice) the
    hnsw graph's links: 4*dim + 8*M + 320 bytes a row, 22% more than the values at dim=512.
    `chunk` (chunk size, image shape) adds what one job step holds beside it (chunk_bytes): a
    step of 100,000 RGB images of 128x128 needs over 50 GiB, whatever the pool."""
    index = miner_bytes(miner, n, dim, neighbours)
    step = 0 if chunk is None else chunk_bytes(chunk[0], chunk[1], dim)
    if index + step > limit:
        gib = 1024**3
        if step > index:
            raise ValueError(
                f"steps of {chunk[0] if chunk else 0:,} samples need {step / gib:.1f} GiB of "
                f"images and embeddings beside {index / gib:.1f} GiB of index, over this "
                f"server's {limit / gib:.1f} GiB: use a smaller chunk_size"
            )
        raise ValueError(
            f"{n:,} samples x {dim:,} embedding dimensions need {index / gib:.1f} GiB of "
            f"index{f' (and {step / gib:.1f} GiB a step)' if step else ''}, over this server's "
            f"{limit / gib:.1f} GiB: downsample (embedder_options "
            '{"resize": 16}), use clip, or audit fewer samples'
        )


def create_audit(
    db: Database, settings: Settings, body: AuditCreate, starter: Starter = LOCAL_STARTER
) -> tuple[Audit, Job]:
    """Validate everything the worker would trip on, then store the audit and its queued job,
    started by `starter` (within their cap of unfinished jobs)."""
    fields = audit_fields(db, settings, body)
    with db.write() as session:
        job_store.check_room(session, starter, 1)  # counted where the job is inserted
        return audit_store.create_audit(session, **fields, created_by=starter.name)


def embedder_options(db: Database, body: AuditCreate, models_dir: Path) -> dict[str, Any]:
    """The options as given, and for the digits embedder of a generator trained here on digits
    the classifier that counted its modes unless one is named: its data's digit set (MNIST's
    for stacked MNIST), and the weights learnt from its digits file when it had one (all of
    MNIST), as long as they are still in the models directory."""
    options = dict(body.embedder_options)
    if body.embedder != "digits" or "classifier" in options or body.generator_id is None:
        return options
    with db.read() as session:
        run = training_store.run_of_generator(session, body.generator_id)
        dataset = None if run is None else run.config.get("dataset")
        modes = None if run is None else run.modes
    if dataset not in DATASET_DIGITS:
        return options
    digits = digit_set(DATASET_DIGITS[dataset])
    options["classifier"] = digits.name
    source = ((modes or {}).get("classifier") or {}).get("source", PACKAGED)
    if source != PACKAGED and "weights" not in options:
        weights = digits.cache_file_for(source)
        if (models_dir / weights).is_file():
            options["weights"] = weights
    return options


def audit_fields(db: Database, settings: Settings, body: AuditCreate) -> dict[str, Any]:
    """The stored fields of an audit, once everything the worker would trip on is checked."""
    check_code_allowed(db, settings, body.generator_id)
    image_shape = _image_shape(db, body)
    c, h, w = image_shape
    options = embedder_options(db, body, settings.models_dir)
    # Building the embedder checks its options (and a CLIP weights file) before any work is queued.
    try:
        embedder = make_embedder(body.embedder, options, (c, h, w), settings.models_dir)
    except FileNotFoundError as exc:
        weights = body.embedder_options.get("weights")
        raise ValueError(f"weights file {weights!r} not found under the models directory") from exc
    check_memory(
        body.n,
        embedder.dim,
        settings.max_embedding_bytes,
        body.miner,
        chunk=(min(body.chunk_size or settings.chunk_size, body.n), (c, h, w)),
        neighbours=body.neighbours or settings.neighbours,
    )
    check_archive_size(db, settings, body.generator_id, body.n)
    fields: dict[str, Any] = {
        "generator_id": body.generator_id,
        "synthetic": body.synthetic.model_dump() if body.synthetic else None,
        "n": body.n,
        "seed": body.seed,
        "embedder": body.embedder,
        "embedder_options": options,
        "miner": body.miner,
        "neighbours": body.neighbours or settings.neighbours,
        "chunk_size": body.chunk_size or settings.chunk_size,
        "image_shape": image_shape,
        "random_pairs": body.random_pairs,
        "target": body.target,
    }
    return fields


def extend_audit(
    db: Database,
    settings: Settings,
    audit_id: int,
    n_more: int,
    starter: Starter = LOCAL_STARTER,
) -> tuple[Audit, Job]:
    """Grow the pool in place: new samples are mined against the existing index, labels are kept.
    The new job is `starter`'s (within their cap); the audit stays its starter's.

    The pool grows from the samples it has: a cancelled audit's unsampled rest is given up, not
    drawn again (extending a pool cancelled at 13,000 of 200,000 by 10 gives 13,010)."""
    with db.read() as session:
        audit = audit_store.get_audit(session, audit_id)
        shape = audit.image_shape or [1, 1, 1]
        c, h, w = shape
        embedder = make_embedder(
            audit.embedder, audit.embedder_options or {}, (c, h, w), settings.models_dir
        )
        check_memory(
            audit.samples_done + n_more,
            embedder.dim,
            settings.max_embedding_bytes,
            cast(MinerKind, audit.miner),
            chunk=(min(audit.chunk_size, audit.samples_done + n_more), (c, h, w)),
            neighbours=audit.neighbours,
        )
        generator_id, samples_done, seed = audit.generator_id, audit.samples_done, audit.seed
        spec = audit_source_spec(session, audit)
        anchor = (
            audit_store.anchor_sample(session, audit_id, samples_done - 1) if samples_done else None
        )
    check_code_allowed(db, settings, generator_id)
    check_archive_size(db, settings, generator_id, samples_done + n_more)
    if anchor is not None and cheap_to_regenerate(spec, settings.models_dir):
        # a replaced generator file would grow the pool with another generator's samples; the
        # job checks too (for the sources only workers load, and a file replaced meanwhile)
        check_source_unchanged(spec, seed, settings, audit_id, anchor)
    with db.write() as session:
        audit = audit_store.get_audit(session, audit_id)
        if audit.status in ("queued", "running"):
            raise Conflict(f"audit {audit_id} is {audit.status}; extend it when it is done")
        if audit.status == "failed":
            raise Conflict(f"audit {audit_id} failed: {audit.error}", 422)
        if audit.samples_done + n_more > MAX_POOL:
            raise Conflict("an audit pool is limited to 10^6 samples", 422)
        job_store.check_room(session, starter, 1)
        audit.n = audit.samples_done + n_more
        audit.status = "queued"
        audit.finished_at = None
        job = Job(
            kind="audit",
            status="queued",
            audit_id=audit.id,
            progress={},
            created_by=starter.name,
        )
        session.add(job)
        session.flush()
        return audit, job


def set_target(db: Database, audit_id: int, target: float) -> AuditPublic:
    """Aim the audit's stopping rule at another relative half-width; its labels stand."""
    with db.write() as session:
        audit_store.get_audit(session, audit_id).target = target
    return describe_audit(db, audit_id)


def audit_public(
    audit: Audit, job_id: int | None, generator_name: str | None = None
) -> AuditPublic:
    return AuditPublic(
        id=audit.id,
        status=audit.status,  # type: ignore[arg-type]
        progress=Progress(
            samples_done=audit.samples_done, n=audit.n, candidate_pairs=audit.candidate_pairs
        ),
        generator_id=audit.generator_id,
        generator_name=generator_name,
        synthetic=audit.synthetic,
        n=audit.n,
        seed=audit.seed,
        embedder=audit.embedder,
        embedder_options=audit.embedder_options or {},
        miner=audit.miner,
        neighbours=audit.neighbours,
        image_shape=audit.image_shape,
        target=audit.target,
        job_id=job_id,
        error=audit.error,
        created_by=audit.created_by,
    )


def created_public(db: Database, audit: Audit, job_id: int) -> AuditPublic:
    """A just-queued audit as the API answers it (its generator named)."""
    with db.read() as session:
        generator = session.get(Generator, audit.generator_id) if audit.generator_id else None
        return audit_public(audit, job_id, generator.name if generator else None)


def describe_audit(db: Database, audit_id: int) -> AuditPublic:
    with db.read() as session:
        audit = audit_store.get_audit(session, audit_id)
        job = job_store.latest_job_for_audit(session, audit_id)
        generator = session.get(Generator, audit.generator_id) if audit.generator_id else None
        return audit_public(audit, job.id if job else None, generator.name if generator else None)


def describe_audits(db: Database) -> list[AuditPublic]:
    with db.read() as session:
        names = {i: name for i, name in session.execute(select(Generator.id, Generator.name))}
        return [
            audit_public(
                a,
                (j.id if (j := job_store.latest_job_for_audit(session, a.id)) else None),
                names.get(a.generator_id) if a.generator_id is not None else None,
            )
            for a in audit_store.list_audits(session)
        ]


def delete_audit(db: Database, settings: Settings, audit_id: int) -> list[int]:
    """Delete a finished (or queued) audit; a running one must be cancelled first."""
    with db.write() as session:
        audit = audit_store.get_audit(session, audit_id)
        if audit.status == "running":
            raise Conflict(f"audit {audit_id} is running; cancel its job first")
        job = job_store.latest_job_for_audit(session, audit_id)
        job_ids = [job.id] if job is not None else []
        audit_store.delete_audit_rows(session, audit_id)
    shutil.rmtree(settings.scratch_dir / f"audit_{audit_id}", ignore_errors=True)
    return job_ids
