"""The audit job: sample the pool in chunks, embed, mine candidate pairs, yield them as they come.

A pure generator of results with no store access, so any executor (in-process thread, Ray task) can
run it; the API process alone writes what it yields. Embeddings of finished chunks are cached in the
job's scratch dir, so a resumed or extended job rebuilds its index without re-embedding.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

from app.embed.base import Embedder
from app.embed.factory import make_embedder
from app.estimate.design import sample_noncandidate_pairs
from app.mining.factory import make_miner
from app.mining.types import Miner, PairBatch
from app.sources.base import Source, close_source
from app.sources.factory import SourceSpec, build_source
from app.sources.redraw import ANCHOR_TOLERANCE, not_the_audited_source, redraw_difference
from app.sources.thumbnails import encode_png


@dataclass(frozen=True)
class AuditTask:
    """Everything the job needs, as plain data (it crosses process boundaries)."""

    audit_id: int
    source: SourceSpec
    n: int
    seed: int
    embedder: str
    embedder_options: dict[str, Any]
    miner: str
    neighbours: int
    chunk_size: int
    scratch_dir: str
    models_dir: str
    device: str | None = None
    # Random non-candidate pairs to draw at the end, among pairs (i, j) with
    # random_from <= j < n; None when this pool size already has its generation.
    random_pairs: int = 0
    random_from: int | None = None
    # False: the API process regenerates samples when shown; only each step's first sample is
    # stored, the anchor that shows a regenerated image is still the audited one.
    store_images: bool = True

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class AuditChunk:
    samples_done: int
    pairs: list[tuple[int, int, float]]
    samples: list[tuple[int, bytes | None, int | None]] = field(default_factory=list)
    random_pairs: list[tuple[int, int, float]] = field(default_factory=list)
    pool_size: int | None = None  # set on the step that closes a generation of random pairs


class EmbeddingCache:
    """One .npy file per finished chunk: `emb_<start>_<stop>.npy`."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)

    def path(self, start: int, stop: int) -> Path:
        return self.directory / f"emb_{start:010d}_{stop:010d}.npy"

    def save(self, start: int, stop: int, vectors: NDArray[np.float32]) -> None:
        tmp = self.directory / f".tmp_{start}_{stop}.npy"
        np.save(tmp, vectors)
        tmp.replace(self.path(start, stop))

    def spans(self) -> list[tuple[int, int]]:
        """(start, stop) of every cached chunk."""
        out = []
        for path in self.directory.glob("emb_*_*.npy"):
            _, start, stop = path.stem.split("_")
            out.append((int(start), int(stop)))
        return out

    def load(self, start: int, stop: int) -> NDArray[np.float32] | None:
        path = self.path(start, stop)
        if not path.exists():
            return None
        try:
            array = np.load(path, allow_pickle=False)
        except (OSError, ValueError):
            return None
        return array if array.shape[0] == stop - start else None


