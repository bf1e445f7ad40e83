"""One place for configuration: every knob is a `BIRTHDAY_*` environment variable or a constructor argument."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

LOOPBACK = ("127.0.0.1", "localhost", "::1")
DEFAULT_MAX_SWEEP_RUNS = 200  # runs one sweep may queue (SweepCreate's own bound before it)


class Settings(BaseSettings):
    """Defaults give the embedded mode: SQLite under `data_dir`, in-process worker, loopback only."""

    model_config = SettingsConfigDict(env_prefix="BIRTHDAY_", extra="ignore")

    data_dir: Path = Field(default=Path("data"), description="Database, uploads and job scratch.")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default is SQLite at data_dir/birthday.sqlite3."
    )
    models_dir: Path = Field(
        default=Path("models"), description="Generator checkpoints and local embedder weights."
    )
    host: str = "127.0.0.1"
    port: int = 8000
    upload_limit_bytes: int = Field(default=2 * 1024**3, description="Largest accepted upload.")
    chunk_size: int = Field(default=1000, ge=10, description="Samples per audit job step.")
    neighbours: int = Field(default=5, ge=1, le=100, description="k of the k-NN candidate search.")
    resume_jobs: bool = Field(default=True, description="Resume interrupted jobs at start-up.")
    job_lease_s: float = Field(
        default=60.0,
        ge=1.0,
        description="How long a process's claim on a running job holds without renewal (renewed "
        "every third of it); a job whose process died on this host is taken over at once.",
    )
    warm_audits: int = Field(
        default=3,
        ge=0,
        le=8,
        description=(
            "Audits (most recently judged first) whose pairs, estimate and review queue, then "
            "audit-page figures, are built in the background at start-up; 0: none."
        ),
    )
    sample_images: Literal["auto", "stored"] = Field(
        default="auto",
        description="auto: keep PNGs only of samples this process cannot regenerate cheaply "
        "(TorchScript and ONNX run only in workers; a compressed .npz reads from its start) and "
        "draw the rest from (source, seed, i) when shown; stored: keep every sample's PNG.",
    )
    sample_image_cache_bytes: int = Field(
        default=64 * 1024**2, ge=0, description="Regenerated sample PNGs kept in memory."
    )
    sample_image_threads: int = Field(
        default=2,
        ge=1,
        le=32,
        description="Threads serving sample images (their own: a burst of images, a review page "
        "prefetching its next pairs, never holds up the threads that take judgements).",
    )
    sample_image_queue: int = Field(
        default=256,
        ge=1,
        description="Sample-image requests waiting or being served at once; more get a 503 with "
        "Retry-After (drawing runs on the server's CPU, and a public server takes anyone's).",
    )
    sqlite_busy_timeout_ms: int = 5000
    max_embedding_bytes: int = Field(
        default=8 * 1024**3,
        description="Largest memory an audit may hold: its index (n x dim x 4 bytes of embeddings "
        "and the hnsw graph) and one job step's images and embeddings.",
    )
    auth: Literal["auto", "on", "off"] = Field(
        default="auto",
        description="Tokens required? auto: only when bound to a non-loopback address.",
    )
    public_read: bool = Field(
        default=False, description="With auth on, allow reading (GET) without a token."
    )
    max_unfinished_jobs: int = Field(
        default=250,  # the largest default sweep (200 runs) and a few audits beside it
        ge=1,
        description="Jobs (queued or running) one annotator may have at once; more are refused "
        "(429) until some finish. A sweep is as many jobs as runs. Admins and the local user "
        "(no tokens) are not capped.",
    )
    max_sweep_runs: int = Field(
        default=DEFAULT_MAX_SWEEP_RUNS,
        ge=1,
        description="Training runs one sweep may queue (its grid's cells); a larger grid is "
        "refused (422).",
    )
    allowed_hosts: str = Field(
        default="",
        description="Comma-separated host names a server without tokens answers to, besides "
        "localhost, IP addresses and its own --host: any other Host header is refused, so that "
        "a web page cannot reach it by DNS rebinding.",
    )

    ray_address: str | None = Field(
        default=None,
        description=(
            "Run jobs as Ray tasks: 'auto' (a cluster started on this machine), 'host:6379' "
            "(a cluster's head) or 'local' (a private Ray instance); unset: in-process worker."
        ),
    )
    ray_num_cpus: int | None = Field(
        default=None, ge=1, description="CPUs of the private instance started by 'local'."
    )
    concurrent_jobs: int | None = Field(
        default=None,
        ge=1,
        le=256,
        description="Jobs run at once; unset: 1 in-process, what the cluster has room for on Ray.",
    )
    ray_gpus: float | None = Field(
        default=None,
        ge=0,
        description="GPUs each Ray job asks for; unset: one when the cluster has GPUs, else none.",
    )

    allow_code_uploads: bool | None = Field(
        default=None,
        description="Accept TorchScript (executable code) uploads; default: only on loopback "
        "with tokens off (a single user's machine).",
    )

    @property
    def code_uploads_allowed(self) -> bool:
        """A server others can reach, or one that asks for tokens, is shared: no code uploads
        unless an admin says so. Auth turned off does not make a shared bind private."""
        if self.allow_code_uploads is None:
            return self.host in LOOPBACK and not self.auth_required
        return self.allow_code_uploads

    @property
    def auth_required(self) -> bool:
        if self.auth == "auto":
            return self.host not in LOOPBACK
        return self.auth == "on"

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'birthday.sqlite3').resolve()}"

    def ensure_dirs(self) -> None:
        for path in (self.data_dir, self.models_dir, self.uploads_dir, self.scratch_dir):
            path.mkdir(parents=True, exist_ok=True)

    @property
    def uploads_dir(self) -> Path:
        return self.models_dir / "uploads"

    @property
    def scratch_dir(self) -> Path:
        return self.data_dir / "scratch"
