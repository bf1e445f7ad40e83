"""SQLAlchemy 2 typed models: the whole persistent state of the dashboard."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from app.estimate.stopping import DEFAULT_TARGET


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[int]: JSON}


class Generator(Base):
    """A source of samples: an uploaded or trained checkpoint, or a sample archive."""

    __tablename__ = "generators"
    __table_args__ = {"sqlite_autoincrement": True}  # ids never reused (migration 0008)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    format: Mapped[str] = mapped_column(String(20))
    architecture: Mapped[str | None] = mapped_column(String(50))
    options: Mapped[dict[str, Any]] = mapped_column(default=dict)
    latent_dim: Mapped[int | None] = mapped_column(Integer)
    image_shape: Mapped[list[int] | None] = mapped_column()
    # Relative to the models dir, so a moved installation keeps working.
    path: Mapped[str | None] = mapped_column(String(500))
    status: Mapped[str] = mapped_column(String(20), default="ready")
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    @property
    def draws_images(self) -> bool:
        """The birthday test compares images (C, H, W); a generator trained on toy 2-D data
        draws points, and its mode metrics are its coverage figure instead."""
        return self.image_shape is not None and len(self.image_shape) == 3

    @property
    def auditable(self) -> bool:
        return self.status == "ready" and self.draws_images


class Audit(Base):
    """One birthday test: a pool of n samples, its candidate pairs and their judgements."""

    __tablename__ = "audits"
    __table_args__ = {"sqlite_autoincrement": True}  # ids never reused (migration 0008)

    id: Mapped[int] = mapped_column(primary_key=True)
    generator_id: Mapped[int | None] = mapped_column(ForeignKey("generators.id"), index=True)
    synthetic: Mapped[dict[str, Any] | None] = mapped_column()
    n: Mapped[int] = mapped_column(Integer)
    seed: Mapped[int] = mapped_column(Integer, default=0)
    embedder: Mapped[str] = mapped_column(String(20), default="pixels")
    embedder_options: Mapped[dict[str, Any]] = mapped_column(default=dict)
    miner: Mapped[str] = mapped_column(String(10), default="auto")
    neighbours: Mapped[int] = mapped_column(Integer, default=5)
    chunk_size: Mapped[int] = mapped_column(Integer, default=1000)
    image_shape: Mapped[list[int] | None] = mapped_column()
    status: Mapped[str] = mapped_column(String(20), default="queued")
    samples_done: Mapped[int] = mapped_column(Integer, default=0)
    candidate_pairs: Mapped[int] = mapped_column(Integer, default=0)
    # Random non-candidate pairs drawn per pool size, to check what the miner missed.
    random_pairs: Mapped[int] = mapped_column(Integer, default=50, server_default="50")
    # Relative half-width of the N_eff interval the stopping rule aims for (the user's target).
    target: Mapped[float] = mapped_column(
        Float, default=DEFAULT_TARGET, server_default=str(DEFAULT_TARGET)
    )
    # Pool size at the end of each run: random pairs of generation g have
    # pool_sizes[g-1] <= j < pool_sizes[g].
    pool_sizes: Mapped[list[int] | None] = mapped_column()
    # The review design (app.estimate.design.ReviewDesign.to_dict): which pairs count as sampled.
    review: Mapped[dict[str, Any] | None] = mapped_column()
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Who started it: the annotator's name; None for the local user (no tokens) and for rows
    # made before migration 0010. Only they or an admin may stop or change it.
    created_by: Mapped[str | None] = mapped_column(String(100))


class Sample(Base):
    """A pool sample that appears in a candidate pair."""

    __tablename__ = "samples"

    audit_id: Mapped[int] = mapped_column(ForeignKey("audits.id"), primary_key=True)
    idx: Mapped[int] = mapped_column(Integer, primary_key=True)
    # None: drawn again from (source, seed, idx) when shown (app/services/sample_images.py).
    png: Mapped[bytes | None] = mapped_column(LargeBinary)
    # True identity for sources that know it (synthetic); never shown to reviewers.
    identity: Mapped[int | None] = mapped_column(Integer)


class CandidatePair(Base):
    """Two pool samples (i < j) to judge; `label` is the current consensus.

    origin "candidate": the miner found them close; "random": a uniform sample of the pairs it
    did not propose (generation g of the audit's pool_sizes), which bounds what it missed.
    """

    __tablename__ = "pairs"
    __table_args__ = (
        UniqueConstraint("audit_id", "i", "j", name="uq_pairs_audit_i_j"),
        Index("ix_pairs_audit_origin_distance", "audit_id", "origin", "distance", "id"),
        Index(
            "ix_pairs_audit_origin_label_distance", "audit_id", "origin", "label", "distance", "id"
        ),
        {"sqlite_autoincrement": True},  # ids never reused (migration 0008)
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    audit_id: Mapped[int] = mapped_column(ForeignKey("audits.id"))
    i: Mapped[int] = mapped_column(Integer)
    j: Mapped[int] = mapped_column(Integer)
    distance: Mapped[float] = mapped_column(Float(precision=53))
    label: Mapped[str | None] = mapped_column(String(20))
    origin: Mapped[str] = mapped_column(String(10), default="candidate", server_default="candidate")
    generation: Mapped[int | None] = mapped_column(Integer)


class Annotator(Base):
    __tablename__ = "annotators"
    __table_args__ = {"sqlite_autoincrement": True}  # ids never reused (migration 0008)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    role: Mapped[str] = mapped_column(String(20), default="annotator")
    token_hash: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Judgement(Base):
    """One human's answer about one pair; undo marks it deleted so the history is kept."""

    __tablename__ = "judgements"
    __table_args__ = {"sqlite_autoincrement": True}  # ids never reused (migration 0008)

    id: Mapped[int] = mapped_column(primary_key=True)
    pair_id: Mapped[int] = mapped_column(ForeignKey("pairs.id"), index=True)
    annotator_id: Mapped[int] = mapped_column(ForeignKey("annotators.id"), index=True)
    label: Mapped[str] = mapped_column(String(20))
    # An admin's ruling on a disagreement: it overrides the annotators' votes.
    adjudicated: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class IdempotencyKey(Base):
    """A client-supplied key stored with the judgement it created, in the same transaction."""

    __tablename__ = "idempotency_keys"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    judgement_id: Mapped[int] = mapped_column(ForeignKey("judgements.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Job(Base):
    """Work for the worker; its state lives here so an interrupted job resumes after a restart."""

    __tablename__ = "jobs"
    __table_args__ = {"sqlite_autoincrement": True}  # ids never reused (migration 0008)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20), default="queued")
    audit_id: Mapped[int | None] = mapped_column(ForeignKey("audits.id"), index=True)
    training_run_id: Mapped[int | None] = mapped_column(ForeignKey("training_runs.id"), index=True)
    progress: Mapped[dict[str, Any]] = mapped_column(default=dict)
    error: Mapped[str | None] = mapped_column(Text)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # The process running the job ("host:pid:token") and until when (epoch seconds) its claim
    # holds: another process (a CLI run, a second server) leaves a job with a live lease alone.
    lease_owner: Mapped[str | None] = mapped_column(String(200))
    lease_expires: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Who queued it (see Audit.created_by); their unfinished jobs count against their cap.
    created_by: Mapped[str | None] = mapped_column(String(100), index=True)


class Sweep(Base):
    """A grid of training runs (loss x latent size x discriminator width x seed)."""

    __tablename__ = "sweeps"
    __table_args__ = {"sqlite_autoincrement": True}  # ids never reused (migration 0008)

    id: Mapped[int] = mapped_column(primary_key=True)
    grid: Mapped[dict[str, Any]] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(100))  # see Audit.created_by


class TrainingRun(Base):
    """One GAN training job; its generator lands in models/ and becomes auditable."""

    __tablename__ = "training_runs"
    __table_args__ = {"sqlite_autoincrement": True}  # ids never reused (migration 0008)

    id: Mapped[int] = mapped_column(primary_key=True)
    config: Mapped[dict[str, Any]] = mapped_column()  # the TrainConfig fields, JSON
    status: Mapped[str] = mapped_column(String(20), default="queued")
    step: Mapped[int] = mapped_column(Integer, default=0)
    steps: Mapped[int] = mapped_column(Integer)
    generator_id: Mapped[int | None] = mapped_column(ForeignKey("generators.id"))
    sweep_id: Mapped[int | None] = mapped_column(ForeignKey("sweeps.id"), index=True)
    modes: Mapped[dict[str, Any] | None] = mapped_column()  # mode metrics on known-mode data
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_by: Mapped[str | None] = mapped_column(String(100))  # see Audit.created_by


class TrainingMetric(Base):
    """Losses logged at one step: the loss curves."""

    __tablename__ = "training_metrics"

    run_id: Mapped[int] = mapped_column(ForeignKey("training_runs.id"), primary_key=True)
    step: Mapped[int] = mapped_column(Integer, primary_key=True)
    losses: Mapped[dict[str, Any]] = mapped_column()


class TrainingSampleGrid(Base):
    """The fixed-noise sample grid (or 2D scatter) at one step, as PNG."""

    __tablename__ = "training_sample_grids"

    run_id: Mapped[int] = mapped_column(ForeignKey("training_runs.id"), primary_key=True)
    step: Mapped[int] = mapped_column(Integer, primary_key=True)
    png: Mapped[bytes] = mapped_column(LargeBinary)


class ReviewLease(Base):
    """A pair handed to one annotator, kept from the others until it expires.

    In the store, not in a process's memory, so that two servers (or a server and the CLI) on
    one database never hand one pair to two annotators at once. Expired rows are deleted as the
    audit's pairs are next handed out.
    """

    __tablename__ = "review_leases"
    __table_args__ = (Index("ix_review_leases_audit_expires", "audit_id", "expires_at"),)

    pair_id: Mapped[int] = mapped_column(
        ForeignKey("pairs.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    audit_id: Mapped[int] = mapped_column(ForeignKey("audits.id", ondelete="CASCADE"))
    annotator: Mapped[str] = mapped_column(String(100))  # a name: leases precede any judgement
    # By the store's clock (app.store.review_leases.store_now), UTC.
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