def chunk_bounds(start: int, n: int, chunk_size: int) -> Iterator[tuple[int, int]]:
    """Chunks aligned to multiples of chunk_size, so a resumed run cuts the pool the same way."""
    position = start
    while position < n:
        stop = min(n, (position // chunk_size + 1) * chunk_size)
        yield position, stop
        position = stop


def _embed(source: Source, embedder: Embedder, start: int, stop: int) -> tuple[Any, Any]:
    chunk = source.generate(np.arange(start, stop, dtype=np.int64))
    return chunk, embedder.embed(chunk.images)


class ProbeError(ValueError):
    """The source's samples are unusable; the message tells the user what is wrong."""


def probe_source(source: Source) -> None:
    """Check a few samples before spending the pool on them: shape, dtype, range, NaN/Inf."""
    chunk = source.generate(np.arange(min(4, source.max_samples or 4), dtype=np.int64))
    images = chunk.images
    if not isinstance(images, torch.Tensor) or images.dtype != torch.float32:
        raise ProbeError("the source must produce float32 image tensors")
    if tuple(images.shape[1:]) != tuple(source.image_shape):
        raise ProbeError(
            f"the source produced images of shape {tuple(images.shape[1:])}, "
            f"expected {tuple(source.image_shape)}"
        )
    if not torch.isfinite(images).all():
        raise ProbeError("the generator produced NaN or infinite values")
    if images.min() < -1.0001 or images.max() > 1.0001:
        raise ProbeError("samples must lie in [-1, 1] (tanh output)")


class SourceChanged(ValueError):
    """The source no longer draws the samples the pool holds: growing it would mix two sources."""


def check_anchor(source: Source, anchor: tuple[int, bytes]) -> None:
    idx, png = anchor
    difference = redraw_difference(source, idx, png)
    if difference > ANCHOR_TOLERANCE:
        raise SourceChanged(
            "the pool cannot grow: " + not_the_audited_source(idx, difference) + "; audit the "
            "new file as a new generator"
        )


def run_audit(
    task: AuditTask, resume_from: int = 0, anchor: tuple[int, bytes] | None = None
) -> Iterator[AuditChunk]:
    """Yield one AuditChunk per step from `resume_from` to `task.n`; `anchor`, a stored sample
    (index, PNG) below `resume_from`, must be what the source draws again before the pool grows."""
    models_dir = Path(task.models_dir)
    source = build_source(task.source, task.seed, models_dir, device=task.device)
    try:
        if source.max_samples is not None and task.n > source.max_samples:
            raise ValueError(
                f"the source has only {source.max_samples} samples, the audit asks for {task.n}"
            )
        probe_source(source)
        if anchor is not None:
            check_anchor(source, anchor)
        embedder = make_embedder(
            task.embedder, task.embedder_options, source.image_shape, models_dir
        )
        miner: Miner = make_miner(task.miner, capacity=task.n, dim=embedder.dim)  # type: ignore[arg-type]
        cache = EmbeddingCache(Path(task.scratch_dir) / f"audit_{task.audit_id}")
        # Rebuild the index over the part of the pool that is already stored.
        for start, stop in chunk_bounds(0, resume_from, task.chunk_size):
            vectors = cache.load(start, stop)
            if vectors is None:
                _, vectors = _embed(source, embedder, start, stop)
                cache.save(start, stop, vectors)
            miner.add(vectors)
        for start, stop in chunk_bounds(resume_from, task.n, task.chunk_size):
            chunk, vectors = _embed(source, embedder, start, stop)
            cache.save(start, stop, vectors)
            batch: PairBatch = miner.add_and_query(vectors, task.neighbours)
            yield AuditChunk(
                samples_done=stop,
                pairs=list(
                    zip(batch.i.tolist(), batch.j.tolist(), batch.distance.tolist(), strict=True)
                ),
                samples=_thumbnails(chunk, start, task.store_images),
            )
        if task.random_from is not None:
            yield _random_generation(task, cache)
    finally:
        close_source(source)


def draw_random_pairs(n: int, new_from: int, m: int, seed: int) -> NDArray[np.int64]:
    """m pairs (i < j) uniform without replacement among those with new_from <= j < n.

    Seeded by (seed, n), so a resumed job draws the same pairs. Candidates among them are
    dropped when stored, which leaves a uniform sample of the non-candidate pairs.
    """
    rng = np.random.default_rng([seed, n, 0x52414E44])
    none = np.empty((0, 2), dtype=np.int64)
    return sample_noncandidate_pairs(n, none, m, rng, new_from=new_from)


def _random_generation(task: AuditTask, cache: EmbeddingCache) -> AuditChunk:
    assert task.random_from is not None
    picked = draw_random_pairs(task.n, task.random_from, task.random_pairs, task.seed)
    if picked.size == 0:
        return AuditChunk(samples_done=task.n, pairs=[], pool_size=task.n)
    wanted = np.unique(picked)
    vectors = _cached_vectors(cache, wanted)
    row = {int(idx): k for k, idx in enumerate(wanted.tolist())}
    a = vectors[[row[int(x)] for x in picked[:, 0]]].astype(np.float64)
    b = vectors[[row[int(x)] for x in picked[:, 1]]].astype(np.float64)
    distance = np.sqrt(((a - b) ** 2).sum(axis=1))
    # Their PNGs are stored already: each step stores all of its samples.
    return AuditChunk(
        samples_done=task.n,
        pairs=[],
        random_pairs=list(
            zip(picked[:, 0].tolist(), picked[:, 1].tolist(), distance.tolist(), strict=True)
        ),
        pool_size=task.n,
    )


def _cached_vectors(cache: EmbeddingCache, indices: NDArray[np.int64]) -> NDArray[np.float32]:
    """Embeddings of the given sample indices from the cache of finished chunks.

    Runs cut the pool differently after an extension, so look up whichever cached chunk
    holds each index (they agree: embeddings are deterministic).
    """
    spans = sorted(cache.spans(), key=lambda span: (span[0], -span[1]))
    out = np.empty((indices.size, 0), dtype=np.float32)
    filled = np.zeros(indices.size, dtype=bool)
    for start, stop in spans:
        mine = np.flatnonzero(~filled & (indices >= start) & (indices < stop))
        if mine.size == 0:
            continue
        vectors = cache.load(start, stop)
        if vectors is None:
            continue
        if out.shape[1] == 0:
            out = np.empty((indices.size, vectors.shape[1]), dtype=np.float32)
        out[mine] = vectors[indices[mine] - start]
        filled[mine] = True
    if not filled.all():
        raise RuntimeError(f"no cached embedding for samples {indices[~filled][:5].tolist()}")
    return out


def _thumbnails(
    chunk: Any, start: int, store_images: bool
) -> list[tuple[int, bytes | None, int | None]]:
    """This step's samples with their PNGs, or (store_images False) with the first one's only.

    Every sample has its k neighbours, so each is in a pair, and an older sample's image is
    always kept by its own step. A later step never regenerates one (after a resume or an
    extension that cost a generator pass per step, and a pass through the archive from its start
    for a deflated .npz). A step's first PNG is kept even when the rest are regenerated on demand:
    the API draws it again and compares before it shows any other sample of the step.
    """
    ids = chunk.identities
    return [
        (
            start + k,
            encode_png(image) if store_images or k == 0 else None,
            None if ids is None else int(ids[k]),
        )
        for k, image in enumerate(chunk.images)
    ]
